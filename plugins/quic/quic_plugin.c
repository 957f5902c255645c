/* quic_plugin.c — the "quic" transport: a tallow channel over one QUIC connection (quic_conn.c)
 * on the core's shared UDP endpoint. Frames travel on the stream as a 4-byte big-endian length
 * and the frame bytes. Timers and flushes run on the context's loop. */
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

#define QUIC_DEFAULT_TIMEOUT_MS 5000
#define QUIC_MAX_FRAME (16u << 20)
#define QUIC_GSO_BYTES 65000 /* one UDP_SEGMENT send must stay under 64 KiB */
#define QUIC_STD_DGRAM 1452  /* datagrams on an ordinary path */
/* Read between our flushes (which carry acknowledgements): this many datagrams or bytes. */
#define QUIC_ACK_DGRAMS 32
#define QUIC_ACK_BYTES (256u << 10)
/* A direct path that dies mid-transfer: once packets are in flight and nothing at all has come
 * back for 3 smoothed RTTs plus QUIC_DEAD_SLACK_MS (a live path acknowledges within about one
 * RTT plus the peer's ACK delay, even at a few % loss), the channel closes with TALLOW_ETIMEOUT
 * and the session goes on over the relay — instead of QUIC's 30 s idle timeout. Checked every
 * QUIC_WATCH_MS, on internet paths only: towards a peer on loopback or on-link, silence is the
 * peer's process being busy (a loaded machine kept one quiet for 0.9 s while it drained a relay
 * backlog), and the idle timeout still applies there. The slack is 3 s, not less: a receiver
 * whose loop waited on the disk (the fsync before a 30 MB file's rename, on a loaded machine)
 * was silent for 1.8 s across two NATs, and a path declared dead while the peer's last frames are
 * on it costs more than a dead path found 2 s later. */
#define QUIC_DEAD_SLACK_MS 3000
/* Close waits until the peer has acknowledged every byte we wrote (our last frames: a
 * receiver's TransferComplete), at most 3 smoothed RTTs plus QUIC_LINGER_SLACK_MS (a peer on a
 * busy machine acknowledges late) and never more than QUIC_LINGER_MAX_MS. */
#define QUIC_LINGER_SLACK_MS 250
#define QUIC_LINGER_MAX_MS 1000
#define QUIC_WATCH_MS 100

typedef struct quic_plugin {
    const tallow_host *host;
} quic_plugin;

typedef struct quic_link quic_link;

/* The instance the host allocates and frees. Everything that must outlive a close called from
 * inside one of our own callbacks lives in the separately allocated link. */
typedef struct quic_chan {
    tallow_channel base; /* first */
    quic_link *link;
} quic_chan;

struct quic_link {
    tallow_channel *ch; /* NULL once closed: no more events */
    const tallow_host *host;
    tallow_loop *loop;
    tallow_udp *udp; /* NULL once our CONNECTION_CLOSE went out */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int initiator;
    quic_conn *qc;
    tallow_timer *timer; /* the connection's next expiry */
    uint64_t timer_due_ms;
    tallow_timer *open_timer; /* gives up opening */
    tallow_timer *watch;      /* dead-path watchdog, once connected (internet paths) */
    int internet;             /* the peer is neither local nor on-link */
    int defer_pending;        /* a link_on_defer is queued: the link must stay allocated */
    int depth;                /* our entry points on the stack */
    int in_quic;              /* inside a quic_conn call: no quic_conn_close now */
    /* The last datagram from the peer, or the last moment nothing was in flight. */
    uint64_t heard_ns;
    int ready, failed, dead, quic_closed, proto_err, want_writable;
    size_t rx_unflushed; /* bytes read since our last flush (it carries our ACK) */
    unsigned rx_dgrams;  /* datagrams read since then */
    uint32_t max_dgram;  /* last seen: a drop is worth a log line */
    /* Frame bytes waiting for room in the connection's own (8 MiB) send buffer. */
    uint8_t *pend;
    size_t pend_off, pend_len, pend_cap;
    /* The frame being received. */
    uint8_t hdr[4];
    size_t hdr_got;
    uint8_t *rx;
    size_t rx_len, rx_got, rx_cap;
    char path[80];
    char stats[400];    /* quic_get_info's stats, and the debug line at close */
    uint32_t rx_drops0; /* the socket's drop count when we opened (SO_MEMINFO) */
    uint32_t rx_drops;  /* datagrams the kernel dropped at our socket since (buffer full) */
    uint64_t defers;    /* flushes run at the start of a loop round */
    uint64_t timers;    /* flushes run by the connection's timer */
    int stats_logged;
    int lingering; /* inside link_linger: datagrams still go to the connection */
    int gro;       /* the endpoint receives coalesced datagrams (UDP_GRO) */
};

