/* tests/core/session_ready.h — what the tests that compile the session's files in for their
 * internals (session_pair.h, test_negotiate_switch.c) build their sessions from: the keys of a
 * real handshake, a session put straight in READY with them, its relay channel, and the control
 * slot of a fake channel. The session's two files are compiled in here: include this first. */
#ifndef TALLOW_TEST_SESSION_READY_H
#define TALLOW_TEST_SESSION_READY_H

#include "../../core/session/session.c"
#include "../../core/session/session_record.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static tallow_ctx *ctx;

/* Makes ctx and runs a real handshake: the initiator's keys in ka, the responder's in kb. */
static void ready_keys(tallow__keys *ka, tallow__keys *kb)
{
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
    assert_int_equal(tallow__hs_keys(&ha, ka), 0);
    assert_int_equal(tallow__hs_keys(&hb, kb), 0);
    tallow__hs_wipe(&ha);
    tallow__hs_wipe(&hb);
}

/* A session of ctx in READY under keys k, as the handshake leaves it, with no channel yet. */
static tallow__session *ready_session(int initiator, const tallow__keys *k,
                                      const tallow__session_cbs *cbs, void *ud)
{
    tallow__session *s = session_alloc();
    assert_non_null(s);
    assert_int_equal((uintptr_t)s % 64, 0);
    s->ctx = ctx;
    s->cbs = cbs;
    s->ud = ud;
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
    return s;
}

/* A fake channel's control slot: no operation supported. */
static int no_control(tallow_channel *ch, int op, void *arg)
{
    (void)ch;
    (void)op;
    (void)arg;
    return TALLOW_ENOTSUP;
}

/* Gives s its relay channel ch, sending through ops, as joining a room leaves it. */
static void ready_relay(tallow__session *s, tallow_channel *ch, const tallow_transport_ops *ops)
{
    ch->ops = ops;
    ch->ctx = ctx;
    ch->ev = &ch_events;
    ch->ev_ud = s;
    s->relay = s->path = ch;
}

#endif
