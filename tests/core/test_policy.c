/* tests/core/test_policy.c — the user's policy (tighten always, loosen only before lock; a proxy
 * implies no_p2p) and the UDP endpoint it guards: refused under no_p2p, first-byte demux
 * (RFC 7983) to the right handler, datagrams of any size, batched sends arriving as separate
 * datagrams, and the route MTU towards local and distant peers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include <tallow/tallow.h>

/* ---- policy */

static void test_policy_defaults(void **state)
{
    tallow_ctx *ctx = tallow_ctx_new();
    assert_non_null(ctx);
    tallow_policy *p = tallow_ctx_policy(ctx);
    assert_false(tallow_policy_no_p2p(p));
    assert_false(tallow_policy_allow_loopback(p));
    assert_null(tallow_policy_proxy(p));
    tallow_ctx_free(ctx);
}

static void test_policy_tightening_always_allowed(void **state)
{
    tallow_ctx *ctx = tallow_ctx_new();
    assert_non_null(ctx);
    tallow_policy *p = tallow_ctx_policy(ctx);
    /* before lock: loosen and tighten freely */
    assert_int_equal(tallow_policy_forbid_p2p(p), 0);
    assert_true(tallow_policy_no_p2p(p));
    assert_int_equal(tallow_policy_allow_p2p(p), 0);
    assert_false(tallow_policy_no_p2p(p));
    assert_int_equal(tallow_policy_set_allow_loopback(p, 1), 0);
    assert_true(tallow_policy_allow_loopback(p));
    tallow_policy_lock(p);
    /* after lock: tightening still works, and again (idempotent) */
    assert_int_equal(tallow_policy_set_allow_loopback(p, 0), 0);
    assert_false(tallow_policy_allow_loopback(p));
    assert_int_equal(tallow_policy_forbid_p2p(p), 0);
    assert_int_equal(tallow_policy_forbid_p2p(p), 0);
    assert_true(tallow_policy_no_p2p(p));
    tallow_ctx_free(ctx);
}

static void test_policy_loosening_after_lock_refused(void **state)
{
    tallow_ctx *ctx = tallow_ctx_new();
    assert_non_null(ctx);
    tallow_policy *p = tallow_ctx_policy(ctx);
    assert_int_equal(tallow_policy_forbid_p2p(p), 0);
    tallow_policy_lock(p);
    assert_int_equal(tallow_policy_allow_p2p(p), TALLOW_EPOLICY);
    assert_true(tallow_policy_no_p2p(p));
    assert_int_equal(tallow_policy_set_allow_loopback(p, 1), TALLOW_EPOLICY);
    assert_false(tallow_policy_allow_loopback(p));
    /* what the user allowed before lock stays allowed (no change is no loosening) */
    tallow_ctx *c2 = tallow_ctx_new();
    assert_non_null(c2);
    tallow_policy *q = tallow_ctx_policy(c2);
    assert_int_equal(tallow_policy_set_allow_loopback(q, 1), 0);
    tallow_policy_lock(q);
    assert_int_equal(tallow_policy_allow_p2p(q), 0);
    assert_int_equal(tallow_policy_set_allow_loopback(q, 1), 0);
    /* but once tightened after lock, it cannot come back */
    assert_int_equal(tallow_policy_set_allow_loopback(q, 0), 0);
    assert_int_equal(tallow_policy_set_allow_loopback(q, 1), TALLOW_EPOLICY);
    assert_int_equal(tallow_policy_forbid_p2p(q), 0);
    assert_int_equal(tallow_policy_allow_p2p(q), TALLOW_EPOLICY);
    tallow_ctx_free(c2);
    tallow_ctx_free(ctx);
}

