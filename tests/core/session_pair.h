/* tests/core/session_pair.h — the fixture of test_session_record.c, test_session_direct.c and
 * test_session_keys.c: two READY sessions (session_ready.h) joined by in-memory fake channels, a
 * relay channel and a direct one for each side, and the helpers that move frames between them.
 * The session's two files are compiled in for their internals, so include this once, first. */
#ifndef TALLOW_TEST_SESSION_PAIR_H
#define TALLOW_TEST_SESSION_PAIR_H

#include "session_ready.h"

#ifndef SESSION_PAIR_QLEN
#define SESSION_PAIR_QLEN 64 /* frames a queue holds */
#endif

typedef struct frame {
    uint8_t *p;
    size_t len;
} frame;
typedef struct side {
    tallow__session *s;
    tallow_channel ch, dch;
    frame q[SESSION_PAIR_QLEN];  /* frames on their way to this side */
    frame dq[SESSION_PAIR_QLEN]; /* the same on the direct path */
    size_t nq, ndq;
    uint64_t pings[64]; /* seq of each Ping delivered to on_message, in order */
    uint64_t tids[64];  /* the key each came under */
    size_t got;
    uint64_t last_ping, tx_msgs, last_tid; /* for an on_ping hook that counts instead */
    int closed, closed_err;
} side;
static side A, B;

/* Optional hooks a test sets before setup: on_send sees every frame sent, before it is queued
 * for side `to`; on_ping takes each Ping delivered instead of pings[] and tids[]. */
static void (*on_send)(side *to, int direct, const uint8_t *f, size_t len);
static void (*on_ping)(side *me, tallow__session *s, const tallow_msg_Ping *p);

static int fake_send(tallow_channel *ch, uint32_t to, const uint8_t *f, size_t len)
{
    (void)to;
    side *p = ch == &A.ch || ch == &A.dch ? &B : &A;
    int direct = ch == &A.dch || ch == &B.dch;
    frame *q = direct ? p->dq : p->q;
    size_t *n = direct ? &p->ndq : &p->nq;
    assert_true(*n < SESSION_PAIR_QLEN);
    if (on_send) on_send(p, direct, f, len);
    q[*n].p = malloc(len);
    assert_non_null(q[*n].p);
    memcpy(q[*n].p, f, len);
    q[(*n)++].len = len;
    return 0;
}
static const tallow_transport_ops fake_ops = {
    .name = "fake", .send = fake_send, .control = no_control};

static void on_message(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    side *me = ud;
    assert_int_equal(t->id, TALLOW_MSG_Ping);
    if (on_ping) {
        on_ping(me, s, msg);
        return;
    }
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
    me->s = ready_session(initiator, k, &cbs, me);
    ready_relay(me->s, &me->ch, &fake_ops);
    me->dch.ops = &fake_ops;
    me->dch.ctx = ctx;
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

/* Sends p from me under the session key or the key of transfer tid. */
static inline void send_ping(side *me, uint64_t tid, const tallow_msg_Ping *p)
{
    if (tid == TALLOW__SESSION_KEY)
        assert_true(tallow__session_send(me->s, &tallow_msgtype_Ping, p) >= 0);
    else
        assert_true(tallow__session_send_tx(me->s, tid, &tallow_msgtype_Ping, p) >= 0);
}

static inline void ping(side *me, uint64_t tid, uint64_t seq)
{
    tallow_msg_Ping p = {seq, 0};
    send_ping(me, tid, &p);
}

#endif
