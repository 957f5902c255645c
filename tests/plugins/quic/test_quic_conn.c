/* test_quic_conn.c — the sans-IO QUIC connection over two real loopback UDP sockets in one
 * process: handshake, 64 MiB + 1 MiB in order both ways, orderly close, wrong PSK, a stranger's
 * Initial ignored by the server, and large datagrams (used, capped by the peer, dropped by the
 * path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tallow/error.h>

#include "quic_conn.h"
#include "quic_udp_io.h"

#define MiB ((uint64_t)1 << 20)

typedef struct peer {
    int fd;
    struct sockaddr_in addr;
    quic_conn *qc;
    uint8_t seed_tx, seed_rx; /* pattern of each direction */
    uint64_t tx_target, tx_done;
    uint64_t rx;
    int rx_bad;
    int connected, closed, close_err, writable_events;
    int stun_like;       /* datagrams a STUN demultiplexer would take (first byte < 64 or cookie) */
    unsigned drop_every; /* lose every n-th datagram sent (0: none) */
    size_t drop_above;   /* lose every datagram larger than this (0: none) */
    uint64_t dgrams, dropped;
    size_t max_dgram, first_dgram, max_udp;
} peer;

static uint8_t pattern(uint64_t off, uint8_t seed)
{
    return (uint8_t)(((off + seed) * 0x9E3779B97F4A7C15ull) >> 56);
}

static int p_send(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *data,
                  size_t len, size_t segsz)
{
    static const uint8_t cookie[4] = {0x21, 0x12, 0xA4, 0x42};
    peer *p = ud;
    for (size_t off = 0; off < len; off += segsz) {
        size_t n = len - off < segsz ? len - off : segsz;
        if (data[off] < 64 || (n >= 8 && memcmp(data + off + 4, cookie, 4) == 0)) p->stun_like++;
        if (n > p->max_dgram) p->max_dgram = n;
        if (!p->first_dgram) p->first_dgram = n;
    }
    int count = (int)((len + segsz - 1) / segsz);
    if (!p->drop_every && !p->drop_above) {
        int rv = qt_udp_send(p->fd, to, tolen, data, len, segsz);
        return rv < 0 ? rv : count;
    }
    for (size_t off = 0; off < len; off += segsz) { /* one by one, losing some */
        size_t n = len - off < segsz ? len - off : segsz;
        if ((p->drop_every && ++p->dgrams % p->drop_every == 0) ||
            (p->drop_above && n > p->drop_above)) {
            p->dropped++;
            continue;
        }
        int rv = qt_udp_send(p->fd, to, tolen, data + off, n, n);
        if (rv != 0) return rv;
    }
    return count; /* the dropped ones count as sent: the network lost them */
}

static void p_connected(void *ud)
{
    ((peer *)ud)->connected = 1;
}

static void p_data(void *ud, const uint8_t *data, size_t len)
{
    peer *p = ud;
    for (size_t i = 0; i < len; i++)
        if (data[i] != pattern(p->rx + i, p->seed_rx)) p->rx_bad++;
    p->rx += len;
}

static void p_writable(void *ud)
{
    ((peer *)ud)->writable_events++;
}

static void p_closed(void *ud, int err)
{
    peer *p = ud;
    p->closed++;
    p->close_err = err;
}

static const quic_conn_cbs p_cbs = {p_send, p_connected, p_data, p_writable, p_closed};

static void p_recv_cb(void *ud, const struct sockaddr *from, socklen_t fromlen, const uint8_t *data,
                      size_t len)
{
    peer *p = ud;
    if (p->qc) quic_conn_recv(p->qc, from, fromlen, data, len, qt_now_ns());
}

static void peer_open(peer *p, uint8_t seed_tx, uint8_t seed_rx)
{
    memset(p, 0, sizeof(*p));
    p->fd = qt_udp_open(&p->addr, 1);
    assert_true(p->fd >= 0);
    p->seed_tx = seed_tx;
    p->seed_rx = seed_rx;
}

