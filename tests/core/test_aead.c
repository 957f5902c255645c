/* tests/core/test_aead.c — AEAD records: round trips for both algorithms, in place, and refusal
 * of replayed, reordered, truncated and bit-flipped records with seq left unchanged; the KDF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"

#define FRAME (64 * 1024)

static uint8_t pt[FRAME], ct[4][FRAME + TALLOW__AEAD_TAG], back[FRAME + TALLOW__AEAD_TAG];

static int have_aes(void)
{
    return sodium_init() >= 0 && crypto_aead_aes256gcm_is_available();
}

static void pair(int alg, tallow__aead *tx, tallow__aead *rx)
{
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    tallow__aead_init(tx, key, alg);
    tallow__aead_init(rx, key, alg);
}

static void round_trip(int alg)
{
    tallow__aead tx, rx;
    static const uint8_t ad[] = "header";
    pair(alg, &tx, &rx);
    randombytes_buf(pt, sizeof pt);
    size_t lens[] = {0, 1, 15, 16, 17, 1000, FRAME};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        assert_int_equal(tallow__aead_seal(&tx, ct[0], ad, sizeof ad, pt, n), 0);
        assert_int_equal(tx.seq, i + 1);
        if (n >= 16) assert_memory_not_equal(ct[0], pt, n); /* shorter ones may match by chance */
        assert_int_equal(tallow__aead_open(&rx, back, ad, sizeof ad, ct[0], n + TALLOW__AEAD_TAG),
                         (int)n);
        assert_int_equal(rx.seq, i + 1);
        if (n) assert_memory_equal(back, pt, n);
    }
    /* In place, both ways. */
    memcpy(back, pt, 4096);
    assert_int_equal(tallow__aead_seal(&tx, back, NULL, 0, back, 4096), 0);
    assert_memory_not_equal(back, pt, 4096);
    assert_int_equal(tallow__aead_open(&rx, back, NULL, 0, back, 4096 + TALLOW__AEAD_TAG), 4096);
    assert_memory_equal(back, pt, 4096);
    tallow__aead_wipe(&tx);
    tallow__aead_wipe(&rx);
    assert_int_equal(tx.seq, 0);
}

static void test_aead_round_trip_xchacha(void **state)
{
    round_trip(TALLOW__AEAD_XCHACHA);
}

static void test_aead_round_trip_aesgcm(void **state)
{
    if (!have_aes()) skip();
    round_trip(TALLOW__AEAD_AESGCM);
}

static void rejects(int alg)
{
    tallow__aead tx, rx;
    static const uint8_t ad[] = "ad";
    const size_t n = 300, cl = n + TALLOW__AEAD_TAG;
    pair(alg, &tx, &rx);
    randombytes_buf(pt, n);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tallow__aead_seal(&tx, ct[i], ad, 2, pt, n), 0);

    /* Reorder: record 1 first is refused, seq stays 0. */
    assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[1], cl), TALLOW_ECRYPTO);
    assert_int_equal(rx.seq, 0);
    /* Every single bit flip in ciphertext or tag is refused. */
    for (size_t bit = 0; bit < cl * 8; bit += 7) {
        ct[0][bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[0], cl), TALLOW_ECRYPTO);
        ct[0][bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(rx.seq, 0);
    }
    /* Different associated data, truncation, too short. */
    assert_int_equal(tallow__aead_open(&rx, back, (const uint8_t *)"aD", 2, ct[0], cl),
                     TALLOW_ECRYPTO);
    assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[0], cl - 1), TALLOW_ECRYPTO);
    assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[0], TALLOW__AEAD_TAG - 1),
                     TALLOW_ECRYPTO);
    assert_int_equal(rx.seq, 0);
    /* The genuine record still opens after all that. */
    assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[0], cl), (int)n);
    assert_memory_equal(back, pt, n);
    assert_int_equal(rx.seq, 1);
    /* Replay of record 0 is refused. */
    assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[0], cl), TALLOW_ECRYPTO);
    assert_int_equal(rx.seq, 1);
    assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[1], cl), (int)n);
    assert_int_equal(tallow__aead_open(&rx, back, ad, 2, ct[2], cl), (int)n);
    assert_int_equal(rx.seq, 3);

    /* A wrong key fails. */
    tallow__aead other;
    uint8_t k2[32];
    randombytes_buf(k2, sizeof k2);
    tallow__aead_init(&other, k2, alg);
    assert_int_equal(tallow__aead_open(&other, back, ad, 2, ct[0], cl), TALLOW_ECRYPTO);
    assert_int_equal(other.seq, 0);
    tallow__aead_wipe(&other);
    tallow__aead_wipe(&tx);
    tallow__aead_wipe(&rx);
}

