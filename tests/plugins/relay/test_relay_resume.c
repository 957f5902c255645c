/* tests/plugins/relay/test_relay_resume.c — a channel reaching the relay through a SOCKS5 proxy
 * (a small one in a thread here) survives the proxy cutting its connection: it rejoins with its
 * resume token, both sides hear "reconnecting" then the resume, and frames flow again. When the
 * relay's grace period ran out first, the resume is refused and both sides close. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay_test_util.h"

static const tallow_channel_events no_events = {0}; /* for opens that must fail */

typedef struct proxy {
    int lfd;
    uint16_t port;
    pthread_t th;
    atomic_int stop, cut, refuse, accepted, freeze;
    int a[16], b[16]; /* spliced pairs */
    int frozen[16];   /* pairs no longer forwarded (their sockets stay open) */
    int n;
} proxy;

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* SOCKS5, no authentication, CONNECT to IPv4 or a name. Returns the upstream fd or -1. */
static int socks_handshake(int c)
{
    uint8_t b[300];
    if (read_full(c, b, 2) < 0 || b[0] != 5 || read_full(c, b + 2, b[1]) < 0) return -1;
    if (write(c, "\x05\x00", 2) != 2 || read_full(c, b, 4) < 0 || b[1] != 1) return -1;
    char host[256];
    if (b[3] == 1) {
        if (read_full(c, b, 4) < 0) return -1;
        inet_ntop(AF_INET, b, host, sizeof host);
    } else if (b[3] == 3) {
        if (read_full(c, b, 1) < 0) return -1;
        size_t l = b[0];
        if (read_full(c, (uint8_t *)host, l) < 0) return -1;
        host[l] = 0;
    } else {
        return -1;
    }
    if (read_full(c, b, 2) < 0) return -1;
    char port[8];
    snprintf(port, sizeof port, "%u", b[0] << 8 | b[1]);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) return -1;
    int u = socket(AF_INET, SOCK_STREAM, 0);
    int ok = connect(u, ai->ai_addr, ai->ai_addrlen) == 0;
    freeaddrinfo(ai);
    if (!ok) {
        close(u);
        return -1;
    }
    if (write(c, "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10) != 10) {
        close(u);
        return -1;
    }
    return u;
}

static void proxy_drop(proxy *p, int i)
{
    close(p->a[i]);
    close(p->b[i]);
    p->a[i] = p->a[p->n - 1];
    p->b[i] = p->b[p->n - 1];
    p->frozen[i] = p->frozen[p->n - 1];
    p->n--;
}

static void *proxy_main(void *ud)
{
    proxy *p = ud;
    while (!p->stop) {
        if (p->cut) {
            while (p->n)
                proxy_drop(p, 0);
            p->cut = 0;
        }
        if (p->freeze) { /* a silent path: nothing passes, nothing closes */
            for (int i = 0; i < p->n; i++)
                p->frozen[i] = 1;
            p->freeze = 0;
        }
        struct pollfd fds[33];
        int nf = 0;
        fds[nf++] = (struct pollfd){p->lfd, POLLIN, 0};
        for (int i = 0; i < p->n; i++) {
            fds[nf++] = (struct pollfd){p->frozen[i] ? -1 : p->a[i], POLLIN, 0};
            fds[nf++] = (struct pollfd){p->frozen[i] ? -1 : p->b[i], POLLIN, 0};
        }
        if (poll(fds, (nfds_t)nf, 10) <= 0) continue;
        if (fds[0].revents & POLLIN) {
            int c = accept(p->lfd, NULL, NULL);
            if (c >= 0) {
                int u = p->refuse ? -1 : socks_handshake(c);
                if (u < 0 || p->n == 16) {
                    close(c);
                    if (u >= 0) close(u);
                } else {
                    p->a[p->n] = c;
                    p->b[p->n] = u;
                    p->frozen[p->n] = 0;
                    p->n++;
                    p->accepted++;
                }
            }
            continue; /* the pair table changed */
        }
        for (int i = 0; i < p->n; i++) {
            for (int side = 0; side < 2; side++) {
                short re = fds[1 + 2 * i + side].revents;
                if (!re) continue;
                int from = side ? p->b[i] : p->a[i], to = side ? p->a[i] : p->b[i];
                uint8_t buf[65536];
                ssize_t r = read(from, buf, sizeof buf);
                if (r <= 0 || write(to, buf, (size_t)r) != r) {
                    proxy_drop(p, i);
                    goto next_round;
                }
            }
        }
    next_round:;
    }
    while (p->n)
        proxy_drop(p, 0);
    return NULL;
}

static void proxy_start(proxy *p)
{
    memset(p, 0, sizeof *p);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 16), 0);
    getsockname(p->lfd, (struct sockaddr *)&a, &l);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy *p)
{
    p->stop = 1;
    pthread_join(p->th, NULL);
    close(p->lfd);
}

static int both_ready(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready;
}

static int resumed(void *ud)
{
    rt_peer *p = ud;
    return p[0].departed >= 1 && p[0].resumed >= 1 && p[1].departed >= 1 && p[1].arrived >= 1;
}

