/* core/session/negotiate_path.c — the direct path's life in the session: the negotiator as the
 * session's path owner (session_path.h), QUIC on the nominated pair, the switch (our
 * DirectConnected is the last frame we send on the relay; QUIC frames wait until the peer's has
 * been processed), DirectFailed both ways, and losing the path (back to the relay in a new epoch,
 * the transfer resynchronises). Candidates, checks and nomination are negotiate.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "negotiate_int.h"

/* ---- losing the path ---------------------------------------------------------------------- */

/* Frames went into a direct path that one side has given up (its QUIC died, or it failed while
 * the other had already switched), or that we leave for the faster relay (negotiate_rate.c):
 * back to the relay under fresh keys, and a running transfer resynchronises from the receiver's
 * position, as after a relay reconnection. */
void tallow__neg_leave_direct(tallow__neg *n, const char *why, int close)
{
    if (n->lost || !tallow__session_is_ready(n->s)) return;
    n->lost = 1;
    tallow__neg_rate_stop(n);
    tallow__session_use_channel(n->s, NULL);
    /* the kept session messages go again first (a completion lost in the dead path among them) */
    tallow__session_new_epoch(n->s);
    /* the peer may not have noticed yet (its QUIC times out later): it must not keep sending
     * into the dead path, nor resume before we both resynchronise */
    tallow_msg_DirectFailed f = {.reason = {(const uint8_t *)why, strlen(why)}};
    tallow__session_send(n->s, &tallow_msgtype_DirectFailed, &f);
    tallow__session_resync(n->s);
    if (close && n->quic && n->quic_handed) {
        tallow_channel *q = n->quic;
        n->quic = NULL; /* its events stop here */
        tallow_channel_close(q);
    }
}

/* err: why the direct channel ended. 0 or TALLOW_ECLOSED is the peer closing QUIC itself (as it
 * does when its session ends right after a transfer, or leaving for the relay), so that is not
 * worth a warning. */
static void direct_lost(tallow__neg *n, int err)
{
    if (n->lost || !tallow__session_is_ready(n->s)) return;
    if (err == 0 || err == TALLOW_ECLOSED)
        tallow_ctx_log(n->ctx, TALLOW_LOG_INFO, "the peer closed the direct path; relay from here");
    else
        tallow_ctx_log(n->ctx, TALLOW_LOG_WARN, "direct path lost; continuing over the relay");
    tallow__neg_leave_direct(n, "direct path lost", 0);
}

/* ---- settling ----------------------------------------------------------------------------- */

static void settle(tallow__neg *n, int state)
{
    if (n->state != TALLOW__NEG_PENDING) return;
    n->state = state;
    tallow__punch_stop(&n->punch, n->quic_udp);
    tallow__neg_stop_timer(&n->tick);
    tallow__neg_stop_timer(&n->deadline);
    tallow__neg_stop_timer(&n->settle);
    /* the peer switched to a path we do not take: it must come back */
    if (state != TALLOW__NEG_DIRECT && n->peer_switched) direct_lost(n, TALLOW_ECANCELED);
    tallow__session_report_path(n->s, state == TALLOW__NEG_DIRECT);
}

void tallow__neg_fail(tallow__neg *n, const char *why)
{
    if (n->state != TALLOW__NEG_PENDING) return;
    double ms = (double)(tallow_now_ns() - n->start_ns) / 1e6;
    snprintf(n->why, sizeof(n->why), "%s", why);
    tallow_ctx_log(n->ctx, TALLOW_LOG_INFO,
                   "direct path failed after %.0f ms (%s); staying on the relay", ms, why);
    tallow_msg_DirectFailed m = {.reason = {(const uint8_t *)why, strlen(why)}};
    tallow__session_send(n->s, &tallow_msgtype_DirectFailed, &m);
    if (n->quic && !n->quic_handed) {
        tallow_channel *q = n->quic;
        n->quic = NULL;
        tallow_channel_close(q);
    }
    if (n->udp) tallow_udp_on(n->udp, TALLOW_UDP_CHECK, NULL, NULL);
    settle(n, TALLOW__NEG_FAILED);
    tallow__neg_release_udp(n);
}

/* ---- holding QUIC frames until the peer's switch marker ----------------------------------- */

static void hold(tallow__neg *n, const uint8_t *data, size_t len)
{
    if (n->nheld == n->capheld) {
        size_t cap = n->capheld ? n->capheld * 2 : 16;
        struct neg_held *h = realloc(n->held, cap * sizeof(*h));
        if (!h) {
            tallow__session_end(n->s, TALLOW_ENOMEM);
            return;
        }
        n->held = h;
        n->capheld = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        tallow__session_end(n->s, TALLOW_ENOMEM);
        return;
    }
    memcpy(copy, data, len);
    n->held[n->nheld++] = (struct neg_held){copy, len};
}

