/* tests/core/test_negotiate_punch.c — the negotiator's side of the punching strategies
 * (core/session/negotiate_punch.c, include/tallow/punch.h), with fake strategies registered
 * through a plugin's own registrar and tallow_udp_send replaced at link time (nothing leaves the
 * machine): our NAT's mapping behaviour from srflx candidates and the peer's from its offers'
 * foundations; the registrar's checks (version, struct_size, required slots, names) and the
 * defaults of optional slots; the bounds the core enforces whatever a strategy asks (2,000
 * packets, 256 sockets, 5 s from the first packet); nothing opened or sent under no_p2p; checks
 * only towards IPs the peer offered, built and MAC'd by the core with the strategy's own id. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <tallow/tallow.h>

#include "addr_util.h"
#include "ctx_internal.h"
#include "negotiate.h"

/* ---- tallow_udp_send, replaced (-Wl,--wrap) ------------------------------------------------ */

static int g_sends;
static struct sockaddr_in g_last_to;
static uint8_t g_last[TALLOW__CHECK_LEN];
static tallow_udp *g_last_udp;

int __wrap_tallow_udp_send(tallow_udp *u, const struct sockaddr *to, socklen_t tolen,
                           const uint8_t *data, size_t len);
int __wrap_tallow_udp_send(tallow_udp *u, const struct sockaddr *to, socklen_t tolen,
                           const uint8_t *data, size_t len)
{
    g_sends++;
    g_last_udp = u;
    if (to->sa_family == AF_INET && tolen >= sizeof(g_last_to)) memcpy(&g_last_to, to, tolen);
    if (len == sizeof(g_last)) memcpy(g_last, data, len);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static uint64_t g_now;
static uint64_t fake_now(void)
{
    return g_now;
}

/* A fake strategy, its behaviour set by the test. */
typedef struct fake {
    int opens, ticks, updates, closes;
    int open_rc;
    int per_tick; /* checks per tick */
    int socks;    /* sockets to try to open per tick */
    int sock_ok;  /* ... of which succeeded */
    int last_rc;  /* the last send_check's answer */
    int eagain;   /* send_check answered TALLOW_EAGAIN */
    uint32_t mine, peer;
    size_t nremote;
    const char *to; /* the IP checks go to */
    uint16_t port;
} fake;

static fake g_fake;

static int f_open(void *st, tallow_punch *p, void **inst)
{
    (void)p;
    g_fake.opens++;
    *inst = st;
    return g_fake.open_rc;
}

static int f_tick(void *inst, tallow_punch *p)
{
    fake *f = inst;
    f->ticks++;
    for (int i = 0; i < f->socks; i++)
        if (p->open_socket(p) >= 1) f->sock_ok++;
    struct sockaddr_in to = sin4(f->to ? f->to : "198.51.100.2", f->port ? f->port : 4000);
    for (int i = 0; i < f->per_tick; i++) {
        f->last_rc = p->send_check(p, 0, (struct sockaddr *)&to, sizeof(to));
        if (f->last_rc == TALLOW_EAGAIN) f->eagain++;
    }
    return 1;
}

static void f_update(void *inst, tallow_punch *p)
{
    fake *f = inst;
    f->updates++;
    f->mine = p->mine;
    f->peer = p->peer;
    f->nremote = p->nremote;
}

static void f_close(void *inst)
{
    ((fake *)inst)->closes++;
}

static const tallow_punch_ops f_ops = {
    .version = TALLOW_PUNCH_OPS_VERSION,
    .struct_size = sizeof(tallow_punch_ops),
    .name = "fake",
    .open = f_open,
    .tick = f_tick,
    .update = f_update,
    .close = f_close,
};

static const uint8_t g_key[32] = {7};

typedef struct fx {
    tallow_ctx *ctx;
    tallow_host host;
    tallow__punch pu;
} fx;

/* A context with the fake registered (as a plugin's init would), a service on a fake endpoint,
 * and the peer's srflx offer 198.51.100.2:4000. */
static fx *setup_fx(int no_p2p)
{
    static fx f;
    memset(&f, 0, sizeof(f));
    memset(&g_fake, 0, sizeof(g_fake));
    g_sends = 0;
    g_now = 1000;
    f.ctx = tallow_ctx_new();
    assert_non_null(f.ctx);
    if (no_p2p) tallow_policy_forbid_p2p(tallow_ctx_policy(f.ctx));
    tallow__host_make(&f.host, f.ctx, "fake-plugin");
    assert_int_equal(f.host.register_punch(f.ctx, &f_ops, &g_fake), 0);
    static int base_dummy;
    tallow__punch_init(&f.pu, f.ctx, (tallow_udp *)&base_dummy, g_key, 1, NULL, NULL);
    f.pu.now_ms = fake_now;
    return &f;
}

static void offer(tallow__punch *pu, const char *ip, uint16_t port, const char *foundation)
{
    tallow_candidate c = cand(TALLOW_CAND_SRFLX, ip, port);
    tallow__punch_remote(pu, &c, (const uint8_t *)foundation, strlen(foundation));
}

static void teardown_fx(fx *f)
{
    tallow__punch_stop(&f->pu, NULL);
    tallow_ctx_free(f->ctx);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_classify(void **st)
{
    (void)st;
    tallow_candidate one[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000)};
    tallow_candidate two[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000),
                              cand(TALLOW_CAND_SRFLX, "198.51.100.2", 51000)};
    tallow_candidate twoip[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000),
                                cand(TALLOW_CAND_SRFLX, "203.0.113.9", 5000)};
    tallow_candidate host[] = {cand(TALLOW_CAND_HOST, "10.1.0.2", 4000),
                               cand(TALLOW_CAND_HOST, "10.1.0.3", 4001)};
    /* one mapping seen by two servers: endpoint-independent */
    assert_int_equal(tallow__punch_classify(one, 1, 2), TALLOW_NAT_EIM);
    /* by one server only: nothing learned */
    assert_int_equal(tallow__punch_classify(one, 1, 1), TALLOW_NAT_UNKNOWN);
    /* two ports for one address: endpoint-dependent, whatever the server count */
    assert_int_equal(tallow__punch_classify(two, 2, 2), TALLOW_NAT_EDM);
    assert_int_equal(tallow__punch_classify(two, 2, 1), TALLOW_NAT_EDM);
    /* two addresses (two NATs, or a multihomed host): no conclusion */
    assert_int_equal(tallow__punch_classify(twoip, 2, 2), TALLOW_NAT_UNKNOWN);
    /* host candidates say nothing about mapping */
    assert_int_equal(tallow__punch_classify(host, 2, 2), TALLOW_NAT_UNKNOWN);
    assert_int_equal(tallow__punch_classify(NULL, 0, 2), TALLOW_NAT_UNKNOWN);
}