static int exchanged(void *ud)
{
    rt_peer *p = ud;
    return p[0].frames >= 2 && p[1].frames >= 2;
}

static int one_each(void *ud)
{
    rt_peer *p = ud;
    return p[0].frames >= 1 && p[1].frames >= 1;
}

static int both_closed(void *ud)
{
    rt_peer *p = ud;
    return p[0].closed && p[1].closed;
}

/* A goes through the proxy by host name (SOCKS5 ATYP domain), B straight to the relay. */
static void open_pair(rt_env *e, proxy *px, rt_peer *p, const char *room)
{
    char url[64], addr[64];
    snprintf(url, sizeof url, "socks5://127.0.0.1:%u", px->port);
    snprintf(addr, sizeof addr, "localhost:%u", e->port);
    snprintf(e->addr, sizeof e->addr, "%s", addr);
    assert_int_equal(rt_peer_open(e, &p[0], room, 2, NULL, url), 0);
    snprintf(e->addr, sizeof e->addr, "127.0.0.1:%u", e->port);
    assert_int_equal(rt_peer_open(e, &p[1], room, 2, NULL, NULL), 0);
    assert_true(rt_run_until(e, both_ready, p, 5000));
    tallow_channel_info info;
    tallow_channel_get_info(p[0].ch, &info);
    assert_non_null(strstr(info.path, "socks5"));
    assert_int_equal(px->accepted, 1);
}

static void test_relay_resume_after_cut(void **state)
{
    rt_env e;
    proxy px;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    proxy_start(&px);
    rt_peer p[2];
    open_pair(&e, &px, p, "resume");
    assert_int_equal(tallow_channel_send(p[0].ch, 0, (const uint8_t *)"one", 3), 0);
    assert_int_equal(tallow_channel_send(p[1].ch, 0, (const uint8_t *)"two", 3), 0);
    assert_true(rt_run_until(&e, one_each, p, 5000));

    px.cut = 1; /* the proxy drops A's connection */
    assert_true(rt_run_until(&e, resumed, p, 10000));
    assert_true(px.accepted >= 2);
    assert_false(p[0].closed || p[1].closed);
    assert_int_equal(rt_stat(&e, "rooms"), 1);

    assert_int_equal(tallow_channel_send(p[0].ch, 0, (const uint8_t *)"three", 5), 0);
    assert_int_equal(tallow_channel_send(p[1].ch, 0, (const uint8_t *)"four", 4), 0);
    assert_true(rt_run_until(&e, exchanged, p, 5000));
    assert_memory_equal(p[1].last, "three", 5);
    assert_memory_equal(p[0].last, "four", 4);
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    proxy_stop(&px);
    rt_env_stop(&e);
}