static void test_aead_rejects_xchacha(void **state)
{
    rejects(TALLOW__AEAD_XCHACHA);
}

static void test_aead_rejects_aesgcm(void **state)
{
    if (!have_aes()) skip();
    rejects(TALLOW__AEAD_AESGCM);
}

static void test_aead_nonce_from_seq(void **state)
{
    /* Same key, same plaintext, successive records: different ciphertexts. */
    tallow__aead tx, rx;
    pair(TALLOW__AEAD_XCHACHA, &tx, &rx);
    memset(pt, 0x55, 64);
    assert_int_equal(tallow__aead_seal(&tx, ct[0], NULL, 0, pt, 64), 0);
    assert_int_equal(tallow__aead_seal(&tx, ct[1], NULL, 0, pt, 64), 0);
    assert_memory_not_equal(ct[0], ct[1], 64 + TALLOW__AEAD_TAG);
    /* Algorithms are not interchangeable, and an unknown one is refused. */
    if (have_aes()) {
        tallow__aead g;
        tallow__aead_init(&g, tx.key, TALLOW__AEAD_AESGCM);
        assert_int_equal(tallow__aead_open(&g, back, NULL, 0, ct[0], 64 + TALLOW__AEAD_TAG),
                         TALLOW_ECRYPTO);
        tallow__aead_wipe(&g);
    }
    tallow__aead bad;
    tallow__aead_init(&bad, tx.key, 7);
    assert_int_equal(tallow__aead_seal(&bad, ct[2], NULL, 0, pt, 64), TALLOW_EINVAL);
    /* Exhausted sequence numbers are refused rather than wrapped. */
    tx.seq = UINT64_MAX;
    assert_int_equal(tallow__aead_seal(&tx, ct[2], NULL, 0, pt, 64), TALLOW_ETOOBIG);
    assert_int_equal(tx.seq, UINT64_MAX);
    tallow__aead_wipe(&bad);
    tallow__aead_wipe(&tx);
    tallow__aead_wipe(&rx);
}

/* AES-256-GCM records sealed through GnuTLS are exactly libsodium's AES-256-GCM records (nonce
 * le64(seq) || 0^32, ciphertext then tag): each library opens the other's, a flipped bit fails in
 * both, and a whole 1 MiB frame sealed in place opens in place. */
