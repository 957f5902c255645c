/* core/session/negotiate_rate.c — is the direct path worth keeping? A UDP path can be shaped far
 * below what the same two hosts get over TCP (a policer on UDP, a congested or rate-limited
 * mobile uplink). While our sends saturate the direct path (its send queue never empties) we
 * measure what it delivers, second by second; once our sends have kept it busy for
 * PROBE_AFTER_MS in all, the last RATE_WINDOWS seconds in a row limited by the network (a
 * congestion event in each, this process mostly idle: not our CPU, which would limit the relay
 * path as much) at a steady rate (not a start-up or a recovery), once per session, we time the
 * relay with a probe: PROBE_SPAN_* worth of filler at that rate, in KIND_PROBE frames on the
 * relay (session_int.h), which the peer counts and answers with PathProbeDone over the direct
 * path. Where both paths share their bottleneck (the usual case: one access link) the probe
 * takes its span of that link from the transfer and shows no gain, so it waits until the
 * transfer has run ten times that long: a shorter transfer never pays for it.
 * If the relay delivered it PROBE_FACTOR times faster than the direct path carries data, we go
 * back to the relay for good (tallow__neg_leave_direct): the transfer resynchronises there.
 *
 * The probe proves only what it measured: its time runs from our first filler frame to the
 * peer's answer, less half the direct RTT the answer took, so a relay (honest or not) cannot look
 * faster than our own link to it carried the filler. An answer later than the bound the factor
 * sets ends the probe early: the relay is not faster, and the direct path stays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "negotiate_int.h"

#define RATE_TICK_MS 250
#define RATE_WINDOW_MS 1000           /* one measure of the direct path's rate */
#define RATE_WINDOWS NEG_RATE_WINDOWS /* network-limited and steady, in a row */
#define RATE_STEADY 1.5   /* steady: the fastest of them at most this times the slowest */
#define RATE_BUSY_MAX 0.5 /* network-limited: this process used at most half a core */
#define PROBE_FACTOR 2.0  /* the relay must be this much faster */
/* A probe is the direct path's rate times max(PROBE_SPAN_MS, PROBE_SPAN_RTTS x the RTT), within
 * the bounds: TCP's slow start on a relay connection that sat idle takes ~log2(size/14 KiB)
 * round trips, so a probe too short cannot show a relay faster at a long RTT. */
#define PROBE_SPAN_MS 1000u
#define PROBE_AFTER_MS 10000u /* of saturated direct path before a probe */
#define PROBE_SPAN_RTTS 16u
#define PROBE_MIN (1u * 1024u * 1024u)
#define PROBE_MAX (24u * 1024u * 1024u)
#define PROBE_ANSWERS 4 /* the peer's probes we answer per session (each costs it a message) */

static double mbit(double bytes_per_s)
{
    return bytes_per_s * 8.0 / 1e6;
}

/* The counter `name` of a channel's "name=value ..." stats, 0 when absent. */
static uint64_t stat_of(const char *stats, const char *name)
{
    size_t k = strlen(name);
    for (const char *p = stats; p && *p;) {
        if (strncmp(p, name, k) == 0 && p[k] == '=') return strtoull(p + k + 1, NULL, 10);
        p = strchr(p, ' ');
        if (p) p++;
    }
    return 0;
}

/* What the peer acknowledged on the direct path so far; its RTT and congestion events. */
static uint64_t acked_bytes(tallow__neg *n, uint64_t *rtt_us, uint64_t *losses)
{
    tallow_channel_info info = {0};
    tallow_channel_get_info(n->quic, &info);
    if (rtt_us) *rtt_us = info.rtt_us;
    if (losses) *losses = stat_of(info.stats, "recoveries");
    return info.bytes_sent;
}

