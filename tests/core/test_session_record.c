/* tests/core/test_session_record.c — the session's record layer (core/session/session_record.c)
 * between two READY sessions (keys from a real handshake) joined by an in-memory fake transport:
 * sealed records open on the other side under the right key; a replayed, reordered, truncated or
 * re-addressed record is refused and ends the session; a new epoch (the service a path owner
 * uses after losing its path) is followed by the peer, frames of the old one are dropped, and the
 * session messages lost with the path are sent again; the handler table hands each message to
 * the handler of its id, then to the catch-all entry, then to the user. On the direct path (a
 * second fake channel installed with tallow__session_use_channel, as the negotiator installs QUIC)
 * transfer records go unsealed with their record number and are checked just as strictly (order,
 * gaps, replays, epochs); a frame made for one path is refused on the other, an unsealed frame
 * injected on the relay is refused with a clear error, and after the direct path is lost every
 * frame on the relay is sealed again.
 * The session's two files are compiled into this one for their internals. */
#include "../../core/session/session.c"
#include "../../core/session/session_record.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

typedef struct frame {
    uint8_t *p;
    size_t len;
} frame;
typedef struct side {
    tallow__session *s;
    tallow_channel ch, dch;
    frame q[64];  /* frames on their way to this side */
    frame dq[64]; /* the same on the direct path */
    size_t nq, ndq;
    uint64_t pings[64]; /* seq of each Ping delivered to on_message, in order */
    uint64_t tids[64];  /* the key each came under */
    size_t got;
    int closed, closed_err;
} side;
static side A, B;
static tallow_ctx *ctx;

static int fake_send(tallow_channel *ch, uint32_t to, const uint8_t *f, size_t len)
{
    (void)to;
    side *p = ch == &A.ch || ch == &A.dch ? &B : &A;
    frame *q = ch == &A.dch || ch == &B.dch ? p->dq : p->q;
    size_t *n = ch == &A.dch || ch == &B.dch ? &p->ndq : &p->nq;
    assert_true(*n < 64);
    q[*n].p = malloc(len);
    assert_non_null(q[*n].p);
    memcpy(q[*n].p, f, len);
    q[(*n)++].len = len;
    return 0;
}
static int fake_control(tallow_channel *ch, int op, void *arg)
{
    (void)ch;
    (void)op;
    (void)arg;
    return TALLOW_ENOTSUP;
}
static const tallow_transport_ops fake_ops = {
    .name = "fake", .send = fake_send, .control = fake_control};

static void on_message(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    side *me = ud;
    assert_int_equal(t->id, TALLOW_MSG_Ping);
    assert_true(me->got < 64);
    me->tids[me->got] = tallow__session_rx_key(s);
    me->pings[me->got++] = ((const tallow_msg_Ping *)msg)->seq;
}
static void on_closed(tallow__session *s, int err, void *ud)
{
    side *me = ud;
    (void)s;
    me->closed = 1;
    me->closed_err = err;
}
static const tallow__session_cbs cbs = {.on_message = on_message, .on_closed = on_closed};

static void make_side(side *me, int initiator, const tallow__keys *k)
{
    memset(me, 0, sizeof *me);
    tallow__session *s = session_alloc();
    assert_non_null(s);
    s->ctx = ctx;
    s->cbs = &cbs;
    s->ud = me;
    s->buf = malloc(SESSION_MAX_FRAME + 64);
    s->rbuf = malloc(SESSION_MAX_FRAME + 64);
    s->rx_key_tid = TALLOW__SESSION_KEY;
    s->rekey_records = REKEY_RECORDS;
    s->rekey_bytes = REKEY_BYTES;
    s->initiator = initiator;
    s->keys = *k;
    tallow__aead_init(&s->tx, s->keys.tx, s->keys.alg);
    tallow__aead_init(&s->rx, s->keys.rx, s->keys.alg);
    memcpy(s->base_tx, s->keys.transfer_base_tx, 32);
    memcpy(s->base_rx, s->keys.transfer_base_rx, 32);
    s->state = ST_READY;
    s->ready_reported = 1;
    me->ch.ops = &fake_ops;
    me->ch.ctx = ctx;
    me->ch.ev = &ch_events;
    me->ch.ev_ud = s;
    me->dch.ops = &fake_ops;
    me->dch.ctx = ctx;
    s->relay = s->path = &me->ch;
    me->s = s;
}

