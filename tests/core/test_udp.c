/* tests/core/test_udp.c — the session's UDP endpoint (core/net/udp.c) over real loopback sockets:
 * datagrams reach the consumer of their class by first byte (STUN 0-3, checks 20-63, QUIC
 * 64-255; RFC 7983 / 9443), in order and whole, with the sender's plain IPv4 address even on
 * the dual-stack socket; unclassified and empty datagrams and those of a class without a handler
 * are dropped without holding up the rest; a handler may close the endpoint; sends (single and
 * batched) arrive as sent. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <tallow/tallow.h>

#define MAXGOT 64

typedef struct got {
    int cls;
    uint8_t first;
    size_t len;
    int ok; /* the payload is the pattern the sender wrote */
    struct sockaddr_storage from;
    socklen_t fromlen;
} got;

static struct {
    got g[MAXGOT];
    int n;
    int close_on; /* close the endpoint from the handler on the datagram with this first byte */
    tallow_udp *u;
} rec;

static const int classes[3] = {TALLOW_UDP_STUN, TALLOW_UDP_CHECK, TALLOW_UDP_QUIC};

static uint8_t pattern(uint8_t first, size_t i)
{
    return i == 0 ? first : (uint8_t)(first * 31 + i * 7);
}

static void on_dgram(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                     const uint8_t *data, size_t len, void *ud)
{
    assert_true(rec.n < MAXGOT);
    got *g = &rec.g[rec.n++];
    g->cls = *(const int *)ud;
    g->first = data[0];
    g->len = len;
    g->ok = 1;
    for (size_t i = 0; i < len; i++)
        if (data[i] != pattern(data[0], i)) g->ok = 0;
    memcpy(&g->from, from, fromlen);
    g->fromlen = fromlen;
    if (rec.close_on >= 0 && data[0] == rec.close_on) {
        tallow_udp_close(u);
        rec.u = NULL;
    }
}

typedef struct fx {
    tallow_ctx *ctx;
    tallow_udp *u;
    struct sockaddr_in at; /* where the endpoint listens, as 127.0.0.1:port */
    int peer;              /* a plain socket on 127.0.0.1 */
    struct sockaddr_in peer_at;
} fx;

static void open_fx(fx *f, int dual)
{
    memset(&rec, 0, sizeof(rec));
    rec.close_on = -1;
    f->ctx = tallow_ctx_new();
    assert_non_null(f->ctx);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(
        tallow_udp_open(f->ctx, dual ? NULL : (struct sockaddr *)&lo, sizeof(lo), &f->u), 0);
    rec.u = f->u;
    for (int c = 0; c < 3; c++)
        tallow_udp_on(f->u, classes[c], on_dgram, (void *)&classes[c]);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    assert_int_equal(tallow_udp_local_addr(f->u, &ss, &sl), 0);
    f->at = lo;
    f->at.sin_port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port;
    assert_int_not_equal(f->at.sin_port, 0);
    f->peer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(f->peer >= 0);
    struct sockaddr_in any = lo;
    assert_int_equal(bind(f->peer, (struct sockaddr *)&any, sizeof(any)), 0);
    socklen_t pl = sizeof(f->peer_at);
    assert_int_equal(getsockname(f->peer, (struct sockaddr *)&f->peer_at, &pl), 0);
}

static void close_fx(fx *f)
{
    if (rec.u) tallow_udp_close(rec.u);
    close(f->peer);
    tallow_ctx_free(f->ctx);
}

static void send_one(fx *f, uint8_t first, size_t len)
{
    uint8_t buf[65507];
    assert_true(len <= sizeof(buf));
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(first, i);
    assert_int_equal(sendto(f->peer, buf, len, 0, (struct sockaddr *)&f->at, sizeof(f->at)),
                     (ssize_t)len);
}

/* Runs the loop until n datagrams were handed out (bounded: 5 s at most, then the asserts
 * that follow fail). */
static void run_until(fx *f, int n)
{
    for (int i = 0; i < 50 && rec.n < n; i++)
        tallow_loop_run_once(tallow_ctx_loop(f->ctx), 100);
}

static void check_from(const fx *f, const got *g)
{
    assert_int_equal(g->from.ss_family, AF_INET); /* never ::ffff:127.0.0.1 */
    const struct sockaddr_in *in = (const struct sockaddr_in *)&g->from;
    assert_int_equal(g->fromlen, sizeof(struct sockaddr_in));
    assert_int_equal(in->sin_addr.s_addr, f->peer_at.sin_addr.s_addr);
    assert_int_equal(in->sin_port, f->peer_at.sin_port);
}