static void link_schedule(quic_link *l);

/* Datagrams the kernel dropped at the socket (its buffer was full), from SO_MEMINFO. */
static uint32_t link_sock_drops(tallow_udp *u)
{
#ifdef SO_MEMINFO
    uint32_t mi[SK_MEMINFO_VARS] = {0};
    socklen_t ml = sizeof(mi);
    if (u && getsockopt(tallow_udp_fd(u), SOL_SOCKET, SO_MEMINFO, mi, &ml) == 0 &&
        ml > SK_MEMINFO_DROPS * sizeof(uint32_t))
        return mi[SK_MEMINFO_DROPS];
#else
    (void)u;
#endif
    return 0;
}

/* The counters as "name=value ..." into l->stats. */
static const char *link_stats(quic_link *l)
{
    quic_conn_stat st;
    if (!l->qc) return l->stats;
    quic_conn_get_stat(l->qc, &st);
    if (l->udp) l->rx_drops = link_sock_drops(l->udp) - l->rx_drops0;
    snprintf(l->stats, sizeof(l->stats),
             "tx_dgrams=%llu tx_bytes=%llu tx_calls=%llu tx_failed=%llu tx_nodata=%llu "
             "rx_dgrams=%llu rx_bytes=%llu rx_drops=%u recoveries=%llu loss_timer=%llu "
             "cwnd_stops=%llu pace_stops=%llu fc_stops=%llu ring_full=%llu flushes=%llu "
             "timers=%llu max_dgram=%u cwnd=%llu rtt_us=%llu gro=%d",
             (unsigned long long)st.tx_dgrams, (unsigned long long)st.tx_bytes,
             (unsigned long long)st.tx_calls, (unsigned long long)st.tx_failed,
             (unsigned long long)st.tx_nodata, (unsigned long long)st.rx_dgrams,
             (unsigned long long)st.rx_bytes, (unsigned)l->rx_drops,
             (unsigned long long)st.recoveries, (unsigned long long)st.loss_timer,
             (unsigned long long)st.cwnd_stops, (unsigned long long)st.pace_stops,
             (unsigned long long)st.fc_stops, (unsigned long long)st.ring_full,
             (unsigned long long)l->defers, (unsigned long long)l->timers, (unsigned)st.max_dgram,
             (unsigned long long)st.cwnd, (unsigned long long)(st.rtt_ns / 1000u), l->gro);
    return l->stats;
}

/* One debug line per connection, when it closes. */
static void link_log_stats(quic_link *l)
{
    if (l->stats_logged || !l->qc || !l->host) return;
    l->stats_logged = 1;
    l->host->log(l->host->ctx, TALLOW_LOG_DEBUG, "%s: closed: %s", l->path, link_stats(l));
}

/* ---- lifetime ----------------------------------------------------------------------------- */

static void link_quic_close(quic_link *l)
{
    if (l->quic_closed) return;
    l->quic_closed = 1;
    if (l->udp && l->qc) quic_conn_close(l->qc, tallow_now_ns());
    link_log_stats(l);
    l->udp = NULL;
}

/* Once closed and out of our own frames: the connection and buffers go at once; the small link
 * itself waits for a queued deferred flush (defers cannot be cancelled). */
static void link_maybe_destroy(quic_link *l)
{
    if (!l->dead || l->depth > 0) return;
    if (l->qc) {
        link_quic_close(l);
        link_log_stats(l);
        if (l->timer) tallow_timer_stop(l->timer);
        if (l->open_timer) tallow_timer_stop(l->open_timer);
        if (l->watch) tallow_timer_stop(l->watch);
        l->timer = l->open_timer = l->watch = NULL;
        quic_conn_free(l->qc);
        l->qc = NULL;
        free(l->pend);
        free(l->rx);
        l->pend = l->rx = NULL;
    }
    if (!l->defer_pending) free(l);
}

static void link_enter(quic_link *l)
{
    l->depth++;
}

static void link_leave(quic_link *l)
{
    if (--l->depth == 0) link_maybe_destroy(l);
}

static void link_fail(quic_link *l, int err)
{
    if (l->failed) return;
    l->failed = 1;
    if (l->open_timer) {
        tallow_timer_stop(l->open_timer);
        l->open_timer = NULL;
    }
    if (l->ch) l->ch->ev->on_closed(l->ch, err, l->ch->ev_ud);
}

