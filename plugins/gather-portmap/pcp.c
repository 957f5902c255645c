/* plugins/gather-portmap/pcp.c — RFC 6887 MAP requests and responses (see pcp.h). */
#include "pcp.h"

#include <string.h>
#include <tallow/error.h>

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ::ffff:a.b.c.d */
static void put_v4mapped(uint8_t *p, struct in_addr a)
{
    memset(p, 0, 10);
    p[10] = 0xff;
    p[11] = 0xff;
    memcpy(p + 12, &a.s_addr, 4);
}

static int is_v4mapped(const uint8_t *p)
{
    static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(p, pre, sizeof(pre)) == 0;
}

int pcp_encode_map(const pcp_map *m, struct in_addr client, uint8_t *out, size_t cap)
{
    if (!m || !out || cap < PCP_MAP_LEN || m->protocol == 0 || m->internal_port == 0)
        return TALLOW_EINVAL;
    memset(out, 0, PCP_MAP_LEN);
    out[0] = PCP_VERSION;
    out[1] = PCP_OP_MAP; /* R bit 0: a request */
    put32(out + 4, m->lifetime);
    put_v4mapped(out + 8, client);
    memcpy(out + 24, m->nonce, PCP_NONCE_LEN);
    out[36] = m->protocol;
    put16(out + 40, m->internal_port);
    put16(out + 42, m->external_port);
    put_v4mapped(out + 44, m->external);
    return PCP_MAP_LEN;
}

int pcp_decode_map(const uint8_t *buf, size_t len, pcp_reply *r)
{
    if (!buf || !r) return TALLOW_EBADMSG;
    memset(r, 0, sizeof(*r));
    /* a NAT-PMP server answers any version it does not know with version 0, result 1 */
    if (len >= 4 && buf[0] == 0) return 1;
    if (len < PCP_MAP_LEN || len > PCP_MAX_LEN || len % 4 != 0) return TALLOW_EBADMSG;
    if (buf[0] != PCP_VERSION || buf[1] != (0x80 | PCP_OP_MAP)) return TALLOW_EBADMSG;
    r->result = buf[3];
    r->map.lifetime = get32(buf + 4);
    r->epoch = get32(buf + 8);
    memcpy(r->map.nonce, buf + 24, PCP_NONCE_LEN);
    r->map.protocol = buf[36];
    r->map.internal_port = get16(buf + 40);
    r->map.external_port = get16(buf + 42);
    if (is_v4mapped(buf + 44))
        memcpy(&r->map.external.s_addr, buf + 56, 4);
    else if (r->result == PCP_SUCCESS)
        return TALLOW_EBADMSG; /* an IPv6 external address for our IPv4 request */
    if (r->result == PCP_SUCCESS && (r->map.external_port == 0 || r->map.external.s_addr == 0))
        return TALLOW_EBADMSG;
    return 0;
}

int pcp_matches(const pcp_map *req, const pcp_reply *r)
{
    return memcmp(req->nonce, r->map.nonce, PCP_NONCE_LEN) == 0 &&
           req->protocol == r->map.protocol && req->internal_port == r->map.internal_port;
}

const char *pcp_result_str(unsigned result)
{
    static const char *const names[] = {
        "SUCCESS",          "UNSUPP_VERSION",         "NOT_AUTHORIZED",   "MALFORMED_REQUEST",
        "UNSUPP_OPCODE",    "UNSUPP_OPTION",          "MALFORMED_OPTION", "NETWORK_FAILURE",
        "NO_RESOURCES",     "UNSUPP_PROTOCOL",        "USER_EX_QUOTA",    "CANNOT_PROVIDE_EXTERNAL",
        "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
    };
    return result < sizeof(names) / sizeof(names[0]) ? names[result] : "?";
}