static void test_policy_proxy_implies_no_p2p(void **state)
{
    tallow_ctx *ctx = tallow_ctx_new();
    assert_non_null(ctx);
    tallow_policy *p = tallow_ctx_policy(ctx);
    assert_int_equal(tallow_policy_set_proxy(p, NULL), TALLOW_EINVAL);
    assert_int_equal(tallow_policy_set_proxy(p, ""), TALLOW_EINVAL);
    assert_false(tallow_policy_no_p2p(p));
    assert_int_equal(tallow_policy_set_proxy(p, "socks5://127.0.0.1:9050"), 0);
    assert_string_equal(tallow_policy_proxy(p), "socks5://127.0.0.1:9050");
    assert_true(tallow_policy_no_p2p(p));
    /* even unlocked, P2P cannot be allowed while a proxy is set */
    assert_int_equal(tallow_policy_allow_p2p(p), TALLOW_EPOLICY);
    assert_true(tallow_policy_no_p2p(p));
    tallow_policy_lock(p);
    assert_int_equal(tallow_policy_set_proxy(p, "socks5://127.0.0.1:9050"), 0); /* same: fine */
    assert_int_equal(tallow_policy_set_proxy(p, "socks5://10.0.0.1:1080"), TALLOW_EPOLICY);
    assert_string_equal(tallow_policy_proxy(p), "socks5://127.0.0.1:9050");
    assert_true(tallow_policy_no_p2p(p));
    /* a proxy set after lock is a tightening and is allowed */
    tallow_ctx *c2 = tallow_ctx_new();
    assert_non_null(c2);
    tallow_policy *q = tallow_ctx_policy(c2);
    tallow_policy_lock(q);
    assert_int_equal(tallow_policy_set_proxy(q, "socks5://127.0.0.1:1080"), 0);
    assert_true(tallow_policy_no_p2p(q));
    tallow_ctx_free(c2);
    tallow_ctx_free(ctx);
}

/* ---- UDP endpoint */

static struct sockaddr_in loopback_any_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void test_policy_udp_refused_under_no_p2p(void **state)
{
    tallow_ctx *ctx = tallow_ctx_new();
    assert_non_null(ctx);
    struct sockaddr_in a = loopback_any_port();
    tallow_udp *u = (tallow_udp *)0x1;
    assert_int_equal(tallow_policy_forbid_p2p(tallow_ctx_policy(ctx)), 0);
    assert_int_equal(tallow_udp_open(ctx, (struct sockaddr *)&a, sizeof(a), &u), TALLOW_EPOLICY);
    assert_ptr_equal(u, (tallow_udp *)0x1); /* untouched on error */
    /* a proxy forbids it too */
    tallow_ctx *c2 = tallow_ctx_new();
    assert_non_null(c2);
    assert_int_equal(tallow_policy_set_proxy(tallow_ctx_policy(c2), "socks5://127.0.0.1:9"), 0);
    assert_int_equal(tallow_udp_open(c2, (struct sockaddr *)&a, sizeof(a), &u), TALLOW_EPOLICY);
    tallow_ctx_free(c2);
    tallow_ctx_free(ctx);
}

typedef struct seen {
    int count[3];
    uint8_t first[3];
    size_t len[3];
    uint16_t from_port[3];
    int total;
    int close_in_cb;
} seen;

static void on_dgram(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                     const uint8_t *data, size_t len, int cls, seen *s)
{
    s->count[cls]++;
    s->first[cls] = data[0];
    s->len[cls] = len;
    assert_int_equal(from->sa_family, AF_INET);
    s->from_port[cls] = ntohs(((const struct sockaddr_in *)from)->sin_port);
    s->total++;
    if (s->close_in_cb) tallow_udp_close(u);
}

static void on_stun(tallow_udp *u, const struct sockaddr *f, socklen_t fl, const uint8_t *d,
                    size_t n, void *ud)
{
    on_dgram(u, f, fl, d, n, TALLOW_UDP_STUN, ud);
}

static void on_check(tallow_udp *u, const struct sockaddr *f, socklen_t fl, const uint8_t *d,
                     size_t n, void *ud)
{
    on_dgram(u, f, fl, d, n, TALLOW_UDP_CHECK, ud);
}

static void on_quic(tallow_udp *u, const struct sockaddr *f, socklen_t fl, const uint8_t *d,
                    size_t n, void *ud)
{
    on_dgram(u, f, fl, d, n, TALLOW_UDP_QUIC, ud);
}

