/* Known answers for the wormhole plugin's crypto: python-spake2 0.8's own vectors, and a
 * wormhole-shaped session produced by the Debian python libraries (spake2 0.8, magic-wormhole
 * 0.12.0): code "4-purple-sausages", scalars from python-spake2's test PRG(b"1") / PRG(b"2"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <tallow/error.h>

#include "wh_crypto.h"

static void unhex(uint8_t *out, size_t len, const char *hex)
{
    size_t n = 0;
    assert_int_equal(wh_unhex(out, len, hex, &n), 0);
    assert_int_equal(n, len);
}

static void assert_hex(const uint8_t *got, size_t len, const char *want)
{
    char h[2 * 256 + 1];
    assert_true(len <= 256);
    wh_hex(h, got, len);
    assert_string_equal(h, want);
}

/* RFC 5869 has no empty-salt SHA-256 case with L=48; test case 3 (empty salt and info). */
static void test_hkdf_rfc5869(void **st)
{
    (void)st;
    uint8_t ikm[22], okm[42];
    memset(ikm, 0x0b, sizeof(ikm));
    wh_hkdf(okm, sizeof(okm), ikm, sizeof(ikm), "", 0);
    assert_hex(okm, sizeof(okm),
               "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
               "9d201395faa4b61a96c8");
}

static void test_arbitrary_elements(void **st)
{
    (void)st;
    uint8_t p[32];
    assert_int_equal(wh_arbitrary_element(p, (const uint8_t *)"M", 1), 0);
    assert_hex(p, 32, "15cfd18e385952982b6a8f8c7854963b58e34388c8e6dae891db756481a02312");
    assert_int_equal(wh_arbitrary_element(p, (const uint8_t *)"N", 1), 0);
    assert_hex(p, 32, "f04f2e7eb734b2a8f8b472eaf9c3c632576ac64aea650b496a8a20ff00e583c3");
    assert_int_equal(wh_arbitrary_element(p, (const uint8_t *)"symmetric", 9), 0);
    assert_hex(p, 32, "6f00dae87c1be1a73b5922ef431cd8f57879569c222d22b1cd71e8546ab8e6f1");
}

static void test_pw_scalar(void **st)
{
    (void)st;
    uint8_t w[32];
    wh_spake2_pw_scalar(w, (const uint8_t *)"pw", 2);
    assert_hex(w, 32, "cf090b60384cb818b12c8d972dfbaf910c0c7295c5cfe560e508f5f062f3960f");
    wh_spake2_pw_scalar(w, (const uint8_t *)"password", 8);
    assert_hex(w, 32, "471b4e67302ba4f03b095c8acdfadf9f32977a1baac193085aa11b161b97c507");
}

/* python-spake2 test_compat.py test_symmetric, and the same for a wormhole code + appid. */
static void run_pair(const char *pw, const char *id, const char *m1hex, const char *m2hex,
                     const char *keyhex)
{
    uint8_t xa[32], xb[32], m1[33], m2[33], ka[32], kb[32];
    unhex(xa, 32, "b503249504a6737206a57cdc563c0ccea23f7c3c08dcfa391a32d3dc741e980e");
    unhex(xb, 32, "6a4b5ca61d9fe9d9c7148596788b519c041694a1dfc9a7877d4368cb56af8801");
    wh_spake2 a, b;
    assert_int_equal(wh_spake2_start(&a, (const uint8_t *)pw, strlen(pw), (const uint8_t *)id,
                                     strlen(id), xa, m1),
                     0);
    assert_int_equal(wh_spake2_start(&b, (const uint8_t *)pw, strlen(pw), (const uint8_t *)id,
                                     strlen(id), xb, m2),
                     0);
    assert_hex(m1, 33, m1hex);
    assert_hex(m2, 33, m2hex);
    wh_spake2 a2 = a;
    assert_int_equal(wh_spake2_finish(&a, m2, 33, ka), 0);
    assert_int_equal(wh_spake2_finish(&b, m1, 33, kb), 0);
    assert_hex(ka, 32, keyhex);
    assert_hex(kb, 32, keyhex);
    /* a reflected message, a wrong side byte and a short message are refused */
    wh_spake2 r = a2;
    assert_int_equal(wh_spake2_finish(&r, m1, 33, ka), TALLOW_EPROTO);
    r = a2;
    m2[0] = 'A';
    assert_int_equal(wh_spake2_finish(&r, m2, 33, ka), TALLOW_EPROTO);
    r = a2;
    m2[0] = 'S';
    assert_int_equal(wh_spake2_finish(&r, m2, 32, ka), TALLOW_EPROTO);
}

static void test_spake2_symmetric_vector(void **st)
{
    (void)st;
    run_pair("password", "", "5308f692d38c4034ad6e2e1054c469ca1dbe990bcaec4bbd3ad78c7d968eadd0b3",
             "5329e2d5f9b7a53e609204115c6458921b0bb27419ce82a27679fc5961002897df",
             "9c4fccaa3f0740615cee6fd10ed5d3a311b91b5bdc65f53e4ea7cb2fe8aa96eb");
}

static const char WH_KEY[] = "69109e25096c47a7156c0cd2d334eb2b0672ad798da2bf1b3b6cff99677be1c9";

static void test_spake2_wormhole_vector(void **st)
{
    (void)st;
    run_pair("4-purple-sausages", WH_APPID,
             "53197a4ea5e244635443ab4ddb5fad03347acd9e2cd999a485ea2d70fc1a03f786",
             "537363b806daab0f820358776580ab7487276685947a93b7c0acdd1981b605f5d6", WH_KEY);
}

