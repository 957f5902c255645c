/* core/session/negotiate_check.c — the negotiator's pure parts: the authenticated check datagram
 * (layout in negotiate.h) and RFC 8445 pair ranking. No I/O, so both are table-tested. */
#include <string.h>

#include <sodium.h>
#include <tallow/error.h>
#include <tallow/gather.h>

#include "negotiate.h"

#define CHECK_VERSION 1
#define CHECK_BODY 40
#define CHECK_ADDR_OFF 20
#define CHECK_ADDR_LEN 20
#define CHECK_MAC 16

static void mac(const uint8_t key[32], const uint8_t *body, uint8_t out[CHECK_MAC])
{
    crypto_generichash(out, CHECK_MAC, body, CHECK_BODY, key, 32);
}

int tallow__check_encode(const uint8_t key[32], const tallow__check *c,
                         uint8_t out[TALLOW__CHECK_LEN])
{
    if (!key || !c || !out) return TALLOW_EINVAL;
    if (c->type != TALLOW__CHECK_REQ && c->type != TALLOW__CHECK_RESP) return TALLOW_EINVAL;
    memset(out, 0, TALLOW__CHECK_LEN);
    out[0] = c->type;
    out[1] = c->flags & (TALLOW__CHECK_NOMINATE | TALLOW__CHECK_CONTROLLING);
    out[2] = CHECK_VERSION;
    memcpy(out + 4, c->txid, TALLOW__CHECK_TXID);
    out[16] = (uint8_t)(c->priority >> 24);
    out[17] = (uint8_t)(c->priority >> 16);
    out[18] = (uint8_t)(c->priority >> 8);
    out[19] = (uint8_t)c->priority;
    if (c->type == TALLOW__CHECK_RESP && c->mapped_len) {
        int n = tallow_sockaddr_encode((const struct sockaddr *)&c->mapped, c->mapped_len,
                                       out + CHECK_ADDR_OFF, CHECK_ADDR_LEN);
        if (n < 0) return TALLOW_EINVAL;
    }
    mac(key, out, out + CHECK_BODY);
    return TALLOW__CHECK_LEN;
}

int tallow__check_parse(const uint8_t key[32], const uint8_t *buf, size_t len, tallow__check *out)
{
    uint8_t want[CHECK_MAC];
    memset(out, 0, sizeof(*out));
    if (!buf || len != TALLOW__CHECK_LEN) return TALLOW_EBADMSG;
    if (buf[0] != TALLOW__CHECK_REQ && buf[0] != TALLOW__CHECK_RESP) return TALLOW_EBADMSG;
    if (buf[2] != CHECK_VERSION || buf[3] != 0 ||
        (buf[1] & ~(TALLOW__CHECK_NOMINATE | TALLOW__CHECK_CONTROLLING)))
        return TALLOW_EBADMSG;
    mac(key, buf, want);
    if (crypto_verify_16(want, buf + CHECK_BODY) != 0) return TALLOW_ECRYPTO;
    out->type = buf[0];
    out->flags = buf[1];
    memcpy(out->txid, buf + 4, TALLOW__CHECK_TXID);
    out->priority =
        (uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 | (uint32_t)buf[18] << 8 | buf[19];
    const uint8_t *a = buf + CHECK_ADDR_OFF;
    size_t alen = a[0] == 4 ? 7 : a[0] == 6 ? 19 : 0;
    if (out->type == TALLOW__CHECK_RESP && alen) {
        for (size_t i = alen; i < CHECK_ADDR_LEN; i++)
            if (a[i]) goto bad;
        if (tallow_sockaddr_decode(a, alen, &out->mapped, &out->mapped_len) != 0) goto bad;
    } else {
        for (size_t i = 0; i < CHECK_ADDR_LEN; i++)
            if (a[i]) goto bad;
    }
    return 0;
bad:
    memset(out, 0, sizeof(*out));
    return TALLOW_EBADMSG;
}

uint64_t tallow__neg_pair_priority(int controlling, uint32_t local_prio, uint32_t remote_prio)
{
    return controlling ? tallow_pair_priority(local_prio, remote_prio)
                       : tallow_pair_priority(remote_prio, local_prio);
}

int tallow__neg_best(int controlling, const tallow__neg_rank *pairs, size_t n)
{
    int best = -1;
    uint64_t bp = 0;
    for (size_t i = 0; i < n; i++) {
        if (!pairs[i].valid) continue;
        uint64_t p =
            tallow__neg_pair_priority(controlling, pairs[i].local_prio, pairs[i].remote_prio);
        if (best < 0 || p > bp) {
            best = (int)i;
            bp = p;
        }
    }
    return best;
}