static void test_relay_resume_refused_after_grace(void **state)
{
    rt_env e;
    proxy px;
    tallow_kv o[] = {{"grace", "0.5"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    proxy_start(&px);
    rt_peer p[2];
    open_pair(&e, &px, p, "late");
    px.refuse = 1;
    px.cut = 1;
    rt_run_for(&e, 1500); /* longer than the relay's grace */
    px.refuse = 0;
    assert_true(rt_run_until(&e, both_closed, p, 10000));
    assert_int_equal(p[0].err, TALLOW_ECLOSED);
    assert_non_null(strstr(p[0].errmsg, "resume"));
    assert_int_equal(p[1].err, TALLOW_EPEERGONE);
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    proxy_stop(&px);
    rt_env_stop(&e);
}

static void test_relay_proxy_refuses(void **state)
{
    rt_env e;
    proxy px;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    proxy_start(&px);
    px.refuse = 1;
    char url[64];
    snprintf(url, sizeof url, "socks5://127.0.0.1:%u", px.port);
    rt_peer a;
    assert_int_equal(rt_peer_open(&e, &a, "nope", 2, NULL, url), 0);
    assert_true(rt_run_until(&e, rt_cond_closed, &a, 5000));
    assert_true(a.err < 0);
    rt_peer_close(&a);
    /* a malformed proxy URL is refused at open */
    uint8_t id[32];
    rt_room_id("x", id);
    tallow_channel_params prm = {.struct_size = sizeof prm,
                                 .address = e.addr,
                                 .room = id,
                                 .room_len = 32,
                                 .proxy = "http://127.0.0.1:1"};
    tallow_channel *ch = NULL;
    assert_int_equal(tallow_channel_open(e.ctx, "relay", &prm, &no_events, NULL, &ch),
                     TALLOW_EINVAL);
    proxy_stop(&px);
    rt_env_stop(&e);
}

/* The path goes silent without closing (a NAT forgot us): the keepalive notices, and the channel
 * resumes over a fresh connection. */
static void test_relay_resume_silent_path(void **state)
{
    rt_env e;
    proxy px;
    setenv("TALLOW_RELAY_KEEPALIVE_MS", "300", 1);
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    proxy_start(&px);
    rt_peer p[2];
    open_pair(&e, &px, p, "silent");
    rt_run_for(&e, 100);
    tallow_channel_info info;
    tallow_channel_get_info(p[0].ch, &info);
    assert_true(info.rtt_us > 0); /* the first Ping came back */
    px.freeze = 1;
    assert_true(rt_run_until(&e, resumed, p, 10000));
    assert_true(px.accepted >= 2);
    assert_int_equal(tallow_channel_send(p[0].ch, 0, (const uint8_t *)"alive", 5), 0);
    assert_int_equal(tallow_channel_send(p[1].ch, 0, (const uint8_t *)"again", 5), 0);
    assert_true(rt_run_until(&e, one_each, p, 5000));
    assert_memory_equal(p[1].last, "alive", 5);
    /* an idle but healthy connection is not mistaken for a dead one */
    uint32_t departed = p[0].departed;
    rt_run_for(&e, 1500);
    assert_int_equal(p[0].departed, departed);
    assert_false(p[0].closed || p[1].closed);
    unsetenv("TALLOW_RELAY_KEEPALIVE_MS");
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    proxy_stop(&px);
    rt_env_stop(&e);
}

static int multi_ready(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready && p[2].ready && p[0].count_peers == 3 &&
           p[1].count_peers == 3 && p[2].count_peers == 3;
}

static int multi_resumed(void *ud)
{
    rt_peer *p = ud;
    return p[0].resumed >= 1 && p[1].departed >= 1 && p[2].departed >= 1 && p[1].count_peers == 3 &&
           p[2].count_peers == 3;
}

static int got_targeted(void *ud)
{
    return ((rt_peer *)ud)->frames >= 1;
}

/* A multi room: one peer (through the proxy) drops and resumes; frames aimed at it meanwhile
 * are dropped and counted; afterwards targeted frames reach it again, from the right sender. */
static void test_relay_resume_multi_room(void **state)
{
    rt_env e;
    proxy px;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    proxy_start(&px);
    rt_peer p[3];
    char url[64];
    snprintf(url, sizeof url, "socks5://127.0.0.1:%u", px.port);
    assert_int_equal(rt_peer_open(&e, &p[0], "multi-resume", 3, NULL, url), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "multi-resume", 3, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[2], "multi-resume", 3, NULL, NULL), 0);
    assert_true(rt_run_until(&e, multi_ready, p, 5000));
    uint32_t idx[3];
    for (int i = 0; i < 3; i++) {
        tallow_channel_info info;
        tallow_channel_get_info(p[i].ch, &info);
        idx[i] = info.peer_index;
    }
    /* cut A, and aim a frame at it before the relay can know it is back */
    px.refuse = 1;
    px.cut = 1;
    for (int i = 0; i < 100 && p[1].departed == 0; i++)
        tallow_loop_run_once(e.loop, 10);
    assert_true(p[1].departed >= 1);
    assert_int_equal(p[1].count_peers, 2);
    assert_int_equal(tallow_channel_send(p[1].ch, idx[0], (const uint8_t *)"lost", 4), 0);
    rt_run_for(&e, 100);
    assert_true(rt_stat(&e, "bytes_dropped") >= 4);
    px.refuse = 0;
    assert_true(rt_run_until(&e, multi_resumed, p, 10000));
    tallow_channel_info info;
    tallow_channel_get_info(p[0].ch, &info);
    assert_int_equal(info.peer_index, idx[0]); /* the same slot */
    assert_int_equal(tallow_channel_send(p[2].ch, idx[0], (const uint8_t *)"found", 5), 0);
    assert_true(rt_run_until(&e, got_targeted, &p[0], 5000));
    assert_int_equal(p[0].frames, 1);
    assert_int_equal(p[0].last_from, idx[2]);
    assert_memory_equal(p[0].last, "found", 5);
    for (int i = 0; i < 3; i++)
        rt_peer_close(&p[i]);
    proxy_stop(&px);
    rt_env_stop(&e);
}

/* A proxy set in the policy is used even when the caller passes none. */
static void test_relay_policy_proxy(void **state)
{
    rt_env e;
    proxy px;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    proxy_start(&px);
    char url[64];
    snprintf(url, sizeof url, "socks5://127.0.0.1:%u", px.port);
    assert_int_equal(tallow_policy_set_proxy(tallow_ctx_policy(e.ctx), url), 0);
    rt_peer p[2];
    assert_int_equal(rt_peer_open(&e, &p[0], "policy", 2, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "policy", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, both_ready, p, 5000));
    assert_int_equal(px.accepted, 2);
    tallow_channel_info info;
    tallow_channel_get_info(p[1].ch, &info);
    assert_non_null(strstr(info.path, "socks5"));
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    proxy_stop(&px);
    rt_env_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_resume_after_cut),
        cmocka_unit_test(test_relay_resume_refused_after_grace),
        cmocka_unit_test(test_relay_proxy_refuses),
        cmocka_unit_test(test_relay_resume_silent_path),
        cmocka_unit_test(test_relay_resume_multi_room),
        cmocka_unit_test(test_relay_policy_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