static void test_view(void **st)
{
    (void)st;
    fx *f = setup_fx(0);
    /* our srflx offers' foundation follows what we learned */
    assert_string_equal(tallow__punch_foundation(&f->pu), "srflx");
    tallow_candidate two[] = {cand(TALLOW_CAND_SRFLX, "203.0.113.2", 4000),
                              cand(TALLOW_CAND_SRFLX, "203.0.113.2", 51000)};
    tallow__punch_local(&f->pu, two, 2, 2);
    assert_string_equal(tallow__punch_foundation(&f->pu), "srflx/edm");
    assert_int_equal(tallow__punch_open(&f->pu), 1);
    assert_int_equal(g_fake.opens, 1);
    assert_int_equal(g_sends, 0); /* open never sends */
    /* the peer's foundation says its behaviour; unknown ones say nothing */
    offer(&f->pu, "198.51.100.2", 7000, "srflx/xyz");
    tallow__punch_update(&f->pu);
    assert_int_equal(g_fake.peer, TALLOW_NAT_UNKNOWN);
    offer(&f->pu, "198.51.100.2", 7000, "srflx/eim");
    tallow__punch_update(&f->pu);
    assert_int_equal(g_fake.updates, 2);
    assert_int_equal(g_fake.mine, TALLOW_NAT_EDM);
    assert_int_equal(g_fake.peer, TALLOW_NAT_EIM);
    assert_int_equal(g_fake.nremote, 2);
    teardown_fx(f);
    assert_int_equal(g_fake.closes, 1);

    /* a strategy that declines a session (open fails) gets no other call */
    f = setup_fx(0);
    g_fake.open_rc = TALLOW_ENOTSUP;
    g_fake.per_tick = 1;
    assert_int_equal(tallow__punch_open(&f->pu), 0);
    offer(&f->pu, "198.51.100.2", 4000, "srflx/edm");
    tallow__punch_update(&f->pu);
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.updates + g_fake.ticks, 0);
    assert_false(tallow__punch_running(&f->pu));
    teardown_fx(f);
    assert_int_equal(g_fake.closes, 0);
}

