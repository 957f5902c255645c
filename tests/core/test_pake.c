/* tests/core/test_pake.c — the CPace handshake with key confirmation: both sides in one process,
 * matching keys and verify strings, and refusal of wrong codes, tampering, bad points, bad
 * lengths and out-of-order calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"

static const char *CODE = "7-crossword-apple-banana";

typedef struct side {
    tallow__hs a, b;
    tallow_msg_HandshakeInit init;
    tallow_msg_HandshakeResponse resp;
    tallow_msg_HandshakeComplete done;
} side;

/* Starts both sides with their own codes and runs A's first message through B. */
static void start(side *s, const char *code_a, const char *code_b)
{
    uint8_t room_a[32], room_b[32];
    memset(s, 0, sizeof *s);
    assert_int_equal(tallow__code_room_id(code_a, room_a), 0);
    assert_int_equal(tallow__code_room_id(code_b, room_b), 0);
    assert_int_equal(tallow__hs_init(&s->a, 1, code_a, room_a), 0);
    assert_int_equal(tallow__hs_init(&s->b, 0, code_b, room_b), 0);
    assert_int_equal(tallow__hs_make_init(&s->a, &s->init), 0);
    assert_int_equal(s->init.version, 3);
    assert_int_equal(s->init.nonce.len, 32);
    assert_int_equal(s->init.pake.len, 32);
}

static void finish(side *s, tallow__keys *ka, tallow__keys *kb)
{
    assert_int_equal(tallow__hs_on_init(&s->b, &s->init, &s->resp), 0);
    assert_int_equal(s->resp.confirm.len, 32);
    assert_int_equal(tallow__hs_on_response(&s->a, &s->resp, &s->done), 0);
    assert_int_equal(s->done.confirm.len, 32);
    assert_int_equal(tallow__hs_on_complete(&s->b, &s->done), 0);
    assert_int_equal(tallow__hs_keys(&s->a, ka), 0);
    assert_int_equal(tallow__hs_keys(&s->b, kb), 0);
}

static void test_pake_keys_match(void **state)
{
    side s;
    tallow__keys ka, kb;
    start(&s, CODE, " 007 Crossword APPLE_banana "); /* same code, other spelling */
    finish(&s, &ka, &kb);
    assert_memory_equal(ka.tx, kb.rx, 32);
    assert_memory_equal(ka.rx, kb.tx, 32);
    assert_memory_not_equal(ka.tx, ka.rx, 32);
    assert_memory_equal(ka.transfer_base_tx, kb.transfer_base_rx, 32);
    assert_memory_equal(ka.transfer_base_rx, kb.transfer_base_tx, 32);
    assert_memory_not_equal(ka.transfer_base_tx, ka.tx, 32);
    assert_memory_equal(ka.quic_psk, kb.quic_psk, 32);
    assert_memory_equal(ka.check_key, kb.check_key, 32);
    assert_memory_not_equal(ka.quic_psk, ka.check_key, 32);
    assert_int_equal(ka.alg, kb.alg);
    assert_true(ka.alg == TALLOW__AEAD_XCHACHA || ka.alg == TALLOW__AEAD_AESGCM);
    if (crypto_aead_aes256gcm_is_available()) assert_int_equal(ka.alg, TALLOW__AEAD_AESGCM);
    assert_string_equal(ka.verify, kb.verify);
    /* verify is 4 list words. */
    char v[64];
    memcpy(v, ka.verify, sizeof v);
    int words = 0;
    for (char *save = NULL, *t = strtok_r(v, "-", &save); t; t = strtok_r(NULL, "-", &save)) {
        assert_true(tallow__wordlist_find(t) >= 0);
        words++;
    }
    assert_int_equal(words, 4);

    /* The keys work: A seals with tx, B opens with rx. */
    tallow__aead ta, rb;
    uint8_t msg[5] = "hello", buf[5 + TALLOW__AEAD_TAG], out[5];
    tallow__aead_init(&ta, ka.tx, ka.alg);
    tallow__aead_init(&rb, kb.rx, kb.alg);
    assert_int_equal(tallow__aead_seal(&ta, buf, NULL, 0, msg, 5), 0);
    assert_int_equal(tallow__aead_open(&rb, out, NULL, 0, buf, sizeof buf), 5);
    assert_memory_equal(out, msg, 5);
    tallow__aead_wipe(&ta);
    tallow__aead_wipe(&rb);

    /* A second session with the same code gets fresh keys. */
    side s2;
    tallow__keys ka2, kb2;
    start(&s2, CODE, CODE);
    finish(&s2, &ka2, &kb2);
    assert_memory_not_equal(ka.tx, ka2.tx, 32);
    assert_memory_not_equal(ka.quic_psk, ka2.quic_psk, 32);

    tallow__hs_wipe(&s.a);
    tallow__hs_wipe(&s.b);
    assert_int_equal(tallow__hs_keys(&s.a, &ka), TALLOW_EINVAL);
}

