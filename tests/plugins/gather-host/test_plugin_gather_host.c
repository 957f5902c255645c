/* tests/plugins/gather-host/test_plugin_gather_host.c — host candidates from a real context:
 * exactly the interface addresses the machine has (no loopback unless allowed, never
 * link-local), the endpoint's port, HOST priorities, and the bound-address case. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <tallow/tallow.h>

#include "../support/netfix.h"

typedef struct result {
    int done, status, calls;
    size_t n;
    tallow_candidate c[64];
} result;

static void on_gathered(int status, const tallow_candidate *c, size_t n, void *ud)
{
    result *r = ud;
    r->calls++;
    r->done = 1;
    r->status = status;
    r->n = n < 64 ? n : 64;
    if (c && n) memcpy(r->c, c, r->n * sizeof(*c));
}

typedef struct fixture {
    tallow_ctx *ctx;
    const tallow_gatherer_ops *ops;
    void *state;
} fixture;

static void find_gatherer(const tallow_gatherer_ops *ops, void *state, void *ud)
{
    fixture *f = ud;
    if (strcmp(ops->name, "gather-host") == 0) {
        f->ops = ops;
        f->state = state;
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->ctx = tallow_ctx_new();
    if (tallow_plugin_load(f->ctx, "gather-host") != 0)
        fail_msg("%s", tallow_ctx_last_error(f->ctx));
    tallow_gatherer_foreach(f->ctx, find_gatherer, f);
    assert_non_null(f->ops);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tallow_ctx_free(f->ctx);
    free(f);
    return 0;
}

static void gather(fixture *f, tallow_udp *u, int allow_loopback, result *r)
{
    tallow_gather_params p = {.struct_size = sizeof(p), .udp = u, .allow_loopback = allow_loopback};
    memset(r, 0, sizeof(*r));
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, r), 0);
    assert_int_equal(r->calls, 0); /* never from inside gather */
    netfix_run_until(f->ctx, &r->done, 2000);
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->status, 0);
}

static int has(const result *r, const char *str)
{
    char s[80];
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(tallow_sockaddr_str((struct sockaddr *)&r->c[i].addr, s, sizeof(s)), str) == 0)
            return 1;
    return 0;
}

/* Every candidate: HOST, the endpoint's port, valid, a HOST priority; all priorities distinct. */
static void check_common(const result *r, uint16_t port, int allow_loopback)
{
    for (size_t i = 0; i < r->n; i++) {
        const tallow_candidate *c = &r->c[i];
        assert_int_equal(c->kind, TALLOW_CAND_HOST);
        assert_int_equal(tallow_validate_candidate_addr((struct sockaddr *)&c->addr, c->addr_len,
                                                        allow_loopback),
                         0);
        uint16_t p = c->addr.ss_family == AF_INET ? ((struct sockaddr_in *)&c->addr)->sin_port
                                                  : ((struct sockaddr_in6 *)&c->addr)->sin6_port;
        assert_int_equal(ntohs(p), port);
        assert_int_equal(c->priority >> 24, 126);
        assert_int_equal(c->priority & 0xff, 255);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(r->c[j].priority, c->priority);
    }
}

static uint16_t udp_port(tallow_udp *u)
{
    struct sockaddr_storage ss;
    socklen_t l;
    assert_int_equal(tallow_udp_local_addr(u, &ss, &l), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void test_plugin_gather_host_wildcard_v4(void **state)
{
    fixture *f = *state;
    tallow_udp *u;
    struct sockaddr_in any4 = {.sin_family = AF_INET};
    assert_int_equal(tallow_udp_open(f->ctx, (struct sockaddr *)&any4, sizeof(any4), &u), 0);
    uint16_t port = udp_port(u);
    result r;
    gather(f, u, 0, &r);
    check_common(&r, port, 0);
    /* Exactly the non-loopback IPv4 addresses of up interfaces, and no IPv6 on an IPv4 socket. */
    struct ifaddrs *ifs, *i;
    size_t want = 0;
    assert_int_equal(getifaddrs(&ifs), 0);
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP)) continue;
        struct sockaddr_in a;
        memcpy(&a, i->ifa_addr, sizeof(a));
        a.sin_port = htons(port);
        char s[64];
        tallow_sockaddr_str((struct sockaddr *)&a, s, sizeof(s));
        if (tallow_validate_candidate_addr((struct sockaddr *)&a, sizeof(a), 0) != 0) {
            assert_false(has(&r, s));
            continue;
        }
        want++;
        if (!has(&r, s)) fail_msg("missing host candidate %s", s);
    }
    freeifaddrs(ifs);
    assert_int_equal(r.n, want);
    for (size_t k = 0; k < r.n; k++)
        assert_int_equal(r.c[k].addr.ss_family, AF_INET);
    char lo[32];
    snprintf(lo, sizeof(lo), "127.0.0.1:%u", port);
    assert_false(has(&r, lo));
    /* With loopback allowed, 127.0.0.1 joins, ranked below the real interfaces. */
    result r2;
    gather(f, u, 1, &r2);
    check_common(&r2, port, 1);
    assert_true(has(&r2, lo));
    assert_int_equal(r2.n, r.n + 1);
    for (size_t k = 0; k < r2.n; k++) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&r2.c[k].addr;
        if (ntohl(a->sin_addr.s_addr) >> 24 == 127) continue;
        for (size_t j = 0; j < r2.n; j++)
            if (ntohl(((struct sockaddr_in *)&r2.c[j].addr)->sin_addr.s_addr) >> 24 == 127)
                assert_true(r2.c[k].priority > r2.c[j].priority);
    }
    tallow_udp_close(u);
}