typedef struct endpoint {
    tallow_ctx *ctx;
    tallow_udp *u;
    struct sockaddr_in addr; /* where the endpoint listens */
    int peer;                /* a plain socket on 127.0.0.1 */
    uint16_t peer_port;
} endpoint;

static void endpoint_open(endpoint *e)
{
    e->ctx = tallow_ctx_new();
    assert_non_null(e->ctx);
    struct sockaddr_in a = loopback_any_port();
    assert_int_equal(tallow_udp_open(e->ctx, (struct sockaddr *)&a, sizeof(a), &e->u), 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    assert_int_equal(tallow_udp_local_addr(e->u, &ss, &sl), 0);
    memcpy(&e->addr, &ss, sizeof(e->addr));
    assert_true(ntohs(e->addr.sin_port) != 0);
    assert_true(tallow_udp_fd(e->u) >= 0);
    assert_ptr_equal(tallow_udp_ctx(e->u), e->ctx);
    e->peer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(e->peer >= 0);
    assert_int_equal(bind(e->peer, (struct sockaddr *)&a, sizeof(a)), 0);
    struct sockaddr_in pa;
    socklen_t pl = sizeof(pa);
    assert_int_equal(getsockname(e->peer, (struct sockaddr *)&pa, &pl), 0);
    e->peer_port = ntohs(pa.sin_port);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(e->peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void endpoint_close(endpoint *e)
{
    if (e->u) tallow_udp_close(e->u);
    close(e->peer);
    tallow_ctx_free(e->ctx);
}

static void peer_send(endpoint *e, uint8_t first, size_t len)
{
    static uint8_t buf[65507];
    memset(buf, 0x77, sizeof(buf));
    buf[0] = first;
    assert_int_equal(sendto(e->peer, buf, len, 0, (struct sockaddr *)&e->addr, sizeof(e->addr)),
                     (ssize_t)len);
}

static void pump_until(endpoint *e, const int *total, int want)
{
    tallow_loop *l = tallow_ctx_loop(e->ctx);
    for (int i = 0; i < 20 && *total < want; i++)
        assert_int_equal(tallow_loop_run_once(l, 200), 0);
    assert_int_equal(*total, want);
}

static void test_policy_udp_demux_by_first_byte(void **state)
{
    endpoint e = {0};
    endpoint_open(&e);
    seen s = {0};
    tallow_udp_on(e.u, TALLOW_UDP_STUN, on_stun, &s);
    tallow_udp_on(e.u, TALLOW_UDP_CHECK, on_check, &s);
    tallow_udp_on(e.u, TALLOW_UDP_QUIC, on_quic, &s);
    peer_send(&e, 0x00, 20);  /* STUN */
    peer_send(&e, 0x2A, 33);  /* connectivity check */
    peer_send(&e, 0xC0, 120); /* QUIC long header */
    pump_until(&e, &s.total, 3);
    assert_int_equal(s.count[TALLOW_UDP_STUN], 1);
    assert_int_equal(s.count[TALLOW_UDP_CHECK], 1);
    assert_int_equal(s.count[TALLOW_UDP_QUIC], 1);
    assert_int_equal(s.first[TALLOW_UDP_STUN], 0x00);
    assert_int_equal(s.first[TALLOW_UDP_CHECK], 0x2A);
    assert_int_equal(s.first[TALLOW_UDP_QUIC], 0xC0);
    assert_int_equal(s.len[TALLOW_UDP_STUN], 20);
    assert_int_equal(s.len[TALLOW_UDP_CHECK], 33);
    assert_int_equal(s.len[TALLOW_UDP_QUIC], 120);
    for (int c = 0; c < 3; c++)
        assert_int_equal(s.from_port[c], e.peer_port);

    /* the edges of each range, and the unassigned bytes (4..19) that nobody gets */
    static const struct {
        uint8_t b;
        int cls;
    } edges[] = {{0x03, TALLOW_UDP_STUN},
                 {0x04, -1},
                 {0x13, -1},
                 {0x14, TALLOW_UDP_CHECK},
                 {0x3F, TALLOW_UDP_CHECK},
                 {0x40, TALLOW_UDP_QUIC},
                 {0xFF, TALLOW_UDP_QUIC}};
    int want[3] = {1, 1, 1}, total = 3;
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        peer_send(&e, edges[i].b, 10);
        if (edges[i].cls >= 0) {
            want[edges[i].cls]++;
            total++;
        }
    }
    /* a final marker proves the dropped ones were read, not left in the socket */
    peer_send(&e, 0x01, 5);
    want[TALLOW_UDP_STUN]++;
    total++;
    pump_until(&e, &s.total, total);
    for (int c = 0; c < 3; c++)
        assert_int_equal(s.count[c], want[c]);
    assert_int_equal(s.first[TALLOW_UDP_STUN], 0x01);

    /* a class without a handler drops its datagrams */
    tallow_udp_on(e.u, TALLOW_UDP_QUIC, NULL, NULL);
    peer_send(&e, 0xC0, 50);
    peer_send(&e, 0x2A, 7);
    pump_until(&e, &s.total, total + 1);
    assert_int_equal(s.count[TALLOW_UDP_QUIC], want[TALLOW_UDP_QUIC]);
    assert_int_equal(s.count[TALLOW_UDP_CHECK], want[TALLOW_UDP_CHECK] + 1);
    endpoint_close(&e);
}

static void test_policy_udp_receives_large_datagrams(void **state)
{
    endpoint e = {0};
    endpoint_open(&e);
    seen s = {0};
    tallow_udp_on(e.u, TALLOW_UDP_QUIC, on_quic, &s);
    peer_send(&e, 0xC0, 16000); /* QUIC on loopback or a jumbo LAN */
    peer_send(&e, 0x41, 65507); /* the largest UDP/IPv4 payload */
    pump_until(&e, &s.total, 2);
    assert_int_equal(s.count[TALLOW_UDP_QUIC], 2);
    assert_int_equal(s.len[TALLOW_UDP_QUIC], 65507);
    assert_int_equal(s.first[TALLOW_UDP_QUIC], 0x41);
    endpoint_close(&e);
}

static void test_policy_udp_path_mtu(void **state)
{
    endpoint e = {0};
    endpoint_open(&e);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = htons(9)};
    lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* loopback: lo's MTU (65536 on Linux), far above Ethernet's */
    int mtu = tallow_udp_path_mtu(e.u, (struct sockaddr *)&lo, sizeof(lo));
    if (mtu <= 1500) fail_msg("loopback MTU %d", mtu);
    /* a documentation address on no network of ours (TEST-NET-3; test machines have been
     * seen on TEST-NET-1): unknown path */
    struct sockaddr_in far = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "203.0.113.77", &far.sin_addr);
    assert_int_equal(tallow_udp_path_mtu(e.u, (struct sockaddr *)&far, sizeof(far)), 0);
    assert_int_equal(tallow_udp_path_mtu(e.u, (struct sockaddr *)&lo, 4), TALLOW_EINVAL);
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(tallow_udp_path_mtu(e.u, &un, sizeof(un)), TALLOW_EINVAL);
    endpoint_close(&e);
}

