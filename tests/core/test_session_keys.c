/* tests/core/test_session_keys.c — the session's record layer under reconnections, many transfer
 * ids, volume rekeys and a relay that injects events and frames. Two READY sessions (keys from a
 * real handshake) talk through in-memory channels; every AEAD seal is recorded (key, record
 * number), and no pair may repeat: 1,000 reconnections with frames lost at each, 10,000 transfer
 * ids each used twice, far apart (the old 8-key cache derived an evicted id again at 0). On the
 * direct path a transfer record is not sealed but takes its key's next number all the same: those
 * numbers are recorded as (key, number) too, and no pair may repeat among sealed and unsealed
 * records together, over path switches, lost direct paths and rekeys on the direct path.
 * session.c is compiled into this file for its internals (as the fuzz target does). */
#define tallow__aead_seal rec_seal
#define SESSION_PAIR_QLEN 4096
#include "session_pair.h"
#undef tallow__aead_seal

int tallow__aead_seal(tallow__aead *a, uint8_t *out, const uint8_t *ad, size_t adlen,
                      const uint8_t *pt, size_t len);

/* ---- every (key, nonce) sealed: BLAKE2b-128 of key || seq */
static uint8_t (*seals)[16];
static size_t nseals, capseals;

static void rec_pair(const uint8_t key[32], uint64_t seq)
{
    if (nseals == capseals) {
        capseals = capseals ? capseals * 2 : 65536;
        seals = realloc(seals, capseals * 16);
        assert_non_null(seals);
    }
    uint8_t in[40];
    memcpy(in, key, 32);
    for (int i = 0; i < 8; i++)
        in[32 + i] = (uint8_t)(seq >> (8 * i));
    crypto_generichash(seals[nseals++], 16, in, sizeof in, NULL, 0);
}

int rec_seal(tallow__aead *a, uint8_t *out, const uint8_t *ad, size_t adlen, const uint8_t *pt,
             size_t len)
{
    rec_pair(a->key, a->seq);
    return tallow__aead_seal(a, out, ad, adlen, pt, len);
}

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void assert_seals_unique(size_t at_least)
{
    assert_true(nseals >= at_least);
    qsort(seals, nseals, 16, cmp16);
    for (size_t i = 1; i < nseals; i++)
        if (memcmp(seals[i - 1], seals[i], 16) == 0) fail_msg("a (key, nonce) pair repeats");
}

/* ---- two sessions joined by in-memory channels (session_pair.h), seen through its hooks */

/* An unsealed direct transfer record: the (key, number) it took, recorded as a seal is. */
static void rec_unsealed(const tallow__session *from, const uint8_t *f, size_t len)
{
    uint64_t epoch, tid, num;
    int a = tallow_varint_get(f + 1, len - 1, &epoch);
    assert_true(a > 0);
    int b = tallow_varint_get(f + 1 + a, len - 1 - (size_t)a, &tid);
    assert_true(b > 0);
    assert_true(tallow_varint_get(f + 1 + a + b, len - 1 - (size_t)(a + b), &num) > 0);
    uint8_t base[32], k[32];
    tallow__kdf(from->keys.transfer_base_tx, "epoch", epoch, base);
    tallow__kdf(base, "transfer", tid, k);
    rec_pair(k, num);
}

/* Every frame sent: an unsealed record goes only direct, and its (key, number) is recorded. */
static void check_sent(side *to, int direct, const uint8_t *f, size_t len)
{
    if (f[0] == (KIND_DIRECT | KIND_TRANSFER)) {
        assert_true(direct); /* never an unsealed record on the relay */
        rec_unsealed(to == &A ? B.s : A.s, f, len);
    }
}

/* Every Ping delivered: session messages arrive once each and in order, reconnections or not;
 * a transfer's Ping carries its transfer id. */
static void count_ping(side *me, tallow__session *s, const tallow_msg_Ping *p)
{
    me->last_tid = tallow__session_rx_key(s);
    if (me->last_tid == TALLOW__SESSION_KEY) {
        assert_int_equal(p->seq, me->last_ping + 1);
        me->last_ping = p->seq;
    } else {
        assert_int_equal(p->time, me->last_tid);
    }
    me->got++;
}

static int keys_setup(void **state)
{
    on_send = check_sent;
    on_ping = count_ping;
    nseals = 0;
    return setup(state);
}

/* Delivers the first `keep` frames queued for `me` (all: SIZE_MAX) and drops the rest. */
static void deliver_to(side *me, size_t keep)
{
    size_t n = me->nq;
    me->nq = 0;
    for (size_t i = 0; i < n; i++) {
        if (i < keep) ch_frame(&me->ch, 0, me->q[i].p, me->q[i].len, me->s);
        free(me->q[i].p);
    }
}

/* A Ping from me: under the session key numbered on, under a transfer key carrying its id. */
static void ping_next(side *me, uint64_t tid)
{
    tallow_msg_Ping p = {tid == TALLOW__SESSION_KEY ? ++me->tx_msgs : 0,
                         tid == TALLOW__SESSION_KEY ? 0 : tid};
    send_ping(me, tid, &p);
}

