/* tests/core/test_negotiate_switch.c — the negotiator's side of the session's path
 * (core/session/negotiate_path.c) between two READY sessions joined by a fake relay, each with the
 * negotiator attached as its path owner and a fake QUIC channel standing for the nominated pair:
 * our DirectConnected is the last frame on the relay and sends move to QUIC after it; QUIC frames
 * that overtake the peer's marker are held and processed after it, in order; the direct-path
 * messages never reach the session's user; losing QUIC brings both sides back to the relay in a
 * new epoch (DirectFailed tells the peer), the session messages lost on the dead path arrive
 * again over the relay, once each, and the transfers resynchronise; the relay ending while frames
 * go direct waits for QUIC to end too, and the relay dying does not end a direct session; a
 * receiver's completion lost on the dead path is said again over the relay (a real transfer).
 * A transfer's records on QUIC are not sealed by the session (QUIC encrypts them): such a frame
 * fed through the relay is refused, and after the path dies mid-transfer everything sent again
 * over the relay is sealed (no direct-kind frame there, the text nowhere in clear).
 * A relay probe (filler on the relay) is counted by the peer and answered over QUIC: a relay that
 * delivered it at least twice as fast as the direct path carried data takes both sides back to
 * it; a slower one leaves the direct path alone.
 * The session's and the negotiator's path files are compiled into this one for their internals. */
#include "../../core/session/negotiate_path.c"
#include "../../core/session/negotiate_rate.c"
#include "session_ready.h"

#include <arpa/inet.h>

#include "transfer.h"

typedef struct frame {
    uint8_t *p;
    size_t len;
} frame;
typedef struct side {
    tallow__session *s;
    tallow__neg *n;
    tallow_channel relay;
    tallow_channel *quic;
    frame rq[64], qq[64]; /* frames on their way to this side: by the relay, by QUIC */
    size_t nrq, nqq;
    uint64_t pings[64];
    size_t got, other; /* Pings delivered to the user; any other message delivered */
    int resyncs, closed, closed_err;
    tallow__xfer *x; /* a transfer: A sends, B receives the offer it gets (want_offer) */
    int want_offer, done, status;
} side;
static side A, B;

static side *peer_of_relay(tallow_channel *ch)
{
    return ch == &A.relay ? &B : &A;
}
static side *peer_of_quic(tallow_channel *ch)
{
    return ch == A.quic ? &B : &A;
}
static void push(frame *q, size_t *nq, const uint8_t *f, size_t len)
{
    assert_true(*nq < 64);
    q[*nq].p = malloc(len);
    assert_non_null(q[*nq].p);
    memcpy(q[*nq].p, f, len);
    q[(*nq)++].len = len;
}
static int relay_send(tallow_channel *ch, uint32_t to, const uint8_t *f, size_t len)
{
    (void)to;
    side *p = peer_of_relay(ch);
    push(p->rq, &p->nrq, f, len);
    return 0;
}
static int quic_send(tallow_channel *ch, uint32_t to, const uint8_t *f, size_t len)
{
    (void)to;
    side *p = peer_of_quic(ch);
    push(p->qq, &p->nqq, f, len);
    return 0;
}
static void quic_info(tallow_channel *ch, tallow_channel_info *info)
{
    (void)ch;
    info->direct = 1;
    info->path = "fake quic";
}
/* The host fills a registered transport's optional slots with defaults; these fakes are not
 * registered, so they carry every slot themselves. */
static size_t no_queued(tallow_channel *ch)
{
    (void)ch;
    return 0;
}
static void no_close(tallow_channel *ch)
{
    (void)ch;
}
static void relay_info(tallow_channel *ch, tallow_channel_info *info)
{
    (void)ch;
    info->path = "fake relay";
}
static const tallow_transport_ops relay_ops = {.name = "fakerelay",
                                               .send = relay_send,
                                               .close = no_close,
                                               .get_info = relay_info,
                                               .queued = no_queued,
                                               .control = no_control};
