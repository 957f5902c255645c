/* plugins/wormhole/wh_crypto.c — see wh_crypto.h. libsodium 1.0.18 only: it has no HKDF (built
 * from HMAC-SHA256 here), and its noclamp scalar multiplication refuses points outside the
 * prime-order subgroup, so arbitrary_element multiplies by the cofactor with three additions. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <tallow/error.h>

#include "wh_crypto.h"

void wh_hkdf(uint8_t *out, size_t outlen, const uint8_t *ikm, size_t ikmlen, const void *info,
             size_t infolen)
{
    uint8_t salt[32] = {0}, prk[32], t[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, salt, sizeof(salt));
    crypto_auth_hmacsha256_update(&st, ikm, ikmlen);
    crypto_auth_hmacsha256_final(&st, prk);
    size_t done = 0;
    for (uint8_t i = 1; done < outlen; i++) {
        crypto_auth_hmacsha256_init(&st, prk, sizeof(prk));
        if (i > 1) crypto_auth_hmacsha256_update(&st, t, sizeof(t));
        crypto_auth_hmacsha256_update(&st, info, infolen);
        crypto_auth_hmacsha256_update(&st, &i, 1);
        crypto_auth_hmacsha256_final(&st, t);
        size_t n = outlen - done < 32 ? outlen - done : 32;
        memcpy(out + done, t, n);
        done += n;
    }
    sodium_memzero(prk, sizeof(prk));
    sodium_memzero(t, sizeof(t));
    sodium_memzero(&st, sizeof(st));
}

void wh_derive(uint8_t out[32], const uint8_t key[32], const char *purpose)
{
    wh_hkdf(out, 32, key, 32, purpose, strlen(purpose));
}

/* ---- arbitrary_element: y = HKDF(seed, "SPAKE2 arbitrary element", 48) big-endian mod p */

/* The carries of the 64-bit limb arithmetic below need a 128-bit intermediate. unsigned __int128
 * is a GCC/Clang extension (every 64-bit target tallow builds on has it); __extension__ keeps
 * -Wpedantic quiet. A portable version would redo this tested code in 32-bit limbs for no gain. */
__extension__ typedef unsigned __int128 u128;

/* v (little-endian 64-bit limbs, n limbs) mod p = 2^255 - 19 into 4 limbs. */
static void mod_p(uint64_t r[4], const uint64_t *v, size_t n)
{
    uint64_t lo[5] = {0};
    for (size_t i = 0; i < 4 && i < n; i++)
        lo[i] = v[i];
    /* hi = v >> 255 */
    uint64_t hi[3] = {0};
    for (size_t i = 0; i < 3; i++) {
        uint64_t a = 3 + i < n ? v[3 + i] : 0, b = 4 + i < n ? v[4 + i] : 0;
        hi[i] = (a >> 63) | (b << 1);
    }
    lo[3] &= 0x7fffffffffffffffULL;
    u128 c = 0;
    for (size_t i = 0; i < 4; i++) {
        c += (u128)lo[i] + (u128)(i < 3 ? hi[i] : 0) * 19;
        lo[i] = (uint64_t)c;
        c >>= 64;
    }
    /* fold bit 255 (and the carry) once more */
    uint64_t top = (lo[3] >> 63) | ((uint64_t)c << 1);
    lo[3] &= 0x7fffffffffffffffULL;
    c = (u128)top * 19;
    for (size_t i = 0; i < 4; i++) {
        c += lo[i];
        lo[i] = (uint64_t)c;
        c >>= 64;
    }
    /* now < 2^255 + small: subtract p if >= p */
    uint64_t p[4] = {0xffffffffffffffedULL, ~0ULL, ~0ULL, 0x7fffffffffffffffULL};
    int ge = 1;
    for (int i = 3; i >= 0; i--) {
        if (lo[i] != p[i]) {
            ge = lo[i] > p[i];
            break;
        }
    }
    if (ge) {
        u128 b = 0;
        for (size_t i = 0; i < 4; i++) {
            u128 d = (u128)lo[i] - p[i] - b;
            lo[i] = (uint64_t)d;
            b = (d >> 64) ? 1 : 0;
        }
    }
    memcpy(r, lo, 32);
}

