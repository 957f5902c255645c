/* tests/plugins/stun/test_plugin_stun.c — the stun discovery plugin loaded into a real context:
 * against a real coturn on loopback, against a silent port (bounded timeout, retransmissions),
 * and against a scripted fake server (stray, forged and error answers). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <tallow/stun.h>
#include <tallow/tallow.h>

#include "../support/netfix.h"

typedef struct result {
    int done, status, calls;
    struct sockaddr_storage mapped;
    socklen_t len;
} result;

static void on_result(int status, const struct sockaddr *mapped, socklen_t len, void *ud)
{
    result *r = ud;
    r->calls++;
    r->done = 1;
    r->status = status;
    if (mapped) memcpy(&r->mapped, mapped, len);
    r->len = len;
}

typedef struct fixture {
    tallow_ctx *ctx;
    const tallow_discovery_ops *ops;
    void *state;
    tallow_udp *u;
    struct sockaddr_in local;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->ctx = tallow_ctx_new();
    assert_non_null(f->ctx);
    if (tallow_plugin_load(f->ctx, "stun") != 0) fail_msg("%s", tallow_ctx_last_error(f->ctx));
    f->ops = tallow_discovery_find(f->ctx, "stun", &f->state);
    assert_non_null(f->ops);
    assert_string_equal(f->ops->name, "stun");
    struct sockaddr_in b = netfix_lo(0);
    assert_int_equal(tallow_udp_open(f->ctx, (struct sockaddr *)&b, sizeof(b), &f->u), 0);
    struct sockaddr_storage ss;
    socklen_t l;
    assert_int_equal(tallow_udp_local_addr(f->u, &ss, &l), 0);
    memcpy(&f->local, &ss, sizeof(f->local));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tallow_udp_close(f->u);
    tallow_ctx_free(f->ctx);
    free(f);
    return 0;
}

static int discover(fixture *f, const struct sockaddr_in *server, uint32_t timeout, result *r)
{
    memset(r, 0, sizeof(*r));
    int rc = f->ops->discover(f->state, f->u, (const struct sockaddr *)server, sizeof(*server),
                              timeout, on_result, r);
    assert_int_equal(r->calls, 0); /* never from inside discover */
    return rc;
}