static void test_spake2_wrong_code(void **st)
{
    (void)st;
    uint8_t m1[33], m2[33], ka[32], kb[32];
    wh_spake2 a, b;
    assert_int_equal(wh_spake2_start(&a, (const uint8_t *)"4-purple-sausages", 17,
                                     (const uint8_t *)WH_APPID, strlen(WH_APPID), NULL, m1),
                     0);
    assert_int_equal(wh_spake2_start(&b, (const uint8_t *)"4-purple-sausagez", 17,
                                     (const uint8_t *)WH_APPID, strlen(WH_APPID), NULL, m2),
                     0);
    assert_int_equal(wh_spake2_finish(&a, m2, 33, ka), 0);
    assert_int_equal(wh_spake2_finish(&b, m1, 33, kb), 0);
    assert_memory_not_equal(ka, kb, 32);
}

static void test_phase_keys(void **st)
{
    (void)st;
    uint8_t key[32], out[32], tk[32];
    unhex(key, 32, WH_KEY);
    wh_derive(out, key, "wormhole:verifier");
    assert_hex(out, 32, "56a6ef893c6d21c766b0dfafd6f1943343e9203146d406fdd27465879bb5c348");
    wh_phase_key(out, key, "0123456789", "version");
    assert_hex(out, 32, "899dd23ed3ed02ea4e8e9936b3038f2650f243c3726886a143f4cc8179834151");
    wh_transit_key(tk, key);
    assert_hex(tk, 32, "ab6f9490a2a47de9c51258a7910cb1989b5cf8012aa25d887aa452406c850c40");
    wh_record_key(out, tk, 1);
    assert_hex(out, 32, "cdc2b2aa4c6b3cdc0ef14e81cf462abbce261de9e6cf36bbb1021dbb034dd5d9");
    wh_record_key(out, tk, 0);
    assert_hex(out, 32, "56a9c3a513f4e679648a66aadb648ab35d0b9835f2c5f73f3ed9c88c420c0525");
}

static void test_transit_handshakes(void **st)
{
    (void)st;
    uint8_t tk[32];
    char buf[200];
    unhex(tk, 32, "ab6f9490a2a47de9c51258a7910cb1989b5cf8012aa25d887aa452406c850c40");
    size_t n = wh_transit_handshake(buf, sizeof(buf), tk, 1);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "transit sender "
                             "e26c594a0776010df4b9fddd686ad2650bba51f580986c1f8be3733319144729"
                             " ready\n\n");
    wh_transit_handshake(buf, sizeof(buf), tk, 0);
    assert_string_equal(buf, "transit receiver "
                             "0c29b75d8a2236b8fe810a290eee811c1bf098a15c1df3c3fbdb37f1b4ba1c70"
                             " ready\n\n");
    wh_relay_handshake(buf, sizeof(buf), tk, "0011223344556677");
    assert_string_equal(buf, "please relay "
                             "8270d19d2fc4872358b73c375b3727ccc50448797f5fb1d04aaa9cfb4796ca4f"
                             " for side 0011223344556677\n");
}

static void test_record_nonce_big_endian(void **st)
{
    (void)st;
    uint8_t n[24], want[24] = {0};
    wh_record_nonce(n, 0);
    assert_memory_equal(n, want, 24);
    wh_record_nonce(n, 1);
    want[23] = 1;
    assert_memory_equal(n, want, 24);
    wh_record_nonce(n, 0x0102030405060708ULL);
    assert_hex(n, 24, "000000000000000000000000000000000102030405060708");
}

static void test_secretbox_phase(void **st)
{
    (void)st;
    uint8_t key[32], box[64], back[64];
    unhex(key, 32, "899dd23ed3ed02ea4e8e9936b3038f2650f243c3726886a143f4cc8179834151");
    const char *m = "{\"app_versions\": {}}";
    size_t len = strlen(m);
    wh_box_seal(box, (const uint8_t *)m, len, key);
    assert_int_equal(wh_box_open(back, box, len + WH_BOX_OVERHEAD, key), 0);
    assert_memory_equal(back, m, len);
    /* the layout is nonce || crypto_secretbox_easy (PyNaCl / Go secretbox.Seal) */
    uint8_t ct[64];
    crypto_secretbox_easy(ct, (const uint8_t *)m, len, box, key);
    assert_memory_equal(ct, box + 24, len + 16);
    box[30] ^= 1;
    assert_int_equal(wh_box_open(back, box, len + WH_BOX_OVERHEAD, key), TALLOW_ECRYPTO);
    assert_int_equal(wh_box_open(back, box, 39, key), TALLOW_ECRYPTO);
    /* two seals of the same message use different nonces */
    uint8_t box2[64];
    wh_box_seal(box, (const uint8_t *)m, len, key);
    wh_box_seal(box2, (const uint8_t *)m, len, key);
    assert_memory_not_equal(box, box2, 24);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_arbitrary_elements),
        cmocka_unit_test(test_pw_scalar),
        cmocka_unit_test(test_spake2_symmetric_vector),
        cmocka_unit_test(test_spake2_wormhole_vector),
        cmocka_unit_test(test_spake2_wrong_code),
        cmocka_unit_test(test_phase_keys),
        cmocka_unit_test(test_transit_handshakes),
        cmocka_unit_test(test_record_nonce_big_endian),
        cmocka_unit_test(test_secretbox_phase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
