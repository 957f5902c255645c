/* test_quic_plugin.c — the "quic" transport loaded as a plugin: two channels in one context and
 * loop over two tallow_udp endpoints on loopback exchange frames both ways (with backpressure),
 * with coalesced receives (UDP_GRO) and without, report direct path info and counters, and fail
 * cleanly on a wrong PSK or a silent peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/ctx.h>
#include <tallow/error.h>
#include <tallow/loop.h>
#include <tallow/nat.h>
#include <tallow/plugin.h>
#include <tallow/transport.h>

typedef struct end {
    tallow_udp *udp;
    struct sockaddr_storage addr;
    socklen_t alen;
    tallow_channel *ch;
    uint8_t seed_tx, seed_rx;
    int ready, closed, err, writable, bad;
    uint64_t frames_rx, bytes_rx;
    uint64_t frames_tx, frames_target;
    int blocked;
    uint64_t close_at_frame; /* close the channel from inside on_frame for this frame (1-based) */
} end;

static size_t frame_len(uint64_t i)
{
    return (size_t)((i * 7919u) % 70000u); /* frame 0 is empty */
}

static uint8_t frame_byte(uint64_t i, size_t j, uint8_t seed)
{
    return (uint8_t)(i * 31u + j * 7u + (j >> 8) + seed);
}

static void e_ready(tallow_channel *ch, void *ud)
{
    (void)ch;
    ((end *)ud)->ready++;
}

static void e_frame(tallow_channel *ch, uint32_t from, const uint8_t *data, size_t len, void *ud)
{
    end *e = ud;
    (void)ch;
    uint64_t i = e->frames_rx++;
    if (from != 0 || len != frame_len(i) || (len && !data)) {
        e->bad++;
        return;
    }
    for (size_t j = 0; j < len; j++)
        if (data[j] != frame_byte(i, j, e->seed_rx)) {
            e->bad++;
            return;
        }
    e->bytes_rx += len;
    if (e->close_at_frame && e->frames_rx == e->close_at_frame) {
        tallow_channel_close(e->ch);
        e->ch = NULL;
    }
}

static void e_writable(tallow_channel *ch, void *ud)
{
    end *e = ud;
    (void)ch;
    e->writable++;
    e->blocked = 0;
}

static void e_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    (void)ch, (void)type, (void)msg;
    ((end *)ud)->bad++;
}

static void e_closed(tallow_channel *ch, int err, void *ud)
{
    end *e = ud;
    (void)ch;
    e->closed++;
    e->err = err;
}

static const tallow_channel_events e_events = {e_ready, e_frame, e_writable, e_room, e_closed};

static tallow_ctx *ctx_with_quic(void)
{
    tallow_ctx *ctx = tallow_ctx_new();
    assert_non_null(ctx);
    int rv = tallow_plugin_load(ctx, "quic");
    if (rv != 0) fail_msg("load quic: %s", tallow_ctx_last_error(ctx));
    assert_non_null(tallow_transport_find(ctx, "quic"));
    return ctx;
}

static void end_udp(tallow_ctx *ctx, end *e, uint8_t seed_tx, uint8_t seed_rx)
{
    memset(e, 0, sizeof(*e));
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(tallow_udp_open(ctx, (struct sockaddr *)&lo, sizeof(lo), &e->udp), 0);
    assert_int_equal(tallow_udp_local_addr(e->udp, &e->addr, &e->alen), 0);
    e->seed_tx = seed_tx;
    e->seed_rx = seed_rx;
}

static void end_open(tallow_ctx *ctx, end *e, const end *peer, int initiator, const uint8_t *psk,
                     uint32_t timeout_ms)
{
    tallow_channel_params p = {0};
    p.struct_size = sizeof(p);
    p.initiator = initiator;
    p.udp = e->udp;
    p.peer = (const struct sockaddr *)&peer->addr;
    p.peer_len = peer->alen;
    p.psk = psk;
    p.timeout_ms = timeout_ms;
    assert_int_equal(tallow_channel_open(ctx, "quic", &p, &e_events, e, &e->ch), 0);
}

static void end_pump(end *e)
{
    uint8_t *buf = malloc(70000);
    assert_non_null(buf);
    while (e->ch && e->ready && !e->closed && !e->blocked && e->frames_tx < e->frames_target) {
        uint64_t i = e->frames_tx;
        size_t len = frame_len(i);
        for (size_t j = 0; j < len; j++)
            buf[j] = frame_byte(i, j, e->seed_tx);
        int rv = tallow_channel_send(e->ch, 0, buf, len);
        assert_true(rv >= 0);
        e->frames_tx++;
        if (rv == 1) e->blocked = 1;
    }
    free(buf);
}

/* Lets queued deferred calls run so closed channels release everything before ctx_free. */
static void drain(tallow_ctx *ctx)
{
    for (int i = 0; i < 3; i++)
        tallow_loop_run_once(tallow_ctx_loop(ctx), 0);
}

typedef int (*cond_fn)(end *a, end *b);