static int setup(void **state)
{
    (void)state;
    ctx = tallow_ctx_new();
    tallow_ctx_set_log_level(ctx, TALLOW_LOG_ERROR);
    uint8_t room[32] = {7};
    tallow__hs ha, hb;
    tallow_msg_HandshakeInit init;
    tallow_msg_HandshakeResponse resp;
    tallow_msg_HandshakeComplete done;
    assert_int_equal(tallow__hs_init(&ha, 1, "9-apple-banana-cherry", room), 0);
    assert_int_equal(tallow__hs_init(&hb, 0, "9-apple-banana-cherry", room), 0);
    assert_int_equal(tallow__hs_make_init(&ha, &init), 0);
    assert_int_equal(tallow__hs_on_init(&hb, &init, &resp), 0);
    assert_int_equal(tallow__hs_on_response(&ha, &resp, &done), 0);
    assert_int_equal(tallow__hs_on_complete(&hb, &done), 0);
    tallow__keys ka, kb;
    assert_int_equal(tallow__hs_keys(&ha, &ka), 0);
    assert_int_equal(tallow__hs_keys(&hb, &kb), 0);
    make_side(&A, 1, &ka);
    make_side(&B, 0, &kb);
    tallow__hs_wipe(&ha);
    tallow__hs_wipe(&hb);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (side *me = &A; me; me = me == &A ? &B : NULL) {
        for (size_t i = 0; i < me->nq; i++)
            free(me->q[i].p);
        for (size_t i = 0; i < me->ndq; i++)
            free(me->dq[i].p);
        me->s->relay = me->s->path = NULL;
        tallow__session_close(me->s);
    }
    tallow_ctx_free(ctx);
    return 0;
}

/* Hands frame i of those queued for me to its session (the queue is kept). */
static void feed(side *me, size_t i)
{
    assert_true(i < me->nq);
    ch_frame(&me->ch, 0, me->q[i].p, me->q[i].len, me->s);
}

static void drop_all(side *me)
{
    for (size_t i = 0; i < me->nq; i++)
        free(me->q[i].p);
    me->nq = 0;
}

static void deliver_all(side *me)
{
    size_t n = me->nq;
    for (size_t i = 0; i < n; i++)
        feed(me, i);
    for (size_t i = 0; i < n; i++)
        free(me->q[i].p);
    memmove(me->q, me->q + n, (me->nq - n) * sizeof(frame));
    me->nq -= n;
}

static void ping(side *me, uint64_t tid, uint64_t seq)
{
    tallow_msg_Ping p = {seq, 0};
    if (tid == TALLOW__SESSION_KEY)
        assert_true(tallow__session_send(me->s, &tallow_msgtype_Ping, &p) >= 0);
    else
        assert_true(tallow__session_send_tx(me->s, tid, &tallow_msgtype_Ping, &p) >= 0);
}

