/* core/crypto/pake.c — the session handshake: CPace over ristretto255 (generator hashed from the
 * whole normalized code and the room id), then explicit key confirmation with one MAC per
 * direction, then the session keys (per direction and purpose) and a short verify string. */
#include "crypto.h"
#include <string.h>

#define CPACE_DOMAIN "tallow-cpace-v1"

/* Length-prefixed (u64 little endian) field: an encoding no two transcripts share. */
static void lp(crypto_generichash_state *st, const void *p, size_t len)
{
    uint8_t n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)((uint64_t)len >> (8 * i));
    crypto_generichash_update(st, n, 8);
    crypto_generichash_update(st, p, len);
}

static void lp_u64(crypto_generichash_state *st, uint64_t v)
{
    uint8_t n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)(v >> (8 * i));
    lp(st, n, 8);
}

/* Subkey of the ISK for one label (keyed BLAKE2b-256). */
static void isk_derive(const tallow__hs *hs, const char *label, uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)label, strlen(label), hs->isk, sizeof hs->isk);
}

static int fail(tallow__hs *hs, int rc)
{
    /* Keep the public fields the caller may still read; drop every secret. */
    sodium_memzero(hs->gen, sizeof hs->gen);
    sodium_memzero(hs->scalar, sizeof hs->scalar);
    sodium_memzero(hs->isk, sizeof hs->isk);
    sodium_memzero(hs->mac_a, sizeof hs->mac_a);
    sodium_memzero(hs->mac_b, sizeof hs->mac_b);
    hs->state = TALLOW__HS_FAILED;
    return rc;
}

int tallow__hs_init(tallow__hs *hs, int initiator, const char *code, const uint8_t room[32])
{
    char norm[TALLOW__CODE_MAX];
    uint8_t h[64];
    crypto_generichash_state st;
    int rc;

    if (!hs) return TALLOW_EINVAL;
    memset(hs, 0, sizeof *hs);
    if (!code || !room) return TALLOW_EINVAL;
    if (sodium_init() < 0) return TALLOW_ECRYPTO;
    rc = tallow__code_normalize(code, norm, sizeof norm);
    if (rc < 0) return TALLOW_EINVAL;

    hs->initiator = initiator ? 1 : 0;
    memcpy(hs->room, room, 32);
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    lp(&st, CPACE_DOMAIN, sizeof CPACE_DOMAIN - 1);
    lp(&st, norm, strlen(norm));
    lp(&st, room, 32);
    crypto_generichash_final(&st, h, sizeof h);
    crypto_core_ristretto255_from_hash(hs->gen, h);
    sodium_memzero(norm, sizeof norm);
    sodium_memzero(h, sizeof h);
    sodium_memzero(&st, sizeof st);

    /* Own share = scalar * G; redraw in the (negligible) case it comes out as the identity. */
    uint8_t *share = hs->initiator ? hs->ya : hs->yb;
    uint8_t *nonce = hs->initiator ? hs->nonce_a : hs->nonce_b;
    for (int tries = 0;; tries++) {
        if (tries == 8) {
            tallow__hs_wipe(hs);
            return TALLOW_ECRYPTO;
        }
        crypto_core_ristretto255_scalar_random(hs->scalar);
        if (crypto_scalarmult_ristretto255(share, hs->scalar, hs->gen) == 0) break;
    }
    randombytes_buf(nonce, TALLOW__HS_NONCE);
    uint64_t feat = TALLOW__FEAT_PROBE;
    if (crypto_aead_aes256gcm_is_available()) feat |= TALLOW__FEAT_AESGCM;
    if (hs->initiator)
        hs->feat_a = feat;
    else
        hs->feat_b = feat;
    hs->state = TALLOW__HS_FRESH;
    return 0;
}