static void free_held(tallow__neg *n)
{
    for (size_t i = 0; i < n->nheld; i++)
        free(n->held[i].data);
    free(n->held);
    n->held = NULL;
    n->nheld = n->capheld = 0;
}

/* The peer's marker was processed: what came direct before it, in order. */
static void flush_held(tallow__neg *n)
{
    for (size_t i = 0; i < n->nheld && tallow__session_is_ready(n->s); i++)
        tallow__session_input(n->s, n->quic, n->held[i].data, n->held[i].len);
    for (size_t i = 0; i < n->nheld; i++)
        free(n->held[i].data);
    n->nheld = 0;
}

/* ---- QUIC on the nominated pair ---------------------------------------------------------- */

static void q_ready(tallow_channel *ch, void *ud)
{
    tallow__neg *n = ud;
    if (n->state != TALLOW__NEG_PENDING || ch != n->quic) return;
    tallow__neg_stop_timer(&n->tick); /* QUIC is up: the nomination arrived */
    n->quic_handed = 1;
    tallow__session_set_direct(n->s, ch); /* what the peer sends on it is taken as direct */
    n->direct_ms = (double)(tallow_now_ns() - n->start_ns) / 1e6;
    if (n->peer_switched) n->direct_rx_open = 1;
    neg_pair *p = &n->pairs[n->nominated];
    uint8_t a[32];
    int alen = tallow_sockaddr_encode((struct sockaddr *)&p->addr, p->len, a, sizeof(a));
    tallow_channel_info info = {0};
    tallow_channel_get_info(ch, &info);
    tallow_msg_DirectConnected m = {.addr = {a, alen > 0 ? (size_t)alen : 0},
                                    .rtt_us = info.rtt_us ? info.rtt_us : p->rtt_us};
    /* our switch marker goes on the relay; everything after it goes direct */
    int rc = tallow__session_send(n->s, &tallow_msgtype_DirectConnected, &m);
    if (rc >= 0 && tallow__session_on_first(n->s)) tallow__session_use_channel(n->s, ch);
    char s[64];
    tallow_ctx_log(n->ctx, TALLOW_LOG_INFO, "direct path up to %s after %.0f ms (%s)",
                   tallow_sockaddr_str((struct sockaddr *)&p->addr, s, sizeof(s)),
                   (double)(tallow_now_ns() - n->start_ns) / 1e6,
                   n->controlling ? "controlling" : "controlled");
    tallow_udp_on(n->udp, TALLOW_UDP_CHECK, NULL, NULL);
    if (n->quic_udp) tallow_udp_on(n->quic_udp, TALLOW_UDP_CHECK, NULL, NULL);
    settle(n, TALLOW__NEG_DIRECT);
    tallow__neg_rate_start(n);
}

static void q_frame(tallow_channel *ch, uint32_t from, const uint8_t *data, size_t len, void *ud)
{
    tallow__neg *n = ud;
    (void)from;
    if (!n->quic_handed) q_ready(ch, ud); /* data before our ready event */
    if (!n->quic_handed || ch != n->quic) return;
    if (!n->direct_rx_open || n->nheld) {
        hold(n, data, len);
        return;
    }
    tallow__session_input(n->s, ch, data, len);
}

static void q_writable(tallow_channel *ch, void *ud)
{
    tallow__neg *n = ud;
    if (n->quic_handed && ch == n->quic && !tallow__session_on_first(n->s))
        tallow__session_writable(n->s);
}

static void relay_gone_expired(tallow_timer *t, void *ud)
{
    tallow__neg *n = ud;
    (void)t;
    n->relay_gone_timer = NULL; /* a one-shot timer is freed after this returns */
    tallow__session_end(n->s, n->relay_gone_err);
}

static void q_closed(tallow_channel *ch, int err, void *ud)
{
    tallow__neg *n = ud;
    if (ch != n->quic) return;
    if (!n->quic_handed) {
        tallow__neg_fail(n, err == TALLOW_ETIMEOUT ? "QUIC handshake timed out"
                                                   : "QUIC handshake failed");
        return;
    }
    if (n->relay_gone) {
        /* both paths are closed now: whatever the peer sent last was delivered before this */
        tallow__neg_stop_timer(&n->relay_gone_timer);
        tallow__session_end(n->s, n->relay_gone_err);
        return;
    }
    if (n->relay_dead) {
        tallow__session_end(n->s, err); /* no path left */
        return;
    }
    /* the direct path died: fall back to the relay */
    if (!tallow__session_on_first(n->s) || n->peer_switched) direct_lost(n, err);
    tallow__session_use_channel(n->s, NULL);
}

