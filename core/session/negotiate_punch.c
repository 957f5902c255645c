/* core/session/negotiate_punch.c — the negotiator's side of the punching strategies (see
 * negotiate.h and include/tallow/punch.h): our NAT's mapping behaviour from STUN and the peer's
 * from its offers, one instance of every registered strategy per attempt, and the only path their
 * packets take (checks built here, aimed only at the peer's offered addresses, within the
 * session's bounds, nothing under no_p2p). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <sodium.h>

#include "negotiate.h"

static uint64_t clock_ms(void)
{
    return tallow_now_ns() / 1000000u;
}

void tallow__punch_init(tallow__punch *pu, tallow_ctx *ctx, tallow_udp *base,
                        const uint8_t *check_key, int controlling, tallow_udp_recv_cb on_check,
                        void *ud)
{
    memset(pu, 0, sizeof(*pu));
    pu->ctx = ctx;
    pu->base = base;
    pu->check_key = check_key;
    pu->controlling = controlling;
    pu->on_check = on_check;
    pu->ud = ud;
    pu->now_ms = clock_ms;
}

int tallow__punch_classify(const tallow_candidate *c, size_t n, size_t nstun)
{
    const struct sockaddr_in *first = NULL;
    int nsrflx = 0, differ = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].kind != TALLOW_CAND_SRFLX || c[i].addr.ss_family != AF_INET) continue;
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c[i].addr;
        nsrflx++;
        if (!first)
            first = a;
        else if (a->sin_addr.s_addr == first->sin_addr.s_addr && a->sin_port != first->sin_port)
            differ = 1;
    }
    if (differ) return TALLOW_NAT_EDM;
    /* one mapping from two or more servers (the gatherer reports distinct mappings once) */
    if (nsrflx == 1 && nstun >= 2) return TALLOW_NAT_EIM;
    return TALLOW_NAT_UNKNOWN;
}

void tallow__punch_local(tallow__punch *pu, const tallow_candidate *c, size_t n, size_t nstun)
{
    int k = tallow__punch_classify(c, n, nstun);
    if (k == TALLOW_NAT_UNKNOWN) return;
    pu->mine = (uint32_t)k;
    tallow_ctx_log(pu->ctx, TALLOW_LOG_DEBUG, "p2p: our NAT maps %s",
                   k == TALLOW_NAT_EDM ? "per destination (endpoint-dependent)"
                                       : "endpoint-independently");
}

void tallow__punch_set_local(tallow__punch *pu, const tallow_candidate *all, size_t n)
{
    pu->local = all;
    pu->nlocal = n;
}

const char *tallow__punch_foundation(const tallow__punch *pu)
{
    return pu->mine == TALLOW_NAT_EDM   ? "srflx/edm"
           : pu->mine == TALLOW_NAT_EIM ? "srflx/eim"
                                        : "srflx";
}

void tallow__punch_remote(tallow__punch *pu, const tallow_candidate *c, const uint8_t *foundation,
                          size_t flen)
{
    if (pu->nremote < TALLOW__PUNCH_MAX_REMOTE) pu->remote[pu->nremote++] = *c;
    if (c->kind != TALLOW_CAND_SRFLX || c->addr.ss_family != AF_INET) return;
    if (flen == 9 && memcmp(foundation, "srflx/edm", 9) == 0)
        pu->peer = TALLOW_NAT_EDM;
    else if (flen == 9 && memcmp(foundation, "srflx/eim", 9) == 0)
        pu->peer = TALLOW_NAT_EIM;
}

/* ---- the bounds ---------------------------------------------------------------------------- */

