/* core/session/negotiate.c — the negotiator's candidates, checks and nomination (see negotiate.h;
 * the switch to the nominated pair is negotiate_path.c's). Both sides gather and offer candidates
 * over the sealed session and check every remote candidate at once, paced; the controlling side
 * (the session initiator) nominates the best working pair with a flagged check and becomes the QUIC
 * client, the other side the QUIC server on the pair it was told to use. All our candidates share
 * one socket, so a pair is identified by its remote address. The socket is dual-stack where the
 * machine has IPv6: pairs are IPv4 or IPv6 (a remote address of a family the socket does not carry
 * is refused), and each pair is ranked with our first candidate of its own family, as ICE pairs
 * only candidates of one family. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "negotiate_int.h"

static void on_check(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                     const uint8_t *data, size_t len, void *ud);

static uint64_t now_ms(void)
{
    return tallow_now_ns() / 1000000u;
}

static const char *addr_str(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    return tallow_sockaddr_str((const struct sockaddr *)a, buf, cap);
}

static int same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr *b,
                     socklen_t blen)
{
    if (a->ss_family != b->sa_family) return 0;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    (void)alen;
    (void)blen;
    return 0;
}

/* ---- settling ----------------------------------------------------------------------------- */

static void release_one(const tallow_gatherer_ops *ops, void *state, void *ud)
{
    ops->release(state, ud); /* optional slots always have a default */
}

void tallow__neg_release_udp(tallow__neg *n)
{
    if (!n->udp || n->pending_gathers > 0) return; /* STUN transactions still hold it */
    if (n->quic && !n->quic_handed) return;
    if (n->quic_handed) return; /* the session's QUIC channel runs on it: freed with us */
    tallow_gatherer_foreach(n->ctx, release_one, n->udp);
    tallow_udp_close(n->udp);
    n->udp = NULL;
}

/* ---- checks ------------------------------------------------------------------------------ */

static uint32_t prflx_prio(void)
{
    return tallow_candidate_priority(TALLOW_CAND_PRFLX, 65535);
}

static void send_check(tallow__neg *n, neg_pair *p)
{
    tallow__check c = {.type = TALLOW__CHECK_REQ, .priority = prflx_prio()};
    c.flags = (uint8_t)((n->controlling ? TALLOW__CHECK_CONTROLLING : 0) |
                        (p->nominate ? TALLOW__CHECK_NOMINATE : 0));
    /* A retry repeats the unanswered transaction (as STUN retransmissions do): with a new id each
     * time, no answer could match once the round trip exceeds NEG_RTO_MS, so a 250 ms path never
     * went direct. The RTT counts from the first try. */
    static const uint8_t zero[TALLOW__CHECK_TXID];
    if (!memcmp(p->txid, zero, sizeof(zero)) || p->txid_flags != c.flags) {
        randombytes_buf(p->txid, sizeof(p->txid));
        p->txid_flags = c.flags;
        p->sent_ns = tallow_now_ns();
    }
    memcpy(c.txid, p->txid, sizeof(c.txid));
    uint8_t buf[TALLOW__CHECK_LEN];
    if (tallow__check_encode(n->check_key, &c, buf) < 0) return;
    tallow_udp_send(p->via, (struct sockaddr *)&p->addr, p->len, buf, sizeof(buf));
}

static int all_failed(const tallow__neg *n)
{
    for (size_t i = 0; i < n->npairs; i++)
        if (n->pairs[i].state != P_FAILED) return 0;
    return 1;
}

