/* plugins/stun/stun_discovery.c — NAT discovery over STUN (RFC 8489 Binding) on the core's UDP
 * endpoint, so the mapping learned is the one QUIC will use. One transaction per discover call;
 * several may run at once on one endpoint (matched by transaction id). Retransmits from 100 ms,
 * doubling, until the caller's time bound. While one runs, the plugin owns the endpoint's STUN
 * handler, and the endpoint must stay open until the callback has run (no cancel slot yet). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <tallow/stun.h>
#include <tallow/tallow.h>

#define STUN_RTO_MS 100
#define STUN_DEFAULT_TIMEOUT_MS 3000
#define STUN_REQ_MAX 64

typedef struct stun_state stun_state;

typedef struct stun_txn {
    stun_state *st;
    struct stun_txn *next;
    tallow_udp *u;
    struct sockaddr_storage server;
    socklen_t server_len;
    uint8_t txid[TALLOW_STUN_TXID_LEN];
    uint8_t req[STUN_REQ_MAX];
    size_t req_len;
    tallow_timer *timer; /* pending retransmit or deadline; NULL while none */
    uint64_t deadline_ms;
    uint64_t rto_ms;
    tallow_discovery_cb cb;
    void *ud;
    int done; /* result recorded, delivery deferred */
    int status;
    struct sockaddr_storage mapped;
    socklen_t mapped_len;
} stun_txn;

struct stun_state {
    const tallow_host *host;
    stun_txn *txns; /* every transaction not yet delivered */
};

static uint64_t now_ms(void)
{
    return tallow_now_ns() / 1000000ull;
}

static int same_addr(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family) return 0;
    if (a->sa_family == AF_INET && alen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6 && alen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

/* The server as the endpoint reports who answered: plain IPv4 for an IPv4 server, also one
 * given as ::ffff:a.b.c.d (the endpoint maps IPv4 for a dual-stack socket itself). */
static void stun_server_addr(const struct sockaddr *server, socklen_t len,
                             struct sockaddr_storage *out, socklen_t *out_len)
{
    memset(out, 0, sizeof(*out));
    memcpy(out, server, len);
    *out_len = tallow_sockaddr_unmap(out, len);
}

/* Whether another live transaction still needs u's STUN handler. */
static int endpoint_in_use(stun_state *st, const tallow_udp *u)
{
    for (stun_txn *t = st->txns; t; t = t->next)
        if (t->u == u && !t->done) return 1;
    return 0;
}

static void txn_unlink(stun_txn *x)
{
    for (stun_txn **pp = &x->st->txns; *pp; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            return;
        }
    }
}

static void stun_deliver(void *arg)
{
    stun_txn *x = arg;
    txn_unlink(x);
    x->cb(x->status, x->status == 0 ? (const struct sockaddr *)&x->mapped : NULL,
          x->status == 0 ? x->mapped_len : 0, x->ud);
    free(x);
}

/* Records the result, releases the timer and (if unused now) the endpoint's STUN handler, and
 * delivers from a deferred call: never from inside the endpoint's receive loop, so the callback
 * may close the endpoint. */
static void txn_finish(stun_txn *x, int status)
{
    x->done = 1;
    x->status = status;
    if (x->timer) {
        tallow_timer_stop(x->timer);
        x->timer = NULL;
    }
    if (!endpoint_in_use(x->st, x->u)) tallow_udp_on(x->u, TALLOW_UDP_STUN, NULL, NULL);
    if (tallow_defer(x->st->host->loop, stun_deliver, x) < 0) stun_deliver(x);
}

static void stun_on_timer(tallow_timer *t, void *ud)
{
    stun_txn *x = ud;
    x->timer = NULL; /* one-shot: the loop frees it after this returns */
    uint64_t now = now_ms();
    if (now >= x->deadline_ms) {
        x->st->host->log(x->st->host, TALLOW_LOG_DEBUG, "stun: no answer, giving up");
        txn_finish(x, TALLOW_ETIMEOUT);
        return;
    }
    int rc =
        tallow_udp_send(x->u, (struct sockaddr *)&x->server, x->server_len, x->req, x->req_len);
    if (rc == TALLOW_EPOLICY) {
        txn_finish(x, rc);
        return;
    }
    /* Other send errors (socket full, transient unreachability) are retried like a loss. */
    x->rto_ms *= 2;
    uint64_t wait = x->deadline_ms - now < x->rto_ms ? x->deadline_ms - now : x->rto_ms;
    x->timer = tallow_timer_start(x->st->host->loop, wait, 0, stun_on_timer, x);
    if (!x->timer) txn_finish(x, TALLOW_ENOMEM);
}