static uint32_t elapsed(const tallow__punch *pu)
{
    if (!pu->start_ms) return 0;
    uint64_t d = pu->now_ms() - pu->start_ms;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* 0 when one more packet or socket may go; marks the attempt exhausted otherwise. */
static int within_bounds(tallow__punch *pu)
{
    if (pu->stopped || pu->exhausted) return 0;
    if (pu->sent >= TALLOW_PUNCH_MAX_PACKETS ||
        (pu->start_ms && elapsed(pu) >= TALLOW_PUNCH_MAX_MS)) {
        pu->exhausted = 1;
        tallow_ctx_log(pu->ctx, TALLOW_LOG_INFO, "p2p: punching ended, %u packets sent", pu->sent);
        return 0;
    }
    if (!pu->start_ms) pu->start_ms = pu->now_ms() ? pu->now_ms() : 1;
    return 1;
}

/* ---- the services a strategy gets ---------------------------------------------------------- */

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family) return 0;
    if (b->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* The peer offered a candidate with this IP through the sealed session. */
static int offered_ip(const tallow__punch *pu, const struct sockaddr *to, socklen_t len)
{
    if (to->sa_family == AF_INET) {
        if (len < sizeof(struct sockaddr_in)) return 0;
    } else if (to->sa_family == AF_INET6) {
        if (len < sizeof(struct sockaddr_in6)) return 0;
    } else {
        return 0;
    }
    for (size_t i = 0; i < pu->nremote; i++)
        if (same_ip(&pu->remote[i].addr, to)) return 1;
    return 0;
}

static int svc_open_socket(tallow_punch *p)
{
    tallow__punch_inst *in = (tallow__punch_inst *)p;
    tallow__punch *pu = in->pu;
    if (tallow_policy_no_p2p(tallow_ctx_policy(pu->ctx))) return TALLOW_EPOLICY;
    if (pu->nsock >= TALLOW_PUNCH_MAX_SOCKETS || !within_bounds(pu)) return TALLOW_EAGAIN;
    tallow_udp *u = NULL;
    int rc = tallow_udp_open(pu->ctx, NULL, 0, &u);
    if (rc < 0) return rc;
    tallow_udp_on(u, TALLOW_UDP_CHECK, pu->on_check, pu->ud);
    pu->sock_owner[pu->nsock] = (uint8_t)(in - pu->inst);
    pu->sock[pu->nsock++] = u;
    return (int)pu->nsock;
}

static int svc_send_check(tallow_punch *p, int sock, const struct sockaddr *to, socklen_t len)
{
    tallow__punch_inst *in = (tallow__punch_inst *)p;
    tallow__punch *pu = in->pu;
    const tallow_policy *pol = tallow_ctx_policy(pu->ctx);
    if (tallow_policy_no_p2p(pol)) return TALLOW_EPOLICY;
    if (sock < 0 || (size_t)sock > pu->nsock || !to) return TALLOW_EINVAL;
    tallow_udp *u = sock == 0 ? pu->base : pu->sock[sock - 1];
    if (!u) return TALLOW_EINVAL;
    /* only towards the peer: an IP it offered, an address the session may try */
    if (!offered_ip(pu, to, len) ||
        tallow_validate_candidate_addr(to, len, tallow_policy_allow_loopback(pol)) != 0)
        return TALLOW_EINVAL;
    if (!within_bounds(pu)) return TALLOW_EAGAIN;
    tallow__check c = {.type = TALLOW__CHECK_REQ,
                       .flags = pu->controlling ? TALLOW__CHECK_CONTROLLING : 0,
                       .priority = tallow_candidate_priority(TALLOW_CAND_PRFLX, 65535)};
    memcpy(c.txid, in->txid, sizeof(c.txid));
    uint8_t buf[TALLOW__CHECK_LEN];
    if (tallow__check_encode(pu->check_key, &c, buf) < 0) return TALLOW_EINVAL;
    pu->sent++;
    in->sent++;
    int rc = tallow_udp_send(u, to, len, buf, sizeof(buf));
    return rc == -EAGAIN ? 0 : rc; /* a full socket drops it, as the network may */
}

/* The view, refreshed before every call into a strategy. */
static tallow_punch *view(tallow__punch_inst *in)
{
    tallow__punch *pu = in->pu;
    in->pub = (tallow_punch){.struct_size = sizeof(tallow_punch),
                             .controlling = pu->controlling,
                             .mine = pu->mine,
                             .peer = pu->peer,
                             .local = pu->local,
                             .nlocal = pu->nlocal,
                             .remote = pu->remote,
                             .nremote = pu->nremote,
                             .max_packets = TALLOW_PUNCH_MAX_PACKETS,
                             .max_ms = TALLOW_PUNCH_MAX_MS,
                             .max_sockets = TALLOW_PUNCH_MAX_SOCKETS,
                             .sent = pu->sent,
                             .elapsed_ms = elapsed(pu),
                             .open_socket = svc_open_socket,
                             .send_check = svc_send_check};
    return &in->pub;
}

/* ---- the strategies' life ----------------------------------------------------------------- */

static void open_one(const tallow_punch_ops *ops, void *state, void *ud)
{
    tallow__punch *pu = ud;
    if (pu->ninst == TALLOW__PUNCH_MAX_STRATEGIES) return;
    tallow__punch_inst *in = &pu->inst[pu->ninst];
    memset(in, 0, sizeof(*in));
    in->pu = pu;
    in->ops = ops;
    randombytes_buf(in->txid, sizeof(in->txid));
    int rc = ops->open(state, view(in), &in->inst);
    if (rc < 0) {
        if (rc != TALLOW_ENOTSUP)
            tallow_ctx_log(pu->ctx, TALLOW_LOG_DEBUG, "p2p: punching strategy %s: %s", ops->name,
                           tallow_strerror(rc));
        return;
    }
    pu->ninst++;
}

int tallow__punch_open(tallow__punch *pu)
{
    if (tallow_policy_no_p2p(tallow_ctx_policy(pu->ctx))) return TALLOW_EPOLICY;
    tallow_punch_foreach(pu->ctx, open_one, pu);
    return (int)pu->ninst;
}

void tallow__punch_update(tallow__punch *pu)
{
    for (size_t i = 0; i < pu->ninst && !pu->stopped; i++)
        pu->inst[i].ops->update(pu->inst[i].inst, view(&pu->inst[i]));
}

void tallow__punch_tick(tallow__punch *pu)
{
    if (pu->stopped || pu->exhausted || !pu->ninst) return;
    if (pu->start_ms &&
        (pu->sent >= TALLOW_PUNCH_MAX_PACKETS || elapsed(pu) >= TALLOW_PUNCH_MAX_MS))
        (void)within_bounds(pu); /* marks it exhausted, with its log line */
    if (pu->exhausted) return;
    for (size_t i = 0; i < pu->ninst && !pu->stopped && !pu->exhausted; i++)
        pu->inst[i].busy = pu->inst[i].ops->tick(pu->inst[i].inst, view(&pu->inst[i])) > 0;
}

int tallow__punch_running(const tallow__punch *pu)
{
    if (pu->stopped || pu->exhausted) return 0;
    for (size_t i = 0; i < pu->ninst; i++)
        if (pu->inst[i].busy) return 1;
    return 0;
}

const char *tallow__punch_probe_of(const tallow__punch *pu, const uint8_t txid[TALLOW__CHECK_TXID],
                                   uint32_t *sent)
{
    for (size_t i = 0; i < pu->ninst; i++)
        if (pu->inst[i].sent && memcmp(pu->inst[i].txid, txid, TALLOW__CHECK_TXID) == 0) {
            if (sent) *sent = pu->inst[i].sent;
            return pu->inst[i].ops->name;
        }
    return NULL;
}

const char *tallow__punch_socket_owner(const tallow__punch *pu, const tallow_udp *u)
{
    for (size_t i = 0; i < pu->nsock; i++)
        if (pu->sock[i] == u) return pu->inst[pu->sock_owner[i]].ops->name;
    return NULL;
}

uint32_t tallow__punch_sent(const tallow__punch *pu)
{
    return pu->sent;
}

void tallow__punch_stop(tallow__punch *pu, tallow_udp *keep)
{
    if (!pu->stopped) {
        pu->stopped = 1;
        if (pu->sent && !pu->exhausted)
            tallow_ctx_log(pu->ctx, TALLOW_LOG_DEBUG, "p2p: punching stopped, %u packets sent",
                           pu->sent);
        for (size_t i = 0; i < pu->ninst; i++)
            pu->inst[i].ops->close(pu->inst[i].inst);
    }
    for (size_t i = 0; i < pu->nsock; i++)
        if (pu->sock[i] && pu->sock[i] != keep) tallow_udp_close(pu->sock[i]);
    pu->nsock = 0;
}