int wh_arbitrary_element(uint8_t out[32], const uint8_t *seed, size_t len)
{
    static const char info[] = "SPAKE2 arbitrary element";
    uint8_t h[48];
    wh_hkdf(h, sizeof(h), seed, len, info, sizeof(info) - 1);
    uint64_t v[6] = {0};
    for (size_t i = 0; i < 48; i++)
        v[i / 8] |= (uint64_t)h[47 - i] << (8 * (i % 8));
    uint64_t y[4];
    mod_p(y, v, 6);
    for (uint64_t plus = 0; plus < 1000; plus++) {
        uint64_t t[5] = {y[0], y[1], y[2], y[3], 0};
        u128 c = (u128)t[0] + plus;
        t[0] = (uint64_t)c;
        for (size_t i = 1; i < 5; i++) {
            c = (u128)t[i] + (uint64_t)(c >> 64);
            t[i] = (uint64_t)c;
        }
        uint64_t yy[4];
        mod_p(yy, t, 5);
        uint8_t enc[32];
        for (size_t i = 0; i < 32; i++)
            enc[i] = (uint8_t)(yy[i / 8] >> (8 * (i % 8)));
        enc[31] &= 0x7f; /* the even x */
        uint8_t p2[32], p4[32], p8[32];
        if (crypto_core_ed25519_add(p2, enc, enc) != 0) continue; /* y not on the curve */
        if (crypto_core_ed25519_add(p4, p2, p2) != 0) continue;
        if (crypto_core_ed25519_add(p8, p4, p4) != 0) continue;
        if (!crypto_core_ed25519_is_valid_point(p8)) continue; /* identity or small order */
        memcpy(out, p8, 32);
        return 0;
    }
    return TALLOW_ENOTFOUND;
}

/* ---- SPAKE2 symmetric */

/* S = arbitrary_element(b"symmetric"); the unit test derives it again. */
static const uint8_t SPAKE2_S[32] = {
    0x6f, 0x00, 0xda, 0xe8, 0x7c, 0x1b, 0xe1, 0xa7, 0x3b, 0x59, 0x22, 0xef, 0x43, 0x1c, 0xd8, 0xf5,
    0x78, 0x79, 0x56, 0x9c, 0x22, 0x2d, 0x22, 0xb1, 0xcd, 0x71, 0xe8, 0x54, 0x6a, 0xb8, 0xe6, 0xf1};

void wh_spake2_pw_scalar(uint8_t w[32], const uint8_t *pw, size_t len)
{
    static const char info[] = "SPAKE2 pw";
    uint8_t h[48], wide[64] = {0};
    wh_hkdf(h, sizeof(h), pw, len, info, sizeof(info) - 1);
    for (size_t i = 0; i < 48; i++)
        wide[i] = h[47 - i];
    crypto_core_ed25519_scalar_reduce(w, wide);
    sodium_memzero(h, sizeof(h));
    sodium_memzero(wide, sizeof(wide));
}

int wh_spake2_start(wh_spake2 *s, const uint8_t *pw, size_t pwlen, const uint8_t *id, size_t idlen,
                    const uint8_t *x, uint8_t msg[WH_SPAKE2_MSG_LEN])
{
    memset(s, 0, sizeof(*s));
    wh_spake2_pw_scalar(s->w, pw, pwlen);
    crypto_hash_sha256(s->pw_hash, pw, pwlen);
    crypto_hash_sha256(s->id_hash, id, idlen);
    if (x)
        memcpy(s->x, x, 32);
    else
        crypto_core_ed25519_scalar_random(s->x);
    uint8_t X[32], T[32];
    if (crypto_scalarmult_ed25519_base_noclamp(X, s->x) != 0) return TALLOW_ECRYPTO;
    if (crypto_scalarmult_ed25519_noclamp(T, s->w, SPAKE2_S) != 0) return TALLOW_ECRYPTO;
    if (crypto_core_ed25519_add(s->xs, X, T) != 0) return TALLOW_ECRYPTO;
    msg[0] = 'S';
    memcpy(msg + 1, s->xs, 32);
    return 0;
}

