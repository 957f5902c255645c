/* tests/plugins/gather-srflx/test_plugin_gather_srflx.c — server-reflexive candidates through the
 * real stun plugin and a real coturn on loopback: one answering and one silent server, loopback
 * refusal, all servers silent, no servers, and the stun plugin missing. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <tallow/tallow.h>

#include "../support/netfix.h"

typedef struct result {
    int done, status, calls;
    size_t n;
    tallow_candidate c[16];
} result;

static void on_gathered(int status, const tallow_candidate *c, size_t n, void *ud)
{
    result *r = ud;
    r->calls++;
    r->done = 1;
    r->status = status;
    r->n = n < 16 ? n : 16;
    if (c && n) memcpy(r->c, c, r->n * sizeof(*c));
}

typedef struct fixture {
    tallow_ctx *ctx;
    const tallow_gatherer_ops *ops;
    void *state;
    tallow_udp *u;
    struct sockaddr_in local;
    netfix_coturn turn;
    int silent_fd;
    struct sockaddr_in silent;
} fixture;

static void find_gatherer(const tallow_gatherer_ops *ops, void *state, void *ud)
{
    fixture *f = ud;
    if (strcmp(ops->name, "gather-srflx") == 0) {
        f->ops = ops;
        f->state = state;
    }
}

static fixture *make(int with_stun)
{
    fixture *f = calloc(1, sizeof(*f));
    f->ctx = tallow_ctx_new();
    if (with_stun && tallow_plugin_load(f->ctx, "stun") != 0)
        fail_msg("%s", tallow_ctx_last_error(f->ctx));
    if (tallow_plugin_load(f->ctx, "gather-srflx") != 0)
        fail_msg("%s", tallow_ctx_last_error(f->ctx));
    tallow_gatherer_foreach(f->ctx, find_gatherer, f);
    assert_non_null(f->ops);
    struct sockaddr_in b = netfix_lo(0);
    assert_int_equal(tallow_udp_open(f->ctx, (struct sockaddr *)&b, sizeof(b), &f->u), 0);
    struct sockaddr_storage ss;
    socklen_t l;
    tallow_udp_local_addr(f->u, &ss, &l);
    memcpy(&f->local, &ss, sizeof(f->local));
    f->silent_fd = netfix_silent_udp(&f->silent);
    assert_true(f->silent_fd >= 0);
    return f;
}

static int setup(void **state)
{
    fixture *f = make(1);
    if (netfix_coturn_start(&f->turn) != 0) fail_msg("coturn did not start on loopback");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    netfix_coturn_stop(&f->turn);
    close(f->silent_fd);
    tallow_udp_close(f->u);
    tallow_ctx_free(f->ctx);
    free(f);
    return 0;
}

static uint64_t gather(fixture *f, const struct sockaddr_in *servers, size_t n, int allow_lo,
                       uint32_t timeout, result *r)
{
    struct sockaddr_storage ss[4];
    memset(ss, 0, sizeof(ss));
    for (size_t i = 0; i < n; i++)
        memcpy(&ss[i], &servers[i], sizeof(servers[i]));
    tallow_gather_params p = {.struct_size = sizeof(p),
                              .udp = f->u,
                              .stun = ss,
                              .nstun = n,
                              .allow_loopback = allow_lo,
                              .timeout_ms = timeout};
    memset(r, 0, sizeof(*r));
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, r), 0);
    assert_int_equal(r->calls, 0); /* never from inside gather */
    uint64_t took = netfix_run_until(f->ctx, &r->done, 5000);
    assert_int_equal(r->calls, 1);
    return took;
}

static void test_plugin_gather_srflx_coturn(void **state)
{
    fixture *f = *state;
    /* The answering server twice (one mapping, deduplicated) and a silent one. */
    struct sockaddr_in servers[3] = {f->turn.addr, f->silent, f->turn.addr};
    result r;
    uint64_t took = gather(f, servers, 3, 1, 600, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.c[0].kind, TALLOW_CAND_SRFLX);
    assert_int_equal(r.c[0].priority, tallow_candidate_priority(TALLOW_CAND_SRFLX, 65535));
    assert_int_equal(r.c[0].addr_len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *a = (const struct sockaddr_in *)&r.c[0].addr;
    assert_int_equal(a->sin_port, f->local.sin_port);
    assert_int_equal(a->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_true(took < 3000); /* bounded by the silent server's timeout, not more */
}

static void test_plugin_gather_srflx_refuses_loopback_mapping(void **state)
{
    fixture *f = *state;
    result r;
    gather(f, &f->turn.addr, 1, 0, 2000, &r);
    assert_int_equal(r.status, 0); /* the server answered; its answer is just not usable */
    assert_int_equal(r.n, 0);
}

static void test_plugin_gather_srflx_all_silent(void **state)
{
    fixture *f = *state;
    result r;
    gather(f, &f->silent, 1, 1, 300, &r);
    assert_int_equal(r.status, TALLOW_ETIMEOUT);
    assert_int_equal(r.n, 0);
}

static void test_plugin_gather_srflx_no_servers(void **state)
{
    fixture *f = *state;
    result r;
    gather(f, NULL, 0, 1, 300, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 0);
}

static void test_plugin_gather_srflx_refusals(void **state)
{
    fixture *f = *state;
    result r = {0};
    struct sockaddr_storage bad = {.ss_family = AF_UNIX};
    tallow_gather_params p = {.struct_size = sizeof(p), .udp = f->u, .stun = &bad, .nstun = 1};
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, &r), TALLOW_EINVAL);
    p.nstun = 1;
    p.stun = NULL;
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, &r), TALLOW_EINVAL);
    tallow_policy_forbid_p2p(tallow_ctx_policy(f->ctx));
    p.nstun = 0;
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, &r), TALLOW_EPOLICY);
    tallow_loop_run_once(tallow_ctx_loop(f->ctx), 0);
    assert_int_equal(r.calls, 0);
}

static void test_plugin_gather_srflx_without_stun_plugin(void **state)
{
    fixture *f = make(0);
    result r = {0};
    tallow_gather_params p = {.struct_size = sizeof(p), .udp = f->u};
    assert_int_equal(f->ops->gather(f->state, &p, on_gathered, &r), TALLOW_ENOTFOUND);
    assert_int_equal(r.calls, 0);
    close(f->silent_fd);
    tallow_udp_close(f->u);
    tallow_ctx_free(f->ctx);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plugin_gather_srflx_coturn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_srflx_refuses_loopback_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_srflx_all_silent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_srflx_no_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_gather_srflx_refusals, setup, teardown),
        cmocka_unit_test(test_plugin_gather_srflx_without_stun_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