/* Sealed under the session key and two transfer keys, each opens under its own key. */
static void test_seal_open(void **state)
{
    (void)state;
    ping(&A, TALLOW__SESSION_KEY, 1);
    ping(&A, 5, 2);
    ping(&A, 300, 3);
    ping(&A, 5, 4);
    assert_int_equal(B.nq, 4);
    assert_int_equal(B.q[0].p[0], KIND_SEALED);
    assert_int_equal(B.q[1].p[0], KIND_TRANSFER);
    /* the plaintext is not on the wire */
    tallow_msg_Ping p = {1, 0};
    uint8_t enc[32];
    int n = tallow_msg_encode(&tallow_msgtype_Ping, &p, enc, sizeof enc);
    assert_true(n > 0);
    for (size_t i = 0; i + (size_t)n <= B.q[0].len; i++)
        assert_false(memcmp(B.q[0].p + i, enc, (size_t)n) == 0);
    deliver_all(&B);
    assert_false(B.closed);
    assert_int_equal(B.got, 4);
    uint64_t want_seq[] = {1, 2, 3, 4}, want_tid[] = {TALLOW__SESSION_KEY, 5, 300, 5};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(B.pings[i], want_seq[i]);
        assert_int_equal(B.tids[i], want_tid[i]);
    }
    /* and the other way */
    ping(&B, TALLOW__SESSION_KEY, 9);
    deliver_all(&A);
    assert_int_equal(A.got, 1);
    assert_int_equal(A.pings[0], 9);
}

/* The same record twice: the second fails to open (its number is used) and ends the session. */
static void test_replay_refused(void **state)
{
    (void)state;
    ping(&A, TALLOW__SESSION_KEY, 1);
    feed(&B, 0);
    assert_int_equal(B.got, 1);
    feed(&B, 0);
    assert_int_equal(B.got, 1);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
}

/* Two records of one key in the wrong order: the first to arrive does not open. */
static void test_reorder_refused(void **state)
{
    (void)state;
    ping(&A, 42, 1);
    ping(&A, 42, 2);
    feed(&B, 1);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
}

/* A transfer's record presented as another transfer's (its id rewritten in the clear header)
 * or cut short does not open. */
static void test_readdressed_and_truncated_refused(void **state)
{
    (void)state;
    ping(&A, 5, 1);
    assert_int_equal(B.q[0].p[0], KIND_TRANSFER);
    B.q[0].p[2] = 6; /* kind, epoch 0, id 5 -> 6 */
    feed(&B, 0);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);

    teardown(NULL);
    setup(NULL);
    ping(&A, TALLOW__SESSION_KEY, 1);
    B.q[0].len -= 1;
    feed(&B, 0);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
}

/* A new epoch after a lost path: the peer follows on the first frame that opens under it, frames
 * of the old epoch still on their way are dropped (not an error), and the session messages lost
 * with the path (never acknowledged) arrive again, once each, in order. */