void tallow__neg_tick(tallow_timer *t, void *ud)
{
    tallow__neg *n = ud;
    uint64_t now = now_ms();
    neg_pair *pick = NULL;
    for (size_t i = 0; i < n->npairs; i++) {
        neg_pair *p = &n->pairs[i];
        if (p->state == P_SUCCEEDED && !p->nominate) continue;
        if (p->state == P_FAILED) continue;
        if (n->quic && !p->nominate) continue; /* QUIC runs: only the nomination is repeated */
        if (p->next_due > now) continue;
        if (p->tries >= NEG_MAX_TRIES) {
            p->state = P_FAILED;
            continue;
        }
        /* the nominating check first, then the highest remote priority (pairs are few and
         * share one local base) */
        if (!pick || (p->nominate && !pick->nominate) ||
            (p->nominate == pick->nominate && p->remote_prio > pick->remote_prio))
            pick = p;
    }
    if (pick) {
        n->last_check = now;
        pick->tries++;
        pick->state = pick->state == P_SUCCEEDED ? P_SUCCEEDED : P_INPROGRESS;
        pick->next_due = now + NEG_RTO_MS;
        send_check(n, pick);
    }
    if (n->quic) return;
    tallow__punch_tick(&n->punch);
    if (n->local_done && n->remote_done && all_failed(n) && n->nominated < 0 &&
        !tallow__punch_running(&n->punch)) {
        /* the controlled side keeps waiting if the peer reached us: it may still nominate */
        if (n->controlling || !n->heard_peer) tallow__neg_fail(n, "no candidate pair answered");
    }
}

static void on_settle(tallow_timer *t, void *ud)
{
    tallow__neg *n = ud;
    n->settle = NULL;
    tallow__neg_rank r[NEG_MAX_PAIRS];
    for (size_t i = 0; i < n->npairs; i++)
        r[i] = (tallow__neg_rank){n->pairs[i].local_prio, n->pairs[i].remote_prio,
                                  n->pairs[i].state == P_SUCCEEDED};
    int best = tallow__neg_best(1, r, n->npairs);
    if (best < 0) return;
    neg_pair *p = &n->pairs[best];
    p->nominate = 1;
    p->tries = 0;
    p->next_due = 0; /* sent now, then by the ticks until answered */
    tallow__neg_tick(n->tick, n);
    /* QUIC's first flight follows the nominating check on the same path at once, rather than
     * one round trip later when the check's answer is back: the peer opens its QUIC server when
     * the check arrives, before our Initial does. The check is repeated until answered. */
    tallow__neg_open_quic(n, best);
}

/* Nothing better can still turn up: every candidate of the peer is known and no pair that would
 * outrank p is still unanswered. Then waiting NEG_SETTLE_MS buys nothing. */
static int best_possible(const tallow__neg *n, const neg_pair *p)
{
    if (!n->remote_done) return 0;
    uint64_t mine = tallow__neg_pair_priority(1, p->local_prio, p->remote_prio);
    for (size_t i = 0; i < n->npairs; i++) {
        const neg_pair *q = &n->pairs[i];
        if (q == p || q->state == P_FAILED) continue;
        if (tallow__neg_pair_priority(1, q->local_prio, q->remote_prio) > mine) return 0;
    }
    return 1;
}

static neg_pair *pair_find(tallow__neg *n, const struct sockaddr *a, socklen_t len, tallow_udp *via)
{
    for (size_t i = 0; i < n->npairs; i++)
        if (n->pairs[i].via == via && same_addr(&n->pairs[i].addr, n->pairs[i].len, a, len))
            return &n->pairs[i];
    return NULL;
}

static int carries(const tallow__neg *n, int family)
{
    return (family == AF_INET && n->v4) || (family == AF_INET6 && n->v6);
}

/* Our side of a pair towards family: the priority of our first candidate of that family (the
 * host gatherer answers first, best address first), else what a peer-reflexive one would get. */
static uint32_t local_prio_for(const tallow__neg *n, int family)
{
    for (size_t i = 0; i < n->nlocal; i++)
        if (n->local[i].addr.ss_family == family) return n->local[i].priority;
    return prflx_prio();
}

static neg_pair *pair_add(tallow__neg *n, const struct sockaddr *a, socklen_t len, uint32_t kind,
                          uint32_t prio, tallow_udp *via)
{
    if (!carries(n, a->sa_family)) return NULL; /* not a family our socket carries */
    if (tallow_validate_candidate_addr(a, len, n->allow_loopback) != 0) return NULL;
    neg_pair *p = pair_find(n, a, len, via);
    if (p) {
        /* the peer's offer names what we learned from its check; a mapping offered for an
         * address it first offered as server-reflexive is the mapping */
        if ((kind != TALLOW_CAND_PRFLX && p->kind == TALLOW_CAND_PRFLX) ||
            (kind == TALLOW_CAND_MAPPED && p->kind != TALLOW_CAND_MAPPED)) {
            p->kind = kind;
            p->remote_prio = prio;
        }
        return p;
    }
    if (n->npairs == NEG_MAX_PAIRS) return NULL;
    p = &n->pairs[n->npairs++];
    memset(p, 0, sizeof(*p));
    memcpy(&p->addr, a, len);
    p->len = len;
    p->kind = kind;
    p->remote_prio = prio;
    p->local_prio = local_prio_for(n, a->sa_family);
    p->state = P_WAITING;
    p->via = via;
    p->local_kind = TALLOW_CAND_PRFLX;
    return p;
}