/* Every message goes through the real codec: encode, decode, hand the decoded struct on. */
static int wire(const tallow_registry *reg, const tallow_msg_type *t, const void *msg, uint8_t *buf,
                size_t cap, tallow_msg_any *out)
{
    const tallow_msg_type *got = NULL;
    int n = tallow_msg_encode(t, msg, buf, cap);
    assert_true(n > 0);
    memset(out, 0, sizeof *out);
    int rc = tallow_msg_decode(reg, buf, (size_t)n, &got, out, sizeof *out);
    if (rc == 0) assert_ptr_equal(got, tallow_registry_find(reg, t->id));
    return rc;
}

static void test_pake_over_codec(void **state)
{
    tallow_registry *reg = tallow_registry_new();
    assert_non_null(reg);
    uint8_t b1[256], b2[256], b3[256];
    tallow_msg_any m1, m2, m3;
    side s;
    tallow__keys ka, kb;
    start(&s, CODE, CODE);
    assert_int_equal(wire(reg, &tallow_msgtype_HandshakeInit, &s.init, b1, sizeof b1, &m1), 0);
    assert_int_equal(tallow__hs_on_init(&s.b, &m1.HandshakeInit, &s.resp), 0);
    assert_int_equal(wire(reg, &tallow_msgtype_HandshakeResponse, &s.resp, b2, sizeof b2, &m2), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &m2.HandshakeResponse, &s.done), 0);
    assert_int_equal(wire(reg, &tallow_msgtype_HandshakeComplete, &s.done, b3, sizeof b3, &m3), 0);
    assert_int_equal(tallow__hs_on_complete(&s.b, &m3.HandshakeComplete), 0);
    assert_int_equal(tallow__hs_keys(&s.a, &ka), 0);
    assert_int_equal(tallow__hs_keys(&s.b, &kb), 0);
    assert_memory_equal(ka.tx, kb.rx, 32);
    assert_string_equal(ka.verify, kb.verify);

    /* A HandshakeComplete that lost its confirm field on the wire decodes as empty: ECODE. */
    start(&s, CODE, CODE);
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    tallow_msg_HandshakeComplete empty = {{NULL, 0}};
    assert_int_equal(wire(reg, &tallow_msgtype_HandshakeComplete, &empty, b3, sizeof b3, &m3), 0);
    assert_int_equal(tallow__hs_on_complete(&s.b, &m3.HandshakeComplete), TALLOW_ECODE);
    tallow_registry_free(reg);
}

static void test_pake_no_aes_falls_back(void **state)
{
    side s;
    tallow__keys ka, kb;
    start(&s, CODE, CODE);
    /* A announces no AES (as on a machine without AES-NI): both must pick XChaCha. */
    s.a.feat_a = 0;
    s.init.features = 0;
    finish(&s, &ka, &kb);
    assert_int_equal(ka.alg, TALLOW__AEAD_XCHACHA);
    assert_int_equal(kb.alg, TALLOW__AEAD_XCHACHA);
}

static void test_pake_features_downgrade_detected(void **state)
{
    side s;
    start(&s, CODE, CODE);
    s.init.features = 0; /* a man in the middle strips A's AES bit */
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), TALLOW_ECODE);
}