/* After every quic_conn call: what had to wait until we were out of it. */
static void link_quic_done(quic_link *l)
{
    l->in_quic = 0;
    if (l->dead && !l->lingering) {
        link_quic_close(l);
    } else if (l->proto_err && !l->failed) {
        link_quic_close(l);
        link_fail(l, TALLOW_EPROTO);
    }
}

/* ---- quic_conn events --------------------------------------------------------------------- */

static int link_send(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *data,
                     size_t len, size_t segsz)
{
    quic_link *l = ud;
    if (!l->udp) return -EPIPE;
    size_t chunk = segsz && segsz < QUIC_GSO_BYTES ? (QUIC_GSO_BYTES / segsz) * segsz : len;
    int total = 0;
    while (len) {
        size_t k = len < chunk ? len : chunk;
        size_t want = segsz ? (k + segsz - 1) / segsz : 1;
        int rv = tallow_udp_send_batch(l->udp, to, tolen, data, k, segsz ? segsz : k);
        if (rv < 0) return total ? total : rv;
        total += rv;
        if ((size_t)rv < want) break; /* the socket is full: the rest is lost */
        data += k;
        len -= k;
    }
    return total;
}

static void link_on_watch(tallow_timer *t, void *ud);

static void link_on_connected(void *ud)
{
    quic_link *l = ud;
    l->ready = 1;
    if (l->open_timer) {
        tallow_timer_stop(l->open_timer);
        l->open_timer = NULL;
    }
    l->heard_ns = tallow_now_ns();
    if (l->internet && !l->watch)
        l->watch = tallow_timer_start(l->loop, QUIC_WATCH_MS, QUIC_WATCH_MS, link_on_watch, l);
    if (l->ch && !l->failed && l->ch->ev->on_ready) l->ch->ev->on_ready(l->ch, l->ch->ev_ud);
}

static void link_deliver(quic_link *l, const uint8_t *frame, size_t len)
{
    if (l->ch && !l->failed) l->ch->ev->on_frame(l->ch, 0, frame, len, l->ch->ev_ud);
}

/* Stream bytes → whole frames; a frame wholly inside one chunk is delivered without a copy. */
static void link_on_data(void *ud, const uint8_t *d, size_t n)
{
    quic_link *l = ud;
    while (n && l->ch && !l->failed && !l->proto_err) {
        if (l->hdr_got < 4) {
            size_t k = 4 - l->hdr_got < n ? 4 - l->hdr_got : n;
            memcpy(l->hdr + l->hdr_got, d, k);
            l->hdr_got += k;
            d += k;
            n -= k;
            if (l->hdr_got < 4) return;
            l->rx_len = (size_t)l->hdr[0] << 24 | (size_t)l->hdr[1] << 16 | (size_t)l->hdr[2] << 8 |
                        l->hdr[3];
            l->rx_got = 0;
            if (l->rx_len > QUIC_MAX_FRAME) {
                l->proto_err = 1; /* acted upon once out of quic_conn (link_quic_done) */
                return;
            }
            if (l->rx_len <= n) {
                link_deliver(l, l->rx_len ? d : l->hdr, l->rx_len);
                d += l->rx_len;
                n -= l->rx_len;
                l->hdr_got = 0;
                continue;
            }
            if (l->rx_cap < l->rx_len) {
                uint8_t *p = realloc(l->rx, l->rx_len);
                if (!p) {
                    l->proto_err = 1;
                    return;
                }
                l->rx = p;
                l->rx_cap = l->rx_len;
            }
        }
        size_t k = l->rx_len - l->rx_got < n ? l->rx_len - l->rx_got : n;
        memcpy(l->rx + l->rx_got, d, k);
        l->rx_got += k;
        d += k;
        n -= k;
        if (l->rx_got == l->rx_len) {
            l->hdr_got = 0;
            link_deliver(l, l->rx, l->rx_len);
        }
    }
}

static void link_pump(quic_link *l)
{
    while (l->pend_len) {
        size_t k = quic_conn_write(l->qc, l->pend + l->pend_off, l->pend_len);
        if (!k) return;
        l->pend_off += k;
        l->pend_len -= k;
    }
    l->pend_off = 0;
}

static void link_on_writable(void *ud)
{
    quic_link *l = ud;
    link_pump(l);
    if (!l->pend_len && l->want_writable && l->ch && !l->failed) {
        l->want_writable = 0;
        if (l->ch->ev->on_writable) l->ch->ev->on_writable(l->ch, l->ch->ev_ud);
    }
}