/* The relay's view of a connection drop and resume: both hear "reconnecting", then the one
 * that dropped gets RoomJoined and the other PeerArrived. */
static void reconnect(side *dropped, side *other)
{
    static const char why[] = "reconnecting";
    tallow_msg_PeerDeparted d = {1, {(const uint8_t *)why, sizeof why - 1}, 1};
    ch_room(&dropped->ch, TALLOW_MSG_PeerDeparted, &d, dropped->s);
    ch_room(&other->ch, TALLOW_MSG_PeerDeparted, &d, other->s);
    tallow_msg_RoomJoined j = {2, 1, {NULL, 0}, 2, 0, 0};
    ch_room(&dropped->ch, TALLOW_MSG_RoomJoined, &j, dropped->s);
    tallow_msg_PeerArrived a = {1, 2};
    ch_room(&other->ch, TALLOW_MSG_PeerArrived, &a, other->s);
}

/* 1,000 reconnections, frames lost in flight at each, and 10,000 transfer ids used twice. */
static void test_reconnections_and_ids(void **state)
{
    (void)state;
    uint32_t rnd = 12345;
    for (int i = 0; i < 1000; i++) {
        for (int k = 0; k < 3; k++) {
            ping_next(&A, TALLOW__SESSION_KEY);
            ping_next(&A, (uint64_t)(i * 7 + k) % 50);
            ping_next(&B, TALLOW__SESSION_KEY);
        }
        rnd = rnd * 1103515245u + 12345u;
        deliver_to(&B, (rnd >> 16) % 7); /* the rest was in flight when the connection broke */
        deliver_to(&A, (rnd >> 20) % 4);
        reconnect(i % 2 ? &A : &B, i % 2 ? &B : &A);
        ping_next(&A, TALLOW__SESSION_KEY);
        ping_next(&A, 1000 + (uint64_t)i);
        ping_next(&B, TALLOW__SESSION_KEY);
        for (int k = 0; k < 3; k++) { /* the ask, the answer, the messages sent again */
            deliver_to(&B, SIZE_MAX);
            deliver_to(&A, SIZE_MAX);
        }
        assert_false(A.closed || B.closed);
        /* every session message arrived, those lost in flight sent again */
        assert_int_equal(B.last_ping, A.tx_msgs);
        assert_int_equal(A.last_ping, B.tx_msgs);
        assert_int_equal(B.last_tid, 1000 + (uint64_t)i); /* the transfer frame after it too */
    }
    assert_true(A.s->tx_epoch >= 1000 && B.s->tx_epoch >= 1000);
    assert_int_equal(B.s->rx_epoch, A.s->tx_epoch);
    /* 10,000 ids in one epoch, each used twice with 10,000 others between (far beyond the cache) */
    uint64_t b0 = B.got;
    for (int round = 0; round < 2; round++)
        for (uint64_t id = 0; id < 10000; id++) {
            ping_next(&A, 5000000 + id);
            deliver_to(&B, SIZE_MAX);
        }
    assert_false(B.closed);
    assert_int_equal(B.got, b0 + 20000);
    assert_int_equal(B.s->rx_epoch, A.s->tx_epoch);
    assert_seals_unique(1000 * 12 + 20000);
}

/* A frame of a transfer whose key left the cache long ago, replayed verbatim: refused. */
static void test_replayed_transfer_frame(void **state)
{
    (void)state;
    ping_next(&A, 42);
    frame old = {malloc(B.q[0].len), B.q[0].len};
    memcpy(old.p, B.q[0].p, old.len);
    deliver_to(&B, SIZE_MAX);
    for (uint64_t id = 100; id < 120; id++) { /* evicts 42 on both sides */
        ping_next(&A, id);
        deliver_to(&B, SIZE_MAX);
    }
    uint64_t got = B.got;
    ch_frame(&B.ch, 0, old.p, old.len, B.s);
    assert_int_equal(B.got, got);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
    free(old.p);
}

/* A relay that fakes reconnections without traffic moves no epoch; one that forges a frame of a
 * newer epoch moves nothing on the receiving side either. */
static void test_relay_events_and_forged_epochs(void **state)
{
    (void)state;
    for (int i = 0; i < 10000; i++) {
        reconnect(&A, &B);
        deliver_to(&B, SIZE_MAX);
        deliver_to(&A, SIZE_MAX);
    }
    /* each fake reconnection costs at most one epoch per side (64 bits: never exhausted) */
    assert_true(A.s->tx_epoch <= 10000 && B.s->tx_epoch <= 10000);
    assert_false(A.closed || B.closed);
    ping_next(&A, TALLOW__SESSION_KEY);
    deliver_to(&B, SIZE_MAX);
    assert_int_equal(B.got, 1);
    reconnect(&A, &B);
    uint64_t e = A.s->tx_epoch, rx = B.s->rx_epoch;
    assert_true(e > rx);
    /* B expects a reconnection gap: a forged frame of epoch 2 is dropped, nothing moves */
    uint8_t f[64] = {KIND_SEALED};
    size_t h = 1 + tallow_varint_put(f + 1, e + 1);
    randombytes_buf(f + h, sizeof f - h);
    ch_frame(&B.ch, 0, f, sizeof f, B.s);
    assert_int_equal(B.s->rx_epoch, rx);
    assert_false(B.closed);
    ping_next(&A, TALLOW__SESSION_KEY);
    deliver_to(&B, SIZE_MAX);
    assert_int_equal(B.s->rx_epoch, e);
    assert_int_equal(B.got, 2);
    /* no gap is expected now: the same forgery ends the session */
    h = 1 + tallow_varint_put(f + 1, e + 5);
    ch_frame(&B.ch, 0, f, sizeof f, B.s);
    assert_int_equal(B.s->rx_epoch, e);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
    assert_seals_unique(2);
}