static void test_new_epoch_resends_lost(void **state)
{
    (void)state;
    ping(&A, TALLOW__SESSION_KEY, 1);
    deliver_all(&B);
    ping(&A, TALLOW__SESSION_KEY, 2);
    ping(&A, TALLOW__SESSION_KEY, 3);
    frame late = {malloc(B.q[0].len), B.q[0].len}; /* #2 arrives after all, but late */
    memcpy(late.p, B.q[0].p, late.len);
    drop_all(&B); /* lost with the path */
    uint64_t e = A.s->tx_epoch;
    tallow__session_new_epoch(A.s);
    assert_int_equal(A.s->tx_epoch, e + 1);
    ping(&A, TALLOW__SESSION_KEY, 4);
    deliver_all(&B);
    assert_false(B.closed);
    assert_int_equal(B.s->rx_epoch, e + 1);
    ch_frame(&B.ch, 0, late.p, late.len, B.s); /* old epoch: dropped */
    free(late.p);
    assert_false(B.closed);
    assert_int_equal(B.got, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(B.pings[i], (uint64_t)i + 1);
}

/* Messages B had delivered already are sent again too (the ack had not come back): the receiver
 * drops those it had and delivers each message once. */
static void test_new_epoch_no_duplicates(void **state)
{
    (void)state;
    for (uint64_t i = 1; i <= 5; i++)
        ping(&A, TALLOW__SESSION_KEY, i);
    deliver_all(&B); /* delivered, but fewer than ACK_EVERY: A still keeps them */
    assert_true(A.s->retx_n >= 5);
    tallow__session_new_epoch(A.s);
    ping(&A, TALLOW__SESSION_KEY, 6);
    deliver_all(&B);
    assert_false(B.closed);
    assert_int_equal(B.got, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(B.pings[i], (uint64_t)i + 1);
}

static int h_calls, any_calls;
static uint32_t h_last;
static int h_consume(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    (void)s;
    (void)msg;
    assert_ptr_equal(ud, &h_calls);
    h_calls++;
    h_last = t->id;
    return 1;
}
static int h_pass(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    (void)s;
    (void)t;
    (void)msg;
    (void)ud;
    any_calls++;
    return 0; /* not consumed: on to the user */
}

/* The handler of a message's id first, then the catch-all entry, then on_message. */
static void test_handler_table(void **state)
{
    (void)state;
    h_calls = any_calls = 0;
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, h_consume, &h_calls), 0);
    tallow__session_set_filter(B.s, h_pass, NULL);
    ping(&A, TALLOW__SESSION_KEY, 1);
    deliver_all(&B);
    assert_int_equal(h_calls, 1);
    assert_int_equal(h_last, TALLOW_MSG_Ping);
    assert_int_equal(any_calls, 0); /* consumed by its id's handler */
    assert_int_equal(B.got, 0);
    /* without the id's entry: the catch-all sees it, passes it on, the user gets it */
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, NULL, NULL), 0);
    ping(&A, TALLOW__SESSION_KEY, 2);
    deliver_all(&B);
    assert_int_equal(h_calls, 1);
    assert_int_equal(any_calls, 1);
    assert_int_equal(B.got, 1);
    /* a second entry for one id replaces the first; removing the catch-all leaves the user */
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, h_pass, NULL), 0);
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, h_consume, &h_calls), 0);
    assert_int_equal(B.s->nhandlers, 2);
    tallow__session_set_filter(B.s, NULL, NULL);
    assert_int_equal(B.s->nhandlers, 1);
    ping(&A, TALLOW__SESSION_KEY, 3);
    deliver_all(&B);
    assert_int_equal(h_calls, 2);
    assert_int_equal(any_calls, 1);
    assert_int_equal(B.got, 1);
}

/* Sends go where the path owner says, and back to the first channel on NULL. */
static int other_sent;
static int other_send(tallow_channel *ch, uint32_t to, const uint8_t *f, size_t len)
{
    (void)ch;
    (void)to;
    (void)f;
    (void)len;
    other_sent++;
    return 0;
}
static const tallow_transport_ops other_ops = {.name = "other", .send = other_send};

static void test_use_channel(void **state)
{
    (void)state;
    tallow_channel other = {.ops = &other_ops};
    other_sent = 0;
    tallow__session_use_channel(B.s, &other);
    assert_false(tallow__session_on_first(B.s));
    ping(&B, TALLOW__SESSION_KEY, 1);
    assert_int_equal(other_sent, 1);
    assert_int_equal(A.nq, 0);
    tallow__session_use_channel(B.s, NULL);
    assert_true(tallow__session_on_first(B.s));
    ping(&B, TALLOW__SESSION_KEY, 2);
    assert_int_equal(other_sent, 1);
    assert_int_equal(A.nq, 1);
}

/* ---- the direct path */

/* Both sides move their sends to the direct channel, as the negotiator does once QUIC is up. */
static void go_direct(void)
{
    tallow__session_use_channel(A.s, &A.dch);
    tallow__session_use_channel(B.s, &B.dch);
}

/* Hands frame i of those queued for me on the direct path to its session, as the negotiator
 * does with what arrives on QUIC (the queue is kept). */
static void feed_direct(side *me, size_t i)
{
    assert_true(i < me->ndq);
    tallow__session_input(me->s, &me->dch, me->dq[i].p, me->dq[i].len);
}

static void deliver_direct(side *me)
{
    for (size_t i = 0; i < me->ndq; i++) {
        feed_direct(me, i);
        free(me->dq[i].p);
    }
    me->ndq = 0;
}