static const tallow_channel_events q_events = {
    .on_ready = q_ready,
    .on_frame = q_frame,
    .on_writable = q_writable,
    .on_closed = q_closed,
};

void tallow__neg_open_quic(tallow__neg *n, int idx)
{
    if (n->quic || n->state != TALLOW__NEG_PENDING) return;
    n->nominated = idx;
    /* the controlling side repeats its nominating check until the peer answers it */
    if (!n->controlling || n->nom_acked) tallow__neg_stop_timer(&n->tick);
    tallow__neg_stop_timer(&n->deadline); /* from now on QUIC's own timeout bounds the attempt */
    neg_pair *p = &n->pairs[idx];
    n->quic_udp = p->via != n->udp ? p->via : NULL; /* a strategy's socket: kept, ours to close */
    const char *owner = n->quic_udp ? tallow__punch_socket_owner(&n->punch, n->quic_udp) : NULL;
    char s[64];
    tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG, "p2p: nominated %s%s%s%s; opening QUIC as %s",
                   tallow_sockaddr_str((struct sockaddr *)&p->addr, s, sizeof(s)),
                   owner ? " (" : "", owner ? owner : "", owner ? " socket)" : "",
                   n->controlling ? "client" : "server");
    /* the server waits longer: the client decides, and tells (DirectFailed) if it fails */
    tallow_channel_params cp =
        TALLOW_CHANNEL_PARAMS_INIT(.initiator = n->controlling, .udp = p->via,
                                   .peer = (struct sockaddr *)&p->addr, .peer_len = p->len,
                                   .psk = n->psk,
                                   .timeout_ms = n->controlling ? NEG_QUIC_TIMEOUT_MS
                                                                : 2 * NEG_QUIC_TIMEOUT_MS);
    int rc = tallow_channel_open(n->ctx, "quic", &cp, &q_events, n, &n->quic);
    if (rc < 0) {
        n->quic = NULL;
        tallow__neg_fail(n, rc == TALLOW_ENOTFOUND ? "no quic transport loaded"
                                                   : "QUIC could not start");
    }
}

/* ---- the switch messages ------------------------------------------------------------------ */

static int on_switch(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    tallow__neg *n = ud;
    (void)s;
    if (t->id == TALLOW_MSG_DirectConnected) {
        /* the peer's last frame on the relay: what came direct may now be processed */
        n->peer_switched = 1;
        if (n->quic_handed && !n->direct_rx_open) {
            n->direct_rx_open = 1;
            flush_held(n);
        }
        if (n->state == TALLOW__NEG_FAILED) direct_lost(n, TALLOW_ECANCELED); /* we gave up */
        return 1;
    }
    /* DirectFailed */
    const tallow_msg_DirectFailed *f = msg;
    int rlen = (int)(f->reason.len < 100 ? f->reason.len : 100);
    if (n->quic_handed && !tallow__session_on_first(n->s) && !n->lost &&
        tallow__session_is_ready(n->s)) {
        /* the peer gave up after we switched, or left for the relay */
        tallow_ctx_log(n->ctx, TALLOW_LOG_INFO,
                       "the peer left the direct path (%.*s); relay from here", rlen,
                       (const char *)f->reason.ptr);
        tallow__neg_leave_direct(n, "direct path lost", 0);
    }
    if (n->state == TALLOW__NEG_PENDING) {
        n->remote_done = 1;
        char why[128];
        snprintf(why, sizeof(why), "the peer gave up: %.*s", rlen, (const char *)f->reason.ptr);
        tallow__neg_fail(n, why);
    }
    return 1;
}

/* ---- the session's path owner ------------------------------------------------------------- */

static int owner_attach(tallow__session *s, const tallow__session_params *p, void **st)
{
    tallow__neg *n = calloc(1, sizeof(*n));
    if (!n) return TALLOW_ENOMEM;
    n->s = s;
    n->ctx = tallow__session_ctx(s);
    n->loop = tallow_ctx_loop(n->ctx);
    n->state = TALLOW__NEG_OFF;
    n->nominated = -1;
    n->controlling = p->initiator;
    n->pair = p->capacity == 0 || p->capacity == 2;
    n->p2p = p->p2p && n->pair;
    n->timeout_ms = p->p2p_timeout_ms;
    n->stun_opt = p->stun ? strdup(p->stun) : NULL;
    /* direct-path signalling is the negotiator's alone; without an attempt (policy, a room) it
     * is dropped, never acted upon */
    int rc = 0;
    rc |= tallow__session_on(s, TALLOW_MSG_CandidateOffer, tallow__neg_on_candidates, n);
    rc |= tallow__session_on(s, TALLOW_MSG_CandidatesDone, tallow__neg_on_candidates, n);
    rc |= tallow__session_on(s, TALLOW_MSG_DirectConnected, on_switch, n);
    rc |= tallow__session_on(s, TALLOW_MSG_DirectFailed, on_switch, n);
    rc |= tallow__session_on(s, TALLOW_MSG_PathProbeDone, tallow__neg_on_probe_done, n);
    if (rc < 0 || (p->stun && !n->stun_opt)) {
        free(n->stun_opt);
        free(n);
        return TALLOW_ENOMEM;
    }
    *st = n;
    return 0;
}

