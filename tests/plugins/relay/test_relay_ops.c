/* tests/plugins/relay/test_relay_ops.c — operating the relay, in-process (so it also runs under
 * AddressSanitizer): the metrics endpoint over real HTTP (counts move with a paired room, a
 * refusal is counted, 404 elsewhere), the service's check / reload / drain entries, and a pair
 * of client channels failing over to a second relay when the first one stops. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay_test_util.h"

/* GET path from the metrics port; the whole answer (headers and body) into out. */
static void http_get(rt_env *e, const char *path, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)rt_stat(e, "metrics_port"))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t len = 0;
    for (int i = 0; i < 500; i++) {
        ssize_t r = read(fd, out + len, cap - 1 - len);
        if (r == 0) break;
        if (r > 0) {
            len += (size_t)r;
            continue;
        }
        rt_run_for(e, 10);
    }
    out[len] = 0;
    close(fd);
}

/* The value of one sample line ("name{labels} value"), or -1. */
static double sample(const char *text, const char *series)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *p = strstr(text, want);
    return p ? strtod(p + strlen(want), NULL) : -1;
}

static int both_ready(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready;
}

static void test_metrics_endpoint(void **state)
{
    rt_env e;
    static char text[65536];
    tallow_kv o[] = {{"metrics", "127.0.0.1:0"}, {"password", "pw"}};
    assert_int_equal(rt_env_start(&e, o, 2), 0);
    assert_true(rt_stat(&e, "metrics_port") > 0);

    http_get(&e, "/metrics", text, sizeof text);
    assert_non_null(strstr(text, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(text, "Content-Type: text/plain; version=0.0.4"));
    assert_true(sample(text, "tallow_relay_rooms{state=\"paired\"}") == 0);
    assert_true(sample(text, "tallow_relay_up") == 1);
    assert_true(sample(text, "process_open_fds") > 3);
    assert_true(sample(text, "process_resident_memory_bytes") > 1e6);

    rt_peer p[2], bad;
    assert_int_equal(rt_peer_open(&e, &p[0], "metrics-room", 2, "pw", NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "metrics-room", 2, "pw", NULL), 0);
    assert_true(rt_run_until(&e, both_ready, p, 5000));
    uint8_t data[3000];
    memset(data, 7, sizeof data);
    assert_true(tallow_channel_send(p[0].ch, 0, data, sizeof data) >= 0);
    assert_true(rt_run_until(&e, rt_cond_frame, &p[1], 5000));
    assert_int_equal(rt_peer_open(&e, &bad, "other-room", 2, "wrong", NULL), 0);
    assert_true(rt_run_until(&e, rt_cond_closed, &bad, 5000));

    http_get(&e, "/metrics", text, sizeof text);
    assert_true(sample(text, "tallow_relay_rooms{state=\"paired\"}") == 1);
    assert_true(sample(text, "tallow_relay_peers") == 2);
    assert_true(sample(text, "tallow_relay_forwarded_bytes_total") >= sizeof data);
    assert_true(sample(text, "tallow_relay_joins_refused_total{reason=\"wrong_password\"}") == 1);
    assert_true(sample(text, "tallow_relay_rooms_paired_total") == 1);
    assert_true(sample(text, "tallow_relay_metrics_scrapes_total") == 2);

    http_get(&e, "/elsewhere", text, sizeof text);
    assert_non_null(strstr(text, "HTTP/1.1 404 Not Found\r\n"));

    rt_peer_close(&bad);
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    rt_env_stop(&e);
}

static void test_check_reload_drain(void **state)
{
    rt_env e;
    static char text[65536];
    tallow_kv o[] = {{"metrics", "127.0.0.1:0"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    void *pl = NULL;
    tallow_service_find(e.ctx, "relay", &pl);
    assert_non_null(e.ops->check);

    /* check: parses, resolves, binds nothing */
    tallow_kv good[] = {{"listen", e.addr}, {"max-rooms", "7"}, {"metrics", "127.0.0.1:1"}};
    assert_int_equal(e.ops->check(pl, e.ctx, good, 3), 0);
    tallow_kv bad1[] = {{"max-roomz", "7"}};
    assert_int_equal(e.ops->check(pl, e.ctx, bad1, 1), TALLOW_EINVAL);
    assert_non_null(strstr(tallow_ctx_last_error(e.ctx), "unknown option 'max-roomz'"));
    tallow_kv bad2[] = {{"listen", "127.0.0.1:http-alt-not-a-port"}};
    assert_true(e.ops->check(pl, e.ctx, bad2, 1) < 0);
    tallow_kv bad3[] = {{"max-peers", "1"}};
    assert_true(e.ops->check(pl, e.ctx, bad3, 1) < 0);

    /* reload: a paired room stays, the new limit shows; a bad set changes nothing */
    rt_peer p[2], lone;
    assert_int_equal(rt_peer_open(&e, &p[0], "drain-room", 2, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "drain-room", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, both_ready, p, 5000));
    tallow_kv r1[] = {{"listen", e.addr}, {"metrics", "127.0.0.1:0"}, {"max-rooms", "5"}};
    assert_int_equal(e.ops->reload(e.inst, r1, 3), 0);
    assert_true(e.ops->reload(e.inst, bad3, 1) < 0);
    http_get(&e, "/metrics", text, sizeof text);
    assert_true(sample(text, "tallow_relay_limit{limit=\"max_rooms\"}") == 5);
    assert_true(sample(text, "tallow_relay_reloads_total") == 1);
    assert_true(sample(text, "tallow_relay_reload_failures_total") == 1);
    assert_true(sample(text, "tallow_relay_rooms{state=\"paired\"}") == 1);

    /* drain: the waiting room is closed with a reason, the listener too; the pair goes on */
    assert_int_equal(rt_peer_open(&e, &lone, "waiting-room", 2, NULL, NULL), 0);
    rt_run_for(&e, 200);
    assert_int_equal(rt_stat(&e, "rooms"), 2);
    assert_int_equal(e.ops->drain(e.inst), 1);
    assert_true(rt_run_until(&e, rt_cond_closed, &lone, 5000));
    assert_non_null(strstr(lone.errmsg, "relay shutting down"));
    assert_int_equal(rt_raw_connect(&e), -1);
    uint8_t data[100] = {1};
    assert_true(tallow_channel_send(p[0].ch, 0, data, sizeof data) >= 0);
    assert_true(rt_run_until(&e, rt_cond_frame, &p[1], 5000));
    assert_int_equal(e.ops->drain(e.inst), 1);
    http_get(&e, "/metrics", text, sizeof text);
    assert_true(sample(text, "tallow_relay_up") == 0);
    assert_true(sample(text, "tallow_relay_joins_refused_total{reason=\"draining\"}") >= 0);

    rt_peer_close(&lone);
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    rt_env_stop(&e);
}

static int both_back(void *ud)
{
    rt_peer *p = ud;
    return p[0].departed && p[1].departed && (p[0].arrived + p[0].resumed) > 0 &&
           (p[1].arrived + p[1].resumed) > 0;
}

static void port_of(const char *key, uint64_t v, void *ud)
{
    if (strcmp(key, "port") == 0) *(uint64_t *)ud = v;
}

static uint64_t frames_min;
static int got_more(void *ud)
{
    return ((rt_peer *)ud)->frames > frames_min;
}

/* e with its relay, and a second relay of the same context that e's channels are given as
 * failover (its address in fo, which must live as long as e). Returns the second relay. */
static void *start_with_failover(rt_env *e, char fo[64])
{
    assert_int_equal(rt_env_start(e, NULL, 0), 0);
    void *pl = NULL;
    tallow_service_find(e->ctx, "relay", &pl);
    void *second = NULL;
    tallow_kv o2[] = {{"listen", "127.0.0.1:0"}};
    assert_int_equal(e->ops->start(pl, e->ctx, o2, 1, &second), 0);
    uint64_t port2 = 0;
    e->ops->stats(second, port_of, &port2);
    assert_true(port2 > 0);
    snprintf(fo, 64, "127.0.0.1:%u", (unsigned)port2);
    e->failover = fo;
    return second;
}

/* Two relays in one context; the pair's channels are given the second as failover. The first
 * one stops: both channels report the drop, rejoin the room on the second, report the return,
 * and frames flow again both ways. */
static void test_failover(void **state)
{
    rt_env e;
    char fo[64];
    void *second = start_with_failover(&e, fo);

    rt_peer p[2];
    assert_int_equal(rt_peer_open(&e, &p[0], "failover-room", 2, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "failover-room", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, both_ready, p, 5000));
    uint8_t data[1000];
    memset(data, 3, sizeof data);
    assert_true(tallow_channel_send(p[0].ch, 0, data, sizeof data) >= 0);
    frames_min = 0;
    assert_true(rt_run_until(&e, got_more, &p[1], 5000));

    e.ops->stop(e.inst); /* the first relay goes away */
    e.inst = NULL;
    assert_true(rt_run_until(&e, both_back, p, 10000));
    assert_false(p[0].closed);
    assert_false(p[1].closed);
    frames_min = p[1].frames;
    assert_true(tallow_channel_send(p[0].ch, 0, data, sizeof data) >= 0);
    assert_true(rt_run_until(&e, got_more, &p[1], 5000));
    frames_min = p[0].frames;
    assert_true(tallow_channel_send(p[1].ch, 0, data, 10) >= 0);
    assert_true(rt_run_until(&e, got_more, &p[0], 5000));
    assert_int_equal(p[0].last_len, 10);
    tallow_channel_info info;
    tallow_channel_get_info(p[0].ch, &info);
    assert_non_null(strstr(info.path, fo));

    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    rt_run_for(&e, 50);
    e.ops->stop(second);
    rt_env_stop(&e);
}

static int three_ready(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready && p[2].ready;
}

/* each heard the two others join on the first relay, then return on the second */
static int three_back(void *ud)
{
    rt_peer *p = ud;
    for (int i = 0; i < 3; i++)
        if (!p[i].departed || p[i].joined_room < 4) return 0;
    return 1;
}

static uint32_t index_of(rt_peer *p)
{
    tallow_channel_info info;
    tallow_channel_get_info(p->ch, &info);
    return info.peer_index;
}

/* A room of three (capacity 3) given the second relay as failover: the first stops, every
 * channel takes back its slot there (RoomJoin.slot: the same peer_index, whatever the order of
 * arrival), each hears the two others return (PeerJoinedRoom; its own RoomJoined there is not
 * passed up), and targeted frames name the same senders as before. */
static void test_failover_group(void **state)
{
    rt_env e;
    char fo[64];
    void *second = start_with_failover(&e, fo);

    rt_peer p[3];
    for (int i = 0; i < 3; i++) { /* one after the other: p[i] is peer i + 1 */
        assert_int_equal(rt_peer_open(&e, &p[i], "group-failover", 3, NULL, NULL), 0);
        rt_run_for(&e, 150);
    }
    assert_true(rt_run_until(&e, three_ready, p, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(index_of(&p[i]), (uint32_t)i + 1);

    e.ops->stop(e.inst); /* the first relay goes away */
    e.inst = NULL;
    assert_true(rt_run_until(&e, three_back, p, 10000));
    uint8_t data[10] = {7};
    for (int i = 0; i < 3; i++) {
        assert_false(p[i].closed);
        assert_int_equal(p[i].resumed, 0);
        assert_int_equal(index_of(&p[i]), (uint32_t)i + 1);
    }
    frames_min = p[0].frames;
    assert_true(tallow_channel_send(p[2].ch, 1, data, sizeof data) >= 0);
    assert_true(rt_run_until(&e, got_more, &p[0], 5000));
    assert_int_equal(p[0].last_from, 3);
    frames_min = p[2].frames;
    assert_true(tallow_channel_send(p[0].ch, 3, data, sizeof data) >= 0);
    assert_true(rt_run_until(&e, got_more, &p[2], 5000));
    assert_int_equal(p[2].last_from, 1);
    tallow_channel_info info;
    tallow_channel_get_info(p[1].ch, &info);
    assert_non_null(strstr(info.path, fo));

    for (int i = 0; i < 3; i++)
        rt_peer_close(&p[i]);
    rt_run_for(&e, 50);
    e.ops->stop(second);
    rt_env_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_endpoint),
        cmocka_unit_test(test_check_reload_drain),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_failover_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
