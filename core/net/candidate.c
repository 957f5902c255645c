/* core/net/candidate.c — ICE priorities (RFC 8445 §5.1.2), the address checks every candidate
 * passes before it is offered or tried, and the compact wire form of an address (family, port,
 * bytes). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <tallow/error.h>
#include <tallow/gather.h>

#define CAND_COMPONENT 1u

static uint32_t type_pref(uint32_t kind)
{
    switch (kind) {
    case TALLOW_CAND_HOST:
        return 126;
    case TALLOW_CAND_PRFLX:
        return 110;
    case TALLOW_CAND_MAPPED: /* a mapping the gateway granted: opens the NAT for anyone */
        return 105;
    case TALLOW_CAND_SRFLX:
        return 100;
    default: /* relayed and anything unknown rank last */
        return 0;
    }
}

TALLOW_API uint32_t tallow_candidate_priority(uint32_t kind, uint32_t local_pref)
{
    if (local_pref > 65535) local_pref = 65535;
    return (type_pref(kind) << 24) + (local_pref << 8) + (256 - CAND_COMPONENT);
}

TALLOW_API uint64_t tallow_pair_priority(uint32_t g, uint32_t d)
{
    uint64_t lo = g < d ? g : d, hi = g < d ? d : g;
    return (lo << 32) + 2 * hi + (g > d ? 1 : 0);
}

/* IPv4 rules on a host-order address. */
static int validate_v4(uint32_t a, int allow_loopback)
{
    if ((a >> 24) == 0) return TALLOW_EINVAL;                      /* 0/8, incl. unspecified */
    if ((a >> 24) == 127 && !allow_loopback) return TALLOW_EINVAL; /* loopback */
    if ((a >> 16) == 0xA9FE) return TALLOW_EINVAL;                 /* 169.254/16 link-local */
    if (a == 0xFFFFFFFFu) return TALLOW_EINVAL;                    /* limited broadcast */
    if ((a >> 28) == 0xE) return TALLOW_EINVAL;                    /* 224/4 multicast */
    if ((a >> 28) == 0xF) return TALLOW_EINVAL;                    /* 240/4 reserved */
    return 0;
}

static int validate_v6(const uint8_t *b, int allow_loopback)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const uint8_t zero[16] = {0};
    if (memcmp(b, v4mapped, 12) == 0) {
        uint32_t a =
            ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) | ((uint32_t)b[14] << 8) | b[15];
        return validate_v4(a, allow_loopback);
    }
    static const uint8_t nat64[12] = {0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t discard[8] = {0x01, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, zero, 15) == 0 && b[15] == 1) /* ::1 */
        return allow_loopback ? 0 : TALLOW_EINVAL;
    if (memcmp(b, zero, 12) == 0) return TALLOW_EINVAL; /* ::/96 (::, IPv4-compatible) */
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80) return TALLOW_EINVAL; /* fe80::/10 */
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0) return TALLOW_EINVAL; /* fec0::/10 site-local */
    if (b[0] == 0xFF) return TALLOW_EINVAL;                          /* ff00::/8 */
    if (memcmp(b, nat64, 12) == 0) return TALLOW_EINVAL;    /* 64:ff9b::/96: an IPv4 by NAT64 */
    if (b[0] == 0x20 && b[1] == 0x02) return TALLOW_EINVAL; /* 2002::/16: 6to4 */
    if (memcmp(b, discard, 8) == 0) return TALLOW_EINVAL;   /* 100::/64 discard-only */
    return 0;
}

TALLOW_API int tallow_validate_candidate_addr(const struct sockaddr *sa, socklen_t len,
                                              int allow_loopback)
{
    if (!sa || len < (socklen_t)sizeof(sa_family_t) ||
        len > (socklen_t)sizeof(struct sockaddr_storage))
        return TALLOW_EINVAL;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        if (len < (socklen_t)sizeof(in)) return TALLOW_EINVAL;
        memcpy(&in, sa, sizeof(in));
        if (in.sin_port == 0) return TALLOW_EINVAL;
        return validate_v4(ntohl(in.sin_addr.s_addr), allow_loopback);
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        if (len < (socklen_t)sizeof(in6)) return TALLOW_EINVAL;
        memcpy(&in6, sa, sizeof(in6));
        if (in6.sin6_port == 0) return TALLOW_EINVAL;
        return validate_v6(in6.sin6_addr.s6_addr, allow_loopback);
    }
    return TALLOW_EINVAL;
}

TALLOW_API int tallow_sockaddr_encode(const struct sockaddr *sa, socklen_t len, uint8_t *out,
                                      size_t cap)
{
    if (!sa || !out) return TALLOW_EINVAL;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        if (cap < 7) return TALLOW_ETOOBIG;
        out[0] = 4;
        memcpy(out + 1, &in.sin_port, 2); /* already big-endian */
        memcpy(out + 3, &in.sin_addr, 4);
        return 7;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        if (cap < 19) return TALLOW_ETOOBIG;
        out[0] = 6;
        memcpy(out + 1, &in6.sin6_port, 2);
        memcpy(out + 3, &in6.sin6_addr, 16);
        return 19;
    }
    return TALLOW_EINVAL;
}

TALLOW_API int tallow_sockaddr_decode(const uint8_t *buf, size_t len, struct sockaddr_storage *out,
                                      socklen_t *out_len)
{
    if (!buf || !out || !out_len) return TALLOW_EINVAL;
    memset(out, 0, sizeof(*out));
    if (len == 7 && buf[0] == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        memcpy(&in->sin_port, buf + 1, 2);
        memcpy(&in->sin_addr, buf + 3, 4);
        *out_len = sizeof(*in);
        return 0;
    }
    if (len == 19 && buf[0] == 6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_port, buf + 1, 2);
        memcpy(&in6->sin6_addr, buf + 3, 16);
        *out_len = sizeof(*in6);
        return 0;
    }
    *out_len = 0;
    return TALLOW_EBADMSG;
}

TALLOW_API socklen_t tallow_sockaddr_unmap(struct sockaddr_storage *ss, socklen_t len)
{
    struct sockaddr_in6 in6;
    if (!ss || ss->ss_family != AF_INET6 || len < (socklen_t)sizeof(in6)) return len;
    memcpy(&in6, ss, sizeof(in6));
    if (!IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) return len;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6.sin6_port};
    memcpy(&in.sin_addr, &in6.sin6_addr.s6_addr[12], 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &in, sizeof(in));
    return sizeof(in);
}

TALLOW_API const char *tallow_sockaddr_str(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (!buf || cap == 0) return buf;
    if (sa && sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        inet_ntop(AF_INET, &in.sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(in.sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(in6.sin6_port));
    } else {
        snprintf(buf, cap, "(no address)");
    }
    return buf;
}