static void test_policy_udp_close_inside_handler(void **state)
{
    endpoint e = {0};
    endpoint_open(&e);
    seen s = {.close_in_cb = 1};
    tallow_udp_on(e.u, TALLOW_UDP_QUIC, on_quic, &s);
    /* several datagrams queued: the first handler closes the endpoint, the rest never arrive */
    for (int i = 0; i < 5; i++)
        peer_send(&e, 0xC1, 40);
    usleep(10000); /* let the kernel queue all five before the endpoint reads */
    pump_until(&e, &s.total, 1);
    e.u = NULL; /* closed by the handler */
    assert_int_equal(tallow_loop_run_once(tallow_ctx_loop(e.ctx), 0), 0);
    assert_int_equal(s.total, 1);
    endpoint_close(&e);
}

static void test_policy_udp_send_and_policy_after_open(void **state)
{
    endpoint e = {0};
    endpoint_open(&e);
    const uint8_t msg[] = {0x2A, 'h', 'i'};
    assert_int_equal(tallow_udp_send(e.u,
                                     (struct sockaddr *)&(struct sockaddr_in){
                                         .sin_family = AF_INET,
                                         .sin_port = htons(e.peer_port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                                     sizeof(struct sockaddr_in), msg, sizeof(msg)),
                     0);
    uint8_t got[64];
    assert_int_equal(recv(e.peer, got, sizeof(got), 0), 3);
    assert_memory_equal(got, msg, 3);
    /* no_p2p set while the endpoint is open: nothing more leaves towards the peer */
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(e.peer_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(tallow_policy_forbid_p2p(tallow_ctx_policy(e.ctx)), 0);
    assert_int_equal(tallow_udp_send(e.u, (struct sockaddr *)&to, sizeof(to), msg, 3),
                     TALLOW_EPOLICY);
    assert_int_equal(tallow_udp_send_batch(e.u, (struct sockaddr *)&to, sizeof(to), msg, 3, 1),
                     TALLOW_EPOLICY);
    assert_int_equal(recv(e.peer, got, sizeof(got), MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    endpoint_close(&e);
}

/* Sends len bytes in segments of segsz and checks the peer receives them as separate datagrams
 * with the right contents, in order. */
static void check_batch(endpoint *e, size_t len, size_t segsz)
{
    static uint8_t data[1 << 17];
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i / segsz * 7 + i);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(e->peer_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t count = (len + segsz - 1) / segsz;
    int rc = tallow_udp_send_batch(e->u, (struct sockaddr *)&to, sizeof(to), data, len, segsz);
    if (rc != (int)count)
        fail_msg("send_batch %zu/%zu: %s (%d)", len, segsz, tallow_err_name(rc), rc);
    for (size_t i = 0; i < count; i++) {
        static uint8_t got[65536];
        ssize_t n = recv(e->peer, got, sizeof(got), 0);
        size_t want = i + 1 < count ? segsz : len - i * segsz;
        if (n != (ssize_t)want)
            fail_msg("datagram %zu of %zu: %zd bytes, want %zu", i, count, n, want);
        assert_memory_equal(got, data + i * segsz, want);
    }
    uint8_t extra[16];
    assert_int_equal(recv(e->peer, extra, sizeof(extra), MSG_DONTWAIT), -1);
}

static void test_policy_udp_send_batch_arrives_as_datagrams(void **state)
{
    endpoint e = {0};
    endpoint_open(&e);
    int big = 1 << 20;
    setsockopt(e.peer, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    check_batch(&e, 10 * 100, 100);        /* 10 equal segments */
    check_batch(&e, 3 * 16000, 16000);     /* large datagrams: four fit one GSO send */
    check_batch(&e, 2 * 40000 + 5, 40000); /* too large to batch: each goes alone */
    check_batch(&e, 9 * 200 + 17, 200);    /* last one shorter */
    check_batch(&e, 70 * 64, 64);          /* more than one GSO send holds */
    check_batch(&e, 50, 1200);             /* a single datagram */
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(e.peer_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(tallow_udp_send_batch(e.u, (struct sockaddr *)&to, sizeof(to),
                                           (const uint8_t *)"x", 0, 100),
                     0);
    endpoint_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_defaults),
        cmocka_unit_test(test_policy_tightening_always_allowed),
        cmocka_unit_test(test_policy_loosening_after_lock_refused),
        cmocka_unit_test(test_policy_proxy_implies_no_p2p),
        cmocka_unit_test(test_policy_udp_refused_under_no_p2p),
        cmocka_unit_test(test_policy_udp_demux_by_first_byte),
        cmocka_unit_test(test_policy_udp_receives_large_datagrams),
        cmocka_unit_test(test_policy_udp_path_mtu),
        cmocka_unit_test(test_policy_udp_close_inside_handler),
        cmocka_unit_test(test_policy_udp_send_and_policy_after_open),
        cmocka_unit_test(test_policy_udp_send_batch_arrives_as_datagrams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