static void link_on_closed(void *ud, int err)
{
    quic_link *l = ud;
    l->quic_closed = 1; /* nothing more to send */
    link_log_stats(l);
    link_fail(l, err);
}

static const quic_conn_cbs link_cbs = {link_send, link_on_connected, link_on_data, link_on_writable,
                                       link_on_closed};

/* ---- loop plumbing ------------------------------------------------------------------------ */

/* Logs when large datagrams start, and when they stop because the path dropped them. */
static void link_note_dgram(quic_link *l)
{
    quic_conn_stat st;
    quic_conn_get_stat(l->qc, &st);
    if (st.max_dgram == l->max_dgram || !l->host) return;
    if (st.max_dgram > QUIC_STD_DGRAM && l->max_dgram <= QUIC_STD_DGRAM)
        l->host->log(l->host->ctx, TALLOW_LOG_INFO, "%s: datagrams of %u bytes", l->path,
                     (unsigned)st.max_dgram);
    else if (st.max_dgram < l->max_dgram && l->max_dgram > QUIC_STD_DGRAM)
        l->host->log(l->host->ctx, TALLOW_LOG_WARN,
                     "%s: datagrams of %u bytes went unacknowledged; back to %u", l->path,
                     (unsigned)l->max_dgram, (unsigned)st.max_dgram);
    l->max_dgram = st.max_dgram;
}

static void link_on_defer(void *ud)
{
    quic_link *l = ud;
    l->defer_pending = 0;
    link_enter(l);
    if (!l->dead && !l->quic_closed) {
        uint64_t now = tallow_now_ns();
        l->defers++;
        l->rx_unflushed = 0;
        l->rx_dgrams = 0;
        l->in_quic = 1;
        if (quic_conn_expiry(l->qc) <= now)
            quic_conn_on_expiry(l->qc, now);
        else
            quic_conn_flush(l->qc, now);
        link_quic_done(l);
        if (!l->dead && !l->quic_closed) link_note_dgram(l);
        link_schedule(l);
    }
    link_leave(l);
}

/* Runs a flush at the start of the next loop round (once per round however many requests). */
static void link_request_flush(quic_link *l)
{
    if (!l->defer_pending && !l->dead && tallow_defer(l->loop, link_on_defer, l) == 0)
        l->defer_pending = 1;
}

static void link_on_timer(tallow_timer *t, void *ud)
{
    quic_link *l = ud;
    (void)t;
    l->timer = NULL; /* one-shot: freed by the loop */
    l->timers++;
    link_request_flush(l);
}

/* Arms the loop for the connection's next deadline. Timers have millisecond resolution, so a
 * deadline within the next millisecond (pacing) runs at the next round instead. */
static void link_schedule(quic_link *l)
{
    if (l->dead || l->quic_closed) return;
    uint64_t e = quic_conn_expiry(l->qc), now = tallow_now_ns();
    if (e == UINT64_MAX) return;
    if (e <= now + 1000000u) {
        link_request_flush(l);
        return;
    }
    uint64_t due_ms = (e + 999999u) / 1000000u;
    if (l->timer && l->timer_due_ms == due_ms) return;
    if (l->timer) tallow_timer_stop(l->timer);
    l->timer = tallow_timer_start(l->loop, due_ms - now / 1000000u, 0, link_on_timer, l);
    l->timer_due_ms = due_ms;
}

static void link_on_dgram(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                          const uint8_t *data, size_t len, void *ud)
{
    quic_link *l = ud;
    (void)u;
    if ((l->dead && !l->lingering) || l->quic_closed) return;
    link_enter(l);
    l->in_quic = 1;
    uint64_t now = tallow_now_ns();
    l->heard_ns = now;
    quic_conn_recv(l->qc, from, fromlen, data, len, now);
    /* The window ngtcp2 allows is ~3x bandwidth x the idle RTT, less than one wakeup's worth of
     * datagrams (up to 256): acknowledging only at the end of the batch left the sender idle. */
    l->rx_unflushed += len;
    if ((l->rx_unflushed >= QUIC_ACK_BYTES || ++l->rx_dgrams >= QUIC_ACK_DGRAMS) && !l->dead &&
        !l->quic_closed) {
        l->rx_unflushed = 0;
        l->rx_dgrams = 0;
        quic_conn_flush(l->qc, now);
    }
    link_quic_done(l);
    link_request_flush(l); /* acknowledgements and whatever the data unblocked */
    link_leave(l);
}