static void assert_mapped(const result *r, const struct sockaddr_in *want)
{
    char a[64], b[64];
    assert_int_equal(r->calls, 1);
    if (r->status != 0) fail_msg("discovery failed: %s", tallow_strerror(r->status));
    assert_int_equal(r->len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *got = (const struct sockaddr_in *)&r->mapped;
    if (got->sin_addr.s_addr != want->sin_addr.s_addr || got->sin_port != want->sin_port)
        fail_msg("mapped %s, want %s", tallow_sockaddr_str((struct sockaddr *)got, a, sizeof(a)),
                 tallow_sockaddr_str((const struct sockaddr *)want, b, sizeof(b)));
}

static void test_plugin_stun_coturn_mapping(void **state)
{
    fixture *f = *state;
    netfix_coturn c;
    if (netfix_coturn_start(&c) != 0) fail_msg("coturn did not start on loopback");
    result r1, r2, r3;
    /* One discovery, then two at once on the same endpoint. */
    assert_int_equal(discover(f, &c.addr, 3000, &r1), 0);
    netfix_run_until(f->ctx, &r1.done, 5000);
    assert_mapped(&r1, &f->local);
    assert_int_equal(discover(f, &c.addr, 3000, &r2), 0);
    assert_int_equal(discover(f, &c.addr, 3000, &r3), 0);
    netfix_run_until(f->ctx, &r2.done, 5000);
    netfix_run_until(f->ctx, &r3.done, 5000);
    assert_mapped(&r2, &f->local);
    assert_mapped(&r3, &f->local);
    /* A dual-stack IPv6 endpoint reaches the IPv4 server through ::ffff:127.0.0.1. */
    tallow_udp *u6;
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6};
    if (tallow_udp_open(f->ctx, (struct sockaddr *)&any6, sizeof(any6), &u6) == 0) {
        struct sockaddr_storage ss;
        socklen_t l;
        assert_int_equal(tallow_udp_local_addr(u6, &ss, &l), 0);
        struct sockaddr_in want = netfix_lo(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        result r4 = {0};
        assert_int_equal(f->ops->discover(f->state, u6, (struct sockaddr *)&c.addr, sizeof(c.addr),
                                          3000, on_result, &r4),
                         0);
        netfix_run_until(f->ctx, &r4.done, 5000);
        tallow_udp_close(u6);
        assert_mapped(&r4, &want);
    }
    netfix_coturn_stop(&c);
}

static void test_plugin_stun_timeout_is_bounded(void **state)
{
    fixture *f = *state;
    struct sockaddr_in silent;
    int fd = netfix_silent_udp(&silent);
    assert_true(fd >= 0);
    result r;
    assert_int_equal(discover(f, &silent, 400, &r), 0);
    uint64_t took = netfix_run_until(f->ctx, &r.done, 5000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, TALLOW_ETIMEOUT);
    assert_int_equal(r.len, 0);
    assert_true(took >= 350 && took < 2000);
    /* Retransmissions at 0, 100 and 300 ms: identical Binding requests with FINGERPRINT. */
    uint8_t first[64], buf[64];
    ssize_t n0 = recv(fd, first, sizeof(first), MSG_DONTWAIT), n;
    assert_int_equal(n0, 28);
    int count = 1;
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        assert_int_equal(n, n0);
        assert_memory_equal(buf, first, (size_t)n0);
        count++;
    }
    assert_true(count >= 2 && count <= 3);
    tallow_stun_msg m;
    assert_int_equal(tallow_stun_parse(first, (size_t)n0, &m), 0);
    assert_int_equal(m.method, TALLOW_STUN_BINDING);
    assert_int_equal(m.cls, TALLOW_STUN_REQUEST);
    assert_int_equal(tallow_stun_check_fingerprint(&m), 0);
    /* Nothing is sent after the deadline. */
    tallow_loop_run_once(tallow_ctx_loop(f->ctx), 300);
    assert_true(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
    close(fd);
}

/* ---- a scripted fake server driven by the same loop */

enum script { SCRIPT_FORGERIES, SCRIPT_ERROR, SCRIPT_PLAIN_MAPPED, SCRIPT_NO_ADDRESS, SCRIPT_LATE };

typedef struct fake {
    int fd, other_fd; /* other_fd: a second socket, a source the client never asked */
    enum script script;
    int requests;
    struct sockaddr_in reflexive; /* what the fake reports */
} fake;

static void fake_reply(fake *k, int fd, const struct sockaddr_in *to, const uint8_t *buf, int n)
{
    assert_true(n > 0);
    assert_int_equal(sendto(fd, buf, (size_t)n, 0, (const struct sockaddr *)to, sizeof(*to)), n);
}

static void fake_on_request(tallow_io *io, int fd, unsigned ev, void *ud)
{
    fake *k = ud;
    uint8_t req[512], out[256];
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(fd, req, sizeof(req), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (n <= 0) return;
    tallow_stun_msg m;
    assert_int_equal(tallow_stun_parse(req, (size_t)n, &m), 0);
    k->requests++;
    const struct sockaddr *refl = (const struct sockaddr *)&k->reflexive;
    uint8_t wrong[12];
    memcpy(wrong, m.txid, 12);
    wrong[0] ^= 0xff;
    tallow_stun_builder b;
    int len;
    switch (k->script) {
    case SCRIPT_FORGERIES: {
        struct sockaddr_in bogus = netfix_lo(1);
        /* wrong transaction id */
        len = tallow_stun_binding_response(out, sizeof(out), wrong, (struct sockaddr *)&bogus,
                                           sizeof(bogus), NULL);
        fake_reply(k, fd, &from, out, len);
        /* right id, broken FINGERPRINT */
        len = tallow_stun_binding_response(out, sizeof(out), m.txid, (struct sockaddr *)&bogus,
                                           sizeof(bogus), NULL);
        out[len - 1] ^= 1;
        fake_reply(k, fd, &from, out, len);
        /* right id, from a source that was never asked */
        len = tallow_stun_binding_response(out, sizeof(out), m.txid, (struct sockaddr *)&bogus,
                                           sizeof(bogus), NULL);
        fake_reply(k, k->other_fd, &from, out, len);
        /* a request is not an answer */
        len = tallow_stun_binding_request(out, sizeof(out), m.txid);
        fake_reply(k, fd, &from, out, len);
        /* finally the real one */
        len = tallow_stun_binding_response(out, sizeof(out), m.txid, refl, sizeof(k->reflexive),
                                           "fake");
        fake_reply(k, fd, &from, out, len);
        break;
    }
    case SCRIPT_ERROR:
        tallow_stun_build_begin(&b, out, sizeof(out), TALLOW_STUN_BINDING, TALLOW_STUN_ERROR,
                                m.txid);
        tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_ERROR_CODE, "\0\0\4\0Bad Request", 15);
        tallow_stun_build_fingerprint(&b);
        fake_reply(k, fd, &from, out, tallow_stun_build_finish(&b));
        break;
    case SCRIPT_PLAIN_MAPPED: /* an RFC 3489 server: MAPPED-ADDRESS only, no FINGERPRINT */
        tallow_stun_build_begin(&b, out, sizeof(out), TALLOW_STUN_BINDING, TALLOW_STUN_SUCCESS,
                                m.txid);
        tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_MAPPED_ADDRESS, 0, refl, sizeof(k->reflexive));
        fake_reply(k, fd, &from, out, tallow_stun_build_finish(&b));
        break;
    case SCRIPT_NO_ADDRESS:
        tallow_stun_build_begin(&b, out, sizeof(out), TALLOW_STUN_BINDING, TALLOW_STUN_SUCCESS,
                                m.txid);
        tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_SOFTWARE, "fake", 4);
        fake_reply(k, fd, &from, out, tallow_stun_build_finish(&b));
        break;
    case SCRIPT_LATE: /* loses the first two requests: only retransmission gets through */
        if (k->requests < 3) break;
        len = tallow_stun_binding_response(out, sizeof(out), m.txid, refl, sizeof(k->reflexive),
                                           NULL);
        fake_reply(k, fd, &from, out, len);
        break;
    }
}