static int any_nominating(const tallow__neg *n)
{
    for (size_t i = 0; i < n->npairs; i++)
        if (n->pairs[i].nominate) return 1;
    return 0;
}

static void on_response(tallow__neg *n, tallow_udp *u, const tallow__check *c,
                        const struct sockaddr *from, socklen_t fromlen)
{
    neg_pair *p = NULL;
    for (size_t i = 0; i < n->npairs; i++)
        if (memcmp(n->pairs[i].txid, c->txid, TALLOW__CHECK_TXID) == 0) p = &n->pairs[i];
    uint32_t probes = 0;
    const char *strategy = p ? NULL : tallow__punch_probe_of(&n->punch, c->txid, &probes);
    if (strategy) {
        /* a strategy's probe hit: the address that answered is the pair (authenticated by the
         * MAC; an IP the peer offered, the only ones a strategy may aim at) */
        p = pair_add(n, from, fromlen, TALLOW_CAND_PRFLX, prflx_prio(), u);
        if (!p) return;
        char s[64];
        tallow_ctx_log(n->ctx, TALLOW_LOG_INFO, "p2p: %s probe answered by %s after %u probes",
                       strategy, addr_str(&p->addr, s, sizeof(s)), probes);
        p->sent_ns = tallow_now_ns();
    } else if (!p || p->via != u || !same_addr(&p->addr, p->len, from, fromlen)) {
        return; /* stale or not symmetric */
    }
    memset(p->txid, 0, sizeof(p->txid));
    n->heard_peer = 1;
    p->rtt_us = (tallow_now_ns() - p->sent_ns) / 1000u;
    p->local_prio = prflx_prio();
    p->local_kind = TALLOW_CAND_PRFLX;
    for (size_t i = 0; i < n->nlocal; i++)
        if (c->mapped_len && same_addr(&n->local[i].addr, n->local[i].addr_len,
                                       (struct sockaddr *)&c->mapped, c->mapped_len)) {
            p->local_prio = n->local[i].priority;
            p->local_kind = n->local[i].kind;
        }
    if (p->state != P_SUCCEEDED) {
        char s[64];
        tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG, "p2p: check to %s answered in %llu us",
                       addr_str(&p->addr, s, sizeof(s)), (unsigned long long)p->rtt_us);
    }
    p->state = P_SUCCEEDED;
    if (n->controlling) {
        if (p->nominate && (c->flags & TALLOW__CHECK_NOMINATE)) {
            n->nom_acked = 1;
            if (n->quic) tallow__neg_stop_timer(&n->tick); /* nothing left to repeat */
            tallow__neg_open_quic(n, (int)(p - n->pairs));
            return;
        }
        if (!any_nominating(n)) {
            if (best_possible(n, p)) {
                if (n->settle) tallow_timer_stop(n->settle);
                n->settle = NULL;
                on_settle(NULL, n);
            } else if (!n->settle) {
                n->settle = tallow_timer_start(n->loop, NEG_SETTLE_MS, 0, on_settle, n);
            }
        }
    }
}

static void respond(tallow__neg *n, tallow_udp *u, const tallow__check *req,
                    const struct sockaddr *from, socklen_t fromlen)
{
    tallow__check c = {.type = TALLOW__CHECK_RESP};
    c.flags = (uint8_t)((n->controlling ? TALLOW__CHECK_CONTROLLING : 0) |
                        (req->flags & TALLOW__CHECK_NOMINATE));
    memcpy(c.txid, req->txid, sizeof(c.txid));
    memcpy(&c.mapped, from, fromlen);
    c.mapped_len = fromlen;
    uint8_t buf[TALLOW__CHECK_LEN];
    if (tallow__check_encode(n->check_key, &c, buf) < 0) return;
    tallow_udp_send(u, from, fromlen, buf, sizeof(buf));
}