/* Volume: a new epoch every `rekey_records` records or `rekey_bytes` bytes, transparently. */
static void test_rekey_by_volume(void **state)
{
    (void)state;
    A.s->rekey_records = 100;
    for (int i = 0; i < 1000; i++) {
        ping_next(&A, i % 3 ? TALLOW__SESSION_KEY : (uint64_t)i % 17);
        if (i % 10 == 0) deliver_to(&B, SIZE_MAX);
    }
    deliver_to(&B, SIZE_MAX);
    assert_int_equal(A.s->tx_epoch, 9);
    assert_int_equal(B.got, 1000);
    A.s->rekey_records = REKEY_RECORDS;
    A.s->rekey_bytes = 200;
    for (int i = 0; i < 100; i++)
        ping_next(&A, TALLOW__SESSION_KEY); /* a Ping is about 10 bytes */
    deliver_to(&B, SIZE_MAX);
    assert_true(A.s->tx_epoch >= 9 + 1);
    assert_int_equal(B.got, 1100);
    assert_false(B.closed);
    assert_seals_unique(1100);
}

/* Delivers the first `keep` frames queued for `me` on the direct path, as the negotiator hands
 * over what QUIC brought, and drops the rest (lost with the path). */
static void deliver_direct(side *me, size_t keep)
{
    size_t n = me->ndq;
    me->ndq = 0;
    for (size_t i = 0; i < n; i++) {
        if (i < keep) tallow__session_input(me->s, &me->dch, me->dq[i].p, me->dq[i].len);
        free(me->dq[i].p);
    }
}

/* 300 rounds of: records on the relay (sealed), a switch to the direct path (transfer records
 * unsealed, numbered on from where their keys were), some lost when the path dies, back to the
 * relay in a new epoch (sealed again). Some rounds rekey by volume on the direct path. Every
 * session message arrives once, in order; every (key, number) is used once, sealed or not. */
static void test_direct_numbers(void **state)
{
    (void)state;
    uint32_t rnd = 777;
    size_t unsealed = 0;
    for (int i = 0; i < 300; i++) {
        A.s->rekey_records = i % 3 == 0 ? 4 : REKEY_RECORDS;
        for (int k = 0; k < 3; k++) {
            ping_next(&A, TALLOW__SESSION_KEY);
            ping_next(&A, (uint64_t)(i + k) % 5);
        }
        /* each side's switch marker is its last frame on the relay, and the other processes it
         * before anything that came direct */
        deliver_to(&B, SIZE_MAX);
        deliver_to(&A, SIZE_MAX);
        tallow__session_use_channel(A.s, &A.dch);
        tallow__session_use_channel(B.s, &B.dch);
        for (int k = 0; k < 6; k++) {
            ping_next(&A, (uint64_t)(i + k) % 5);
            if (k % 2) ping_next(&A, TALLOW__SESSION_KEY);
            ping_next(&B, TALLOW__SESSION_KEY);
        }
        unsealed += 6;
        rnd = rnd * 1103515245u + 12345u;
        deliver_direct(&B, (rnd >> 16) % 12);
        deliver_direct(&A, (rnd >> 20) % 7);
        /* the path is lost: what the negotiator does on each side */
        for (side *me = &A; me; me = me == &A ? &B : NULL) {
            tallow__session_use_channel(me->s, NULL);
            tallow__session_new_epoch(me->s);
        }
        ping_next(&A, 100 + (uint64_t)i);
        for (int k = 0; k < 3; k++) {
            deliver_to(&B, SIZE_MAX);
            deliver_to(&A, SIZE_MAX);
        }
        assert_false(A.closed || B.closed);
        assert_int_equal(B.last_ping, A.tx_msgs);
        assert_int_equal(A.last_ping, B.tx_msgs);
        assert_int_equal(B.last_tid, 100 + (uint64_t)i);
    }
    assert_int_equal(B.s->rx_epoch, A.s->tx_epoch);
    assert_seals_unique(300 * 6 + unsealed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reconnections_and_ids, keys_setup, teardown),
        cmocka_unit_test_setup_teardown(test_replayed_transfer_frame, keys_setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_events_and_forged_epochs, keys_setup, teardown),
        cmocka_unit_test_setup_teardown(test_rekey_by_volume, keys_setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_numbers, keys_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
