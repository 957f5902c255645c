/* core/crypto/crypto.h — internal crypto layer: the CPace handshake with key confirmation (pake.c),
 * AEAD records and the KDF (aead.c), code phrases (codephrase.c) and their word list
 * (wordlist.c). Not installed. All functions return 0 on success and a negative TALLOW_E* code
 * on error unless documented otherwise; borrowed pointers are borrowed for the call only. */
#ifndef TALLOW_CORE_CRYPTO_H
#define TALLOW_CORE_CRYPTO_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <tallow/error.h>
#include <tallow/messages.h>

/* ---- handshake (pake.c) ------------------------------------------------------------------- */

/* 2: 64-bit epochs, nameplate rooms, every word in CPace; 3: frames bound to their path, transfer
 * records on the direct (QUIC) path not sealed a second time */
#define TALLOW__HS_VERSION 3u
#define TALLOW__HS_NONCE 32    /* bytes of HandshakeInit/Response.nonce */
#define TALLOW__HS_SHARE 32    /* bytes of .pake: a ristretto255 element */
#define TALLOW__HS_MAC 32      /* bytes of .confirm */
#define TALLOW__FEAT_AESGCM 1u /* features bit 0: this side can run AES-256-GCM */
/* features bit 1: this side takes relay probes (session frames of kind 4, session_int.h) and
 * answers them with PathProbeDone */
#define TALLOW__FEAT_PROBE 2u

enum tallow__hs_state {
    TALLOW__HS_FRESH = 0, /* after init */
    TALLOW__HS_SENT_INIT, /* A: HandshakeInit made, waiting for the response */
    TALLOW__HS_SENT_RESP, /* B: HandshakeResponse made, waiting for A's confirmation */
    TALLOW__HS_DONE,      /* both confirmations checked (A: after on_response, B: on_complete) */
    TALLOW__HS_FAILED,    /* any error: the object only accepts tallow__hs_wipe() */
};

/* One side of one handshake. Holds every byte the out-messages borrow, so their tallow_bytes
 * stay valid while the struct lives and is not wiped. Contains secrets: tallow__hs_wipe(). */
typedef struct tallow__hs {
    int initiator; /* 1 for A (sender), 0 for B */
    int state;     /* enum tallow__hs_state */
    uint8_t room[32];
    uint8_t gen[32];    /* CPace generator from the code: secret */
    uint8_t scalar[32]; /* own ephemeral scalar: secret */
    uint8_t nonce_a[TALLOW__HS_NONCE], nonce_b[TALLOW__HS_NONCE];
    uint8_t ya[TALLOW__HS_SHARE], yb[TALLOW__HS_SHARE];
    uint64_t feat_a, feat_b;
    uint32_t peer_version; /* the version the peer's message named (0: none yet) */
    uint8_t isk[64];       /* intermediate session key: secret */
    uint8_t mac_a[TALLOW__HS_MAC], mac_b[TALLOW__HS_MAC];
} tallow__hs;

/* Keys both sides derive after a successful handshake. tx is what this side encrypts with, rx
 * what it decrypts with (A's tx == B's rx, and the reverse). alg: TALLOW__AEAD_*; AES-256-GCM
 * only if both sides announced it. quic_psk / check_key are equal on both sides. verify is a
 * NUL-terminated string of 4 list words ("word-word-word-word"), equal on both sides. */
typedef struct tallow__keys {
    uint8_t tx[32], rx[32];
    int alg;
    int probe; /* both sides take relay probes (TALLOW__FEAT_PROBE) */
    uint8_t quic_psk[32];
    uint8_t check_key[32];
    uint8_t transfer_base_tx[32], transfer_base_rx[32];
    char verify[64];
} tallow__keys;

/* Starts a handshake. code: any spelling tallow__code_normalize() accepts (borrowed; only its
 * normalized form is used); room: the room id (copied). initiator: 1 = A (sends HandshakeInit),
 * 0 = B. Returns 0, TALLOW_EINVAL (NULL argument, code not N-word[-word...]) or TALLOW_ECRYPTO
 * (libsodium could not start). On error hs is wiped. */
int tallow__hs_init(tallow__hs *hs, int initiator, const char *code, const uint8_t room[32]);
/* A: fills *out; its nonce/pake point into hs. 0, or TALLOW_EINVAL (wrong side or state). */
int tallow__hs_make_init(tallow__hs *hs, tallow_msg_HandshakeInit *out);
/* B: checks A's init (borrowed) and fills *out (confirm = MAC_B; bytes point into hs).
 * Returns 0; TALLOW_EINVAL (wrong side/state); TALLOW_EVERSION (version != 1); TALLOW_EPROTO
 * (nonce or pake of the wrong length); TALLOW_ECODE (invalid or identity point, or A echoed
 * our own share). Any error leaves hs FAILED. */
int tallow__hs_on_init(tallow__hs *hs, const tallow_msg_HandshakeInit *in,
                       tallow_msg_HandshakeResponse *out);
/* A: checks B's response and MAC_B, fills *out (confirm = MAC_A; points into hs). Returns 0
 * (A is then DONE); TALLOW_EINVAL; TALLOW_EVERSION; TALLOW_EPROTO (bad nonce/pake length, or
 * a confirm that is present but not 32 bytes); TALLOW_ECODE (MAC_B absent or wrong — different
 * code or tampering — or a bad point). Any error leaves hs FAILED. */
int tallow__hs_on_response(tallow__hs *hs, const tallow_msg_HandshakeResponse *in,
                           tallow_msg_HandshakeComplete *out);
