/* tests/core/test_session_direct.c — the record layer on the direct path (encrypt once): with a
 * second fake channel installed with tallow__session_use_channel, as the negotiator installs QUIC
 * (session_pair.h), transfer records go unsealed with their record number and are checked just
 * as strictly (order, gaps, replays, epochs); a frame made for one path is refused on the other,
 * an unsealed frame injected on the relay is refused with a clear error, and after the direct
 * path is lost every frame on the relay is sealed again. Also: handshake versions 2 and 3 refuse
 * each other naming both; relay probes go on the relay only, are refused elsewhere or malformed,
 * and only between peers that both offered them. */
#include "session_pair.h"

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

/* ---- relay probes (KIND_PROBE): filler on the relay only, between peers that both take them */

static void test_probe_frames(void **state)
{
    (void)state;
    /* both handshake messages set TALLOW__FEAT_PROBE: the peers take probes */
    assert_true(tallow__session_can_probe(A.s));
    assert_int_equal(tallow__session_send_probe(A.s, 1, TALLOW__PROBE_FRAME_MAX + 1, 0),
                     TALLOW_ETOOBIG);
    go_direct(); /* whatever the sends' path, a probe goes on the relay */
    assert_int_equal(tallow__session_send_probe(A.s, 1, 1000, 0), 0);
    assert_int_equal(tallow__session_send_probe(A.s, 1, 10, 1), 0);
    assert_int_equal(B.ndq, 0);
    assert_int_equal(B.nq, 2);
    assert_int_equal(B.q[0].len, 3 + 1000); /* kind, id, last, filler */
    assert_int_equal(B.q[0].p[0], KIND_PROBE);
    assert_int_equal(B.q[1].p[2], 1);
    deliver_all(&B); /* no path owner here: counted by nobody, and harmless */
    assert_false(B.closed);
    assert_int_equal(B.got, 0);

    /* on the direct path: refused */
    assert_int_equal(tallow__session_send_probe(A.s, 2, 10, 1), 0);
    tallow__session_input(B.s, &B.dch, B.q[0].p, B.q[0].len);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_EPROTO);
    assert_error_has("relay probe arrived on the direct path");

    /* malformed: a last flag other than 0 or 1, or no flag at all */
    static const uint8_t bad[][3] = {{KIND_PROBE, 1, 2}, {KIND_PROBE, 1, 0}};
    for (int k = 0; k < 2; k++) {
        teardown(NULL);
        setup(NULL);
        ch_frame(&B.ch, 0, bad[k], k ? 2 : 3, B.s);
        assert_true(B.closed);
        assert_int_equal(B.closed_err, TALLOW_EPROTO);
        assert_error_has("malformed relay probe");
    }

    /* a peer that did not offer probes (an older release) never gets one, and one arriving
     * anyway is an unknown frame kind, as it is for that release */
    teardown(NULL);
    setup(NULL);
    B.s->keys.probe = 0;
    A.s->keys.probe = 0;
    assert_false(tallow__session_can_probe(A.s));
    assert_int_equal(tallow__session_send_probe(A.s, 1, 10, 1), TALLOW_EINVAL);
    static const uint8_t ok[] = {KIND_PROBE, 1, 1, 0, 0};
    ch_frame(&B.ch, 0, ok, sizeof(ok), B.s);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_EPROTO);
    assert_error_has("unknown frame kind 4");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_direct_unsealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_order_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_frame_refused_on_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_frame_refused_on_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_switch_and_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_frames, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
