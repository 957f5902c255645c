/* plugins/relay/relay_stun.c — a minimal STUN Binding responder (RFC 8489): answers with
 * XOR-MAPPED-ADDRESS, MAPPED-ADDRESS (for RFC 3489 clients) and FINGERPRINT. Kept behind
 * relay_stun_answer() so a core STUN codec can replace it. Stateless; no authentication. */
#include <netinet/in.h>
#include <string.h>

#include "relay.h"

#define STUN_COOKIE 0x2112A442u

static uint32_t stun_crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* Appends an address attribute (xor: XOR-MAPPED-ADDRESS form). Returns bytes written. */
static size_t put_addr(uint8_t *o, uint16_t type, int v4, const uint8_t *ip, uint16_t port,
                       const uint8_t *txid, int xor)
{
    size_t alen = v4 ? 4 : 16;
    o[0] = (uint8_t)(type >> 8);
    o[1] = (uint8_t)type;
    o[2] = 0;
    o[3] = (uint8_t)(4 + alen);
    o[4] = 0;
    o[5] = v4 ? 1 : 2;
    uint8_t mask[16];
    relay_put32(mask, STUN_COOKIE);
    memcpy(mask + 4, txid, 12);
    if (xor) port ^= (uint16_t)(STUN_COOKIE >> 16);
    o[6] = (uint8_t)(port >> 8);
    o[7] = (uint8_t)port;
    for (size_t i = 0; i < alen; i++) o[8 + i] = xor ? (uint8_t)(ip[i] ^ mask[i]) : ip[i];
    return 8 + alen;
}

size_t relay_stun_answer(const uint8_t *req, size_t len, const struct sockaddr *from, uint8_t *out,
                         size_t cap)
{
    if (len < 20 || (req[0] & 0xC0) || req[0] != 0x00 || req[1] != 0x01) return 0;
    if (relay_get32(req + 4) != STUN_COOKIE) return 0;
    size_t mlen = (size_t)req[2] << 8 | req[3];
    if (mlen != len - 20 || (mlen & 3) || cap < 20 + 2 * 24 + 8) return 0;
    const uint8_t *txid = req + 8, *ip;
    uint16_t port;
    int v4;
    if (from->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)from;
        ip = (const uint8_t *)&a->sin_addr;
        port = ntohs(a->sin_port);
        v4 = 1;
    } else if (from->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
        ip = a->sin6_addr.s6_addr;
        port = ntohs(a->sin6_port);
        v4 = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
        if (v4) ip += 12;
    } else {
        return 0;
    }
    size_t n = 20;
    n += put_addr(out + n, 0x0020, v4, ip, port, txid, 1);
    n += put_addr(out + n, 0x0001, v4, ip, port, txid, 0);
    out[0] = 0x01;
    out[1] = 0x01;
    size_t body = n - 20 + 8; /* the length covers FINGERPRINT before it is computed */
    out[2] = (uint8_t)(body >> 8);
    out[3] = (uint8_t)body;
    relay_put32(out + 4, STUN_COOKIE);
    memcpy(out + 8, txid, 12);
    uint32_t fp = stun_crc32(out, n) ^ 0x5354554Eu;
    out[n] = 0x80;
    out[n + 1] = 0x28;
    out[n + 2] = 0;
    out[n + 3] = 4;
    relay_put32(out + n + 4, fp);
    return n + 8;
}