static const tallow_transport_ops quic_ops = {.name = "fakequic",
                                              .send = quic_send,
                                              .close = no_close,
                                              .get_info = quic_info,
                                              .queued = no_queued,
                                              .control = no_control};

static void x_done(tallow__xfer *x, int status, void *ud)
{
    side *me = ud;
    (void)x;
    me->done++;
    me->status = status;
}
static const tallow__xfer_cbs xcbs = {.on_done = x_done};

static void on_message(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    side *me = ud;
    if (t->id == TALLOW_MSG_FileOffer && me->want_offer) { /* accepted at once */
        me->want_offer = 0;
        assert_int_equal(tallow__xfer_recv(s, msg, -1, 0, &xcbs, me, &me->x), 0);
        return;
    }
    if (t->id != TALLOW_MSG_Ping) {
        me->other++;
        return;
    }
    assert_true(me->got < 64);
    me->pings[me->got++] = ((const tallow_msg_Ping *)msg)->seq;
}
static void on_closed(tallow__session *s, int err, void *ud)
{
    side *me = ud;
    (void)s;
    me->closed++;
    me->closed_err = err;
}
static const tallow__session_cbs cbs = {.on_message = on_message, .on_closed = on_closed};
static void on_resync(void *ud)
{
    ((side *)ud)->resyncs++;
}

static void make_side(side *me, int initiator, const tallow__keys *k)
{
    memset(me, 0, sizeof *me);
    tallow__session *s = ready_session(initiator, k, &cbs, me);
    ready_relay(s, &me->relay, &relay_ops);
    me->s = s;
    tallow__session_set_resync(s, on_resync, me);
    /* the negotiator as the session's path owner, as session_new attaches it */
    tallow__session_params p = {.initiator = initiator, .capacity = 2};
    void *st;
    assert_int_equal(tallow__neg_owner.attach(s, &p, &st), 0);
    s->owner = &tallow__neg_owner;
    s->owner_st = st;
    me->n = st;
    assert_ptr_equal(tallow__neg_of(s), me->n);
    /* as if the checks had nominated a pair and QUIC were opening on it */
    tallow__neg *n = me->n;
    n->state = TALLOW__NEG_PENDING;
    assert_int_equal(tallow_udp_open(ctx, NULL, 0, &n->udp), 0);
    neg_pair *pr = &n->pairs[n->npairs++];
    struct sockaddr_in *a = (struct sockaddr_in *)&pr->addr;
    a->sin_family = AF_INET;
    a->sin_port = htons(5000);
    inet_pton(AF_INET, "127.0.0.2", &a->sin_addr);
    pr->len = sizeof *a;
    pr->via = n->udp;
    n->nominated = 0;
    me->quic = calloc(1, sizeof *me->quic); /* freed when the session closes it */
    assert_non_null(me->quic);
    me->quic->ops = &quic_ops;
    me->quic->ctx = ctx;
    me->quic->ev = &q_events;
    me->quic->ev_ud = n;
    n->quic = me->quic;
}

static int setup(void **state)
{
    (void)state;
    tallow__keys ka, kb;
    ready_keys(&ka, &kb);
    make_side(&A, 1, &ka);
    make_side(&B, 0, &kb);
    return 0;
}

static void drop(frame *q, size_t *nq)
{
    for (size_t i = 0; i < *nq; i++)
        free(q[i].p);
    *nq = 0;
}

static int teardown(void **state)
{
    (void)state;
    for (side *me = &A; me; me = me == &A ? &B : NULL) {
        drop(me->rq, &me->nrq);
        drop(me->qq, &me->nqq);
        me->s->relay = me->s->path = NULL;
        tallow__session_close(me->s); /* closes QUIC, frees the negotiator */
    }
    tallow_ctx_free(ctx);
    return 0;
}