static size_t ping_encoded(uint64_t seq, uint8_t enc[32])
{
    tallow_msg_Ping p = {seq, 0};
    int n = tallow_msg_encode(&tallow_msgtype_Ping, &p, enc, 32);
    assert_true(n > 0);
    return (size_t)n;
}

static int has_bytes(const frame *f, const uint8_t *m, size_t n)
{
    for (size_t i = 0; i + n <= f->len; i++)
        if (memcmp(f->p + i, m, n) == 0) return 1;
    return 0;
}

static void assert_error_has(const char *want)
{
    const char *e = tallow_ctx_last_error(ctx);
    if (!strstr(e, want)) fail_msg("error \"%s\" does not say \"%s\"", e, want);
}

/* On the direct path a transfer record is not sealed: the message follows its header (kind 0x82,
 * epoch, transfer id, record number) with no tag; a session message stays sealed (kind 0x81).
 * Each arrives in order under its key. */
static void test_direct_unsealed(void **state)
{
    (void)state;
    go_direct();
    ping(&A, 5, 1);
    ping(&A, TALLOW__SESSION_KEY, 2);
    ping(&A, 5, 3);
    ping(&A, 300, 4);
    assert_int_equal(B.nq, 0);
    assert_int_equal(B.ndq, 4);
    assert_int_equal(B.dq[0].p[0], KIND_DIRECT | KIND_TRANSFER);
    assert_int_equal(B.dq[1].p[0], KIND_DIRECT | KIND_SEALED);
    uint8_t enc[32];
    size_t n = ping_encoded(1, enc);
    /* 0x82, epoch 0, transfer 5, record 0, then the message as it is */
    assert_int_equal(B.dq[0].len, 4 + n);
    assert_int_equal(B.dq[0].p[3], 0);
    assert_memory_equal(B.dq[0].p + 4, enc, n);
    assert_int_equal(B.dq[2].p[3], 1); /* record 1 of transfer 5 */
    assert_int_equal(B.dq[3].p[4], 0); /* record 0 of transfer 300 (id: a 2-byte varint) */
    n = ping_encoded(2, enc);
    assert_false(has_bytes(&B.dq[1], enc, n)); /* the session message is sealed */
    deliver_direct(&B);
    assert_false(B.closed);
    assert_int_equal(B.got, 4);
    uint64_t want_tid[] = {5, TALLOW__SESSION_KEY, 5, 300};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(B.pings[i], (uint64_t)i + 1);
        assert_int_equal(B.tids[i], want_tid[i]);
    }
}

/* Unsealed records are checked as an AEAD's numbers are: a reordered one, a replayed one and one
 * whose number was changed are refused and end the session. */
static void test_direct_order_checked(void **state)
{
    (void)state;
    go_direct();
    ping(&A, 5, 1);
    ping(&A, 5, 2);
    feed_direct(&B, 1);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
    assert_error_has("direct record 1 of transfer 5 from the peer, expected 0");

    teardown(NULL);
    setup(NULL);
    go_direct();
    ping(&A, 5, 1);
    ping(&A, 5, 2);
    feed_direct(&B, 0);
    feed_direct(&B, 0);
    assert_int_equal(B.got, 1);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);

    teardown(NULL);
    setup(NULL);
    go_direct();
    ping(&A, 5, 1);
    B.dq[0].p[3] = 1; /* a gap */
    feed_direct(&B, 0);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
}

/* A frame made for the direct path, fed through the relay channel: refused with a clear error,
 * whatever its kind. And a plaintext frame the relay forges in the direct format (a session that
 * never went direct): refused the same way. */