/* CPU seconds this process used so far (every thread: the disk work's too). */
static double cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A window starts from readings already taken (bytes acknowledged, congestion events, CPU). */
static void window_start(tallow__neg *n, uint64_t now, uint64_t acked, uint64_t losses, double cpu)
{
    n->rate_t0 = now;
    n->rate_b0 = acked;
    n->rate_l0 = losses;
    n->rate_c0 = cpu;
}

static void probe_start(tallow__neg *n, double rd, uint64_t rtt_us, uint64_t now)
{
    uint64_t span_ms = PROBE_SPAN_RTTS * rtt_us / 1000u;
    if (span_ms < PROBE_SPAN_MS) span_ms = PROBE_SPAN_MS;
    double want = rd * (double)span_ms / 1000.0;
    uint64_t len = want < PROBE_MIN ? PROBE_MIN : want > PROBE_MAX ? PROBE_MAX : (uint64_t)want;
    n->probe_id++;
    n->probe_len = len;
    n->probe_direct_bps = rd;
    n->probe_start_ns = now;
    /* the answer must come by then for the relay to be PROBE_FACTOR times faster */
    n->probe_deadline_ns =
        now + (uint64_t)((double)len / (PROBE_FACTOR * rd) * 1e9) + rtt_us * 1000u;
    n->probe_state = NEG_PROBE_RUNNING;
    tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG,
                   "p2p: the direct path carries %.1f Mbit/s; timing the relay with %llu bytes",
                   mbit(rd), (unsigned long long)len);
    for (uint64_t off = 0; off < len;) {
        size_t k =
            len - off < TALLOW__PROBE_FRAME_MAX ? (size_t)(len - off) : TALLOW__PROBE_FRAME_MAX;
        int rc = tallow__session_send_probe(n->s, n->probe_id, k, off + k == len);
        if (rc < 0) {
            tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG, "p2p: relay probe not sent: %s",
                           tallow_strerror(rc));
            n->probe_state = NEG_PROBE_DONE;
            return;
        }
        off += k;
    }
}

static void rate_tick(tallow_timer *t, void *ud)
{
    tallow__neg *n = ud;
    (void)t;
    if (n->lost || n->relay_dead || !n->quic || tallow__session_on_first(n->s) ||
        !tallow__session_is_ready(n->s) || (n->probe_state == NEG_PROBE_DONE && !n->handback)) {
        tallow__neg_rate_stop(n);
        return;
    }
    if (n->handback) {
        tallow__neg_leave_direct(n, "the relay is faster", 1); /* stops this timer */
        return;
    }
    uint64_t now = tallow_now_ns();
    if (n->probe_state == NEG_PROBE_RUNNING) {
        if (now <= n->probe_deadline_ns) return;
        tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG,
                       "p2p: the relay did not deliver the probe %.0f times faster than the "
                       "direct path (%.1f Mbit/s); staying direct",
                       PROBE_FACTOR, mbit(n->probe_direct_bps));
        n->probe_state = NEG_PROBE_DONE;
        tallow__neg_rate_stop(n);
        return;
    }
    if (tallow_channel_queued(n->quic) == 0) { /* not saturated: what it carries says nothing */
        n->rate_t0 = 0; /* the next window starts when our sends fill the path again */
        n->rate_nwin = 0;
        return;
    }
    n->rate_busy_ms += RATE_TICK_MS;
    if (n->rate_t0 && now - n->rate_t0 < (uint64_t)RATE_WINDOW_MS * 1000000u) return;
    uint64_t rtt_us = 0, losses = 0, b = acked_bytes(n, &rtt_us, &losses);
    double cpu = cpu_seconds();
    if (!n->rate_t0) {
        window_start(n, now, b, losses, cpu);
        return;
    }
    double secs = (double)(now - n->rate_t0) / 1e9, rate = (double)(b - n->rate_b0) / secs;
    double busy = (cpu - n->rate_c0) / secs, l0 = (double)n->rate_l0;
    window_start(n, now, b, losses, cpu);
    /* Only a window that the network limited counts: it saw a congestion event, and this
     * process was mostly idle (a path our CPU or disk limits would be no faster on the relay,
     * whose pipe a probe would time without those costs). */
    if (rate <= 0 || (double)losses == l0 || busy > RATE_BUSY_MAX) {
        n->rate_nwin = 0;
        return;
    }
    n->rate_win[n->rate_nwin++ % RATE_WINDOWS] = rate;
    if (n->rate_nwin < RATE_WINDOWS) return;
    /* and steadily so (not a start-up or a recovery still under way) */
    double lo = n->rate_win[0], hi = lo, sum = 0;
    for (int i = 0; i < RATE_WINDOWS; i++) {
        double r = n->rate_win[i];
        lo = r < lo ? r : lo;
        hi = r > hi ? r : hi;
        sum += r;
    }
    if (hi > RATE_STEADY * lo || n->rate_busy_ms < PROBE_AFTER_MS) return;
    probe_start(n, sum / RATE_WINDOWS, rtt_us, now);
}