/* Everything queued for me on the relay, or on QUIC, in order. */
static void relay_in(side *me)
{
    size_t n = me->nrq;
    frame q[64];
    memcpy(q, me->rq, n * sizeof *q);
    me->nrq = 0;
    for (size_t i = 0; i < n; i++) {
        me->relay.ev->on_frame(&me->relay, 0, q[i].p, q[i].len, me->relay.ev_ud);
        free(q[i].p);
    }
}
static void quic_in(side *me)
{
    size_t n = me->nqq;
    frame q[64];
    memcpy(q, me->qq, n * sizeof *q);
    me->nqq = 0;
    for (size_t i = 0; i < n; i++) {
        me->quic->ev->on_frame(me->quic, 0, q[i].p, q[i].len, me->quic->ev_ud);
        free(q[i].p);
    }
}

static void ping(side *me, uint64_t seq)
{
    tallow_msg_Ping p = {seq, 0};
    assert_true(tallow__session_send(me->s, &tallow_msgtype_Ping, &p) >= 0);
}

/* Both sides bring QUIC up; returns with both switched, nothing delivered yet. */
static void both_up(void)
{
    A.quic->ev->on_ready(A.quic, A.quic->ev_ud);
    B.quic->ev->on_ready(B.quic, B.quic->ev_ud);
    assert_int_equal(tallow__neg_state(A.n), TALLOW__NEG_DIRECT);
    assert_int_equal(tallow__neg_state(B.n), TALLOW__NEG_DIRECT);
    assert_ptr_equal(A.s->path, A.quic);
    assert_ptr_equal(B.s->path, B.quic);
    assert_int_equal(B.nrq, 1); /* A's DirectConnected, the last frame on the relay */
    assert_int_equal(A.nrq, 1);
}

static void test_switch_holds_frames_until_marker(void **state)
{
    (void)state;
    both_up();
    ping(&A, 1);
    ping(&A, 2);
    assert_int_equal(B.nqq, 2); /* after the marker: over QUIC */
    assert_int_equal(B.nrq, 1);
    quic_in(&B); /* they overtake the marker: held */
    assert_int_equal(B.got, 0);
    assert_int_equal(B.n->nheld, 2);
    relay_in(&B); /* the marker: then what was held, in order */
    assert_false(B.closed);
    assert_int_equal(B.got, 2);
    assert_int_equal(B.pings[0], 1);
    assert_int_equal(B.pings[1], 2);
    assert_int_equal(B.n->nheld, 0);
    assert_int_equal(B.other, 0); /* DirectConnected is the negotiator's, not the user's */
    assert_true(B.n->peer_switched);
    /* from now on QUIC frames go straight through */
    ping(&A, 3);
    quic_in(&B);
    assert_int_equal(B.got, 3);
    relay_in(&A);
    assert_int_equal(A.other, 0);
}

