/* quic_bench_plugin.c — loopback throughput of the "quic" transport as sessions use it: one
 * context and loop (one thread), two tallow_udp endpoints, 64 KiB frames with backpressure.
 * Prints MB/s from on_ready to the last frame received. Not a test.
 * Usage: quic_bench_plugin [MiB] */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/ctx.h>
#include <tallow/loop.h>
#include <tallow/nat.h>
#include <tallow/plugin.h>
#include <tallow/transport.h>

#define FRAME (64 * 1024)

typedef struct side {
    tallow_udp *udp;
    struct sockaddr_storage addr;
    socklen_t alen;
    tallow_channel *ch;
    int ready, closed, err, blocked;
    uint64_t rx, t_ready, t_done;
} side;

static void s_ready(tallow_channel *ch, void *ud)
{
    side *s = ud;
    (void)ch;
    s->ready = 1;
    s->t_ready = tallow_now_ns();
}

static void s_frame(tallow_channel *ch, uint32_t from, const uint8_t *d, size_t len, void *ud)
{
    side *s = ud;
    (void)ch, (void)from, (void)d;
    s->rx += len;
}

static void s_writable(tallow_channel *ch, void *ud)
{
    (void)ch;
    ((side *)ud)->blocked = 0;
}

static void s_closed(tallow_channel *ch, int err, void *ud)
{
    side *s = ud;
    (void)ch;
    s->closed = 1;
    s->err = err;
}

static const tallow_channel_events s_ev = {s_ready, s_frame, s_writable, NULL, s_closed};

static int s_open(tallow_ctx *ctx, side *s, const side *peer, int initiator, const uint8_t *psk)
{
    tallow_channel_params p = {0};
    p.struct_size = sizeof(p);
    p.initiator = initiator;
    p.udp = s->udp;
    p.peer = (const struct sockaddr *)&peer->addr;
    p.peer_len = peer->alen;
    p.psk = psk;
    return tallow_channel_open(ctx, "quic", &p, &s_ev, s, &s->ch);
}

int main(int argc, char **argv)
{
    uint64_t total = (argc > 1 ? strtoull(argv[1], NULL, 10) : 1024) << 20;
    uint8_t psk[32], *frame = calloc(1, FRAME);
    memset(psk, 0x42, sizeof(psk));
    tallow_ctx *ctx = tallow_ctx_new();
    if (!ctx || !frame || tallow_plugin_load(ctx, "quic") != 0) {
        fprintf(stderr, "quic_bench_plugin: %s\n", ctx ? tallow_ctx_last_error(ctx) : "no ctx");
        return 1;
    }
    side a = {0}, b = {0};
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (tallow_udp_open(ctx, (struct sockaddr *)&lo, sizeof(lo), &a.udp) != 0 ||
        tallow_udp_open(ctx, (struct sockaddr *)&lo, sizeof(lo), &b.udp) != 0 ||
        tallow_udp_local_addr(a.udp, &a.addr, &a.alen) != 0 ||
        tallow_udp_local_addr(b.udp, &b.addr, &b.alen) != 0 || s_open(ctx, &a, &b, 1, psk) != 0 ||
        s_open(ctx, &b, &a, 0, psk) != 0) {
        fprintf(stderr, "quic_bench_plugin: setup failed\n");
        return 1;
    }
    tallow_loop *loop = tallow_ctx_loop(ctx);
    uint64_t sent = 0, limit = tallow_now_ns() + 300ull * 1000000000u;
    while (b.rx < total && !a.closed && !b.closed && tallow_now_ns() < limit) {
        while (a.ready && !a.blocked && sent < total) {
            int rv = tallow_channel_send(a.ch, 0, frame, FRAME);
            if (rv < 0) break;
            sent += FRAME;
            if (rv == 1) a.blocked = 1;
        }
        tallow_loop_run_once(loop, 10);
    }
    if (b.rx < total) {
        fprintf(stderr, "quic_bench_plugin: incomplete: %llu of %llu (errors %d %d)\n",
                (unsigned long long)b.rx, (unsigned long long)total, a.err, b.err);
        return 1;
    }
    double secs = (double)(tallow_now_ns() - a.t_ready) / 1e9;
    printf("quic_bench_plugin: %llu MiB in %.3f s = %.1f MB/s (one thread, both ends)\n",
           (unsigned long long)(total >> 20), secs, (double)total / secs / 1e6);
    tallow_channel_close(a.ch);
    tallow_channel_close(b.ch);
    for (int i = 0; i < 3; i++)
        tallow_loop_run_once(loop, 0);
    tallow_udp_close(a.udp);
    tallow_udp_close(b.udp);
    tallow_ctx_free(ctx);
    free(frame);
    return 0;
}