static void test_register(void **st)
{
    (void)st;
    tallow_ctx *ctx = tallow_ctx_new();
    tallow_host h;
    tallow__host_make(&h, ctx, "t");
    assert_true(h.struct_size >= offsetof(tallow_host, register_punch) + sizeof(h.register_punch));
    tallow_punch_ops o = f_ops;
    assert_int_equal(h.register_punch(ctx, NULL, NULL), TALLOW_EINVAL);
    o.version = 0;
    assert_int_equal(h.register_punch(ctx, &o, NULL), TALLOW_EINVAL);
    o.version = TALLOW_PUNCH_OPS_VERSION + 1; /* newer than this host */
    assert_int_equal(h.register_punch(ctx, &o, NULL), TALLOW_EINVAL);
    assert_non_null(strstr(tallow_ctx_last_error(ctx), "punching strategy"));
    o = f_ops;
    o.struct_size = offsetof(tallow_punch_ops, tick); /* no room for tick */
    assert_int_equal(h.register_punch(ctx, &o, NULL), TALLOW_EINVAL);
    assert_non_null(strstr(tallow_ctx_last_error(ctx), "struct_size"));
    o = f_ops;
    o.tick = NULL;
    assert_int_equal(h.register_punch(ctx, &o, NULL), TALLOW_EINVAL);
    assert_non_null(strstr(tallow_ctx_last_error(ctx), "tick"));
    o = f_ops;
    o.open = NULL;
    assert_int_equal(h.register_punch(ctx, &o, NULL), TALLOW_EINVAL);
    o = f_ops;
    o.name = "";
    assert_int_equal(h.register_punch(ctx, &o, NULL), TALLOW_EINVAL);
    /* an older plugin's smaller struct (up to tick): accepted, optional slots get defaults */
    o = f_ops;
    o.name = "old";
    o.struct_size = offsetof(tallow_punch_ops, tick) + sizeof(o.tick);
    assert_int_equal(h.register_punch(ctx, &o, NULL), 0);
    /* optional slots left NULL: defaults too */
    tallow_punch_ops o2 = {
        .version = 1, .struct_size = sizeof(o2), .name = "bare", .open = f_open, .tick = f_tick};
    assert_int_equal(h.register_punch(ctx, &o2, NULL), 0);
    /* a name taken */
    assert_int_equal(h.register_punch(ctx, &o2, NULL), TALLOW_EPLUGDUP);
    /* the host's copies: every slot set, callable without a test */
    int n = 0;
    for (size_t i = 0; i < ctx->punches.n; i++) {
        const tallow_punch_ops *c = ctx->punches.v[i].ops;
        assert_non_null(c->update);
        assert_non_null(c->close);
        c->update(NULL, NULL);
        c->close(NULL);
        n++;
    }
    assert_int_equal(n, 2);
    tallow_ctx_free(ctx);
}