static void on_request(tallow__neg *n, tallow_udp *u, const tallow__check *c,
                       const struct sockaddr *from, socklen_t fromlen)
{
    neg_pair *p = pair_find(n, from, fromlen, u);
    if (!p) {
        /* an address the peer never offered: its NAT's mapping towards us (peer-reflexive) */
        p = pair_add(n, from, fromlen, TALLOW_CAND_PRFLX, c->priority, u);
        if (!p) return;
        char s[64];
        tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG, "p2p: peer-reflexive candidate %s",
                       addr_str(&p->addr, s, sizeof(s)));
    }
    n->heard_peer = 1;
    respond(n, u, c, from, fromlen);
    if (n->quic) return; /* nominated already: only answer (the nominating check repeats) */
    if (!n->controlling && (c->flags & TALLOW__CHECK_NOMINATE)) {
        tallow__neg_open_quic(n, (int)(p - n->pairs));
        return;
    }
    /* triggered check: the peer's packet just opened our NAT towards it, try at once */
    if (p->state != P_SUCCEEDED) {
        if (p->state == P_FAILED || p->tries >= NEG_MAX_TRIES) p->tries = NEG_MAX_TRIES - 2;
        p->state = P_WAITING;
        p->next_due = 0;
    }
}

static void on_check(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                     const uint8_t *data, size_t len, void *ud)
{
    tallow__neg *n = ud;
    tallow__check c;
    if (n->state != TALLOW__NEG_PENDING) return;
    if (tallow__check_parse(n->check_key, data, len, &c) != 0) return;
    /* our own packet reflected back carries our role: refuse it */
    if (!!(c.flags & TALLOW__CHECK_CONTROLLING) == !!n->controlling) return;
    if (c.type == TALLOW__CHECK_REQ)
        on_request(n, u, &c, from, fromlen);
    else
        on_response(n, u, &c, from, fromlen);
}

static void on_deadline(tallow_timer *t, void *ud)
{
    tallow__neg *n = ud;
    n->deadline = NULL;
    tallow__neg_fail(n, "timed out");
}

/* ---- gathering and offers ---------------------------------------------------------------- */

const char *tallow__neg_kind_name(uint32_t k)
{
    return k == TALLOW_CAND_HOST     ? "host"
           : k == TALLOW_CAND_SRFLX  ? "srflx"
           : k == TALLOW_CAND_PRFLX  ? "prflx"
           : k == TALLOW_CAND_MAPPED ? "mapped"
                                     : "relayed";
}

static void finish_free(tallow__neg *n)
{
    /* gatherers undo what they set up for the endpoint (port mappings) */
    tallow__punch_stop(&n->punch, n->quic_udp);
    if (n->quic_udp) tallow_udp_close(n->quic_udp);
    if (n->udp) tallow_gatherer_foreach(n->ctx, release_one, n->udp);
    if (n->udp) tallow_udp_close(n->udp);
    sodium_memzero(n->check_key, sizeof(n->check_key));
    sodium_memzero(n->psk, sizeof(n->psk));
    free(n);
}

static void send_done_if_ready(tallow__neg *n)
{
    if (n->local_done || n->pending_gathers > 0) return;
    n->local_done = 1;
    if (n->state != TALLOW__NEG_PENDING) return;
    tallow_msg_CandidatesDone d = {.count = (uint32_t)n->offers_sent};
    tallow__session_send(n->s, &tallow_msgtype_CandidatesDone, &d);
}

/* One local candidate to the peer, over the sealed session. */
static void offer_local(tallow__neg *n, const tallow_candidate *c)
{
    uint8_t a[32];
    int alen = tallow_sockaddr_encode((const struct sockaddr *)&c->addr, c->addr_len, a, sizeof(a));
    if (alen < 0) return;
    const char *f = c->kind == TALLOW_CAND_SRFLX ? tallow__punch_foundation(&n->punch)
                                                 : tallow__neg_kind_name(c->kind);
    tallow_msg_CandidateOffer o = {.kind = c->kind,
                                   .priority = c->priority,
                                   .addr = {a, (size_t)alen},
                                   .foundation = {(const uint8_t *)f, strlen(f)}};
    char s[64];
    tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG, "p2p: offering %s candidate %s", f,
                   addr_str(&c->addr, s, sizeof(s)));
    if (tallow__session_send(n->s, &tallow_msgtype_CandidateOffer, &o) >= 0) n->offers_sent++;
}

