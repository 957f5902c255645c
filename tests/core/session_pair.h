/* tests/core/session_pair.h — the fixture of test_session_record.c and test_session_direct.c:
 * two READY sessions (keys from a real handshake) joined by in-memory fake channels, a relay
 * channel and a direct one for each side, and the helpers that move frames between them. The
 * session's two files are compiled in for their internals, so include this once, first. */
#ifndef TALLOW_TEST_SESSION_PAIR_H
#define TALLOW_TEST_SESSION_PAIR_H

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
static inline void feed(side *me, size_t i)
{
    assert_true(i < me->nq);
    ch_frame(&me->ch, 0, me->q[i].p, me->q[i].len, me->s);
}

static inline void drop_all(side *me)
{
    for (size_t i = 0; i < me->nq; i++)
        free(me->q[i].p);
    me->nq = 0;
}

static inline void deliver_all(side *me)
{
    size_t n = me->nq;
    for (size_t i = 0; i < n; i++)
        feed(me, i);
    for (size_t i = 0; i < n; i++)
        free(me->q[i].p);
    memmove(me->q, me->q + n, (me->nq - n) * sizeof(frame));
    me->nq -= n;
}

static inline void ping(side *me, uint64_t tid, uint64_t seq)
{
    tallow_msg_Ping p = {seq, 0};
    if (tid == TALLOW__SESSION_KEY)
        assert_true(tallow__session_send(me->s, &tallow_msgtype_Ping, &p) >= 0);
    else
        assert_true(tallow__session_send_tx(me->s, tid, &tallow_msgtype_Ping, &p) >= 0);
}

#endif
