/* quic_plugin.c — the "quic" transport's channel operations and plugin entry: a tallow channel
 * over one QUIC connection (quic_conn*.c, run on the loop by quic_link.c) on the core's shared UDP
 * endpoint. Frames travel on the stream as a 4-byte big-endian length and the frame bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <tallow/error.h>
#include <tallow/loop.h>
#include <tallow/nat.h>
#include <tallow/plugin.h>
#include <tallow/transport.h>

#include "quic_conn.h"
#include "quic_link.h"

/* ---- transport ops ------------------------------------------------------------------------ */

static int quic_open(tallow_channel *ch, const tallow_channel_params *p)
{
    quic_chan *qch = (quic_chan *)ch;
    struct sockaddr_storage local;
    socklen_t llen;
    if (!p || !p->udp || !p->peer || !p->psk || !p->peer_len ||
        p->peer_len > sizeof(struct sockaddr_storage))
        return TALLOW_EINVAL;
    int rv = tallow_udp_local_addr(p->udp, &local, &llen);
    if (rv < 0) return rv;
    quic_link *l = calloc(1, sizeof(*l));
    if (!l) return TALLOW_ENOMEM;
    l->ch = ch;
    l->loop = ch->loop;
    l->udp = p->udp;
    memcpy(&l->peer, p->peer, p->peer_len);
    l->peer_len = p->peer_len;
    l->initiator = p->initiator;
    l->host = ((quic_plugin *)ch->plugin_state)->host;
    /* A peer on loopback or on-link: our side of the path carries what the route MTU says. */
    int mtu = tallow_udp_path_mtu(p->udp, p->peer, p->peer_len);
    size_t hdrs = p->peer->sa_family == AF_INET6 ? 48 : 28;
    size_t max_udp = mtu > 0 && (size_t)mtu > hdrs + 1200 ? (size_t)mtu - hdrs : 0;
    l->internet = mtu == 0;
    int rcvbuf = 0;
    socklen_t rl = sizeof(rcvbuf);
    if (getsockopt(tallow_udp_fd(p->udp), SOL_SOCKET, SO_RCVBUF, &rcvbuf, &rl) != 0) rcvbuf = 0;
    l->qc =
        quic_conn_new(!p->initiator, p->psk, (struct sockaddr *)&local, llen, p->peer, p->peer_len,
                      max_udp, rcvbuf > 0 ? (size_t)rcvbuf : 0, &link_cbs, l, tallow_now_ns());
    /* timeout_ms is the last field: honour it only if the caller's struct has it. */
    uint32_t timeout_ms =
        p->struct_size >= sizeof(*p) && p->timeout_ms ? p->timeout_ms : QUIC_DEFAULT_TIMEOUT_MS;
    l->open_timer = tallow_timer_start(l->loop, timeout_ms, 0, link_on_open_timeout, l);
    if (!l->qc || !l->open_timer || tallow_defer(l->loop, link_on_defer, l) != 0) {
        if (l->open_timer) tallow_timer_stop(l->open_timer);
        quic_conn_free(l->qc);
        free(l);
        return TALLOW_ENOMEM;
    }
    l->defer_pending = 1; /* the client's first flush starts the handshake */
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (p->peer->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)p->peer;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(l->path, sizeof(l->path), "direct %s:%u", host, port);
    } else if (p->peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)p->peer;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(l->path, sizeof(l->path), "direct [%s]:%u", host, port);
    } else {
        snprintf(l->path, sizeof(l->path), "direct");
    }
    l->rx_drops0 = link_sock_drops(p->udp);
#ifdef UDP_GRO
    int gro = 0;
    socklen_t gl = sizeof(gro);
    l->gro = getsockopt(tallow_udp_fd(p->udp), SOL_UDP, UDP_GRO, &gro, &gl) == 0 && gro;
#endif
    tallow_udp_on(p->udp, TALLOW_UDP_QUIC, link_on_dgram, l);
    qch->link = l;
    return 0;
}

static int quic_pend_reserve(quic_link *l, size_t add)
{
    if (l->pend_off && l->pend_off + l->pend_len + add > l->pend_cap) {
        memmove(l->pend, l->pend + l->pend_off, l->pend_len);
        l->pend_off = 0;
    }
    if (l->pend_len + add <= l->pend_cap) return 0;
    size_t cap = l->pend_cap ? l->pend_cap : 65536;
    while (cap < l->pend_len + add)
        cap *= 2;
    uint8_t *p = realloc(l->pend, cap);
    if (!p) return TALLOW_ENOMEM;
    l->pend = p;
    l->pend_cap = cap;
    return 0;
}

static void quic_pend_put(quic_link *l, const uint8_t *d, size_t n)
{
    memcpy(l->pend + l->pend_off + l->pend_len, d, n);
    l->pend_len += n;
}