static void test_packet_bound(void **st)
{
    (void)st;
    fx *f = setup_fx(0);
    g_fake.per_tick = 3000; /* asks for more than the session may send */
    offer(&f->pu, "198.51.100.2", 4000, "srflx/edm");
    assert_int_equal(tallow__punch_open(&f->pu), 1);
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_sends, TALLOW_PUNCH_MAX_PACKETS);
    assert_int_equal(tallow__punch_sent(&f->pu), TALLOW_PUNCH_MAX_PACKETS);
    assert_int_equal(g_fake.eagain, 3000 - TALLOW_PUNCH_MAX_PACKETS);
    /* no more ticks, nothing more sent, and the negotiator may give up */
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.ticks, 1);
    assert_int_equal(g_sends, TALLOW_PUNCH_MAX_PACKETS);
    assert_false(tallow__punch_running(&f->pu));
    teardown_fx(f);
}

static void test_time_bound(void **st)
{
    (void)st;
    fx *f = setup_fx(0);
    g_fake.per_tick = 1;
    offer(&f->pu, "198.51.100.2", 4000, "srflx/edm");
    tallow__punch_open(&f->pu);
    /* nothing sent yet: the clock has not started, however long it waits */
    g_now += 60000;
    tallow__punch_tick(&f->pu); /* first packet: the clock starts */
    assert_int_equal(g_sends, 1);
    assert_true(tallow__punch_running(&f->pu));
    for (int i = 0; i < 100; i++) {
        g_now += 100; /* 10 s of ticks */
        tallow__punch_tick(&f->pu);
    }
    /* sends at 0, 100, ..., 4900 ms: 50, none at or after 5 s */
    assert_int_equal(g_sends, TALLOW_PUNCH_MAX_MS / 100);
    assert_false(tallow__punch_running(&f->pu));
    teardown_fx(f);
}

static void test_socket_bound(void **st)
{
    (void)st;
    fx *f = setup_fx(0);
    g_fake.socks = 100;
    tallow__punch_open(&f->pu);
    for (int i = 0; i < 4; i++)
        tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.sock_ok, TALLOW_PUNCH_MAX_SOCKETS);
    assert_int_equal(f->pu.nsock, TALLOW_PUNCH_MAX_SOCKETS);
    assert_string_equal(tallow__punch_socket_owner(&f->pu, f->pu.sock[0]), "fake");
    assert_null(tallow__punch_socket_owner(&f->pu, f->pu.base));
    teardown_fx(f); /* closes them all */
    assert_int_equal(f->pu.nsock, 0);
}

static void test_no_p2p(void **st)
{
    (void)st;
    /* no_p2p from the start: no strategy opened, nothing sent whatever happens */
    fx *f = setup_fx(1);
    g_fake.per_tick = 10;
    g_fake.socks = 1;
    assert_int_equal(tallow__punch_open(&f->pu), TALLOW_EPOLICY);
    offer(&f->pu, "198.51.100.2", 4000, "srflx/edm");
    tallow__punch_update(&f->pu);
    for (int i = 0; i < 10; i++)
        tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.opens + g_fake.ticks + g_fake.updates, 0);
    assert_int_equal(g_sends, 0);
    teardown_fx(f);
    /* forbidden once a strategy runs: its services refuse */
    f = setup_fx(0);
    g_fake.per_tick = 1;
    g_fake.socks = 1;
    offer(&f->pu, "198.51.100.2", 4000, "srflx/edm");
    tallow__punch_open(&f->pu);
    tallow_policy_forbid_p2p(tallow_ctx_policy(f->ctx));
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.ticks, 1);
    assert_int_equal(g_fake.last_rc, TALLOW_EPOLICY);
    assert_int_equal(g_fake.sock_ok, 0);
    assert_int_equal(g_sends, 0);
    teardown_fx(f);
}