static void demux(int dual)
{
    fx f;
    open_fx(&f, dual);
    /* first byte, length, class (-1: dropped) */
    static const struct {
        uint8_t first;
        size_t len;
        int cls;
    } rows[] = {
        {0, 20, TALLOW_UDP_STUN},
        {4, 30, -1},
        {1, 48, TALLOW_UDP_STUN},
        {20, 60, TALLOW_UDP_CHECK},
        {19, 10, -1},
        {63, 1, TALLOW_UDP_CHECK},
        {64, 1200, TALLOW_UDP_QUIC},
        {3, 100, TALLOW_UDP_STUN},
        {0xC3, 60000, TALLOW_UDP_QUIC},
        {0xFF, 1, TALLOW_UDP_QUIC},
        {21, 92, TALLOW_UDP_CHECK},
    };
    int want = 0;
    send_one(&f, 0, 0); /* empty: dropped */
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        send_one(&f, rows[i].first, rows[i].len);
        want += rows[i].cls >= 0;
    }
    run_until(&f, want);
    assert_int_equal(rec.n, want);
    int k = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].cls < 0) continue;
        const got *g = &rec.g[k++];
        assert_int_equal(g->first, rows[i].first); /* in order */
        assert_int_equal(g->cls, rows[i].cls);     /* to the right consumer */
        assert_int_equal(g->len, rows[i].len);     /* whole */
        assert_true(g->ok);
        check_from(&f, g);
    }

    /* a class without a handler drops, and the others still flow */
    tallow_udp_on(f.u, TALLOW_UDP_QUIC, NULL, NULL);
    rec.n = 0;
    send_one(&f, 0x80, 50);
    send_one(&f, 2, 40);
    run_until(&f, 1);
    tallow_loop_run_once(tallow_ctx_loop(f.ctx), 0);
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.g[0].first, 2);
    assert_int_equal(rec.g[0].cls, TALLOW_UDP_STUN);
    close_fx(&f);
}

static void test_udp_demux_ipv4(void **state)
{
    demux(0);
}

static void test_udp_demux_dual_stack(void **state)
{
    demux(1);
}

static void test_udp_close_from_handler(void **state)
{
    fx f;
    open_fx(&f, 0);
    rec.close_on = 22;
    send_one(&f, 1, 20);
    send_one(&f, 22, 20); /* the handler closes the endpoint here */
    send_one(&f, 64, 20); /* never delivered: the endpoint is gone */
    run_until(&f, 2);
    tallow_loop_run_once(tallow_ctx_loop(f.ctx), 0);
    assert_int_equal(rec.n, 2);
    assert_null(rec.u);
    assert_int_equal(rec.g[1].cls, TALLOW_UDP_CHECK);
    close(f.peer);
    tallow_ctx_free(f.ctx);
}

static void test_udp_send_and_batch(void **state)
{
    fx f;
    open_fx(&f, 1);
    uint8_t buf[3000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 13);
    /* to a plain AF_INET address from the dual-stack socket: mapped inside the endpoint */
    assert_int_equal(
        tallow_udp_send(f.u, (struct sockaddr *)&f.peer_at, sizeof(f.peer_at), buf, 700), 0);
    /* three datagrams of 1200, 1200 and 600 bytes */
    assert_int_equal(tallow_udp_send_batch(f.u, (struct sockaddr *)&f.peer_at, sizeof(f.peer_at),
                                           buf, sizeof(buf), 1200),
                     3);
    static const size_t sizes[] = {700, 1200, 1200, 600};
    static const size_t offs[] = {0, 0, 1200, 2400};
    for (int i = 0; i < 4; i++) {
        struct pollfd p = {.fd = f.peer, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        uint8_t in[4000];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(f.peer, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
        assert_int_equal(n, (ssize_t)sizes[i]);
        assert_memory_equal(in, buf + offs[i], sizes[i]);
        assert_int_equal(from.sin_port, f.at.sin_port);
    }
    close_fx(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_demux_ipv4),
        cmocka_unit_test(test_udp_demux_dual_stack),
        cmocka_unit_test(test_udp_close_from_handler),
        cmocka_unit_test(test_udp_send_and_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