static void peer_start(peer *p, int is_server, const uint8_t psk[32], const peer *other)
{
    p->qc = quic_conn_new(is_server, psk, (const struct sockaddr *)&p->addr, sizeof(p->addr),
                          (const struct sockaddr *)&other->addr, sizeof(other->addr), p->max_udp,
                          qt_udp_rcvbuf(p->fd), &p_cbs, p, qt_now_ns());
    assert_non_null(p->qc);
}

static void peer_close(peer *p)
{
    assert_int_equal(p->stun_like, 0);
    quic_conn_free(p->qc);
    close(p->fd);
}

static void peer_fill(peer *p)
{
    uint8_t buf[64 * 1024];
    while (p->qc && !p->closed && p->tx_done < p->tx_target) {
        uint64_t n = p->tx_target - p->tx_done;
        if (n > sizeof(buf)) n = sizeof(buf);
        for (uint64_t i = 0; i < n; i++)
            buf[i] = pattern(p->tx_done + i, p->seed_tx);
        size_t k = quic_conn_write(p->qc, buf, (size_t)n);
        p->tx_done += k;
        if (k < n) break;
    }
}

typedef int (*done_fn)(peer *a, peer *b);

/* Runs both peers until done() or the wall-clock limit; returns 1 if done. */
static int run(peer **ps, int np, done_fn done, uint64_t limit_ms)
{
    uint64_t deadline = qt_now_ns() + limit_ms * 1000000u;
    while (!done(ps[0], ps[1])) {
        uint64_t now = qt_now_ns();
        if (now > deadline) return 0;
        uint64_t next = now + 50000000u;
        struct pollfd pfd[3];
        for (int i = 0; i < np; i++) {
            peer_fill(ps[i]);
            if (ps[i]->qc && !ps[i]->closed) {
                quic_conn_flush(ps[i]->qc, now);
                uint64_t e = quic_conn_expiry(ps[i]->qc);
                if (e < next) next = e;
            }
            pfd[i].fd = ps[i]->fd;
            pfd[i].events = POLLIN;
        }
        now = qt_now_ns();
        struct timespec ts = {0, 0};
        if (next > now) ts.tv_nsec = (long)(next - now);
        ppoll(pfd, (nfds_t)np, &ts, NULL);
        for (int i = 0; i < np; i++) {
            if (pfd[i].revents & POLLIN) qt_udp_recv_all(ps[i]->fd, p_recv_cb, ps[i]);
            if (ps[i]->qc && !ps[i]->closed && quic_conn_expiry(ps[i]->qc) <= qt_now_ns())
                quic_conn_on_expiry(ps[i]->qc, qt_now_ns());
        }
    }
    return 1;
}

static int both_connected(peer *a, peer *b)
{
    return a->connected && b->connected;
}

static int both_closed(peer *a, peer *b)
{
    return a->closed && b->closed;
}

static int all_delivered(peer *a, peer *b)
{
    quic_conn_stat sa, sb;
    quic_conn_get_stat(a->qc, &sa);
    quic_conn_get_stat(b->qc, &sb);
    return a->closed || b->closed ||
           (b->rx == a->tx_target && a->rx == b->tx_target && sa.queued == 0 && sb.queued == 0);
}