static void test_only_offered(void **st)
{
    (void)st;
    fx *f = setup_fx(0);
    g_fake.per_tick = 1;
    offer(&f->pu, "198.51.100.2", 4000, "srflx/edm");
    tallow_candidate lo = cand(TALLOW_CAND_HOST, "127.0.0.1", 5000);
    tallow__punch_remote(&f->pu, &lo, (const uint8_t *)"host", 4);
    tallow__punch_open(&f->pu);
    /* an IP the peer never offered: refused, nothing sent */
    g_fake.to = "203.0.113.77";
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.last_rc, TALLOW_EINVAL);
    /* loopback, offered, but the policy does not allow loopback */
    g_fake.to = "127.0.0.1";
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.last_rc, TALLOW_EINVAL);
    assert_int_equal(g_sends, 0);
    assert_int_equal(tallow__punch_sent(&f->pu), 0);
    /* the offered IP, any port: sent from the session's endpoint, a check the core built */
    g_fake.to = "198.51.100.2";
    g_fake.port = 31337;
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_fake.last_rc, 0);
    assert_int_equal(g_sends, 1);
    assert_ptr_equal(g_last_udp, f->pu.base);
    assert_int_equal(ntohs(g_last_to.sin_port), 31337);
    tallow__check c;
    assert_int_equal(tallow__check_parse(g_key, g_last, sizeof(g_last), &c), 0);
    assert_int_equal(c.type, TALLOW__CHECK_REQ);
    assert_true(c.flags & TALLOW__CHECK_CONTROLLING); /* our role */
    assert_false(c.flags & TALLOW__CHECK_NOMINATE);
    uint32_t probes = 0;
    assert_string_equal(tallow__punch_probe_of(&f->pu, c.txid, &probes), "fake");
    assert_int_equal(probes, 1);
    c.txid[0] ^= 1;
    assert_null(tallow__punch_probe_of(&f->pu, c.txid, NULL));
    /* a forged MAC is not ours */
    uint8_t other[32] = {8};
    assert_int_equal(tallow__check_parse(other, g_last, sizeof(g_last), &c), TALLOW_ECRYPTO);
    teardown_fx(f);
}

/* The example strategy (examples/plugins/portguess, built from the public headers only, loaded
 * as a plugin) runs in the core's service beside another one, its checks built by the core. */
static void test_example_strategy(void **st)
{
    (void)st;
    fx *f = setup_fx(0);
    int rc = tallow_plugin_load(f->ctx, TALLOW_TEST_BIN_DIR "/examples/plugins/portguess.so");
    if (rc != 0) fail_msg("%s", tallow_ctx_last_error(f->ctx));
    assert_int_equal(tallow__punch_open(&f->pu), 2);
    offer(&f->pu, "198.51.100.2", 4000, "srflx/edm");
    tallow_candidate host = cand(TALLOW_CAND_HOST, "10.0.0.5", 5555);
    tallow__punch_remote(&f->pu, &host, (const uint8_t *)"host", 4);
    tallow__punch_update(&f->pu);
    tallow__punch_tick(&f->pu);
    assert_int_equal(g_sends, 1); /* the peer's srflx IP, its host port */
    assert_int_equal(g_last_to.sin_addr.s_addr, inet_addr("198.51.100.2"));
    assert_int_equal(ntohs(g_last_to.sin_port), 5555);
    tallow__check c;
    assert_int_equal(tallow__check_parse(g_key, g_last, sizeof(g_last), &c), 0);
    assert_string_equal(tallow__punch_probe_of(&f->pu, c.txid, NULL), "port-preserve");
    for (int i = 0; i < 400; i++)
        tallow__punch_tick(&f->pu);
    assert_int_equal(g_sends, 8); /* its own bound: 8 rounds */
    assert_int_equal(g_fake.ticks, 401);
    teardown_fx(f);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),         cmocka_unit_test(test_view),
        cmocka_unit_test(test_register),         cmocka_unit_test(test_packet_bound),
        cmocka_unit_test(test_time_bound),       cmocka_unit_test(test_socket_bound),
        cmocka_unit_test(test_no_p2p),           cmocka_unit_test(test_only_offered),
        cmocka_unit_test(test_example_strategy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