static void test_aead_gnutls_matches_libsodium(void **state)
{
    if (!have_aes()) skip();
    static uint8_t big[(1u << 20) + TALLOW__AEAD_TAG], ref[(1u << 20) + TALLOW__AEAD_TAG];
    static const uint8_t ad[] = {2, 0, 7};
    const size_t n = 1u << 20;
    uint8_t key[32], nonce[crypto_aead_aes256gcm_NPUBBYTES] = {0};
    unsigned long long clen, mlen;
    tallow__aead tx, rx;
    randombytes_buf(key, sizeof key);
    tallow__aead_init(&tx, key, TALLOW__AEAD_AESGCM);
    tallow__aead_init(&rx, key, TALLOW__AEAD_AESGCM);
    randombytes_buf(big, n);
    memcpy(ref, big, n);
    tx.seq = rx.seq = 0x0102030405060708ull;
    nonce[0] = 8, nonce[1] = 7, nonce[2] = 6, nonce[3] = 5, nonce[4] = 4, nonce[5] = 3,
    nonce[6] = 2, nonce[7] = 1;
    /* ours (in place) == libsodium's */
    assert_int_equal(tallow__aead_seal(&tx, big, ad, sizeof ad, big, n), 0);
    static uint8_t sod[(1u << 20) + TALLOW__AEAD_TAG];
    assert_int_equal(
        crypto_aead_aes256gcm_encrypt(sod, &clen, ref, n, ad, sizeof ad, NULL, nonce, key), 0);
    assert_int_equal(clen, n + TALLOW__AEAD_TAG);
    assert_memory_equal(big, sod, n + TALLOW__AEAD_TAG);
    /* libsodium opens ours, ours opens libsodium's (in place) */
    static uint8_t out[1u << 20];
    assert_int_equal(crypto_aead_aes256gcm_decrypt(out, &mlen, NULL, big, n + TALLOW__AEAD_TAG, ad,
                                                   sizeof ad, nonce, key),
                     0);
    assert_memory_equal(out, ref, n);
    /* a flipped bit (ciphertext, then tag) fails, seq unchanged, output zeroed */
    sod[12345] ^= 0x10;
    assert_int_equal(tallow__aead_open(&rx, sod, ad, sizeof ad, sod, n + TALLOW__AEAD_TAG),
                     TALLOW_ECRYPTO);
    assert_int_equal(rx.seq, 0x0102030405060708ull);
    memcpy(sod, big, n + TALLOW__AEAD_TAG);
    sod[n + 3] ^= 0x01;
    assert_int_equal(tallow__aead_open(&rx, out, ad, sizeof ad, sod, n + TALLOW__AEAD_TAG),
                     TALLOW_ECRYPTO);
    /* the genuine one opens in place */
    assert_int_equal(tallow__aead_open(&rx, big, ad, sizeof ad, big, n + TALLOW__AEAD_TAG), (int)n);
    assert_memory_equal(big, ref, n);
    assert_int_equal(rx.seq, 0x0102030405060709ull);
    /* an empty record is just a tag */
    assert_int_equal(tallow__aead_seal(&tx, big, NULL, 0, NULL, 0), 0);
    assert_int_equal(tallow__aead_open(&rx, NULL, NULL, 0, big, TALLOW__AEAD_TAG), 0);
    big[0] ^= 1;
    rx.seq--;
    assert_int_equal(tallow__aead_open(&rx, NULL, NULL, 0, big, TALLOW__AEAD_TAG), TALLOW_ECRYPTO);
    tallow__aead_wipe(&tx);
    tallow__aead_wipe(&rx);
    assert_null(tx.gcm);
}

static void test_aead_kdf_distinct(void **state)
{
    uint8_t key[32], a[32], b[32], c[32], d[32], e[32];
    randombytes_buf(key, sizeof key);
    tallow__kdf(key, "transfer", 1, a);
    tallow__kdf(key, "transfer", 1, b);
    assert_memory_equal(a, b, 32);
    tallow__kdf(key, "transfer", 2, c);
    assert_memory_not_equal(a, c, 32);
    tallow__kdf(key, "transfeR", 1, d);
    assert_memory_not_equal(a, d, 32);
    tallow__kdf(key, "", 1, e);
    assert_memory_not_equal(a, e, 32);
    key[0] ^= 1;
    tallow__kdf(key, "transfer", 1, b);
    assert_memory_not_equal(a, b, 32);
    assert_memory_not_equal(a, key, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aead_round_trip_xchacha),
        cmocka_unit_test(test_aead_round_trip_aesgcm),
        cmocka_unit_test(test_aead_rejects_xchacha),
        cmocka_unit_test(test_aead_rejects_aesgcm),
        cmocka_unit_test(test_aead_nonce_from_seq),
        cmocka_unit_test(test_aead_gnutls_matches_libsodium),
        cmocka_unit_test(test_aead_kdf_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