static void test_direct_frame_refused_on_relay(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        if (k) {
            teardown(NULL);
            setup(NULL);
        }
        go_direct();
        ping(&A, k ? TALLOW__SESSION_KEY : 5, 1);
        assert_int_equal(B.ndq, 1);
        ch_frame(&B.ch, 0, B.dq[0].p, B.dq[0].len, B.s);
        assert_int_equal(B.got, 0);
        assert_true(B.closed);
        assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
        assert_error_has("arrived on the relay channel: refused");
    }

    teardown(NULL);
    setup(NULL);
    uint8_t f[64] = {KIND_DIRECT | KIND_TRANSFER, 0, 5, 0};
    size_t n = ping_encoded(7, f + 4);
    ch_frame(&B.ch, 0, f, 4 + n, B.s);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
    assert_error_has("every frame there must be sealed");

    /* nor from a channel the session never installed as its direct path */
    teardown(NULL);
    setup(NULL);
    tallow__session_use_channel(A.s, &A.dch);
    ping(&A, 5, 1);
    feed_direct(&B, 0); /* B never moved to B.dch */
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
}

/* A frame made for the relay (sealed), fed through the direct path: refused too. */
static void test_relay_frame_refused_on_direct(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        if (k) {
            teardown(NULL);
            setup(NULL);
        }
        ping(&A, k ? TALLOW__SESSION_KEY : 5, 1);
        assert_int_equal(B.nq, 1);
        go_direct();
        tallow__session_input(B.s, &B.dch, B.q[0].p, B.q[0].len);
        assert_int_equal(B.got, 0);
        assert_true(B.closed);
        assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
        assert_error_has("arrived on the direct path: refused");
    }
}

/* A transfer's numbers run on across the switch (sealed 0 and 1 on the relay, 2 and 3 direct);
 * when the direct path is lost, both go back to the relay in a new epoch and every frame there is
 * sealed again (never the direct kind); a direct frame still on its way is dropped as superseded.
 */
static void test_direct_switch_and_loss(void **state)
{
    (void)state;
    ping(&A, 5, 1);
    ping(&A, 5, 2);
    deliver_all(&B);
    go_direct();
    ping(&A, 5, 3);
    ping(&A, TALLOW__SESSION_KEY, 4);
    ping(&A, 5, 5);
    assert_int_equal(B.ndq, 3);
    assert_int_equal(B.dq[0].p[3], 2);
    assert_int_equal(B.dq[2].p[3], 3);
    feed_direct(&B, 0);
    feed_direct(&B, 1);
    frame late = B.dq[2]; /* in flight when the path died */
    free(B.dq[0].p);
    free(B.dq[1].p);
    B.ndq = 0;
    assert_int_equal(B.got, 4);
    /* the path is lost: what the negotiator does on both sides */
    for (side *me = &A; me; me = me == &A ? &B : NULL) {
        tallow__session_use_channel(me->s, NULL);
        tallow__session_new_epoch(me->s);
    }
    ping(&A, 5, 6);
    assert_int_equal(B.ndq, 0);
    assert_true(B.nq >= 2); /* the session message not yet acknowledged, sent again, then 6 */
    uint8_t enc[32];
    size_t n = ping_encoded(6, enc);
    for (size_t i = 0; i < B.nq; i++) {
        assert_int_equal(B.q[i].p[0] & KIND_DIRECT, 0);
        assert_false(has_bytes(&B.q[i], enc, n));
    }
    assert_int_equal(B.q[B.nq - 1].p[0], KIND_TRANSFER);
    deliver_all(&B);
    assert_false(B.closed);
    assert_int_equal(B.s->rx_epoch, A.s->tx_epoch);
    tallow__session_input(B.s, &B.dch, late.p, late.len); /* old epoch: superseded */
    free(late.p);
    assert_false(B.closed);
    assert_int_equal(B.got, 5);
    uint64_t want[] = {1, 2, 3, 4, 6};
    for (int i = 0; i < 5; i++)
        assert_int_equal(B.pings[i], want[i]);
}

/* A rekey by volume on the direct path: the receiver follows the unsealed record that opens the
 * new epoch (number 0), and refuses one that claims a newer epoch in the middle of its numbers. */