static void on_gathered(int status, const tallow_candidate *c, size_t count, void *ud)
{
    tallow__neg *n = ud;
    n->pending_gathers--;
    if (n->dead) {
        if (n->pending_gathers == 0 && !n->releasing) finish_free(n);
        return;
    }
    if (status == 0) tallow__punch_local(&n->punch, c, count, n->nstun);
    int prep = n->state == TALLOW__NEG_OFF; /* gathered before the keys: kept, offered later */
    for (size_t i = 0; status == 0 && i < count && (prep || n->state == TALLOW__NEG_PENDING); i++) {
        if (!carries(n, c[i].addr.ss_family)) continue;
        if (tallow_validate_candidate_addr((const struct sockaddr *)&c[i].addr, c[i].addr_len,
                                           n->allow_loopback) != 0)
            continue;
        int dup = 0;
        for (size_t j = 0; j < n->nlocal && !dup; j++) {
            tallow_candidate *l = &n->local[j];
            if (!same_addr(&l->addr, l->addr_len, (const struct sockaddr *)&c[i].addr,
                           c[i].addr_len))
                continue;
            dup = 1;
            /* A gateway's mapping whose address STUN already reported (the gateway keeps the
             * port outbound too): it is the mapping, open to any sender; say so. */
            if (c[i].kind == TALLOW_CAND_MAPPED && l->kind != TALLOW_CAND_MAPPED) {
                l->kind = TALLOW_CAND_MAPPED;
                l->priority = c[i].priority;
                if (!prep) offer_local(n, l);
            }
        }
        if (dup || n->nlocal == NEG_MAX_LOCAL) continue;
        n->local[n->nlocal++] = c[i];
        if (!prep) offer_local(n, &c[i]);
    }
    /* pairs formed before our host candidate was known get its priority now */
    for (size_t i = 0; i < n->npairs && n->nlocal; i++)
        if (n->pairs[i].state != P_SUCCEEDED)
            n->pairs[i].local_prio = local_prio_for(n, n->pairs[i].addr.ss_family);
    tallow__punch_set_local(&n->punch, n->local, n->nlocal);
    if (prep) return; /* tallow__neg_begin offers them and says when all are out */
    send_done_if_ready(n);
    if (n->state != TALLOW__NEG_PENDING)
        tallow__neg_release_udp(n);
    else
        tallow__punch_update(&n->punch);
}

struct gather_ctx {
    tallow__neg *n;
    tallow_gather_params gp;
};

static void start_one(const tallow_gatherer_ops *ops, void *state, void *ud)
{
    struct gather_ctx *g = ud;
    g->n->pending_gathers++;
    int rc = ops->gather(state, &g->gp, on_gathered, g->n);
    if (rc < 0) {
        g->n->pending_gathers--;
        tallow_ctx_log(g->n->ctx, TALLOW_LOG_DEBUG, "p2p: gatherer %s: %s", ops->name,
                       tallow_strerror(rc));
    }
}

/* "host:port[,host:port...]" → one address each (numeric or resolved once): IPv4 when the socket
 * carries it and the name has one, else IPv6 when the socket carries that. */