void tallow__neg_rate_start(tallow__neg *n)
{
    if (n->rate_tick || n->probe_state != NEG_PROBE_NONE || !n->quic ||
        !tallow__session_can_probe(n->s))
        return;
    n->rate_t0 = 0; /* the first window starts at the first tick that finds the path full */
    n->rate_tick = tallow_timer_start(n->loop, RATE_TICK_MS, RATE_TICK_MS, rate_tick, n);
}

void tallow__neg_rate_stop(tallow__neg *n)
{
    tallow__neg_stop_timer(&n->rate_tick);
}

void tallow__neg_probe_in(void *st, uint64_t id, size_t len, int last)
{
    tallow__neg *n = st;
    if (id < n->rx_probe_id) return; /* an older probe's rest */
    if (id > n->rx_probe_id) {
        n->rx_probe_id = id;
        n->rx_probe_bytes = 0;
    }
    n->rx_probe_bytes += len;
    if (!last || n->rx_probe_answers >= PROBE_ANSWERS) return;
    n->rx_probe_answers++;
    tallow_msg_PathProbeDone m = {.id = id, .bytes = n->rx_probe_bytes};
    tallow__session_send(n->s, &tallow_msgtype_PathProbeDone, &m);
}

int tallow__neg_on_probe_done(tallow__session *s, const tallow_msg_type *t, const void *msg,
                              void *ud)
{
    tallow__neg *n = ud;
    const tallow_msg_PathProbeDone *m = msg;
    (void)s;
    (void)t;
    if (n->probe_state != NEG_PROBE_RUNNING || m->id != n->probe_id) return 1;
    n->probe_state = NEG_PROBE_DONE;
    uint64_t now = tallow_now_ns(), rtt_us = 0;
    if (n->quic) acked_bytes(n, &rtt_us, NULL);
    if (m->bytes != n->probe_len) { /* filler lost (a reconnection) or not ours: no measure */
        tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG,
                       "p2p: relay probe answered with %llu of %llu bytes; not measured",
                       (unsigned long long)m->bytes, (unsigned long long)n->probe_len);
        return 1;
    }
    uint64_t took = now - n->probe_start_ns, half = rtt_us * 500u;
    took = took > half + 1000000u ? took - half : 1000000u;
    double rr = (double)n->probe_len * 1e9 / (double)took, rd = n->probe_direct_bps;
    if (rr < PROBE_FACTOR * rd) {
        tallow_ctx_log(n->ctx, TALLOW_LOG_DEBUG,
                       "p2p: relay probe: %.1f Mbit/s, direct %.1f Mbit/s; staying direct",
                       mbit(rr), mbit(rd));
        return 1;
    }
    tallow_ctx_log(n->ctx, TALLOW_LOG_INFO,
                   "the direct path carries %.1f Mbit/s, the relay %.1f Mbit/s: back to the relay",
                   mbit(rd), mbit(rr));
    n->handback = 1; /* left in the next tick, outside the channel event that brought this */
    return 1;
}