static int quic_send(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len)
{
    quic_link *l = ((quic_chan *)ch)->link;
    (void)to;
    if (!l || l->failed || l->quic_closed) return TALLOW_ECLOSED;
    if (len > QUIC_MAX_FRAME) return TALLOW_ETOOBIG;
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    if (quic_pend_reserve(l, sizeof(hdr) + len) != 0) /* so the frame is taken whole or not */
        return TALLOW_ENOMEM;
    if (l->pend_len) {
        quic_pend_put(l, hdr, sizeof(hdr));
        quic_pend_put(l, frame, len);
    } else {
        size_t k = quic_conn_write(l->qc, hdr, sizeof(hdr));
        if (k < sizeof(hdr)) {
            quic_pend_put(l, hdr + k, sizeof(hdr) - k);
            quic_pend_put(l, frame, len);
        } else {
            k = quic_conn_write(l->qc, frame, len);
            quic_pend_put(l, frame + k, len - k);
        }
    }
    link_request_flush(l);
    /* Backpressure before the buffer is full: a frame that does not fit whole waits in pend and
     * is copied twice. Stopping at less than QUIC_CONN_LOWAT free, and resuming at that much,
     * keeps session-sized frames (256 KiB chunks) out of pend. */
    if (l->pend_len || quic_conn_room(l->qc) < QUIC_CONN_LOWAT) {
        l->want_writable = 1;
        quic_conn_want_writable(l->qc);
        return 1;
    }
    return 0;
}

static void quic_close_op(tallow_channel *ch)
{
    quic_chan *qch = (quic_chan *)ch;
    quic_link *l = qch->link;
    if (!l) return;
    qch->link = NULL;
    l->ch = NULL;
    l->dead = 1;
    if (!l->in_quic) link_linger(l);
    if (l->udp) tallow_udp_on(l->udp, TALLOW_UDP_QUIC, NULL, NULL);
    if (l->open_timer) {
        tallow_timer_stop(l->open_timer);
        l->open_timer = NULL;
    }
    if (l->timer) {
        tallow_timer_stop(l->timer);
        l->timer = NULL;
    }
    if (!l->in_quic) {
        link_pump(l);
        link_quic_close(l); /* else link_quic_done does it, once out of quic_conn */
    }
    link_maybe_destroy(l);
}

static void quic_get_info(tallow_channel *ch, tallow_channel_info *info)
{
    quic_link *l = ((quic_chan *)ch)->link;
    if (!l) return;
    quic_conn_stat st;
    quic_conn_get_stat(l->qc, &st);
    info->direct = 1;
    info->path = l->path;
    info->rtt_us = st.rtt_ns / 1000u;
    info->bytes_sent = st.bytes_sent;
    info->bytes_recv = st.bytes_recv;
    info->peer_index = l->initiator ? 0 : 1;
    info->peers = 2;
    info->stats = link_stats(l);
}

static size_t quic_queued(tallow_channel *ch)
{
    quic_link *l = ((quic_chan *)ch)->link;
    if (!l) return 0;
    quic_conn_stat st;
    quic_conn_get_stat(l->qc, &st);
    return l->pend_len + (size_t)st.unsent;
}

/* Limits worth knowing:
 * - one quic channel per tallow_udp endpoint (it takes the endpoint's TALLOW_UDP_QUIC handler);
 * - close waits (QUIC_LINGER_*: at most 3 RTT + 250 ms, 1 s) until the peer has acknowledged
 *   what we wrote, serving the endpoint itself meanwhile; then what is still unacknowledged may
 *   be lost. The endpoint must still be open when close runs;
 * - frames are at most 16 MiB; send() returns 1 once less than QUIC_CONN_LOWAT (512 KiB) of the
 *   connection's 8 MiB buffer is free (or a frame had to wait outside it), and on_writable
 *   follows when the backlog has moved into it and that much is free again. */
static const tallow_transport_ops quic_ops = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = sizeof(tallow_transport_ops),
    .name = "quic",
    .instance_size = sizeof(quic_chan),
    .open = quic_open,
    .send = quic_send,
    .close = quic_close_op,
    .get_info = quic_get_info,
    .queued = quic_queued,
};

/* ---- plugin entry ------------------------------------------------------------------------- */

static int quic_init(const tallow_host *host, void **state_out)
{
    quic_plugin *p = calloc(1, sizeof(*p));
    if (!p) return TALLOW_ENOMEM;
    p->host = host;
    int rv = host->register_transport(host->ctx, &quic_ops, p);
    if (rv < 0) {
        free(p);
        return rv;
    }
    *state_out = p;
    return 0;
}

static void quic_fini(void *state)
{
    quic_plugin *p = state;
    if (p) free(p);
}

static const tallow_plugin_desc quic_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "quic",
    .version = "0.1.0",
    .summary = "direct transport: QUIC (ngtcp2, TLS 1.3 PSK from the PAKE) on the punched UDP path",
    .init = quic_init,
    .fini = quic_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &quic_desc;
}