static int run(tallow_ctx *ctx, end *a, end *b, cond_fn cond, uint64_t limit_ms)
{
    tallow_loop *loop = tallow_ctx_loop(ctx);
    uint64_t deadline = tallow_now_ns() + limit_ms * 1000000u;
    while (!cond(a, b)) {
        if (tallow_now_ns() > deadline) return 0;
        end_pump(a);
        end_pump(b);
        tallow_loop_run_once(loop, 10);
    }
    return 1;
}

static int both_ready(end *a, end *b)
{
    return (a->ready && b->ready) || a->closed || b->closed;
}

static int exchanged(end *a, end *b)
{
    return (a->frames_rx == b->frames_target && b->frames_rx == a->frames_target) || a->closed ||
           b->closed || a->bad || b->bad;
}

static int b_closed(end *a, end *b)
{
    (void)a;
    return b->closed;
}

static int both_closed(end *a, end *b)
{
    return a->closed && b->closed;
}

/* no_gro: the endpoints refuse coalesced receives (TALLOW_NO_GRO, as a kernel without UDP_GRO
 * would), so each datagram takes its own receive slot. */
static void exchange_both_ways(int no_gro)
{
    if (no_gro)
        setenv("TALLOW_NO_GRO", "1", 1);
    else
        unsetenv("TALLOW_NO_GRO");
    tallow_ctx *ctx = ctx_with_quic();
    uint8_t psk[32];
    memset(psk, 0x5A, sizeof(psk));
    end a, b;
    end_udp(ctx, &a, 11, 22);
    end_udp(ctx, &b, 22, 11);
    end_open(ctx, &a, &b, 1, psk, 0);
    end_open(ctx, &b, &a, 0, psk, 0);
    assert_true(run(ctx, &a, &b, both_ready, 5000));
    assert_int_equal(a.ready, 1);
    assert_int_equal(b.ready, 1);

    a.frames_target = 600; /* ~21 MB: more than the connection's 4-8 MiB send buffer */
    b.frames_target = 300;
    assert_true(run(ctx, &a, &b, exchanged, 60000));
    assert_int_equal(a.bad + b.bad, 0);
    assert_int_equal(a.closed + b.closed, 0);
    assert_int_equal(b.frames_rx, 600);
    assert_int_equal(a.frames_rx, 300);
    assert_true(a.writable > 0); /* send() said 1 and on_writable followed */

    tallow_channel_info info;
    tallow_channel_get_info(a.ch, &info);
    assert_int_equal(info.direct, 1);
    assert_non_null(strstr(info.path, "direct 127.0.0.1:"));
    assert_true(info.rtt_us > 0);
    assert_true(info.bytes_sent >= a.bytes_rx); /* a sent more than it received */
    assert_int_equal(info.bytes_recv, a.bytes_rx + 4 * a.frames_rx);
    /* The counters: datagrams went both ways in batches, none failed or dropped at a socket,
     * and the receive side coalesced (UDP_GRO, Linux >= 5.0) unless told not to. */
    assert_non_null(info.stats);
    unsigned long long txd = 0, rxd = 0, calls = 0, failed = 1, drops = 1;
    int gro = -1;
    const char *t = strstr(info.stats, "tx_dgrams=");
    assert_non_null(t);
    assert_int_equal(sscanf(t, "tx_dgrams=%llu", &txd), 1);
    assert_int_equal(sscanf(strstr(info.stats, "tx_calls="), "tx_calls=%llu", &calls), 1);
    assert_int_equal(sscanf(strstr(info.stats, "tx_failed="), "tx_failed=%llu", &failed), 1);
    assert_int_equal(sscanf(strstr(info.stats, "rx_dgrams="), "rx_dgrams=%llu", &rxd), 1);
    assert_int_equal(sscanf(strstr(info.stats, "rx_drops="), "rx_drops=%llu", &drops), 1);
    assert_int_equal(sscanf(strstr(info.stats, "gro="), "gro=%d", &gro), 1);
    assert_true(txd > 0 && rxd > 0 && calls > 0 && calls <= txd);
    assert_true(failed == 0 || failed < txd / 10); /* a full socket now and then, not more */
    assert_int_equal(gro, !no_gro);
    (void)drops; /* counted, but a loaded machine may drop: the test cannot forbid it */

    tallow_channel_close(a.ch);
    a.ch = NULL;
    assert_true(run(ctx, &a, &b, b_closed, 3000)); /* told at once, not by idle timeout */
    assert_int_equal(b.closed, 1);
    tallow_channel_close(b.ch);
    tallow_udp_close(a.udp);
    tallow_udp_close(b.udp);
    drain(ctx);
    tallow_ctx_free(ctx);
    unsetenv("TALLOW_NO_GRO");
}

static void test_quic_plugin_exchanges_frames_both_ways(void **state)
{
    (void)state;
    exchange_both_ways(0);
}

static void test_quic_plugin_exchanges_frames_without_gro(void **state)
{
    (void)state;
    exchange_both_ways(1);
}

static int a_closed(end *a, end *b)
{
    (void)b;
    return a->closed;
}