static void run_script(fixture *f, enum script s, uint32_t timeout, result *r, fake *k)
{
    struct sockaddr_in srv, other;
    memset(k, 0, sizeof(*k));
    k->script = s;
    k->fd = netfix_silent_udp(&srv);
    k->other_fd = netfix_silent_udp(&other);
    k->reflexive = netfix_lo(0);
    inet_pton(AF_INET, "203.0.113.5", &k->reflexive.sin_addr);
    k->reflexive.sin_port = htons(4242);
    tallow_io *io =
        tallow_io_start(tallow_ctx_loop(f->ctx), k->fd, TALLOW_IO_READ, fake_on_request, k);
    assert_non_null(io);
    assert_int_equal(discover(f, &srv, timeout, r), 0);
    netfix_run_until(f->ctx, &r->done, 5000);
    assert_int_equal(r->calls, 1);
    tallow_io_stop(io);
    close(k->fd);
    close(k->other_fd);
}

static void test_plugin_stun_ignores_forgeries(void **state)
{
    fixture *f = *state;
    result r;
    fake k;
    run_script(f, SCRIPT_FORGERIES, 2000, &r, &k);
    assert_mapped(&r, &k.reflexive);
    assert_int_equal(k.requests, 1);
}

static void test_plugin_stun_error_response(void **state)
{
    fixture *f = *state;
    result r;
    fake k;
    run_script(f, SCRIPT_ERROR, 2000, &r, &k);
    assert_int_equal(r.status, TALLOW_EPROTO);
    assert_int_equal(r.len, 0);
}

static void test_plugin_stun_plain_mapped_address(void **state)
{
    fixture *f = *state;
    result r;
    fake k;
    run_script(f, SCRIPT_PLAIN_MAPPED, 2000, &r, &k);
    assert_mapped(&r, &k.reflexive);
}

static void test_plugin_stun_success_without_address(void **state)
{
    fixture *f = *state;
    result r;
    fake k;
    run_script(f, SCRIPT_NO_ADDRESS, 2000, &r, &k);
    assert_int_equal(r.status, TALLOW_EPROTO);
}

static void test_plugin_stun_retransmits(void **state)
{
    fixture *f = *state;
    result r;
    fake k;
    run_script(f, SCRIPT_LATE, 3000, &r, &k);
    assert_mapped(&r, &k.reflexive);
    assert_int_equal(k.requests, 3);
}

static void test_plugin_stun_bad_arguments_and_policy(void **state)
{
    fixture *f = *state;
    struct sockaddr_in srv = netfix_lo(3478);
    struct sockaddr_storage unix_addr = {.ss_family = AF_UNIX};
    result r = {0};
    assert_int_equal(
        f->ops->discover(f->state, f->u, (struct sockaddr *)&srv, sizeof(srv), 100, NULL, &r),
        TALLOW_EINVAL);
    assert_int_equal(f->ops->discover(f->state, f->u, (struct sockaddr *)&unix_addr,
                                      sizeof(unix_addr), 100, on_result, &r),
                     TALLOW_EINVAL);
    assert_int_equal(
        f->ops->discover(f->state, f->u, (struct sockaddr *)&srv, 4, 100, on_result, &r),
        TALLOW_EINVAL);
    assert_int_equal(
        f->ops->discover(f->state, NULL, (struct sockaddr *)&srv, sizeof(srv), 100, on_result, &r),
        TALLOW_EINVAL);
    tallow_policy_forbid_p2p(tallow_ctx_policy(f->ctx));
    assert_int_equal(discover(f, &srv, 100, &r), TALLOW_EPOLICY);
    tallow_loop_run_once(tallow_ctx_loop(f->ctx), 0);
    assert_int_equal(r.calls, 0);
}

/* A context freed while a discovery is pending: no callback, no leak, no crash. */
static void test_plugin_stun_ctx_free_while_pending(void **state)
{
    fixture *f = *state;
    struct sockaddr_in silent;
    int fd = netfix_silent_udp(&silent);
    result r;
    assert_int_equal(discover(f, &silent, 5000, &r), 0);
    tallow_loop_run_once(tallow_ctx_loop(f->ctx), 10);
    tallow_udp_close(f->u);
    f->u = NULL;
    tallow_ctx_free(f->ctx);
    f->ctx = NULL;
    assert_int_equal(r.calls, 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plugin_stun_coturn_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_timeout_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_ignores_forgeries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_error_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_plain_mapped_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_success_without_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_retransmits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_bad_arguments_and_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_stun_ctx_free_while_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