static void test_pake_wrong_code_tail(void **state)
{
    side s;
    tallow__keys k;
    start(&s, CODE, "7-crossword-apple-bananas");
    assert_memory_equal(s.a.room, s.b.room, 32); /* they meet in one room */
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), TALLOW_ECODE);
    assert_int_equal(s.a.state, TALLOW__HS_FAILED);
    assert_int_equal(tallow__hs_keys(&s.a, &k), TALLOW_EINVAL);
    /* B never gets A's confirmation: absent, or a forgery, both fail. */
    tallow_msg_HandshakeComplete none = {{NULL, 0}};
    assert_int_equal(tallow__hs_on_complete(&s.b, &none), TALLOW_ECODE);
    assert_int_equal(tallow__hs_keys(&s.b, &k), TALLOW_EINVAL);

    start(&s, CODE, "7-crossword-apple-bananas");
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    uint8_t forged[32];
    randombytes_buf(forged, sizeof forged);
    tallow_msg_HandshakeComplete f = {{forged, 32}};
    assert_int_equal(tallow__hs_on_complete(&s.b, &f), TALLOW_ECODE);
    assert_int_equal(s.b.state, TALLOW__HS_FAILED);
}

static void test_pake_wrong_code_mac_replayed(void **state)
{
    /* B with a wrong code receives the confirm an honest A would send: still refused. */
    side s;
    start(&s, CODE, "7-crossword-pear-banana");
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    tallow_msg_HandshakeComplete echo = {s.resp.confirm}; /* B's own MAC reflected */
    assert_int_equal(tallow__hs_on_complete(&s.b, &echo), TALLOW_ECODE);
}

/* Runs B on the init, applies tamper() to the response, and expects A to fail with want. */
static void tamper_response(void (*tamper)(tallow_msg_HandshakeResponse *, uint8_t *), int want)
{
    side s;
    uint8_t scratch[64];
    start(&s, CODE, CODE);
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    tamper(&s.resp, scratch);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), want);
    assert_int_equal(s.a.state, TALLOW__HS_FAILED);
}

static void flip_share(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    /* Another valid point: B's share times 2 (an attacker's substitution). */
    crypto_core_ristretto255_add(buf, r->pake.ptr, r->pake.ptr);
    r->pake.ptr = buf;
}
static void flip_share_bit(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    memcpy(buf, r->pake.ptr, 32);
    buf[5] ^= 0x10;
    r->pake.ptr = buf;
}
static void flip_nonce(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    memcpy(buf, r->nonce.ptr, 32);
    buf[31] ^= 1;
    r->nonce.ptr = buf;
}
static void flip_confirm(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    memcpy(buf, r->confirm.ptr, 32);
    buf[0] ^= 0x80;
    r->confirm.ptr = buf;
}
static void drop_confirm(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    r->confirm = (tallow_bytes){NULL, 0};
}
static void identity_share(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    memset(buf, 0, 32);
    r->pake.ptr = buf;
}
static void short_nonce(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    r->nonce.len = 31;
}
static void long_share(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    memcpy(buf, r->pake.ptr, 32);
    buf[32] = 0;
    r->pake = (tallow_bytes){buf, 33};
}
static void short_confirm(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    r->confirm.len = 16;
}
static void bad_version(tallow_msg_HandshakeResponse *r, uint8_t *buf)
{
    r->version = 1; /* the release before */
}

static void test_pake_tampered_response(void **state)
{
    tamper_response(flip_share, TALLOW_ECODE);
    tamper_response(flip_share_bit, TALLOW_ECODE);
    tamper_response(flip_nonce, TALLOW_ECODE);
    tamper_response(flip_confirm, TALLOW_ECODE);
    tamper_response(drop_confirm, TALLOW_ECODE);
    tamper_response(identity_share, TALLOW_ECODE);
    tamper_response(short_nonce, TALLOW_EPROTO);
    tamper_response(long_share, TALLOW_EPROTO);
    tamper_response(short_confirm, TALLOW_EPROTO);
    tamper_response(bad_version, TALLOW_EVERSION);
}