static void test_quic_conn_transfers_both_ways_in_order(void **state)
{
    (void)state;
    uint8_t psk[32];
    for (int i = 0; i < 32; i++)
        psk[i] = (uint8_t)(i * 7 + 1);
    peer cli, srv;
    peer_open(&cli, 1, 2);
    peer_open(&srv, 2, 1);
    peer_start(&cli, 0, psk, &srv);
    peer_start(&srv, 1, psk, &cli);
    peer *ps[2] = {&cli, &srv};

    assert_true(run(ps, 2, both_connected, 5000));
    assert_int_equal(cli.closed + srv.closed, 0);

    cli.tx_target = 64 * MiB;
    srv.tx_target = 1 * MiB;
    assert_true(run(ps, 2, all_delivered, 60000));
    assert_int_equal(cli.closed + srv.closed, 0);
    assert_int_equal(srv.rx, 64 * MiB);
    assert_int_equal(cli.rx, 1 * MiB);
    assert_int_equal(srv.rx_bad + cli.rx_bad, 0);
    assert_true(cli.writable_events > 0); /* 64 MiB cannot fit the 4-8 MiB send buffer at once */
    /* PMTUD took the path past QUIC's 1200-byte floor, never past our 1452 ceiling. */
    assert_true(cli.max_dgram > 1200 && cli.max_dgram <= 1452);

    quic_conn_stat st;
    quic_conn_get_stat(cli.qc, &st);
    assert_int_equal(st.bytes_sent, 64 * MiB);
    assert_int_equal(st.bytes_recv, 1 * MiB);
    assert_true(st.rtt_ns > 0);
    /* The counters: every stream byte went out in datagrams of at most 1452 bytes, and the
     * server acknowledged with packets that carried no new stream data. */
    assert_true(st.tx_bytes > 64 * MiB && st.tx_dgrams * 1452 >= st.tx_bytes);
    assert_true(st.tx_calls > 0 && st.tx_calls <= st.tx_dgrams);
    assert_true(st.rx_dgrams > 0 && st.rx_bytes >= 1 * MiB);
    quic_conn_stat ss;
    quic_conn_get_stat(srv.qc, &ss);
    assert_true(ss.rx_bytes > 64 * MiB && ss.tx_nodata > 0);

    quic_conn_shutdown(cli.qc);
    assert_int_equal(quic_conn_write(cli.qc, psk, 1), 0);
    assert_true(run(ps, 2, both_closed, 5000));
    assert_int_equal(cli.closed, 1);
    assert_int_equal(srv.closed, 1);
    assert_int_equal(cli.close_err, 0);
    assert_int_equal(srv.close_err, 0);
    peer_close(&cli);
    peer_close(&srv);
}

static void test_quic_conn_survives_loss(void **state)
{
    (void)state;
    uint8_t psk[32];
    memset(psk, 0x19, sizeof(psk));
    peer cli, srv;
    peer_open(&cli, 5, 6);
    peer_open(&srv, 6, 5);
    cli.drop_every = 29; /* ~3.4% each way, handshake included */
    srv.drop_every = 31;
    peer_start(&cli, 0, psk, &srv);
    peer_start(&srv, 1, psk, &cli);
    peer *ps[2] = {&cli, &srv};
    cli.tx_target = 20 * MiB; /* wraps the 4-8 MiB send ring with retransmissions pending */
    srv.tx_target = 3 * MiB;
    assert_true(run(ps, 2, all_delivered, 60000));
    assert_int_equal(cli.closed + srv.closed, 0);
    assert_true(cli.dropped > 100 && srv.dropped > 10);
    assert_int_equal(srv.rx, 20 * MiB);
    assert_int_equal(cli.rx, 3 * MiB);
    assert_int_equal(srv.rx_bad + cli.rx_bad, 0);
    peer_close(&cli);
    peer_close(&srv);
}

static void test_quic_conn_wrong_psk_fails_both_sides(void **state)
{
    (void)state;
    uint8_t psk_a[32], psk_b[32];
    memset(psk_a, 0xA5, sizeof(psk_a));
    memcpy(psk_b, psk_a, sizeof(psk_b));
    psk_b[31] ^= 1;
    peer cli, srv;
    peer_open(&cli, 1, 2);
    peer_open(&srv, 2, 1);
    peer_start(&cli, 0, psk_a, &srv);
    peer_start(&srv, 1, psk_b, &cli);
    cli.tx_target = srv.tx_target = 4096; /* queued before the handshake: must never arrive */
    peer *ps[2] = {&cli, &srv};

    assert_true(run(ps, 2, both_closed, 5000));
    assert_int_equal(cli.closed, 1);
    assert_int_equal(srv.closed, 1);
    assert_int_equal(cli.close_err, TALLOW_ECRYPTO);
    assert_int_equal(srv.close_err, TALLOW_ECRYPTO);
    assert_int_equal(cli.connected + srv.connected, 0);
    assert_int_equal(cli.rx + srv.rx, 0);
    peer_close(&cli);
    peer_close(&srv);
}

static int never(peer *a, peer *b)
{
    (void)a, (void)b;
    return 0;
}

