/* core/aead.c — per-frame AEAD records (XChaCha20-Poly1305, or AES-256-GCM when both sides have
 * it) with the nonce taken from a strict record counter, and the KDF that gives every purpose,
 * direction and transfer its own key, so no (key, nonce) pair is ever used twice. */
#include "crypto.h"
#include <limits.h>
#include <string.h>

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void tallow__aead_init(tallow__aead *a, const uint8_t key[32], int alg)
{
    memset(a, 0, sizeof *a);
    memcpy(a->key, key, 32);
    a->alg = alg;
    if (sodium_init() < 0) {
        a->alg = 0; /* seal/open then refuse with TALLOW_EINVAL */
        return;
    }
    if (alg == TALLOW__AEAD_AESGCM && crypto_aead_aes256gcm_is_available()) {
        /* Expand the AES key once: the hot path then skips the key schedule per frame. */
        crypto_aead_aes256gcm_beforenm(&a->aes, a->key);
        a->aes_ready = 1;
    }
}

static int alg_ok(const tallow__aead *a)
{
    return a->alg == TALLOW__AEAD_XCHACHA || (a->alg == TALLOW__AEAD_AESGCM && a->aes_ready);
}

int tallow__aead_seal(tallow__aead *a, uint8_t *out, const uint8_t *ad, size_t adlen,
                      const uint8_t *pt, size_t len)
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    unsigned long long clen;
    int rc;

    if (!a || !out || (!pt && len) || (!ad && adlen)) return TALLOW_EINVAL;
    if (!alg_ok(a)) return TALLOW_EINVAL;
    if (a->seq == UINT64_MAX || len > SIZE_MAX - TALLOW__AEAD_TAG) return TALLOW_ETOOBIG;
    put_le64(nonce, a->seq);
    if (a->alg == TALLOW__AEAD_AESGCM)
        rc = crypto_aead_aes256gcm_encrypt_afternm(out, &clen, pt, len, ad, adlen, NULL, nonce,
                                                   &a->aes);
    else
        rc = crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, pt, len, ad, adlen, NULL, nonce,
                                                        a->key);
    if (rc != 0) return TALLOW_ETOOBIG; /* only message-size limits make libsodium refuse */
    a->seq++;
    return 0;
}

int tallow__aead_open(tallow__aead *a, uint8_t *out, const uint8_t *ad, size_t adlen,
                      const uint8_t *ct, size_t len)
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    unsigned long long mlen;
    int rc;

    if (!a || (!ct && len) || (!ad && adlen)) return TALLOW_EINVAL;
    if (!alg_ok(a)) return TALLOW_EINVAL;
    if (len < TALLOW__AEAD_TAG) return TALLOW_ECRYPTO;
    if (!out && len > TALLOW__AEAD_TAG) return TALLOW_EINVAL;
    if (len - TALLOW__AEAD_TAG > INT_MAX) return TALLOW_ETOOBIG;
    if (a->seq == UINT64_MAX) return TALLOW_ECRYPTO;
    put_le64(nonce, a->seq);
    if (a->alg == TALLOW__AEAD_AESGCM)
        rc = crypto_aead_aes256gcm_decrypt_afternm(out, &mlen, NULL, ct, len, ad, adlen, nonce,
                                                   &a->aes);
    else
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, len, ad, adlen, nonce,
                                                        a->key);
    if (rc != 0) {
        if (out) sodium_memzero(out, len - TALLOW__AEAD_TAG);
        return TALLOW_ECRYPTO;
    }
    a->seq++;
    return (int)mlen;
}

void tallow__aead_wipe(tallow__aead *a)
{
    if (a) sodium_memzero(a, sizeof *a);
}

void tallow__kdf(const uint8_t key[32], const char *label, uint64_t id, uint8_t out[32])
{
    static const char domain[] = "tallow-kdf-v1";
    crypto_generichash_state st;
    uint8_t num[8];
    size_t llen = label ? strlen(label) : 0;

    if (sodium_init() < 0) { /* BLAKE2b works uninitialised (reference code) */
    }
    /* Length-prefixed label then id: no two (label, id) pairs share an encoding. */
    crypto_generichash_init(&st, key, 32, 32);
    crypto_generichash_update(&st, (const uint8_t *)domain, sizeof domain);
    put_le64(num, llen);
    crypto_generichash_update(&st, num, 8);
    crypto_generichash_update(&st, (const uint8_t *)label, llen);
    put_le64(num, id);
    crypto_generichash_update(&st, num, 8);
    crypto_generichash_final(&st, out, 32);
    sodium_memzero(&st, sizeof st);
}