static void stun_on_datagram(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                             const uint8_t *data, size_t len, void *ud)
{
    stun_state *st = ud;
    tallow_stun_msg m;
    if (!tallow_stun_is_stun(data, len) || tallow_stun_parse(data, len, &m) < 0) return;
    if (m.method != TALLOW_STUN_BINDING ||
        (m.cls != TALLOW_STUN_SUCCESS && m.cls != TALLOW_STUN_ERROR))
        return;
    stun_txn *x = st->txns;
    while (x && (x->done || x->u != u || memcmp(x->txid, m.txid, sizeof(x->txid)) != 0))
        x = x->next;
    if (!x) return;
    /* Only the server asked may answer; a stray or spoofed datagram is dropped, not fatal. */
    if (!same_addr(from, fromlen, &x->server)) return;
    if (m.fingerprint_off && tallow_stun_check_fingerprint(&m) != 0) return;
    if (m.cls == TALLOW_STUN_ERROR) {
        tallow_bytes v;
        int code = 0;
        if (tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_ERROR_CODE, &v) == 0 && v.len >= 4)
            code = (v.ptr[2] & 0x7) * 100 + v.ptr[3];
        st->host->log(st->host, TALLOW_LOG_WARN, "stun: server answered error %d", code);
        txn_finish(x, TALLOW_EPROTO);
        return;
    }
    int rc = tallow_stun_mapped_address(&m, &x->mapped, &x->mapped_len);
    if (rc < 0) {
        st->host->log(st->host, TALLOW_LOG_WARN,
                      "stun: success response without a usable mapped address");
        txn_finish(x, TALLOW_EPROTO);
        return;
    }
    txn_finish(x, 0);
}

static int stun_discover(void *plugin_state, tallow_udp *u, const struct sockaddr *server,
                         socklen_t server_len, uint32_t timeout_ms, tallow_discovery_cb cb,
                         void *ud)
{
    stun_state *st = plugin_state;
    if (!st || !u || !server || !cb || server_len > (socklen_t)sizeof(struct sockaddr_storage))
        return TALLOW_EINVAL;
    if ((server->sa_family != AF_INET || server_len < (socklen_t)sizeof(struct sockaddr_in)) &&
        (server->sa_family != AF_INET6 || server_len < (socklen_t)sizeof(struct sockaddr_in6)))
        return TALLOW_EINVAL;
    if (tallow_policy_no_p2p(st->host->policy)) return TALLOW_EPOLICY;

    stun_txn *x = calloc(1, sizeof(*x));
    if (!x) return TALLOW_ENOMEM;
    x->st = st;
    x->u = u;
    stun_server_addr(server, server_len, &x->server, &x->server_len);
    x->cb = cb;
    x->ud = ud;
    if (getrandom(x->txid, sizeof(x->txid), 0) != (ssize_t)sizeof(x->txid)) {
        int err = -errno;
        free(x);
        return err < 0 ? err : TALLOW_ENOMEM;
    }
    int n = tallow_stun_binding_request(x->req, sizeof(x->req), x->txid);
    if (n < 0) {
        free(x);
        return n;
    }
    x->req_len = (size_t)n;
    if (timeout_ms == 0) timeout_ms = STUN_DEFAULT_TIMEOUT_MS;
    x->deadline_ms = now_ms() + timeout_ms;
    x->rto_ms = STUN_RTO_MS;

    int rc = tallow_udp_send(u, (struct sockaddr *)&x->server, x->server_len, x->req, x->req_len);
    if (rc < 0 && rc != -EAGAIN && rc != -ENOBUFS) {
        free(x);
        return rc;
    }
    x->timer = tallow_timer_start(st->host->loop, timeout_ms < x->rto_ms ? timeout_ms : x->rto_ms,
                                  0, stun_on_timer, x);
    if (!x->timer) {
        free(x);
        return TALLOW_ENOMEM;
    }
    x->next = st->txns;
    st->txns = x;
    tallow_udp_on(u, TALLOW_UDP_STUN, stun_on_datagram, st);
    return 0;
}

static const tallow_discovery_ops stun_ops = {
    .version = TALLOW_DISCOVERY_OPS_VERSION,
    .struct_size = sizeof(tallow_discovery_ops),
    .name = "stun",
    .discover = stun_discover,
};

static int stun_init(const tallow_host *host, void **state_out)
{
    stun_state *st = calloc(1, sizeof(*st));
    if (!st) return TALLOW_ENOMEM;
    st->host = host;
    int rc = host->register_discovery(host->ctx, &stun_ops, st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    *state_out = st;
    return 0;
}

/* Drops transactions still pending without calling them back: the context is going away with
 * its loop. Endpoints are not touched: they may already be closed. */
static void stun_fini(void *state)
{
    stun_state *st = state;
    if (!st) return;
    while (st->txns) {
        stun_txn *x = st->txns;
        st->txns = x->next;
        if (x->timer) tallow_timer_stop(x->timer);
        free(x);
    }
    free(st);
}

static const tallow_plugin_desc stun_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "stun",
    .version = TALLOW_VERSION,
    .summary = "NAT discovery over STUN (RFC 8489 Binding) on the session's UDP endpoint",
    .init = stun_init,
    .fini = stun_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &stun_desc;
}
