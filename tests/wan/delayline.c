/* delayline.c — a one-way delay line for the link emulator (tests/wan/link.sh). The kernel here
 * has no netem, so iptables hands every forwarded packet to NFQUEUE queue N and this program holds
 * each verdict for D milliseconds, first in first out, then accepts it. Packets are not copied to
 * user space (metadata only); verdicts go out in batches (NFQA "accept every id up to this one"),
 * which is exact for a constant delay because queue ids grow in arrival order.
 *
 *   delayline QUEUE DELAY_MS [LOSS_PCT [MAXLEN]]
 *
 * LOSS_PCT drops that share of packets at random (each on its own). The drop is here rather than
 * in an `iptables -m statistic` rule because NFQUEUE hands us packets already cut from GSO/TSO
 * bursts: a rule in front of the queue would drop a whole 64 KiB burst (44 packets) at once.
 *
 * MAXLEN (default 100000) bounds the packets held; it must cover the bandwidth-delay product
 * (500 Mbit/s over 125 ms is ~5,200 full-size packets). Beyond it the kernel drops, as a full
 * router buffer would. Prints "delayline: ready" on stderr once bound; exits on SIGTERM/SIGINT,
 * printing how many packets it delayed and dropped. */

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

typedef struct held {
    uint32_t id;
    uint64_t due_ns;
} held;

static held *ring;
static size_t ring_cap, ring_head, ring_len;
static uint64_t delay_ns, n_delayed, n_overflow, n_dropped;
static uint64_t loss_threshold; /* drop when the next 64-bit random value is below it */
static uint64_t rng_state;

/* xorshift64*: plenty for picking packets to drop. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
static volatile sig_atomic_t stop;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *ud)
{
    (void)msg;
    (void)ud;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph) return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (loss_threshold && rng_next() < loss_threshold) {
        n_dropped++;
        return nfq_set_verdict(qh, id, NF_DROP, 0, NULL);
    }
    /* Cannot happen with MAXLEN <= the ring's size; accept rather than lose. */
    if (ring_len == ring_cap) {
        n_overflow++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    ring[(ring_head + ring_len) % ring_cap] = (held){id, now_ns() + delay_ns};
    ring_len++;
    n_delayed++;
    return 0;
}

/* Accepts (in one batch verdict) every held packet whose time has come. */
static void release_due(struct nfq_q_handle *qh, uint64_t now)
{
    uint32_t last = 0;
    size_t n = 0;
    while (ring_len && ring[ring_head].due_ns <= now) {
        last = ring[ring_head].id;
        ring_head = (ring_head + 1) % ring_cap;
        ring_len--;
        n++;
    }
    if (n) nfq_set_verdict_batch(qh, last, NF_ACCEPT);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: delayline QUEUE DELAY_MS [LOSS_PCT [MAXLEN]]\n");
        return 2;
    }
    unsigned queue = (unsigned)strtoul(argv[1], NULL, 10);
    double delay_ms = strtod(argv[2], NULL);
    double loss = argc > 3 ? strtod(argv[3], NULL) : 0;
    uint32_t maxlen = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 100000;
    if (delay_ms < 0 || delay_ms > 10000 || loss < 0 || loss >= 100 || maxlen == 0) {
        fprintf(stderr, "delayline: delay must be 0..10000 ms, loss 0..<100 %%, MAXLEN > 0\n");
        return 2;
    }
    loss_threshold = (uint64_t)(loss / 100.0 * 18446744073709551615.0);
    rng_state = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    delay_ns = (uint64_t)(delay_ms * 1e6);
    ring_cap = (size_t)maxlen + 1024;
    ring = calloc(ring_cap, sizeof(*ring));
    if (!ring) return 1;

    struct nfq_handle *h = nfq_open();
    if (!h) {
        fprintf(stderr, "delayline: nfq_open: %s\n", strerror(errno));
        return 1;
    }
    nfq_unbind_pf(h, AF_INET); /* older kernels need a fresh bind; harmless otherwise */
    nfq_bind_pf(h, AF_INET);
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
    if (!qh) {
        fprintf(stderr, "delayline: queue %u: %s\n", queue, strerror(errno));
        return 1;
    }
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(qh, maxlen) < 0) {
        fprintf(stderr, "delayline: queue setup: %s\n", strerror(errno));
        return 1;
    }
    int fd = nfq_fd(h);
    /* A burst of notifications must not overflow the netlink socket; if one is lost anyway, the
     * next batch verdict (every id up to the latest) still releases its packet. */
    nfnl_rcvbufsiz(nfq_nfnlh(h), 64u << 20);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    fprintf(stderr, "delayline: ready (queue %u, %.3f ms, loss %.3f %%, maxlen %u)\n", queue,
            delay_ms, loss, maxlen);

    static char buf[1 << 16] __attribute__((aligned));
    while (!stop) {
        uint64_t now = now_ns();
        release_due(qh, now);
        struct timespec ts = {1, 0}, *tsp = &ts;
        if (ring_len) {
            uint64_t wait = ring[ring_head].due_ns > now ? ring[ring_head].due_ns - now : 0;
            ts.tv_sec = (time_t)(wait / 1000000000u);
            ts.tv_nsec = (long)(wait % 1000000000u);
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = ppoll(&pfd, 1, tsp, NULL);
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) continue;
        /* Drain what is there (bounded, so due packets are not starved). */
        for (int i = 0; i < 256; i++) {
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n <= 0) break;
            nfq_handle_packet(h, buf, (int)n);
        }
    }
    fprintf(stderr, "delayline: %llu packets delayed, %llu dropped, %llu passed undelayed\n",
            (unsigned long long)n_delayed, (unsigned long long)n_dropped,
            (unsigned long long)n_overflow);
    nfq_destroy_queue(qh);
    nfq_close(h);
    free(ring);
    return 0;
}