static void parse_stun(tallow__neg *n, const char *list)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok && n->nstun < NEG_MAX_STUN;
         tok = strtok_r(NULL, ", ", &save)) {
        if (!strncmp(tok, "tls://", 6) || !strncmp(tok, "tcp://", 6)) tok += 6; /* a relay's */
        char *colon = strrchr(tok, ':');
        if (!colon) continue;
        *colon = 0;
        char *host = tok;
        if (host[0] == '[') {
            host++;
            char *end = strchr(host, ']');
            if (end) *end = 0;
        }
        struct addrinfo hints = {
            .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        if (!n->v4 || getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) {
            res = NULL;
            hints.ai_family = AF_INET6;
            if (!n->v6 || getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) continue;
        }
        memcpy(&n->stun[n->nstun++], res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    }
}

/* Which families the endpoint carries: an IPv6 socket carries IPv4 too unless it is v6-only. */
static void neg_families(tallow__neg *n)
{
    struct sockaddr_storage local;
    socklen_t llen;
    n->v4 = 1;
    if (tallow_udp_local_addr(n->udp, &local, &llen) != 0 || local.ss_family != AF_INET6) return;
    int v6only = 0;
    socklen_t ol = sizeof(v6only);
    n->v6 = 1;
    if (getsockopt(tallow_udp_fd(n->udp), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol) == 0)
        n->v4 = !v6only;
}

/* Every registered gatherer on n->udp; their candidates come to on_gathered. */
static void start_gathering(tallow__neg *n)
{
    struct gather_ctx g = {.n = n};
    g.gp = (tallow_gather_params)TALLOW_GATHER_PARAMS_INIT(
            .udp = n->udp, .stun = n->stun, .nstun = n->nstun, .allow_loopback = n->allow_loopback,
            .timeout_ms = n->timeout_ms < NEG_GATHER_MS ? n->timeout_ms : NEG_GATHER_MS);
    n->pending_gathers++; /* held while starting, so no callback finishes the list early */
    tallow_gatherer_foreach(n->ctx, start_one, &g);
    n->pending_gathers--;
}

/* The endpoint, its families, the punching state and the STUN servers: all but the keys. */
static int open_endpoint(tallow__neg *n, const tallow__neg_opts *o)
{
    const tallow_policy *pol = tallow_ctx_policy(n->ctx);
    if (tallow_policy_no_p2p(pol)) return TALLOW_EPOLICY; /* nothing at all: not one packet */
    n->allow_loopback = tallow_policy_allow_loopback(pol);
    n->timeout_ms = o && o->timeout_ms ? o->timeout_ms : NEG_DEFAULT_TIMEOUT_MS;
    int rc = tallow_udp_open(n->ctx, NULL, 0, &n->udp);
    if (rc < 0) {
        n->udp = NULL;
        return rc;
    }
    neg_families(n);
    /* the check key is filled in when the keys exist; nothing is checked before */
    tallow__punch_init(&n->punch, n->ctx, n->udp, n->check_key, n->controlling, on_check, n);
    const char *stun = o && o->stun && o->stun[0] ? o->stun : o ? o->relay : NULL;
    if (stun) parse_stun(n, stun);
    return 0;
}

int tallow__neg_prepare(tallow__neg *n, const tallow__neg_opts *o)
{
    if (n->udp || n->state != TALLOW__NEG_OFF || n->dead) return 0;
    int rc = open_endpoint(n, o);
    if (rc < 0) return rc;
    start_gathering(n);
    return 0;
}

int tallow__neg_begin(tallow__neg *n, const tallow__neg_opts *o)
{
    tallow_ctx *ctx = n->ctx;
    if (tallow_policy_no_p2p(tallow_ctx_policy(ctx))) return TALLOW_EPOLICY;
    const tallow__keys *k = tallow__session_keys(n->s);
    if (!k) return TALLOW_EINVAL;
    int prepared = n->udp != NULL; /* tallow__neg_prepare opened it and gathers on it */
    if (!prepared) {
        int rc = open_endpoint(n, o);
        if (rc < 0) return rc;
    }
    n->nominated = -1;
    n->start_ns = tallow_now_ns();
    memcpy(n->check_key, k->check_key, 32);
    memcpy(n->psk, k->quic_psk, 32);
    tallow_udp_on(n->udp, TALLOW_UDP_CHECK, on_check, n);
    tallow__punch_open(&n->punch);
    n->tick = tallow_timer_start(n->loop, NEG_PACE_MS, NEG_PACE_MS, tallow__neg_tick, n);
    n->deadline = tallow_timer_start(n->loop, n->timeout_ms + (n->controlling ? 0 : NEG_GRACE_MS),
                                     0, on_deadline, n);
    if (!n->tick || !n->deadline) {
        tallow__neg_stop_timer(&n->tick);
        tallow__neg_stop_timer(&n->deadline);
        if (!n->pending_gathers) { /* else gatherers still use it: closed when they answered */
            tallow_udp_close(n->udp);
            n->udp = NULL;
        }
        return TALLOW_ENOMEM;
    }
    n->state = TALLOW__NEG_PENDING;
    if (prepared) {
        /* gathered while the peer came and the handshake ran: offered at once */
        tallow_ctx_log(ctx, TALLOW_LOG_DEBUG, "p2p: %zu candidates gathered before the keys%s",
                       n->nlocal, n->pending_gathers ? ", more to come" : "");
        for (size_t i = 0; i < n->nlocal; i++)
            offer_local(n, &n->local[i]);
    } else {
        start_gathering(n);
    }
    send_done_if_ready(n);
    if (prepared) tallow__punch_update(&n->punch);
    return 0;
}

int tallow__neg_on_candidates(tallow__session *s, const tallow_msg_type *t, const void *msg,
                              void *ud)
{
    tallow__neg *n = ud;
    (void)s;
    switch (t->id) {
    case TALLOW_MSG_CandidateOffer: {
        const tallow_msg_CandidateOffer *o = msg;
        struct sockaddr_storage a;
        socklen_t alen;
        if (n->state != TALLOW__NEG_PENDING) return 1;
        if (tallow_sockaddr_decode(o->addr.ptr, o->addr.len, &a, &alen) != 0) return 1;
        alen = tallow_sockaddr_unmap(&a, alen); /* an IPv4 peer is paired as IPv4 */
        uint32_t kind = o->kind <= TALLOW_CAND_MAPPED ? o->kind : TALLOW_CAND_RELAYED;
        neg_pair *p = pair_add(n, (struct sockaddr *)&a, alen, kind, o->priority, n->udp);
        if (p) {
            tallow_candidate rc = {.kind = kind, .priority = o->priority, .addr_len = alen};
            memcpy(&rc.addr, &a, alen);
            tallow__punch_remote(&n->punch, &rc, o->foundation.ptr, o->foundation.len);
        }
        char as[64];
        tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG, "p2p: peer offers %s %s%s",
                       tallow__neg_kind_name(kind), addr_str(&a, as, sizeof(as)),
                       p ? "" : " (refused)");
        /* a new pair is checked at once when the pacing allows, not at the next tick */
        if (p && p->state == P_WAITING && n->tick && now_ms() - n->last_check >= NEG_PACE_MS)
            tallow__neg_tick(n->tick, n);
        if (n->state == TALLOW__NEG_PENDING) tallow__punch_update(&n->punch);
        return 1;
    }
    case TALLOW_MSG_CandidatesDone:
        n->remote_done = 1;
        return 1;
    default:
        return 0;
    }
}