/* The dead-path watchdog (see QUIC_DEAD_SLACK_MS). Silence only counts while something is in
 * flight: an idle path, or a receiver that only acknowledges, is never declared dead here. */
static void link_on_watch(tallow_timer *t, void *ud)
{
    quic_link *l = ud;
    (void)t;
    if (l->dead || l->failed || l->quic_closed || l->in_quic || !l->qc) return;
    quic_conn_stat st;
    quic_conn_get_stat(l->qc, &st);
    uint64_t now = tallow_now_ns();
    if (!st.in_flight) {
        l->heard_ns = now;
        return;
    }
    uint64_t limit = 3 * st.rtt_ns + (uint64_t)QUIC_DEAD_SLACK_MS * 1000000u;
    if (now - l->heard_ns <= limit) return;
    l->host->log(l->host->ctx, TALLOW_LOG_WARN,
                 "%s: nothing heard for %llu ms with %llu bytes in flight (RTT %llu ms): path dead",
                 l->path, (unsigned long long)((now - l->heard_ns) / 1000000u),
                 (unsigned long long)st.in_flight, (unsigned long long)(st.rtt_ns / 1000000u));
    link_enter(l);
    link_quic_close(l);
    link_fail(l, TALLOW_ETIMEOUT);
    link_leave(l);
}

static void link_on_open_timeout(tallow_timer *t, void *ud)
{
    quic_link *l = ud;
    (void)t;
    l->open_timer = NULL;
    if (l->ready || l->failed) return;
    link_enter(l);
    link_quic_close(l);
    link_fail(l, TALLOW_ETIMEOUT);
    link_leave(l);
}

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
    l->qc = quic_conn_new(!p->initiator, p->psk, (struct sockaddr *)&local, llen, p->peer,
                          p->peer_len, max_udp, rcvbuf > 0 ? (size_t)rcvbuf : 0, &link_cbs, l,
                          tallow_now_ns());
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

/* The bounded wait of QUIC_LINGER_*: pending frames go into the connection, then an orderly
 * shutdown, and the socket is served here (outside the loop: the channel is going away) until
 * the peer acknowledged everything, its CONNECTION_CLOSE came, or the time is up. */
static void link_linger(quic_link *l)
{
    quic_conn_stat st;
    quic_conn_get_stat(l->qc, &st);
    if (!l->udp || l->quic_closed || l->failed || !l->ready || (!l->pend_len && !st.queued)) return;
    uint64_t start = tallow_now_ns(), now = start;
    uint64_t limit = 3 * st.rtt_ns + (uint64_t)QUIC_LINGER_SLACK_MS * 1000000u;
    if (limit > (uint64_t)QUIC_LINGER_MAX_MS * 1000000u)
        limit = (uint64_t)QUIC_LINGER_MAX_MS * 1000000u;
    int shut = 0;
    l->depth++; /* nothing frees the link in here */
    l->lingering = 1;
    while (!l->quic_closed && !l->proto_err && now - start < limit) {
        link_pump(l);
        if (!l->pend_len && !shut) {
            quic_conn_shutdown(l->qc);
            shut = 1;
        }
        l->in_quic = 1;
        if (quic_conn_expiry(l->qc) <= now)
            quic_conn_on_expiry(l->qc, now);
        else
            quic_conn_flush(l->qc, now);
        l->in_quic = 0;
        if (l->quic_closed) break;
        uint64_t e = quic_conn_expiry(l->qc), end = start + limit;
        if (e > end) e = end;
        int ms = e > now ? (int)((e - now + 999999u) / 1000000u) : 0;
        if (tallow_udp_wait(l->udp, TALLOW_UDP_QUIC, ms) < 0) break;
        now = tallow_now_ns();
    }
    if (l->host)
        l->host->log(l->host->ctx, TALLOW_LOG_DEBUG, "%s: close waited %.1f ms (%s)", l->path,
                     (double)(now - start) / 1e6,
                     l->quic_closed ? "all acknowledged" : "gave up: unacknowledged data");
    l->lingering = 0;
    l->depth--;
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
    quic_plugin *p = host->alloc(sizeof(*p));
    if (!p) return TALLOW_ENOMEM;
    p->host = host;
    int rv = host->register_transport(host->ctx, &quic_ops, p);
    if (rv < 0) {
        host->free(p);
        return rv;
    }
    *state_out = p;
    return 0;
}

static void quic_fini(void *state)
{
    quic_plugin *p = state;
    if (p) p->host->free(p);
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