static void test_plugin_gather_host_bound_address(void **state)
{
    fixture *f = *state;
    tallow_udp *u;
    struct sockaddr_in b = netfix_lo(0);
    assert_int_equal(tallow_udp_open(f->ctx, (struct sockaddr *)&b, sizeof(b), &u), 0);
    uint16_t port = udp_port(u);
    result r;
    gather(f, u, 0, &r);
    assert_int_equal(r.n, 0); /* bound to loopback, loopback not allowed: nothing */
    gather(f, u, 1, &r);
    assert_int_equal(r.n, 1);
    char lo[32];
    snprintf(lo, sizeof(lo), "127.0.0.1:%u", port);
    assert_true(has(&r, lo));
    check_common(&r, port, 1);
    tallow_udp_close(u);
}

static void test_plugin_gather_host_wildcard_v6(void **state)
{
    fixture *f = *state;
    tallow_udp *u;
    struct sockaddr_in6 any = {.sin6_family = AF_INET6};
    if (tallow_udp_open(f->ctx, (struct sockaddr *)&any, sizeof(any), &u) != 0) {
        skip(); /* no IPv6 here */
        return;
    }
    uint16_t port = ntohs(((struct sockaddr_in6 *)&any)->sin6_port);
    struct sockaddr_storage ss;
    socklen_t l;
    tallow_udp_local_addr(u, &ss, &l);
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    result r;
    gather(f, u, 0, &r);
    check_common(&r, port, 0); /* in particular no fe80:: and no ::1 */
    char lo[64];
    snprintf(lo, sizeof(lo), "[::1]:%u", port);
    assert_false(has(&r, lo));
    /* Ranking: global IPv6 above IPv4 above unique-local IPv6 (fc00::/7). */
    for (size_t i = 0; i < r.n; i++) {
        for (size_t j = 0; j < r.n; j++) {
            const tallow_candidate *a = &r.c[i], *b = &r.c[j];
            if (a->addr.ss_family != AF_INET || b->addr.ss_family != AF_INET6) continue;
            uint8_t top = ((struct sockaddr_in6 *)&b->addr)->sin6_addr.s6_addr[0];
            if ((top & 0xfe) == 0xfc)
                assert_true(a->priority > b->priority);
            else
                assert_true(a->priority < b->priority);
        }
    }
    gather(f, u, 1, &r);
    assert_true(has(&r, lo));
    tallow_udp_close(u);
    /* The default endpoint is this dual-stack socket: IPv4 and IPv6 candidates, and IPv4 ones as
     * plain IPv4 (127.0.0.1, never ::ffff:127.0.0.1). */
    assert_int_equal(tallow_udp_open(f->ctx, NULL, 0, &u), 0);
    tallow_udp_local_addr(u, &ss, &l);
    assert_int_equal(ss.ss_family, AF_INET6);
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    gather(f, u, 1, &r);
    check_common(&r, port, 1);
    snprintf(lo, sizeof(lo), "[::1]:%u", port);
    assert_true(has(&r, lo));
    snprintf(lo, sizeof(lo), "127.0.0.1:%u", port);
    assert_true(has(&r, lo));
    tallow_udp_close(u);
}

static void test_plugin_gather_host_refusals(void **state)
{
    fixture *f = *state;
    tallow_udp *u;
    result r = {0};
    assert_int_equal(tallow_udp_open(f->ctx, NULL, 0, &u), 0);
    tallow_gather_params p = {.struct_size = sizeof(p), .udp = NULL};
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, &r), TALLOW_EINVAL);
    p.udp = u;
    assert_int_equal(f->ops->gather(f->state, &p, NULL, &r), TALLOW_EINVAL);
    tallow_policy_forbid_p2p(tallow_ctx_policy(f->ctx));
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, &r), TALLOW_EPOLICY);
    tallow_loop_run_once(tallow_ctx_loop(f->ctx), 0);
    assert_int_equal(r.calls, 0);
    tallow_udp_close(u);
}

/* A gathering still waiting for its delivery when the context goes: no callback, no leak. */
static void test_plugin_gather_host_ctx_free_while_pending(void **state)
{
    fixture *f = *state;
    tallow_udp *u;
    result r = {0};
    assert_int_equal(tallow_udp_open(f->ctx, NULL, 0, &u), 0);
    tallow_gather_params p = {.struct_size = sizeof(p), .udp = u};
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, &r), 0);
    tallow_udp_close(u);
    tallow_ctx_free(f->ctx);
    f->ctx = NULL;
    assert_int_equal(r.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plugin_gather_host_wildcard_v4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_host_bound_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_host_wildcard_v6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_host_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_host_ctx_free_while_pending, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