static void test_quic_plugin_close_from_inside_on_frame(void **state)
{
    (void)state;
    tallow_ctx *ctx = ctx_with_quic();
    uint8_t psk[32];
    memset(psk, 0x77, sizeof(psk));
    end a, b;
    end_udp(ctx, &a, 3, 4);
    end_udp(ctx, &b, 4, 3);
    end_open(ctx, &a, &b, 1, psk, 0);
    end_open(ctx, &b, &a, 0, psk, 0);
    b.close_at_frame = 5;
    a.frames_target = 200; /* many frames per datagram batch: more arrive after the close */
    assert_true(run(ctx, &a, &b, a_closed, 3000));
    assert_int_equal(a.err, TALLOW_ECLOSED); /* b left with a's data unacknowledged */
    assert_int_equal(b.frames_rx, 5);        /* nothing delivered after close */
    assert_int_equal(b.closed, 0);           /* no event after close */
    assert_int_equal(a.bad + b.bad, 0);
    tallow_channel_close(a.ch);
    tallow_udp_close(a.udp);
    tallow_udp_close(b.udp);
    drain(ctx);
    tallow_ctx_free(ctx);
}

static void test_quic_plugin_wrong_psk_closes_both(void **state)
{
    (void)state;
    tallow_ctx *ctx = ctx_with_quic();
    uint8_t psk_a[32], psk_b[32];
    memset(psk_a, 1, sizeof(psk_a));
    memset(psk_b, 2, sizeof(psk_b));
    end a, b;
    end_udp(ctx, &a, 1, 2);
    end_udp(ctx, &b, 2, 1);
    end_open(ctx, &a, &b, 1, psk_a, 0);
    end_open(ctx, &b, &a, 0, psk_b, 0);
    assert_true(run(ctx, &a, &b, both_closed, 5000));
    assert_int_equal(a.ready + b.ready, 0);
    assert_int_equal(a.err, TALLOW_ECRYPTO);
    assert_int_equal(b.err, TALLOW_ECRYPTO);
    tallow_channel_close(a.ch);
    tallow_channel_close(b.ch);
    tallow_udp_close(a.udp);
    tallow_udp_close(b.udp);
    drain(ctx);
    tallow_ctx_free(ctx);
}

static void test_quic_plugin_silent_peer_times_out(void **state)
{
    (void)state;
    tallow_ctx *ctx = ctx_with_quic();
    uint8_t psk[32] = {0};
    end a, b, silent;
    end_udp(ctx, &a, 1, 2);
    end_udp(ctx, &b, 1, 2);
    end_udp(ctx, &silent, 1, 2); /* no QUIC handler: drops everything */
    end_open(ctx, &a, &silent, 1, psk, 300);
    end_open(ctx, &b, &silent, 0, psk, 300);
    uint64_t t0 = tallow_now_ns();
    assert_true(run(ctx, &a, &b, both_closed, 3000));
    assert_true(tallow_now_ns() - t0 >= 250000000u);
    assert_int_equal(a.err, TALLOW_ETIMEOUT);
    assert_int_equal(b.err, TALLOW_ETIMEOUT);
    assert_int_equal(a.ready + b.ready, 0);
    tallow_channel_close(a.ch);
    tallow_channel_close(b.ch);
    tallow_udp_close(a.udp);
    tallow_udp_close(b.udp);
    tallow_udp_close(silent.udp);
    drain(ctx);
    tallow_ctx_free(ctx);
}

static void test_quic_plugin_rejects_bad_params_and_huge_frames(void **state)
{
    (void)state;
    tallow_ctx *ctx = ctx_with_quic();
    uint8_t psk[32] = {0};
    end a, b;
    end_udp(ctx, &a, 1, 2);
    end_udp(ctx, &b, 1, 2);
    tallow_channel_params p = {0};
    p.struct_size = sizeof(p);
    p.udp = a.udp; /* no peer, no psk */
    tallow_channel *ch = NULL;
    assert_int_equal(tallow_channel_open(ctx, "quic", &p, &e_events, &a, &ch), TALLOW_EINVAL);

    end_open(ctx, &a, &b, 1, psk, 0);
    size_t big = (16u << 20) + 1;
    uint8_t *buf = calloc(1, big);
    assert_non_null(buf);
    assert_int_equal(tallow_channel_send(a.ch, 0, buf, big), TALLOW_ETOOBIG);
    free(buf);
    tallow_channel_close(a.ch); /* before any event: none may follow */
    tallow_loop_run_once(tallow_ctx_loop(ctx), 20);
    assert_int_equal(a.closed + a.ready, 0);
    tallow_udp_close(a.udp);
    tallow_udp_close(b.udp);
    drain(ctx);
    tallow_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quic_plugin_exchanges_frames_both_ways),
        cmocka_unit_test(test_quic_plugin_exchanges_frames_without_gro),
        cmocka_unit_test(test_quic_plugin_close_from_inside_on_frame),
        cmocka_unit_test(test_quic_plugin_wrong_psk_closes_both),
        cmocka_unit_test(test_quic_plugin_silent_peer_times_out),
        cmocka_unit_test(test_quic_plugin_rejects_bad_params_and_huge_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