/* Checks the peer's nonce and share, computes K and the ISK, then both confirmation MACs. */
static int absorb_peer(tallow__hs *hs, uint32_t version, tallow_bytes nonce, tallow_bytes pake,
                       uint64_t features)
{
    uint8_t k[32], ka[32], kb[32], th[32];
    crypto_generichash_state st;
    uint8_t *peer_share = hs->initiator ? hs->yb : hs->ya;
    const uint8_t *own_share = hs->initiator ? hs->ya : hs->yb;

    hs->peer_version = version;
    if (version != TALLOW__HS_VERSION) return TALLOW_EVERSION;
    if (!nonce.ptr || nonce.len != TALLOW__HS_NONCE || !pake.ptr || pake.len != TALLOW__HS_SHARE)
        return TALLOW_EPROTO;
    /* Identity (all zero), non-canonical and invalid encodings, and a reflected own share are
     * all refused; scalarmult also refuses an identity result. */
    if (sodium_is_zero(pake.ptr, 32) || !crypto_core_ristretto255_is_valid_point(pake.ptr) ||
        sodium_memcmp(pake.ptr, own_share, 32) == 0)
        return TALLOW_ECODE;
    memcpy(peer_share, pake.ptr, 32);
    memcpy(hs->initiator ? hs->nonce_b : hs->nonce_a, nonce.ptr, TALLOW__HS_NONCE);
    if (hs->initiator)
        hs->feat_b = features;
    else
        hs->feat_a = features;
    if (crypto_scalarmult_ristretto255(k, hs->scalar, peer_share) != 0) return TALLOW_ECODE;

    /* Public transcript hash th, then ISK = H(th-fields || K). */
    crypto_generichash_init(&st, NULL, 0, sizeof th);
    lp(&st, "tallow-hs-transcript-v1", 23);
    lp_u64(&st, TALLOW__HS_VERSION);
    lp(&st, hs->room, 32);
    lp(&st, hs->nonce_a, TALLOW__HS_NONCE);
    lp(&st, hs->nonce_b, TALLOW__HS_NONCE);
    lp(&st, hs->ya, 32);
    lp(&st, hs->yb, 32);
    lp_u64(&st, hs->feat_a);
    lp_u64(&st, hs->feat_b);
    crypto_generichash_final(&st, th, sizeof th);

    crypto_generichash_init(&st, NULL, 0, sizeof hs->isk);
    lp(&st, CPACE_DOMAIN "-isk", sizeof CPACE_DOMAIN - 1 + 4);
    lp(&st, th, sizeof th);
    lp(&st, k, sizeof k);
    crypto_generichash_final(&st, hs->isk, sizeof hs->isk);
    sodium_memzero(k, sizeof k);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(hs->scalar, sizeof hs->scalar);

    isk_derive(hs, "confirm A->B", ka);
    isk_derive(hs, "confirm B->A", kb);
    crypto_generichash(hs->mac_a, TALLOW__HS_MAC, th, sizeof th, ka, sizeof ka);
    crypto_generichash(hs->mac_b, TALLOW__HS_MAC, th, sizeof th, kb, sizeof kb);
    sodium_memzero(ka, sizeof ka);
    sodium_memzero(kb, sizeof kb);
    return 0;
}

/* Absent confirm -> ECODE (the peer could not prove the code); present but misshapen -> EPROTO. */
static int check_mac(tallow_bytes got, const uint8_t want[TALLOW__HS_MAC])
{
    if (!got.ptr || got.len == 0) return TALLOW_ECODE;
    if (got.len != TALLOW__HS_MAC) return TALLOW_EPROTO;
    return crypto_verify_32(got.ptr, want) == 0 ? 0 : TALLOW_ECODE;
}

int tallow__hs_make_init(tallow__hs *hs, tallow_msg_HandshakeInit *out)
{
    if (!hs || !out || !hs->initiator || hs->state != TALLOW__HS_FRESH) return TALLOW_EINVAL;
    memset(out, 0, sizeof *out);
    out->version = TALLOW__HS_VERSION;
    out->nonce = (tallow_bytes){hs->nonce_a, TALLOW__HS_NONCE};
    out->pake = (tallow_bytes){hs->ya, TALLOW__HS_SHARE};
    out->features = hs->feat_a;
    hs->state = TALLOW__HS_SENT_INIT;
    return 0;
}