/* The options of an attempt: the default STUN server is the one the first channel's service
 * runs, if any (a relay answers STUN on its own port). */
static tallow__neg_opts neg_opts(tallow__neg *n, tallow_ctl_addr *relay)
{
    int has = tallow__session_control(n->s, TALLOW_CTL_STUN_SERVER, relay) == 0;
    tallow__neg_opts o = {
        .stun = n->stun_opt, .relay = has ? relay->addr : NULL, .timeout_ms = n->timeout_ms};
    return o;
}

static void owner_paired(void *st)
{
    tallow__neg *n = st;
    if (!n->p2p) return;
    tallow_ctl_addr relay = {{0}};
    tallow__neg_opts o = neg_opts(n, &relay);
    int rc = tallow__neg_prepare(n, &o);
    if (rc < 0 && rc != TALLOW_EPOLICY)
        tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG, "p2p: nothing gathered during the handshake: %s",
                       tallow_strerror(rc));
}

static void owner_keys_ready(void *st)
{
    tallow__neg *n = st;
    int rc = TALLOW_ECANCELED; /* the script turned the direct path off */
    if (n->p2p) {
        tallow_ctl_addr relay = {{0}};
        tallow__neg_opts o = neg_opts(n, &relay);
        rc = tallow__neg_begin(n, &o);
        if (rc < 0 && rc != TALLOW_EPOLICY)
            tallow_ctx_log(n->ctx, TALLOW_LOG_INFO, "direct path not attempted: %s",
                           tallow_strerror(rc));
    }
    if (rc < 0 && n->pair) {
        /* tell the peer at once, so it stops its own attempt instead of timing out */
        const char *why = rc == TALLOW_EPOLICY     ? "not allowed by the peer's policy"
                          : rc == TALLOW_ECANCELED ? "turned off by the peer"
                                                   : tallow_strerror(rc);
        tallow_msg_DirectFailed f = {.reason = {(const uint8_t *)why, strlen(why)}};
        tallow__session_send(n->s, &tallow_msgtype_DirectFailed, &f);
    }
}

static int owner_first_closed(void *st, int err)
{
    tallow__neg *n = st;
    if (!n->quic_handed) return 0;
    if (err != 0 && err != TALLOW_EPEERGONE && !n->relay_dead) {
        /* the relay died (not the peer) while frames go direct: go on; only a fallback needs it */
        n->relay_dead = 1;
        tallow_ctx_log(n->ctx, TALLOW_LOG_WARN, "relay lost (%s); going on over the direct path",
                       tallow_strerror(err));
        return 1;
    }
    if (!n->relay_gone && !n->relay_dead) {
        /* A peer that ends its session closes the direct path and then leaves the relay; the
         * two arrive on different sockets, so the relay's "left" can be read before the peer's
         * last frames on the direct path (its TransferComplete): wait for those. */
        n->relay_gone = 1;
        n->relay_gone_err = err;
        n->relay_gone_timer =
            tallow_timer_start(n->loop, NEG_RELAY_GONE_MS, 0, relay_gone_expired, n);
        if (!n->relay_gone_timer) relay_gone_expired(NULL, n);
        return 1;
    }
    return 0;
}

static void owner_detach(void *st)
{
    tallow__neg *n = st;
    tallow__neg_stop_timer(&n->relay_gone_timer);
    tallow__neg_rate_stop(n);
    if (n->quic && n->quic_handed) tallow_channel_close(n->quic); /* before its endpoint */
    if (n->quic_handed) n->quic = NULL;
    free_held(n);
    free(n->stun_opt);
    n->stun_opt = NULL;
    tallow__neg_end(n); /* frees n, now or once its gatherers answered */
}

const struct tallow__path_owner tallow__neg_owner = {
    .attach = owner_attach,
    .paired = owner_paired,
    .keys_ready = owner_keys_ready,
    .first_closed = owner_first_closed,
    .detach = owner_detach,
    .probe = tallow__neg_probe_in,
};

tallow__neg *tallow__neg_of(const tallow__session *s)
{
    return tallow__session_path_owner(s, &tallow__neg_owner);
}