int tallow__neg_state(const tallow__neg *n)
{
    return n ? n->state : TALLOW__NEG_OFF;
}

const char *tallow__neg_why(const tallow__neg *n)
{
    return n && n->state == TALLOW__NEG_FAILED ? n->why : "";
}

int tallow__neg_winner(const tallow__neg *n, const char **local, const char **remote, double *ms)
{
    if (!n || n->state != TALLOW__NEG_DIRECT || n->nominated < 0) return TALLOW_ENOTFOUND;
    const neg_pair *p = &n->pairs[n->nominated];
    *local = tallow__neg_kind_name(p->local_kind);
    *remote = tallow__neg_kind_name(p->kind);
    *ms = n->direct_ms;
    return 0;
}

void tallow__neg_end(tallow__neg *n)
{
    n->state = n->state == TALLOW__NEG_PENDING ? TALLOW__NEG_FAILED : n->state;
    tallow__neg_stop_timer(&n->tick);
    tallow__neg_stop_timer(&n->deadline);
    tallow__neg_stop_timer(&n->settle);
    if (n->quic && !n->quic_handed) tallow_channel_close(n->quic);
    n->quic = NULL;
    if (n->udp) tallow_udp_on(n->udp, TALLOW_UDP_CHECK, NULL, NULL);
    n->dead = 1;
    /* gatherers that can stop early (port mapping) answer now instead of at their bound */
    if (n->pending_gathers > 0 && n->udp) {
        n->releasing = 1;
        tallow_gatherer_foreach(n->ctx, release_one, n->udp);
        n->releasing = 0;
    }
    if (n->pending_gathers == 0) finish_free(n);
}