static void test_direct_new_epoch(void **state)
{
    (void)state;
    A.s->rekey_records = 3;
    go_direct();
    for (uint64_t i = 1; i <= 10; i++)
        ping(&A, 7, i);
    deliver_direct(&B);
    assert_false(B.closed);
    assert_int_equal(B.got, 10);
    assert_true(A.s->tx_epoch >= 3);
    assert_int_equal(B.s->rx_epoch, A.s->tx_epoch);
    uint8_t f[64] = {KIND_DIRECT | KIND_TRANSFER};
    size_t h = 1 + tallow_varint_put(f + 1, A.s->tx_epoch + 1);
    f[h++] = 7;
    f[h++] = 5; /* record 5 of an epoch the receiver has not seen */
    h += ping_encoded(11, f + h);
    tallow__session_input(B.s, &B.dch, f, h);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
    assert_int_equal(B.got, 10);
}

/* Versions: a HandshakeInit of version 2 is refused by name on this side (both versions in the
 * message), and the HandshakeFailed sent back names ours, so the peer can name both too; a
 * HandshakeFailed of a release before 3 (which named none) reads as "2 or older". */
static void start_handshake(side *me, int initiator)
{
    uint8_t room[32] = {7};
    me->s->state = ST_HANDSHAKE;
    me->s->peer_sealed = 0;
    assert_int_equal(tallow__hs_init(&me->s->hs, initiator, "9-apple-banana-cherry", room), 0);
}

static void test_version_mismatch(void **state)
{
    (void)state;
    uint8_t room[32] = {7}, f[512];
    tallow__hs ha;
    tallow_msg_HandshakeInit init;
    assert_int_equal(tallow__hs_init(&ha, 1, "9-apple-banana-cherry", room), 0);
    assert_int_equal(tallow__hs_make_init(&ha, &init), 0);
    assert_int_equal(init.version, 3);
    init.version = 2; /* the release before */
    f[0] = KIND_PLAIN;
    int n = tallow_msg_encode(&tallow_msgtype_HandshakeInit, &init, f + 1, sizeof f - 1);
    assert_true(n > 0);
    start_handshake(&B, 0);
    ch_frame(&B.ch, 0, f, (size_t)n + 1, B.s);
    tallow__hs_wipe(&ha);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_EVERSION);
    assert_error_has("the peer speaks handshake version 2, this tallow 3");
    /* B's answer names version 3; A (here a side of this version too) reads it */
    assert_int_equal(A.nq, 1);
    assert_int_equal(A.q[0].p[0], KIND_PLAIN);
    const char want[] = "handshake version 3";
    frame *hf = &A.q[0];
    assert_true(has_bytes(hf, (const uint8_t *)want, sizeof want - 1));
    start_handshake(&A, 1);
    feed(&A, 0);
    assert_true(A.closed);
    assert_int_equal(A.closed_err, TALLOW_EVERSION);
    assert_error_has("the peer speaks handshake version 3, this tallow 3");

    /* an older release's refusal names no version */
    teardown(NULL);
    setup(NULL);
    const char *why = tallow_strerror(TALLOW_EVERSION);
    tallow_msg_HandshakeFailed m = {.reason = {(const uint8_t *)why, strlen(why)},
                                    .code = tallow_err_to_wire(TALLOW_EVERSION)};
    n = tallow_msg_encode(&tallow_msgtype_HandshakeFailed, &m, f + 1, sizeof f - 1);
    assert_true(n > 0);
    start_handshake(&A, 1);
    ch_frame(&A.ch, 0, f, (size_t)n + 1, A.s);
    assert_true(A.closed);
    assert_int_equal(A.closed_err, TALLOW_EVERSION);
    assert_error_has("the peer speaks handshake version 2 or older, this tallow 3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seal_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reorder_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readdressed_and_truncated_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_epoch_resends_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_epoch_no_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_use_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_unsealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_order_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_frame_refused_on_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_frame_refused_on_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_switch_and_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
