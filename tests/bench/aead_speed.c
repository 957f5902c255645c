/* tests/bench/aead_speed.c — how fast this machine seals with the AEADs the two paths can use, per
 * GiB and datagram size: GnuTLS (what ngtcp2's crypto callbacks call for QUIC: AES-128-GCM
 * first, as QUIC_PRIORITY asks) and libsodium (the session's AEADs on the relay path). The floor
 * under the direct path's CPU per GiB per side. Not built by default:
 *   cc -O2 tests/bench/aead_speed.c -o /tmp/aead_speed -lgnutls -lsodium && /tmp/aead_speed 16000
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static unsigned char key[32], nonce[24], ad[32], buf[65536], out[65536 + 16];

int main(int argc, char **argv)
{
    size_t len = argc > 1 ? (size_t)atoi(argv[1]) : 16000, n;
    if (len == 0 || len > sizeof(buf)) len = 16000;
    n = (1u << 30) / len;
    if (gnutls_global_init() < 0 || sodium_init() < 0) return 1;
    static const struct {
        gnutls_cipher_algorithm_t alg;
        unsigned keylen;
        const char *name;
    } g[] = {{GNUTLS_CIPHER_AES_128_GCM, 16, "GnuTLS AES-128-GCM"},
             {GNUTLS_CIPHER_AES_256_GCM, 32, "GnuTLS AES-256-GCM"},
             {GNUTLS_CIPHER_CHACHA20_POLY1305, 32, "GnuTLS ChaCha20-Poly1305"}};
    for (size_t a = 0; a < sizeof(g) / sizeof(g[0]); a++) {
        gnutls_aead_cipher_hd_t h;
        gnutls_datum_t k = {key, g[a].keylen};
        if (gnutls_aead_cipher_init(&h, g[a].alg, &k) < 0) continue;
        double t0 = now();
        for (size_t i = 0; i < n; i++) {
            size_t ol = sizeof(out);
            nonce[0] = (unsigned char)i;
            gnutls_aead_cipher_encrypt(h, nonce, 12, ad, 25, 16, buf, len, out, &ol);
        }
        printf("%-28s %6zu B: %.3f s/GiB\n", g[a].name, len, now() - t0);
        gnutls_aead_cipher_deinit(h);
    }
    unsigned long long ml;
    if (crypto_aead_aes256gcm_is_available()) {
        crypto_aead_aes256gcm_state st;
        crypto_aead_aes256gcm_beforenm(&st, key);
        double t0 = now();
        for (size_t i = 0; i < n; i++) {
            nonce[0] = (unsigned char)i;
            crypto_aead_aes256gcm_encrypt_detached_afternm(out, out + len, &ml, buf, len, ad, 25,
                                                           NULL, nonce, &st);
        }
        printf("%-28s %6zu B: %.3f s/GiB\n", "libsodium AES-256-GCM", len, now() - t0);
    }
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        nonce[0] = (unsigned char)i;
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, out + len, &ml, buf, len, ad, 25,
                                                            NULL, nonce, key);
    }
    printf("%-28s %6zu B: %.3f s/GiB\n", "libsodium XChaCha20-Poly1305", len, now() - t0);
    return 0;
}
