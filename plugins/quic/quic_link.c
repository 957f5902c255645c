/* quic_link.c — one QUIC connection (quic_conn*.c) on the context's loop: its events turned
 * into frames and channel events, flushes and timers, the dead-path watchdog, the bounded wait
 * at close, and the counters. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <tallow/error.h>
#include <tallow/loop.h>
#include <tallow/nat.h>
#include <tallow/plugin.h>
#include <tallow/transport.h>

#include "quic_conn.h"
#include "quic_link.h"

static void link_schedule(quic_link *l);

/* Datagrams the kernel dropped at the socket (its buffer was full), from SO_MEMINFO. */
uint32_t link_sock_drops(tallow_udp *u)
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
const char *link_stats(quic_link *l)
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
    l->host->log(l->host, TALLOW_LOG_DEBUG, "%s: closed: %s", l->path, link_stats(l));
}

/* ---- lifetime ----------------------------------------------------------------------------- */

void link_quic_close(quic_link *l)
{
    if (l->quic_closed) return;
    l->quic_closed = 1;
    if (l->udp && l->qc) quic_conn_close(l->qc, tallow_now_ns());
    link_log_stats(l);
    l->udp = NULL;
}

/* Once closed and out of our own frames: the connection and buffers go at once; the small link
 * itself waits for a queued deferred flush (defers cannot be cancelled). */
void link_maybe_destroy(quic_link *l)
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

void link_pump(quic_link *l)
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

const quic_conn_cbs link_cbs = {link_send, link_on_connected, link_on_data, link_on_writable,
                                link_on_closed};

/* ---- loop plumbing ------------------------------------------------------------------------ */

/* Logs when large datagrams start, and when they stop because the path dropped them. */
static void link_note_dgram(quic_link *l)
{
    quic_conn_stat st;
    quic_conn_get_stat(l->qc, &st);
    if (st.max_dgram == l->max_dgram || !l->host) return;
    if (st.max_dgram > QUIC_STD_DGRAM && l->max_dgram <= QUIC_STD_DGRAM)
        l->host->log(l->host, TALLOW_LOG_INFO, "%s: datagrams of %u bytes", l->path,
                     (unsigned)st.max_dgram);
    else if (st.max_dgram < l->max_dgram && l->max_dgram > QUIC_STD_DGRAM)
        l->host->log(l->host, TALLOW_LOG_WARN,
                     "%s: datagrams of %u bytes went unacknowledged; back to %u", l->path,
                     (unsigned)l->max_dgram, (unsigned)st.max_dgram);
    l->max_dgram = st.max_dgram;
}

void link_on_defer(void *ud)
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
void link_request_flush(quic_link *l)
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

void link_on_dgram(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
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
    int queued = 0;
    if (l->udp && ioctl(tallow_udp_fd(l->udp), FIONREAD, &queued) == 0 && queued > 0) {
        l->heard_ns = now; /* the peer spoke; our loop has not read it yet */
        return;
    }
    l->host->log(l->host, TALLOW_LOG_WARN,
                 "%s: nothing heard for %llu ms with %llu bytes in flight (RTT %llu ms): path dead",
                 l->path, (unsigned long long)((now - l->heard_ns) / 1000000u),
                 (unsigned long long)st.in_flight, (unsigned long long)(st.rtt_ns / 1000000u));
    link_enter(l);
    link_quic_close(l);
    link_fail(l, TALLOW_ETIMEOUT);
    link_leave(l);
}

void link_on_open_timeout(tallow_timer *t, void *ud)
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

/* The bounded wait of QUIC_LINGER_*: pending frames go into the connection, then an orderly
 * shutdown, and the socket is served here (outside the loop: the channel is going away) until
 * the peer acknowledged everything, its CONNECTION_CLOSE came, or the time is up. */
void link_linger(quic_link *l)
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
        l->host->log(l->host, TALLOW_LOG_DEBUG, "%s: close waited %.1f ms (%s)", l->path,
                     (double)(now - start) / 1e6,
                     l->quic_closed ? "all acknowledged" : "gave up: unacknowledged data");
    l->lingering = 0;
    l->depth--;
}