static void test_pake_tampered_init(void **state)
{
    side s;
    uint8_t buf[33];

    /* A's nonce changed in transit: B answers, A's check of MAC_B fails. */
    start(&s, CODE, CODE);
    memcpy(buf, s.init.nonce.ptr, 32);
    buf[0] ^= 1;
    s.init.nonce.ptr = buf;
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), TALLOW_ECODE);

    /* A's share replaced by another valid point: same outcome. */
    start(&s, CODE, CODE);
    crypto_core_ristretto255_add(buf, s.init.pake.ptr, s.init.pake.ptr);
    s.init.pake.ptr = buf;
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), TALLOW_ECODE);

    /* Identity share, an invalid encoding, B's own share reflected: B refuses at once. */
    start(&s, CODE, CODE);
    memset(buf, 0, 32);
    s.init.pake.ptr = buf;
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), TALLOW_ECODE);
    assert_int_equal(s.b.state, TALLOW__HS_FAILED);

    start(&s, CODE, CODE);
    memset(buf, 0xff, 32);
    s.init.pake.ptr = buf;
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), TALLOW_ECODE);

    start(&s, CODE, CODE);
    s.init.pake.ptr = s.b.yb;
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), TALLOW_ECODE);

    /* Malformed: lengths and version. */
    start(&s, CODE, CODE);
    s.init.pake.len = 31;
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), TALLOW_EPROTO);
    start(&s, CODE, CODE);
    s.init.nonce = (tallow_bytes){NULL, 0};
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), TALLOW_EPROTO);
    start(&s, CODE, CODE);
    s.init.version = 0;
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), TALLOW_EVERSION);
}

static void test_pake_tampered_complete(void **state)
{
    side s;
    uint8_t buf[32];
    start(&s, CODE, CODE);
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), 0);
    memcpy(buf, s.done.confirm.ptr, 32);
    buf[17] ^= 4;
    tallow_msg_HandshakeComplete bad = {{buf, 32}};
    assert_int_equal(tallow__hs_on_complete(&s.b, &bad), TALLOW_ECODE);
    /* Once failed, the genuine confirmation no longer helps. */
    assert_int_equal(tallow__hs_on_complete(&s.b, &s.done), TALLOW_EINVAL);

    start(&s, CODE, CODE);
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), 0);
    s.done.confirm.len = 31;
    assert_int_equal(tallow__hs_on_complete(&s.b, &s.done), TALLOW_EPROTO);
}

static void test_pake_wrong_room_or_order(void **state)
{
    side s;
    tallow__keys k;
    uint8_t other_room[32];
    tallow__hs x;

    /* Same code, different room id: the generator differs, confirmation fails. */
    start(&s, CODE, CODE);
    memset(other_room, 7, sizeof other_room);
    assert_int_equal(tallow__hs_init(&s.b, 0, CODE, other_room), 0);
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_on_response(&s.a, &s.resp, &s.done), TALLOW_ECODE);

    /* Calls out of order or on the wrong side. */
    start(&s, CODE, CODE);
    assert_int_equal(tallow__hs_make_init(&s.a, &s.init), TALLOW_EINVAL); /* twice */
    assert_int_equal(tallow__hs_make_init(&s.b, &s.init), TALLOW_EINVAL);
    assert_int_equal(tallow__hs_on_init(&s.a, &s.init, &s.resp), TALLOW_EINVAL);
    assert_int_equal(tallow__hs_on_complete(&s.b, &s.done), TALLOW_EINVAL);
    assert_int_equal(tallow__hs_keys(&s.b, &k), TALLOW_EINVAL);
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), 0);
    assert_int_equal(tallow__hs_keys(&s.b, &k), TALLOW_EINVAL); /* not confirmed yet */
    assert_int_equal(tallow__hs_on_init(&s.b, &s.init, &s.resp), TALLOW_EINVAL);

    /* Bad code. */
    assert_int_equal(tallow__hs_init(&x, 1, "crossword", other_room), TALLOW_EINVAL);
    assert_int_equal(tallow__hs_init(&x, 1, NULL, other_room), TALLOW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pake_keys_match),
        cmocka_unit_test(test_pake_over_codec),
        cmocka_unit_test(test_pake_no_aes_falls_back),
        cmocka_unit_test(test_pake_features_downgrade_detected),
        cmocka_unit_test(test_pake_wrong_code_tail),
        cmocka_unit_test(test_pake_wrong_code_mac_replayed),
        cmocka_unit_test(test_pake_tampered_response),
        cmocka_unit_test(test_pake_tampered_init),
        cmocka_unit_test(test_pake_tampered_complete),
        cmocka_unit_test(test_pake_wrong_room_or_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