int tallow__hs_on_init(tallow__hs *hs, const tallow_msg_HandshakeInit *in,
                       tallow_msg_HandshakeResponse *out)
{
    if (!hs || !in || !out || hs->initiator || hs->state != TALLOW__HS_FRESH) return TALLOW_EINVAL;
    int rc = absorb_peer(hs, in->version, in->nonce, in->pake, in->features);
    if (rc < 0) return fail(hs, rc);
    memset(out, 0, sizeof *out);
    out->version = TALLOW__HS_VERSION;
    out->nonce = (tallow_bytes){hs->nonce_b, TALLOW__HS_NONCE};
    out->pake = (tallow_bytes){hs->yb, TALLOW__HS_SHARE};
    out->features = hs->feat_b;
    out->confirm = (tallow_bytes){hs->mac_b, TALLOW__HS_MAC};
    hs->state = TALLOW__HS_SENT_RESP;
    return 0;
}

int tallow__hs_on_response(tallow__hs *hs, const tallow_msg_HandshakeResponse *in,
                           tallow_msg_HandshakeComplete *out)
{
    if (!hs || !in || !out || !hs->initiator || hs->state != TALLOW__HS_SENT_INIT)
        return TALLOW_EINVAL;
    int rc = absorb_peer(hs, in->version, in->nonce, in->pake, in->features);
    if (rc == 0) rc = check_mac(in->confirm, hs->mac_b);
    if (rc < 0) return fail(hs, rc);
    memset(out, 0, sizeof *out);
    out->confirm = (tallow_bytes){hs->mac_a, TALLOW__HS_MAC};
    hs->state = TALLOW__HS_DONE;
    return 0;
}

int tallow__hs_on_complete(tallow__hs *hs, const tallow_msg_HandshakeComplete *in)
{
    if (!hs || !in || hs->initiator || hs->state != TALLOW__HS_SENT_RESP) return TALLOW_EINVAL;
    int rc = check_mac(in->confirm, hs->mac_a);
    if (rc < 0) return fail(hs, rc);
    hs->state = TALLOW__HS_DONE;
    return 0;
}

int tallow__hs_keys(const tallow__hs *hs, tallow__keys *out)
{
    uint8_t ab[32], ba[32], tab[32], tba[32], v[32];

    if (!out) return TALLOW_EINVAL;
    memset(out, 0, sizeof *out);
    if (!hs || hs->state != TALLOW__HS_DONE) return TALLOW_EINVAL;
    isk_derive(hs, "session A->B", ab);
    isk_derive(hs, "session B->A", ba);
    isk_derive(hs, "transfer A->B", tab);
    isk_derive(hs, "transfer B->A", tba);
    memcpy(out->tx, hs->initiator ? ab : ba, 32);
    memcpy(out->rx, hs->initiator ? ba : ab, 32);
    memcpy(out->transfer_base_tx, hs->initiator ? tab : tba, 32);
    memcpy(out->transfer_base_rx, hs->initiator ? tba : tab, 32);
    isk_derive(hs, "quic psk", out->quic_psk);
    isk_derive(hs, "check", out->check_key);
    out->alg =
        (hs->feat_a & hs->feat_b & TALLOW__FEAT_AESGCM) && crypto_aead_aes256gcm_is_available()
            ? TALLOW__AEAD_AESGCM
            : TALLOW__AEAD_XCHACHA;
    out->probe = (hs->feat_a & hs->feat_b & TALLOW__FEAT_PROBE) != 0;

    /* verify: 4 words (44 bits) from the ISK, the same on both sides. */
    isk_derive(hs, "verify", v);
    size_t pos = 0;
    for (int i = 0; i < 4; i++) {
        unsigned idx = ((unsigned)v[2 * i] << 8 | v[2 * i + 1]) & 2047u;
        const char *w = tallow__wordlist_get(idx);
        size_t wl = strlen(w);
        if (i) out->verify[pos++] = '-';
        memcpy(out->verify + pos, w, wl); /* at most 4 * 8 + 3 < 64 bytes */
        pos += wl;
    }
    out->verify[pos] = '\0';
    sodium_memzero(ab, sizeof ab);
    sodium_memzero(ba, sizeof ba);
    sodium_memzero(tab, sizeof tab);
    sodium_memzero(tba, sizeof tba);
    sodium_memzero(v, sizeof v);
    return 0;
}

void tallow__hs_wipe(tallow__hs *hs)
{
    if (hs) sodium_memzero(hs, sizeof *hs);
}