static void test_lost_path_resends_over_relay(void **state)
{
    (void)state;
    both_up();
    relay_in(&A);
    relay_in(&B);
    ping(&A, 1);
    quic_in(&B);
    ping(&A, 2); /* in flight on QUIC when it dies: lost */
    ping(&A, 3);
    drop(B.qq, &B.nqq);
    uint64_t e = A.s->tx_epoch;
    /* A's QUIC watchdog declares the path dead */
    A.quic->ev->on_closed(A.quic, TALLOW_ETIMEOUT, A.quic->ev_ud);
    assert_false(A.closed);
    assert_ptr_equal(A.s->path, &A.relay);
    assert_int_equal(A.s->tx_epoch, e + 1);
    assert_int_equal(A.resyncs, 1);
    /* B hears it over the relay (DirectFailed), comes back too, and gets what was lost */
    relay_in(&B);
    assert_false(B.closed);
    assert_ptr_equal(B.s->path, &B.relay);
    assert_int_equal(B.resyncs, 1);
    assert_int_equal(B.got, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(B.pings[i], (uint64_t)i + 1);
    assert_int_equal(B.other, 0);
    /* both go on over the relay */
    ping(&B, 7);
    assert_true(A.nrq > 0); /* over the relay, behind B's own DirectFailed */
    assert_int_equal(A.nqq, 0);
    relay_in(&A);
    assert_false(A.closed);
    assert_int_equal(A.got, 1);
    assert_int_equal(A.pings[0], 7);
    assert_int_equal(A.resyncs, 1); /* A had come back already */
}

/* The receiver's TransferComplete is in flight on QUIC when the path is declared dead: lost, and
 * the receiver is done. Back on the relay, the sender (not done) waits for the receiver's word
 * after the resync; the finished receiver says its completion again, in its new epoch, and the
 * sender completes. */
static void test_lost_completion_said_again(void **state)
{
    (void)state;
    both_up();
    relay_in(&A);
    relay_in(&B);
    static const char text[] = "the last word must not be lost";
    B.want_offer = 1;
    assert_int_equal(tallow__xfer_send(A.s, NULL, text, sizeof(text) - 1, &xcbs, &A, &A.x), 0);
    quic_in(&B); /* the offer: B accepts */
    assert_non_null(B.x);
    quic_in(&A); /* the accept: A streams the text and its completion */
    quic_in(&B); /* B writes it, acks, answers the completion and is done */
    assert_int_equal(B.done, 1);
    assert_int_equal(B.status, 0);
    size_t len;
    const char *got = tallow__xfer_text(B.x, &len);
    assert_int_equal(len, sizeof(text) - 1);
    assert_memory_equal(got, text, len);
    tallow__xfer_free(B.x); /* the receiver's user lets it go; the session lives on */
    B.x = NULL;
    assert_true(A.nqq > 0);
    drop(A.qq, &A.nqq); /* B's ack and completion die with the path */
    assert_int_equal(A.done, 0);
    uint64_t e = B.s->tx_epoch;
    assert_true(B.s->tx_recs > 0); /* this epoch carried records: it is left */
    /* B's QUIC watchdog declares the path dead: back to the relay in a new epoch, and the
     * finished transfer's record says the completion again, as a new record of that epoch */
    B.quic->ev->on_closed(B.quic, TALLOW_ETIMEOUT, B.quic->ev_ud);
    assert_ptr_equal(B.s->path, &B.relay);
    assert_int_equal(B.s->tx_epoch, e + 1);
    assert_int_equal(A.nqq, 0);
    relay_in(&A); /* DirectFailed (A comes back and resyncs), then the completion */
    assert_false(A.closed || B.closed);
    assert_int_equal(A.done, 1);
    assert_int_equal(A.status, 0);
    relay_in(&B); /* A's DirectFailed: nothing more for B's finished transfer */
    assert_false(A.closed || B.closed);
    assert_int_equal(B.done, 1);
    tallow__xfer_free(A.x);
    A.x = NULL;
}

static void test_relay_end_waits_for_direct(void **state)
{
    (void)state;
    both_up();
    relay_in(&A);
    relay_in(&B);
    /* the peer left: its relay "left" can come before its last frames on QUIC */
    A.relay.ev->on_closed(&A.relay, 0, A.relay.ev_ud);
    assert_int_equal(A.closed, 0);
    ping(&B, 1);
    quic_in(&A);
    assert_int_equal(A.got, 1);
    A.quic->ev->on_closed(A.quic, TALLOW_ECLOSED, A.quic->ev_ud);
    assert_int_equal(A.closed, 1);
    assert_int_equal(A.closed_err, 0);
}

static void test_relay_death_does_not_end_direct(void **state)
{
    (void)state;
    both_up();
    relay_in(&A);
    relay_in(&B);
    A.relay.ev->on_closed(&A.relay, TALLOW_ERELAY, A.relay.ev_ud);
    assert_int_equal(A.closed, 0);
    ping(&A, 1);
    quic_in(&B);
    assert_int_equal(B.got, 1);
    /* with no relay left, losing QUIC ends the session */
    A.quic->ev->on_closed(A.quic, TALLOW_ETIMEOUT, A.quic->ev_ud);
    assert_int_equal(A.closed, 1);
    assert_int_equal(A.closed_err, TALLOW_ETIMEOUT);
}

/* The negotiator gave up while the peer had switched: the peer is told and comes back. */
static void test_failed_side_brings_peer_back(void **state)
{
    (void)state;
    B.quic->ev->on_ready(B.quic, B.quic->ev_ud);       /* B is up and switched */
    tallow__neg_fail(A.n, "QUIC handshake timed out"); /* A is not */
    assert_int_equal(tallow__neg_state(A.n), TALLOW__NEG_FAILED);
    ping(&B, 1); /* into QUIC, which A never reads */
    drop(A.qq, &A.nqq);
    relay_in(&A); /* B's marker: A gave up, so it answers DirectFailed and resyncs */
    assert_int_equal(A.resyncs, 1);
    relay_in(&B); /* A's DirectFailed(s): B comes back, and sends again what was lost */
    assert_ptr_equal(B.s->path, &B.relay);
    assert_int_equal(B.resyncs, 1);
    relay_in(&A);
    assert_false(A.closed || B.closed);
    assert_int_equal(A.got, 1);
    assert_int_equal(A.pings[0], 1);
}

/* 600 KiB of text in which every 64-byte line is different. */
static char big[600 * 1024];
static void fill_big(void)
{
    for (size_t i = 0; i < sizeof big / 64; i++)
        snprintf(big + 64 * i, 65, "%063zu", i);
}
/* 1 if any 32-byte slice of big at a 64 KiB step is in f as is. */
static int big_in_clear(const frame *f)
{
    for (size_t k = 0; k + 32 <= sizeof big; k += 64 * 1024)
        for (size_t i = 0; i + 32 <= f->len; i++)
            if (memcmp(f->p + i, big + k, 32) == 0) return 1;
    return 0;
}

/* Over the relay: every frame sealed (no direct kind, nothing of the text in clear). */
static void relay_in_sealed(side *me)
{
    for (size_t i = 0; i < me->nrq; i++) {
        assert_int_equal(me->rq[i].p[0] & KIND_DIRECT, 0);
        assert_false(big_in_clear(&me->rq[i]));
    }
    relay_in(me);
}

/* On QUIC a transfer's records go as they are (kind 0x82; QUIC encrypts them); one of them fed
 * through the relay is refused, and ends the session. */
static void test_direct_records_bound_to_quic(void **state)
{
    (void)state;
    fill_big();
    both_up();
    relay_in(&A);
    relay_in(&B);
    B.want_offer = 1;
    assert_int_equal(tallow__xfer_send(A.s, NULL, big, sizeof big, &xcbs, &A, &A.x), 0);
    quic_in(&B); /* the offer: B accepts */
    assert_non_null(B.x);
    quic_in(&A); /* the accept: A streams */
    assert_true(B.nqq >= 3);
    int clear = 0;
    for (size_t i = 0; i < B.nqq; i++) {
        assert_int_equal(B.qq[i].p[0], KIND_DIRECT | KIND_TRANSFER);
        clear += big_in_clear(&B.qq[i]);
    }
    assert_true(clear >= 3); /* the chunks, unsealed */
    B.relay.ev->on_frame(&B.relay, 0, B.qq[1].p, B.qq[1].len, B.relay.ev_ud);
    assert_int_equal(B.closed, 1);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
    assert_non_null(strstr(tallow_ctx_last_error(ctx), "arrived on the relay channel: refused"));
    tallow__xfer_free(A.x);
    tallow__xfer_free(B.x);
    A.x = B.x = NULL;
}

/* QUIC dies after the first chunk: both go back to the relay, the transfer resumes from B's
 * position, and all of it goes sealed; the text arrives whole. */
static void test_direct_loss_resends_sealed(void **state)
{
    (void)state;
    fill_big();
    both_up();
    relay_in(&A);
    relay_in(&B);
    B.want_offer = 1;
    assert_int_equal(tallow__xfer_send(A.s, NULL, big, sizeof big, &xcbs, &A, &A.x), 0);
    quic_in(&B);
    quic_in(&A);
    assert_true(B.nqq >= 3);
    B.quic->ev->on_frame(B.quic, 0, B.qq[0].p, B.qq[0].len, B.quic->ev_ud); /* chunk 1 */
    drop(B.qq, &B.nqq);                                                     /* the rest: lost */
    drop(A.qq, &A.nqq);
    A.quic->ev->on_closed(A.quic, TALLOW_ETIMEOUT, A.quic->ev_ud);
    assert_ptr_equal(A.s->path, &A.relay);
    for (int round = 0; round < 20 && !(A.done && B.done); round++) {
        relay_in_sealed(&B);
        relay_in_sealed(&A);
        assert_int_equal(A.nqq + B.nqq, 0);
    }
    assert_false(A.closed || B.closed);
    assert_int_equal(B.done, 1);
    assert_int_equal(B.status, 0);
    assert_int_equal(A.done, 1);
    size_t len;
    const char *got = tallow__xfer_text(B.x, &len);
    assert_int_equal(len, sizeof big);
    assert_memory_equal(got, big, len);
    tallow__xfer_free(A.x);
    tallow__xfer_free(B.x);
    A.x = B.x = NULL;
}

/* A's probe as rate_tick starts it, sent by hand: 1500 bytes of filler in two frames; B counts
 * them and answers over QUIC; A's verdict against a direct path of direct_bps. */
static void probe_round(double direct_bps)
{
    tallow__neg *n = A.n;
    n->probe_state = NEG_PROBE_RUNNING;
    n->probe_id = 7;
    n->probe_len = 1500;
    n->probe_direct_bps = direct_bps;
    n->probe_start_ns = tallow_now_ns();
    n->probe_deadline_ns = n->probe_start_ns + 60000000000ull;
    assert_int_equal(tallow__session_send_probe(A.s, 7, 1000, 0), 0);
    assert_int_equal(tallow__session_send_probe(A.s, 7, 500, 1), 0);
    assert_int_equal(B.nrq, 2); /* on the relay, though A's sends go direct */
    relay_in(&B);
    assert_false(B.closed);
    assert_int_equal(B.n->rx_probe_bytes, 1500);
    assert_int_equal(A.nqq, 1); /* PathProbeDone, over QUIC */
    quic_in(&A);
    assert_int_equal(A.other, 0); /* the negotiator's, not the user's */
    assert_int_equal(n->probe_state, NEG_PROBE_DONE);
}

static void test_probe_relay_faster(void **state)
{
    (void)state;
    both_up();
    relay_in(&A);
    relay_in(&B);
    probe_round(1.0); /* a direct path of 1 byte/s: any relay is faster */
    assert_true(A.n->handback);
    uint64_t e = A.s->tx_epoch;
    rate_tick(NULL, A.n); /* the verdict is carried out in the next tick */
    assert_ptr_equal(A.s->path, &A.relay);
    assert_null(A.n->quic); /* closed: it was not lost */
    assert_int_equal(A.s->tx_epoch, e + 1);
    assert_int_equal(A.resyncs, 1);
    assert_null(A.n->rate_tick);
    relay_in(&B); /* DirectFailed: B comes back too */
    assert_false(B.closed);
    assert_ptr_equal(B.s->path, &B.relay);
    assert_int_equal(B.resyncs, 1);
    ping(&A, 1);
    relay_in(&B);
    assert_int_equal(B.got, 1);
}

static void test_probe_relay_slower(void **state)
{
    (void)state;
    both_up();
    relay_in(&A);
    relay_in(&B);
    probe_round(1e15); /* no relay delivers twice that */
    assert_false(A.n->handback);
    assert_ptr_equal(A.s->path, A.quic);
    rate_tick(NULL, A.n); /* the probe is over: the watch stops, the path stays */
    assert_null(A.n->rate_tick);
    assert_ptr_equal(A.s->path, A.quic);
    assert_int_equal(A.resyncs, 0);
    /* an answer to another probe id, or the same one again, changes nothing */
    tallow_msg_PathProbeDone m = {.id = 7, .bytes = 1500};
    assert_int_equal(tallow__neg_on_probe_done(A.s, &tallow_msgtype_PathProbeDone, &m, A.n), 1);
    assert_false(A.n->handback);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_switch_holds_frames_until_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_path_resends_over_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_completion_said_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_end_waits_for_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_death_does_not_end_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_side_brings_peer_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_records_bound_to_quic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_loss_resends_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_relay_faster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_relay_slower, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
