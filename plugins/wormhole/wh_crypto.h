/* plugins/wormhole/wh_crypto.h — magic-wormhole's key schedule: HKDF-SHA256, python-spake2's
 * symmetric SPAKE2 over Ed25519, phase keys and SecretBox phases, transit keys, handshakes and
 * record nonces. Every derivation here is labelled and has a known-answer test
 * (tests/plugins/wormhole/test_wh_crypto.c). */
#ifndef WH_CRYPTO_H
#define WH_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define WH_APPID "lothar.com/wormhole/text-or-file-xfer"
/* The transit key's purpose is this fixed string whatever the appid ("BUG339" upstream). */
#define WH_TRANSIT_PURPOSE "lothar.com/wormhole/text-or-file-xfer/transit-key"
#define WH_SPAKE2_MSG_LEN 33
#define WH_BOX_OVERHEAD 40 /* 24-byte nonce + 16-byte MAC */

/* HKDF-SHA256 with an empty salt (= 32 zero bytes), as python's hkdf and Go's x/crypto do.
 * outlen <= 255 * 32. */
void wh_hkdf(uint8_t *out, size_t outlen, const uint8_t *ikm, size_t ikmlen, const void *info,
             size_t infolen);
/* HKDF(key, purpose, 32): the labelled 32-byte derivation all of magic-wormhole uses. */
void wh_derive(uint8_t out[32], const uint8_t key[32], const char *purpose);

/* python-spake2's arbitrary_element(seed): a point of the prime-order subgroup with unknown
 * discrete log. Used to check the hard-coded blinding element S. 0 or TALLOW_ENOTFOUND. */
int wh_arbitrary_element(uint8_t out[32], const uint8_t *seed, size_t len);
/* password_to_scalar: HKDF(pw, "SPAKE2 pw", 48) read big-endian, mod L (little-endian out). */
void wh_spake2_pw_scalar(uint8_t w[32], const uint8_t *pw, size_t len);

typedef struct wh_spake2 {
    uint8_t x[32];  /* our secret scalar */
    uint8_t w[32];  /* password scalar */
    uint8_t xs[32]; /* our blinded element X* */
    uint8_t pw_hash[32], id_hash[32];
} wh_spake2;

/* SPAKE2_Symmetric(pw, idSymmetric=id).start(): msg = 'S' || X*. x may be NULL (random scalar)
 * or a reduced little-endian scalar (known-answer tests). 0 or TALLOW_ECRYPTO. */
int wh_spake2_start(wh_spake2 *s, const uint8_t *pw, size_t pwlen, const uint8_t *id, size_t idlen,
                    const uint8_t *x, uint8_t msg[WH_SPAKE2_MSG_LEN]);
/* finish(peer message) -> the 32-byte shared key. TALLOW_EPROTO on a malformed, invalid or
 * reflected message. Wipes the secret scalar either way. */
int wh_spake2_finish(wh_spake2 *s, const uint8_t *peer, size_t len, uint8_t key[32]);

/* derive_phase_key: purpose "wormhole:phase:" || SHA256(side) || SHA256(phase) (raw digests). */
void wh_phase_key(uint8_t out[32], const uint8_t key[32], const char *side, const char *phase);
/* SecretBox with a fresh random nonce: out = nonce || MAC || ct (len + WH_BOX_OVERHEAD). */
void wh_box_seal(uint8_t *out, const uint8_t *m, size_t len, const uint8_t key[32]);
/* Opens nonce || MAC || ct into out (len - WH_BOX_OVERHEAD bytes). 0 or TALLOW_ECRYPTO
 * (forged/short). */
int wh_box_open(uint8_t *out, const uint8_t *box, size_t len, const uint8_t key[32]);

/* Transit: handshake lines and record keys from the transit key. hex buffers hold 65 chars. */
void wh_transit_key(uint8_t tk[32], const uint8_t key[32]);
/* "transit sender <hex> ready\n\n" / "transit receiver <hex> ready\n\n"; returns the length. */
size_t wh_transit_handshake(char *out, size_t cap, const uint8_t tk[32], int sender);
/* "please relay <hex> for side <side16>\n"; returns the length. */
size_t wh_relay_handshake(char *out, size_t cap, const uint8_t tk[32], const char *side16);
/* Record key for the direction sender->receiver (sender_dir=1) or receiver->sender. */
void wh_record_key(uint8_t out[32], const uint8_t tk[32], int sender_dir);
/* The record nonce: a 24-byte BIG-endian counter (transit.md's "little endian" is wrong). */
void wh_record_nonce(uint8_t nonce[24], uint64_t counter);

void wh_hex(char *out, const uint8_t *in, size_t len); /* lowercase, NUL-terminated */
/* 0, or TALLOW_EINVAL (odd length, longer than cap, not hex). */
int wh_unhex(uint8_t *out, size_t cap, const char *hex, size_t *outlen);

#endif
