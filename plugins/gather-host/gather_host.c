/* plugins/gather-host/gather_host.c — host candidates: the machine's interface addresses (or the
 * one address the endpoint is bound to) with the endpoint's port, validated, and ranked with a
 * local preference that puts global IPv6 first, then IPv4, then unique-local IPv6. A dual-stack
 * IPv6 endpoint reports its IPv4 addresses as plain IPv4 candidates (what a peer dials). */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <tallow/tallow.h>

#define GH_MAX_CANDIDATES 32

typedef struct gh_state gh_state;

typedef struct gh_req {
    gh_state *st;
    struct gh_req *next;
    tallow_gather_cb cb;
    void *ud;
    int status;
    size_t n;
    tallow_candidate c[GH_MAX_CANDIDATES];
} gh_req;

struct gh_state {
    const tallow_host *host;
    gh_req *reqs; /* answers waiting for their deferred delivery */
};

/* Local preference (RFC 8445 §5.1.2.1), the class first, then the interface order so that every
 * candidate gets a distinct priority. Global IPv6 is usually reachable without a NAT, so it is
 * tried first (RFC 8421 favours IPv6 too); IPv4 is next (private IPv4 still wins on one LAN);
 * unique-local IPv6 only works inside one site; loopback (tests only) is last. */
static uint32_t gh_local_pref(const struct sockaddr *sa, size_t order)
{
    uint32_t base;
    uint32_t off = order < 255 ? (uint32_t)order : 255;
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t lo6[16] = {[15] = 1};
        if (memcmp(a, lo6, 16) == 0)
            base = 0x0100;
        else if ((a[0] & 0xFE) == 0xFC)
            base = 0x8000; /* fc00::/7 */
        else
            base = 0xFF00;
    } else {
        uint32_t v4 = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        base = (v4 >> 24) == 127 ? 0x0200 : 0xC000;
    }
    return base - off;
}

static int gh_is_unspecified(const struct sockaddr_storage *ss)
{
    static const uint8_t zero[16];
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return memcmp(((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr, zero, 16) == 0;
}

/* Appends addr (with port) if it passes validation and is not there yet. */
static void gh_add(gh_req *r, const struct sockaddr *addr, in_port_t port, int allow_loopback)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    if (addr->sa_family == AF_INET) {
        len = sizeof(struct sockaddr_in);
        memcpy(&ss, addr, len);
        ((struct sockaddr_in *)&ss)->sin_port = port;
    } else if (addr->sa_family == AF_INET6) {
        len = sizeof(struct sockaddr_in6);
        memcpy(&ss, addr, len);
        ((struct sockaddr_in6 *)&ss)->sin6_port = port;
        ((struct sockaddr_in6 *)&ss)->sin6_flowinfo = 0;
    } else {
        return;
    }
    if (tallow_validate_candidate_addr((struct sockaddr *)&ss, len, allow_loopback) != 0) return;
    for (size_t i = 0; i < r->n; i++)
        if (r->c[i].addr_len == len && memcmp(&r->c[i].addr, &ss, len) == 0) return;
    if (r->n == GH_MAX_CANDIDATES) return;
    tallow_candidate *c = &r->c[r->n];
    c->kind = TALLOW_CAND_HOST;
    c->addr = ss;
    c->addr_len = len;
    c->priority =
        tallow_candidate_priority(TALLOW_CAND_HOST, gh_local_pref((struct sockaddr *)&ss, r->n));
    r->n++;
}

/* Fills r from the endpoint's bound address, or from the interfaces when it is a wildcard. */
static int gh_collect(gh_req *r, const tallow_gather_params *p)
{
    struct sockaddr_storage local;
    socklen_t llen;
    int rc = tallow_udp_local_addr(p->udp, &local, &llen);
    if (rc < 0) return rc;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) return TALLOW_EINVAL;
    in_port_t port = local.ss_family == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
                                                : ((struct sockaddr_in6 *)&local)->sin6_port;
    if (!gh_is_unspecified(&local)) {
        gh_add(r, (struct sockaddr *)&local, port, p->allow_loopback);
        return 0;
    }
    /* A wildcard IPv6 socket also carries IPv4 unless it is v6-only. */
    int want4 = local.ss_family == AF_INET, want6 = local.ss_family == AF_INET6;
    if (want6) {
        int v6only = 0;
        socklen_t ol = sizeof(v6only);
        if (getsockopt(tallow_udp_fd(p->udp), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol) == 0)
            want4 = !v6only;
    }
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) < 0) return -errno;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
        if ((i->ifa_flags & IFF_LOOPBACK) && !p->allow_loopback) continue;
        if ((i->ifa_addr->sa_family == AF_INET && want4) ||
            (i->ifa_addr->sa_family == AF_INET6 && want6))
            gh_add(r, i->ifa_addr, port, p->allow_loopback);
    }
    freeifaddrs(ifs);
    return 0;
}

static void gh_unlink(gh_req *r)
{
    for (gh_req **pp = &r->st->reqs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

static void gh_deliver(void *arg)
{
    gh_req *r = arg;
    gh_unlink(r);
    r->cb(r->status, r->status == 0 ? r->c : NULL, r->status == 0 ? r->n : 0, r->ud);
    free(r);
}

static int gh_gather(void *plugin_state, const tallow_gather_params *p, tallow_gather_cb cb,
                     void *ud)
{
    gh_state *st = plugin_state;
    if (!st || !p || !p->udp || !cb || p->struct_size < offsetof(tallow_gather_params, timeout_ms))
        return TALLOW_EINVAL;
    if (tallow_policy_no_p2p(st->host->policy)) return TALLOW_EPOLICY;
    gh_req *r = calloc(1, sizeof(*r));
    if (!r) return TALLOW_ENOMEM;
    r->st = st;
    r->cb = cb;
    r->ud = ud;
    r->status = gh_collect(r, p);
    if (tallow_defer(st->host->loop, gh_deliver, r) < 0) {
        free(r);
        return TALLOW_ENOMEM;
    }
    r->next = st->reqs;
    st->reqs = r;
    return 0;
}

static const tallow_gatherer_ops gh_ops = {
    .version = TALLOW_GATHERER_OPS_VERSION,
    .struct_size = sizeof(tallow_gatherer_ops),
    .name = "gather-host",
    .gather = gh_gather,
};

static int gh_init(const tallow_host *host, void **state_out)
{
    gh_state *st = calloc(1, sizeof(*st));
    if (!st) return TALLOW_ENOMEM;
    st->host = host;
    int rc = host->register_gatherer(host->ctx, &gh_ops, st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    *state_out = st;
    return 0;
}

/* Answers not yet delivered are dropped: the context is going away with its loop. */
static void gh_fini(void *state)
{
    gh_state *st = state;
    if (!st) return;
    while (st->reqs) {
        gh_req *r = st->reqs;
        st->reqs = r->next;
        free(r);
    }
    free(st);
}

static const tallow_plugin_desc gh_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "gather-host",
    .version = TALLOW_VERSION,
    .summary = "host candidates from the machine's interfaces",
    .init = gh_init,
    .fini = gh_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &gh_desc;
}