static void test_quic_conn_server_ignores_stranger(void **state)
{
    (void)state;
    uint8_t psk[32];
    memset(psk, 0x3C, sizeof(psk));
    peer cli, srv, stranger;
    peer_open(&cli, 1, 2);
    peer_open(&srv, 2, 1);
    peer_open(&stranger, 1, 2);
    peer_start(&srv, 1, psk, &cli);      /* expects cli */
    peer_start(&stranger, 0, psk, &srv); /* same PSK, wrong address */
    peer *ps1[2] = {&stranger, &srv};
    run(ps1, 2, never, 300);
    assert_int_equal(stranger.connected + srv.connected + srv.closed, 0);
    assert_int_equal(quic_conn_expiry(srv.qc), UINT64_MAX); /* no state was created */

    peer_start(&cli, 0, psk, &srv);
    peer *ps2[2] = {&cli, &srv};
    assert_true(run(ps2, 2, both_connected, 5000));
    peer_close(&stranger);
    peer_close(&cli);
    peer_close(&srv);
}

/* Both sides say the path carries 64 KiB - 28 (loopback). Returns the client's datagram size
 * once 16 MiB + 1 MiB are delivered; srv_udp: what the server's side carries. */
static size_t big_transfer(size_t srv_udp, size_t drop_above, peer *cli_out)
{
    uint8_t psk[32];
    memset(psk, 0x5B, sizeof(psk));
    peer cli, srv;
    peer_open(&cli, 3, 4);
    peer_open(&srv, 4, 3);
    cli.max_udp = 65508;
    srv.max_udp = srv_udp;
    cli.drop_above = drop_above;
    peer_start(&cli, 0, psk, &srv);
    peer_start(&srv, 1, psk, &cli);
    peer *ps[2] = {&cli, &srv};
    cli.tx_target = 16 * MiB;
    srv.tx_target = 1 * MiB;
    assert_true(run(ps, 2, all_delivered, 60000));
    assert_int_equal(cli.closed + srv.closed, 0);
    assert_int_equal(srv.rx, 16 * MiB);
    assert_int_equal(cli.rx, 1 * MiB);
    assert_int_equal(srv.rx_bad + cli.rx_bad, 0);
    quic_conn_stat st;
    quic_conn_get_stat(cli.qc, &st);
    *cli_out = cli;
    peer_close(&cli);
    peer_close(&srv);
    return st.max_dgram;
}

static void test_quic_conn_large_datagrams_on_a_big_path(void **state)
{
    (void)state;
    peer cli;
    size_t now = big_transfer(65508, 0, &cli);
    assert_int_equal(now, QUIC_CONN_BIG_PKT);
    assert_int_equal(cli.max_dgram, QUIC_CONN_BIG_PKT);
    assert_int_equal(cli.first_dgram, 1200); /* the handshake stays at QUIC's floor */
}

static void test_quic_conn_large_datagrams_capped_by_peer(void **state)
{
    (void)state;
    peer cli;
    size_t now = big_transfer(1472, 0, &cli); /* the server is on a 1500-byte link */
    assert_int_equal(now, 1472);
    assert_int_equal(cli.max_dgram, 1472);
}

static void test_quic_conn_large_datagrams_black_hole(void **state)
{
    (void)state;
    peer cli;
    /* The path drops what exceeds 1500 bytes, though both ends have larger MTUs: after two
     * PTOs the client goes back to ordinary datagrams and everything arrives. */
    size_t now = big_transfer(65508, 1452, &cli);
    assert_int_equal(now, 1452);
    assert_true(cli.dropped > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quic_conn_transfers_both_ways_in_order),
        cmocka_unit_test(test_quic_conn_survives_loss),
        cmocka_unit_test(test_quic_conn_wrong_psk_fails_both_sides),
        cmocka_unit_test(test_quic_conn_server_ignores_stranger),
        cmocka_unit_test(test_quic_conn_large_datagrams_on_a_big_path),
        cmocka_unit_test(test_quic_conn_large_datagrams_capped_by_peer),
        cmocka_unit_test(test_quic_conn_large_datagrams_black_hole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