/* B: checks MAC_A. 0 (B is DONE); TALLOW_EINVAL (wrong side/state); TALLOW_EPROTO (confirm
 * present but not 32 bytes); TALLOW_ECODE (absent or wrong). Errors leave hs FAILED. */
int tallow__hs_on_complete(tallow__hs *hs, const tallow_msg_HandshakeComplete *in);
/* Derives this side's keys. 0, or TALLOW_EINVAL unless the handshake is DONE. On error *out is
 * zeroed. The caller owns *out and wipes it (sodium_memzero) when done. */
int tallow__hs_keys(const tallow__hs *hs, tallow__keys *out);
/* Wipes every secret and resets hs. Safe on a zeroed or already wiped struct. */
void tallow__hs_wipe(tallow__hs *hs);

/* ---- AEAD records and KDF (aead.c) -------------------------------------------------------- */

enum { TALLOW__AEAD_XCHACHA = 1, TALLOW__AEAD_AESGCM = 2 };
#define TALLOW__AEAD_TAG 16

/* One direction of one record stream. The nonce is seq (little endian, zero padded), so a key
 * must only ever feed one tallow__aead: derive a fresh key per direction/purpose/transfer. */
typedef struct tallow__aead {
    uint8_t key[32];
    uint64_t seq; /* next record number to seal / expected to open */
    int alg;      /* TALLOW__AEAD_* */
    void *gcm;    /* GnuTLS AES-256-GCM handle (gnutls_aead_cipher_hd_t) when alg == AESGCM */
} tallow__aead;

/* Copies key, sets seq to 0 (AES-256-GCM: makes a GnuTLS cipher handle, which allocates). Cannot
 * fail; an unusable alg (or a handle GnuTLS could not make) makes seal/open return
 * TALLOW_EINVAL. Contains the key and owns the handle: every init needs a tallow__aead_wipe()
 * (also before re-initialising the same struct). */
void tallow__aead_init(tallow__aead *a, const uint8_t key[32], int alg);
/* Encrypts pt[len] with associated data ad[adlen] into out[len + TALLOW__AEAD_TAG] (ciphertext
 * then tag), using record number seq, then seq++. out == pt is allowed (other overlaps are
 * not). Returns 0; TALLOW_EINVAL (bad alg, NULL buffer); TALLOW_ETOOBIG (seq exhausted or len
 * too large). Never allocates. */
int tallow__aead_seal(tallow__aead *a, uint8_t *out, const uint8_t *ad, size_t adlen,
                      const uint8_t *pt, size_t len);
/* Decrypts ct[len] (ciphertext then tag) into out[len - TALLOW__AEAD_TAG], which must be the
 * record numbered exactly seq; then seq++. out == ct is allowed. Returns the plaintext length
 * (>= 0); TALLOW_ECRYPTO (forged, replayed, reordered, truncated: seq unchanged, out zeroed);
 * TALLOW_EINVAL (bad alg); TALLOW_ETOOBIG (len > INT_MAX). */
int tallow__aead_open(tallow__aead *a, uint8_t *out, const uint8_t *ad, size_t adlen,
                      const uint8_t *ct, size_t len);
void tallow__aead_wipe(tallow__aead *a);
/* Subkey for one purpose (label, a NUL-terminated string) and one id (a transfer number, a
 * direction, ...): keyed BLAKE2b-256. Different (label, id) give independent keys. */
void tallow__kdf(const uint8_t key[32], const char *label, uint64_t id, uint8_t out[32]);

/* ---- code phrases (codephrase.c, wordlist.c) ---------------------------------------------- */

#define TALLOW__CODE_MAX 256      /* longest normalized code, NUL included */
#define TALLOW__CODE_MAX_WORDS 16 /* normalize accepts 1..16 words */
#define TALLOW__CODE_MAX_WORDLEN 32
#define TALLOW__CODE_MIN_WORDS                                                                     \
    2 /* secret words a code needs: one (11 bits) is too easy to guess                             \
       */

/* Writes a fresh "N-word-word..." (N in 0..999, nwords list words) into out[cap], NUL
 * terminated. Returns 0; TALLOW_EINVAL (nwords not 2..8, out NULL); TALLOW_ETOOBIG (cap too
 * small; 64 always suffices). */
int tallow__code_generate(char *out, size_t cap, unsigned nwords);
/* Canonical form of a typed code: trimmed, lowercased, spaces/underscores/dashes as single '-',
 * N without leading zeros. Returns 0; TALLOW_EINVAL (not N-word[-word...]: N 0..999, words of
 * ASCII letters, at most 16 words of 32 letters); TALLOW_ETOOBIG (cap too small). Words need not
 * be in the list (a typo is caught by the handshake, not here). */
int tallow__code_normalize(const char *in, char *out, size_t cap);
/* Room id the relay sees: a salted BLAKE2b-256 of only the number (the nameplate, not secret),
 * so codes whose words differ in any place meet (and fail the PAKE with TALLOW_ECODE).
 * 0 or TALLOW_EINVAL. */
int tallow__code_room_id(const char *code, uint8_t room[32]);
/* Number of words after the number (>= 1), or TALLOW_EINVAL for a malformed code. */
int tallow__code_words(const char *code);
/* The word list: 2048 distinct lowercase words. get returns a static string, NULL past the end. */
size_t tallow__wordlist_count(void);
const char *tallow__wordlist_get(size_t i);
/* Index of word (exact, lowercase) in the list, or -1. */
int tallow__wordlist_find(const char *word);

#endif
