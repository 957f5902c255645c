/* plugins/gather-srflx/gather_srflx.c — server-reflexive candidates: asks the "stun" discovery
 * plugin for the mapping of the session's own UDP endpoint at every configured STUN server at
 * once, and reports the distinct valid mappings when the last server has answered or timed out. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <tallow/tallow.h>

#define GS_MAX_CANDIDATES 16
#define GS_DEFAULT_TIMEOUT_MS 3000

typedef struct gs_state gs_state;

typedef struct gs_req {
    gs_state *st;
    struct gs_req *next;
    tallow_gather_cb cb;
    void *ud;
    int allow_loopback;
    size_t pending; /* discoveries still running */
    int answered;   /* at least one server gave a mapping */
    int last_err;   /* the last failure, reported when no server answered */
    size_t n;
    tallow_candidate c[GS_MAX_CANDIDATES];
} gs_req;

struct gs_state {
    const tallow_host *host;
    gs_req *reqs; /* gatherings in progress */
};

static void gs_unlink(gs_req *r)
{
    for (gs_req **pp = &r->st->reqs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

static void gs_add(gs_req *r, const struct sockaddr *sa, socklen_t len)
{
    char s[64];
    if (tallow_validate_candidate_addr(sa, len, r->allow_loopback) != 0) {
        r->st->host->log(r->st->host, TALLOW_LOG_DEBUG, "gather-srflx: mapping %s refused",
                         tallow_sockaddr_str(sa, s, sizeof(s)));
        return;
    }
    for (size_t i = 0; i < r->n; i++)
        if (r->c[i].addr_len == len && memcmp(&r->c[i].addr, sa, len) == 0) return;
    if (r->n == GS_MAX_CANDIDATES) return;
    tallow_candidate *c = &r->c[r->n];
    memset(c, 0, sizeof(*c));
    c->kind = TALLOW_CAND_SRFLX;
    memcpy(&c->addr, sa, len);
    c->addr_len = len;
    c->priority = tallow_candidate_priority(TALLOW_CAND_SRFLX, 65535 - (uint32_t)r->n);
    r->n++;
}

/* Called by the discovery plugin, never from inside gs_gather. */
static void gs_on_mapped(int status, const struct sockaddr *mapped, socklen_t len, void *ud)
{
    gs_req *r = ud;
    if (status == 0 && mapped) {
        r->answered = 1;
        gs_add(r, mapped, len);
    } else {
        r->last_err = status < 0 ? status : TALLOW_EPROTO;
    }
    if (--r->pending > 0) return;
    gs_unlink(r);
    int st = r->answered ? 0 : r->last_err;
    r->cb(st, st == 0 ? r->c : NULL, st == 0 ? r->n : 0, r->ud);
    free(r);
}

static void gs_deliver_empty(void *arg)
{
    gs_req *r = arg;
    gs_unlink(r);
    r->cb(0, r->c, 0, r->ud);
    free(r);
}

static socklen_t gs_addr_len(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) return sizeof(struct sockaddr_in);
    if (ss->ss_family == AF_INET6) return sizeof(struct sockaddr_in6);
    return 0;
}

static int gs_gather(void *plugin_state, const tallow_gather_params *p, tallow_gather_cb cb,
                     void *ud)
{
    gs_state *st = plugin_state;
    if (!st || !p || !cb || p->struct_size < sizeof(tallow_gather_params) || !p->udp ||
        (p->nstun && !p->stun))
        return TALLOW_EINVAL;
    if (tallow_policy_no_p2p(st->host->policy)) return TALLOW_EPOLICY;
    void *dstate = NULL;
    const tallow_discovery_ops *disc = tallow_discovery_find(st->host->ctx, "stun", &dstate);
    if (!disc) {
        tallow_ctx_set_error(st->host->ctx, "gather-srflx: the stun plugin is not loaded");
        return TALLOW_ENOTFOUND;
    }
    gs_req *r = calloc(1, sizeof(*r));
    if (!r) return TALLOW_ENOMEM;
    r->st = st;
    r->cb = cb;
    r->ud = ud;
    r->allow_loopback = p->allow_loopback;
    r->last_err = TALLOW_ENOTFOUND;
    r->next = st->reqs;
    st->reqs = r;
    if (p->nstun == 0) {
        if (tallow_defer(st->host->loop, gs_deliver_empty, r) == 0) return 0;
        gs_unlink(r);
        free(r);
        return TALLOW_ENOMEM;
    }
    uint32_t timeout = p->timeout_ms ? p->timeout_ms : GS_DEFAULT_TIMEOUT_MS;
    /* Count first: a discovery never calls back from inside discover(), so pending cannot
     * reach zero while this loop runs. */
    int err = 0;
    for (size_t i = 0; i < p->nstun; i++) {
        socklen_t len = gs_addr_len(&p->stun[i]);
        int rc = len ? disc->discover(dstate, p->udp, (const struct sockaddr *)&p->stun[i], len,
                                      timeout, gs_on_mapped, r)
                     : TALLOW_EINVAL;
        if (rc == 0)
            r->pending++;
        else
            err = rc;
    }
    if (r->pending == 0) {
        gs_unlink(r);
        free(r);
        return err;
    }
    return 0;
}

static const tallow_gatherer_ops gs_ops = {
    .version = TALLOW_GATHERER_OPS_VERSION,
    .struct_size = sizeof(tallow_gatherer_ops),
    .name = "gather-srflx",
    .gather = gs_gather,
};

static int gs_init(const tallow_host *host, void **state_out)
{
    gs_state *st = calloc(1, sizeof(*st));
    if (!st) return TALLOW_ENOMEM;
    st->host = host;
    int rc = host->register_gatherer(host->ctx, &gs_ops, st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    *state_out = st;
    return 0;
}

/* Gatherings in progress are dropped without a callback: the context is going away. */
static void gs_fini(void *state)
{
    gs_state *st = state;
    if (!st) return;
    while (st->reqs) {
        gs_req *r = st->reqs;
        st->reqs = r->next;
        free(r);
    }
    free(st);
}

static const tallow_plugin_desc gs_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "gather-srflx",
    .version = TALLOW_VERSION,
    .summary = "server-reflexive candidates from STUN, via the discovery plugin",
    .init = gs_init,
    .fini = gs_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &gs_desc;
}