int wh_spake2_finish(wh_spake2 *s, const uint8_t *peer, size_t len, uint8_t key[32])
{
    int rc = TALLOW_EPROTO;
    uint8_t T[32], Z[32], K[32];
    if (len != WH_SPAKE2_MSG_LEN || peer[0] != 'S') goto out;
    const uint8_t *Y = peer + 1;
    if (!crypto_core_ed25519_is_valid_point(Y)) goto out;
    if (sodium_memcmp(Y, s->xs, 32) == 0) goto out; /* our own message reflected */
    if (crypto_scalarmult_ed25519_noclamp(T, s->w, SPAKE2_S) != 0) goto out;
    if (crypto_core_ed25519_sub(Z, Y, T) != 0) goto out;
    if (crypto_scalarmult_ed25519_noclamp(K, s->x, Z) != 0) goto out;
    const uint8_t *a = s->xs, *b = Y;
    if (memcmp(a, b, 32) > 0) {
        a = Y;
        b = s->xs;
    }
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, s->pw_hash, 32);
    crypto_hash_sha256_update(&h, s->id_hash, 32);
    crypto_hash_sha256_update(&h, a, 32);
    crypto_hash_sha256_update(&h, b, 32);
    crypto_hash_sha256_update(&h, K, 32);
    crypto_hash_sha256_final(&h, key);
    rc = 0;
out:
    sodium_memzero(s->x, sizeof(s->x));
    sodium_memzero(s->w, sizeof(s->w));
    sodium_memzero(K, sizeof(K));
    sodium_memzero(Z, sizeof(Z));
    return rc;
}

/* ---- phases */

void wh_phase_key(uint8_t out[32], const uint8_t key[32], const char *side, const char *phase)
{
    static const char pre[] = "wormhole:phase:";
    uint8_t purpose[sizeof(pre) - 1 + 64];
    memcpy(purpose, pre, sizeof(pre) - 1);
    crypto_hash_sha256(purpose + sizeof(pre) - 1, (const uint8_t *)side, strlen(side));
    crypto_hash_sha256(purpose + sizeof(pre) - 1 + 32, (const uint8_t *)phase, strlen(phase));
    wh_hkdf(out, 32, key, 32, purpose, sizeof(purpose));
}

void wh_box_seal(uint8_t *out, const uint8_t *m, size_t len, const uint8_t key[32])
{
    randombytes_buf(out, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, m, len, out, key);
}

int wh_box_open(uint8_t *out, const uint8_t *box, size_t len, const uint8_t key[32])
{
    if (len < WH_BOX_OVERHEAD) return TALLOW_ECRYPTO;
    return crypto_secretbox_open_easy(out, box + crypto_secretbox_NONCEBYTES,
                                      len - crypto_secretbox_NONCEBYTES, box, key) == 0
               ? 0
               : TALLOW_ECRYPTO;
}

/* ---- transit */

void wh_transit_key(uint8_t tk[32], const uint8_t key[32])
{
    wh_derive(tk, key, WH_TRANSIT_PURPOSE);
}

size_t wh_transit_handshake(char *out, size_t cap, const uint8_t tk[32], int sender)
{
    uint8_t d[32];
    char hex[65];
    wh_derive(d, tk, sender ? "transit_sender" : "transit_receiver");
    wh_hex(hex, d, 32);
    int n = snprintf(out, cap, "transit %s %s ready\n\n", sender ? "sender" : "receiver", hex);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t wh_relay_handshake(char *out, size_t cap, const uint8_t tk[32], const char *side16)
{
    uint8_t d[32];
    char hex[65];
    wh_derive(d, tk, "transit_relay_token");
    wh_hex(hex, d, 32);
    int n = snprintf(out, cap, "please relay %s for side %s\n", hex, side16);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void wh_record_key(uint8_t out[32], const uint8_t tk[32], int sender_dir)
{
    wh_derive(out, tk, sender_dir ? "transit_record_sender_key" : "transit_record_receiver_key");
}

void wh_record_nonce(uint8_t nonce[24], uint64_t counter)
{
    memset(nonce, 0, 24);
    for (int i = 0; i < 8; i++)
        nonce[23 - i] = (uint8_t)(counter >> (8 * i));
}

void wh_hex(char *out, const uint8_t *in, size_t len)
{
    sodium_bin2hex(out, len * 2 + 1, in, len);
}

int wh_unhex(uint8_t *out, size_t cap, const char *hex, size_t *outlen)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > cap) return TALLOW_EINVAL;
    const char *end = NULL;
    if (sodium_hex2bin(out, cap, hex, n, NULL, outlen, &end) != 0 || *end) return TALLOW_EINVAL;
    return 0;
}
