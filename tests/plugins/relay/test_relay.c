/* tests/plugins/relay/test_relay.c — the relay plugin in a real context: two peers pair and
 * exchange frames both ways, four peers share a multi room (broadcast and targeted frames), the
 * STUN responder answers on the relay's port, and stats and logs follow the rooms. */
#include <arpa/inet.h>
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

#include <tallow/stun.h>

#include "relay_test_util.h"

static int both_ready(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready;
}

static int got_frames(void *ud)
{
    rt_peer *p = ud;
    return p[0].frames >= 1 && p[1].frames >= 1;
}

static int no_rooms(void *ud)
{
    return rt_stat(ud, "rooms") == 0 && rt_stat(ud, "conns") == 0;
}

static void test_relay_pair_exchange(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    assert_true(e.port > 0);
    rt_peer p[2];
    assert_int_equal(rt_peer_open(&e, &p[0], "pair-room", 2, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "pair-room", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, both_ready, p, 5000));
    assert_int_equal(rt_stat(&e, "rooms"), 1);

    assert_int_equal(tallow_channel_send(p[0].ch, 0, (const uint8_t *)"hello", 5), 0);
    assert_int_equal(tallow_channel_send(p[1].ch, UINT32_MAX, (const uint8_t *)"world!", 6), 0);
    assert_true(rt_run_until(&e, got_frames, p, 5000));
    assert_int_equal(p[1].last_len, 5);
    assert_memory_equal(p[1].last, "hello", 5);
    assert_int_equal(p[0].last_len, 6);
    assert_memory_equal(p[0].last, "world!", 6);
    assert_int_equal(p[0].last_from, 0);

    tallow_channel_info info;
    tallow_channel_get_info(p[0].ch, &info);
    assert_int_equal(info.direct, 0);
    assert_non_null(strstr(info.path, e.addr));
    assert_int_equal(info.peers, 2);
    assert_true(info.peer_index == 1 || info.peer_index == 2);
    assert_true(info.bytes_sent >= 5 && info.bytes_recv >= 6);
    /* two frames of 5+5 and 5+6 bytes went through */
    assert_int_equal(rt_stat(&e, "bytes_forwarded"), 21);

    /* an orderly close ends the room for the other side with err 0 */
    rt_peer_close(&p[0]);
    assert_true(rt_run_until(&e, rt_cond_closed, &p[1], 5000));
    assert_int_equal(p[1].err, 0);
    rt_peer_close(&p[1]);
    assert_true(rt_run_until(&e, no_rooms, &e, 5000));
    rt_env_stop(&e);
}

static int all4_ready(void *ud)
{
    rt_peer *p = ud;
    for (int i = 0; i < 4; i++) {
        if (!p[i].ready || !p[i].ch) return 0;
        tallow_channel_info info;
        tallow_channel_get_info(p[i].ch, &info);
        if (info.peers != 4) return 0;
    }
    return 1;
}

static int others_got(void *ud)
{
    rt_peer *p = ud;
    return p[1].frames == 1 && p[2].frames == 1 && p[3].frames == 1;
}

static int third_got_two(void *ud)
{
    return ((rt_peer *)ud)[2].frames == 2;
}

static void test_relay_multi_room(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    rt_peer p[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(rt_peer_open(&e, &p[i], "multi", 4, NULL, NULL), 0);
    assert_true(rt_run_until(&e, all4_ready, p, 5000));
    uint32_t idx[4];
    for (int i = 0; i < 4; i++) {
        tallow_channel_info info;
        tallow_channel_get_info(p[i].ch, &info);
        idx[i] = info.peer_index;
        assert_true(idx[i] >= 1 && idx[i] <= 4);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(idx[i], idx[j]);
        assert_true(p[i].joined_room >= 1); /* each learned who else is there */
        assert_int_equal(p[i].count_peers, 4);
        assert_int_equal(p[i].count_capacity, 4);
    }
    /* broadcast: everyone else gets it once */
    assert_int_equal(tallow_channel_send(p[0].ch, 0, (const uint8_t *)"all", 3), 0);
    assert_true(rt_run_until(&e, others_got, p, 5000)); /* 0 names no peer: everyone */
    assert_int_equal(p[0].frames, 0);
    assert_memory_equal(p[3].last, "all", 3);
    /* targeted: only the target gets it, told who sent it */
    assert_int_equal(tallow_channel_send(p[1].ch, idx[2], (const uint8_t *)"just you", 8), 0);
    assert_true(rt_run_until(&e, third_got_two, p, 5000));
    rt_run_for(&e, 100);
    assert_int_equal(p[2].last_from, idx[1]);
    assert_memory_equal(p[2].last, "just you", 8);
    assert_int_equal(p[0].frames, 0);
    assert_int_equal(p[1].frames, 1);
    assert_int_equal(p[3].frames, 1);
    /* one peer leaves: the room goes on, the others hear of it */
    rt_peer_close(&p[3]);
    rt_run_for(&e, 200);
    assert_false(p[0].closed);
    assert_int_equal(p[0].count_peers, 3);
    for (int i = 0; i < 3; i++)
        rt_peer_close(&p[i]);
    assert_true(rt_run_until(&e, no_rooms, &e, 5000));
    rt_env_stop(&e);
}

static int three_ready(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready && p[2].ready;
}

static int creator_got_two(void *ud)
{
    return ((rt_peer *)ud)[0].frames == 2;
}

/* The creator's capacity counts: peers asking for a pair (a plain `tallow receive`) still join
 * a multi room, as a pair with the creator: what they send reaches the creator, tagged with
 * their index, and never the other members. */
static void test_relay_capacity_from_creator(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    rt_peer p[3];
    assert_int_equal(rt_peer_open(&e, &p[0], "creator", 3, NULL, NULL), 0);
    rt_run_for(&e, 50); /* p[0] creates the room */
    assert_int_equal(rt_peer_open(&e, &p[1], "creator", 0, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[2], "creator", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, three_ready, p, 5000));
    tallow_channel_info i1, i2;
    tallow_channel_get_info(p[1].ch, &i1);
    tallow_channel_get_info(p[2].ch, &i2);
    assert_int_not_equal(i1.peer_index, i2.peer_index);
    assert_int_equal(tallow_channel_send(p[1].ch, 0, (const uint8_t *)"hi", 2), 0);
    assert_int_equal(tallow_channel_send(p[2].ch, 0, (const uint8_t *)"yo", 2), 0);
    assert_true(rt_run_until(&e, creator_got_two, p, 5000));
    rt_run_for(&e, 50);
    assert_int_equal(p[1].frames, 0);
    assert_int_equal(p[2].frames, 0);
    for (int i = 0; i < 3; i++)
        rt_peer_close(&p[i]);
    rt_env_stop(&e);
}

static void test_relay_stun_binding(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET}, relay = {.sin_family = AF_INET};
    me.sin_addr.s_addr = relay.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    relay.sin_port = htons(e.port);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    uint8_t req[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
    for (int i = 8; i < 20; i++)
        req[i] = (uint8_t)(i * 7);
    assert_int_equal(sendto(fd, req, 20, 0, (struct sockaddr *)&relay, sizeof relay), 20);
    uint8_t resp[256];
    ssize_t n = -1;
    for (int i = 0; i < 200 && n < 0; i++) {
        tallow_loop_run_once(e.loop, 10);
        n = recv(fd, resp, sizeof resp, MSG_DONTWAIT);
    }
    assert_true(n >= 20);
    assert_int_equal(resp[0], 0x01);
    assert_int_equal(resp[1], 0x01); /* Binding success */
    assert_memory_equal(resp + 4, req + 4, 16);
    int found_xor = 0, found_plain = 0, found_fp = 0;
    for (size_t off = 20; off + 4 <= (size_t)n;) {
        uint16_t type = (uint16_t)(resp[off] << 8 | resp[off + 1]);
        uint16_t len = (uint16_t)(resp[off + 2] << 8 | resp[off + 3]);
        const uint8_t *v = resp + off + 4;
        if (type == 0x0020) {
            uint16_t port = (uint16_t)((v[2] << 8 | v[3]) ^ 0x2112);
            uint8_t ip[4] = {v[4] ^ 0x21, v[5] ^ 0x12, v[6] ^ 0xA4, v[7] ^ 0x42};
            assert_int_equal(v[1], 1);
            assert_int_equal(port, ntohs(me.sin_port));
            assert_memory_equal(ip, "\x7f\x00\x00\x01", 4);
            found_xor = 1;
        } else if (type == 0x0001) {
            assert_int_equal((uint16_t)(v[2] << 8 | v[3]), ntohs(me.sin_port));
            assert_memory_equal(v + 4, "\x7f\x00\x00\x01", 4);
            found_plain = 1;
        } else if (type == 0x8028) {
            found_fp = 1;
        }
        off += 4 + (size_t)((len + 3) & ~3);
    }
    assert_true(found_xor && found_plain && found_fp);
    tallow_stun_msg m;
    assert_int_equal(tallow_stun_parse(resp, (size_t)n, &m), 0);
    assert_int_equal(tallow_stun_check_fingerprint(&m), 0);
    struct sockaddr_storage mapped;
    socklen_t mlen = sizeof mapped;
    assert_int_equal(tallow_stun_mapped_address(&m, &mapped, &mlen), 0);
    assert_int_equal(((struct sockaddr_in *)&mapped)->sin_port, me.sin_port);
    /* not STUN: ignored */
    assert_int_equal(sendto(fd, "hello", 5, 0, (struct sockaddr *)&relay, sizeof relay), 5);
    rt_run_for(&e, 100);
    assert_true(recv(fd, resp, sizeof resp, MSG_DONTWAIT) < 0);
    close(fd);
    rt_env_stop(&e);
}

/* The STUN responder is no reflector: one source flooding it with Binding requests (which a
 * spoofer would aim at a victim) gets a burst of answers, then a trickle. */
static void test_relay_stun_rate_limited(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in relay = {.sin_family = AF_INET};
    relay.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    relay.sin_port = htons(e.port);
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    uint8_t req[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
    int answers = 0;
    uint64_t t0 = tallow_now_ns();
    for (int i = 0; i < 400; i++) {
        req[8] = (uint8_t)i;
        req[9] = (uint8_t)(i >> 8);
        assert_int_equal(sendto(fd, req, 20, 0, (struct sockaddr *)&relay, sizeof relay), 20);
        if (i % 16 == 15) tallow_loop_run_once(e.loop, 0);
    }
    uint8_t resp[256];
    for (int i = 0; i < 50; i++) {
        tallow_loop_run_once(e.loop, 10);
        while (recv(fd, resp, sizeof resp, MSG_DONTWAIT) > 0)
            answers++;
    }
    double secs = (double)(tallow_now_ns() - t0) / 1e9;
    /* the burst, plus what the rate refilled while the test ran */
    assert_true(answers >= 64);
    assert_true(answers <= 64 + (int)(secs * 32) + 2);
    rt_run_for(&e, 1000); /* a second later the source is answered again */
    assert_int_equal(sendto(fd, req, 20, 0, (struct sockaddr *)&relay, sizeof relay), 20);
    ssize_t n = -1;
    for (int i = 0; i < 200 && n < 0; i++) {
        tallow_loop_run_once(e.loop, 10);
        n = recv(fd, resp, sizeof resp, MSG_DONTWAIT);
    }
    assert_true(n >= 20);
    close(fd);
    rt_env_stop(&e);
}

/* A relay on a wildcard address answers STUN from the address the request was sent to: a client
 * behind a NAT (or with a connected socket, as here) takes replies only from there. Loopback
 * holds 127.0.0.1 and 127.0.0.2; the client, on 127.0.0.1, asks 127.0.0.2, whose reply would
 * otherwise leave from 127.0.0.1 (the route's preferred source). */
static void stun_from_wildcard(const char *listen)
{
    rt_env e;
    tallow_kv o[] = {{"listen", listen}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET}, relay = {.sin_family = AF_INET};
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    relay.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1);
    relay.sin_port = htons(e.port);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&relay, sizeof relay), 0);
    uint8_t req[64], txid[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2}, resp[256];
    int rl = tallow_stun_binding_request(req, sizeof req, txid);
    assert_true(rl > 0);
    ssize_t n = -1;
    for (int i = 0; i < 300 && n < 0; i++) {
        if (i % 100 == 0) assert_int_equal(send(fd, req, (size_t)rl, 0), rl);
        tallow_loop_run_once(e.loop, 10);
        n = recv(fd, resp, sizeof resp, MSG_DONTWAIT);
    }
    if (n < 0) fail_msg("no STUN reply from 127.0.0.2 (relay listening on %s)", listen);
    tallow_stun_msg m;
    assert_int_equal(tallow_stun_parse(resp, (size_t)n, &m), 0);
    struct sockaddr_storage mapped;
    socklen_t ml = sizeof mapped;
    assert_int_equal(tallow_stun_mapped_address(&m, &mapped, &ml), 0);
    assert_int_equal(mapped.ss_family, AF_INET);
    assert_int_equal(((struct sockaddr_in *)&mapped)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    close(fd);
    rt_env_stop(&e);
}

static void test_relay_stun_wildcard_v4(void **state)
{
    stun_from_wildcard("0.0.0.0:0");
}

/* the same on a dual-stack socket ([::], IPv4 requests arrive v4-mapped) */
static void test_relay_stun_wildcard_dual(void **state)
{
    FILE *f = fopen("/proc/sys/net/ipv6/bindv6only", "r");
    int v6only = f && fgetc(f) == '1';
    if (f) fclose(f);
    if (v6only) skip(); /* [::] takes no IPv4 here */
    stun_from_wildcard("[::]:0");
}

/* One Binding request from fd to 127.0.0.1:port, answered within 3 s: the mapped address. */
static void stun_ask(rt_env *e, int fd, uint16_t port, struct sockaddr_in *mapped)
{
    struct sockaddr_in relay = {.sin_family = AF_INET, .sin_port = htons(port)};
    relay.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint8_t req[64], txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, (uint8_t)port}, resp[256];
    int rl = tallow_stun_binding_request(req, sizeof req, txid);
    assert_true(rl > 0);
    ssize_t n = -1;
    for (int i = 0; i < 300 && n < 0; i++) {
        if (i % 100 == 0)
            assert_int_equal(
                sendto(fd, req, (size_t)rl, 0, (struct sockaddr *)&relay, sizeof relay), rl);
        tallow_loop_run_once(e->loop, 10);
        n = recv(fd, resp, sizeof resp, MSG_DONTWAIT);
    }
    if (n < 0) fail_msg("no STUN reply from UDP port %u", port);
    tallow_stun_msg m;
    assert_int_equal(tallow_stun_parse(resp, (size_t)n, &m), 0);
    assert_memory_equal(resp + 8, txid, 12); /* the answer to this request */
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    assert_int_equal(tallow_stun_mapped_address(&m, &a, &al), 0);
    assert_int_equal(a.ss_family, AF_INET);
    memcpy(mapped, &a, sizeof *mapped);
}

/* The relay answers STUN on a second UDP port (the listen port + 1 by default), so that a client
 * with one relay can compare two mappings: from loopback (no NAT) both report the same address. */
static void test_relay_stun_two_ports(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    uint16_t p2 = (uint16_t)rt_stat(&e, "stun_port2");
    assert_int_equal(p2, e.port + 1);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET}, m1, m2;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    stun_ask(&e, fd, e.port, &m1);
    stun_ask(&e, fd, p2, &m2);
    assert_int_equal(m1.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_equal(m1.sin_port, me.sin_port);
    assert_int_equal(m2.sin_addr.s_addr, m1.sin_addr.s_addr);
    assert_int_equal(m2.sin_port, m1.sin_port);
    close(fd);
    rt_env_stop(&e);
    /* stun-port2 = off: one port only */
    tallow_kv off[] = {{"stun-port2", "off"}};
    assert_int_equal(rt_env_start(&e, off, 1), 0);
    assert_int_equal(rt_stat(&e, "stun_port2"), 0);
    rt_env_stop(&e);
    /* a bad value is refused */
    tallow_kv bad[] = {{"stun-port2", "70000"}};
    assert_true(rt_env_start(&e, bad, 1) < 0);
    rt_env_stop(&e);
}

/* A joined client learns the second STUN port from RoomJoined: control(TALLOW_CTL_STUN_SERVER)
 * names both ports (the negotiator's default STUN servers), and only the relay's own with
 * stun-port2 = off. */
static void stun_server_of(rt_env *e, char *out, size_t cap)
{
    rt_peer p[2];
    assert_int_equal(rt_peer_open(e, &p[0], "stun-ctl", 2, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(e, &p[1], "stun-ctl", 2, NULL, NULL), 0);
    assert_true(rt_run_until(e, both_ready, p, 5000));
    tallow_ctl_addr a = {{0}};
    assert_int_equal(tallow_channel_control(p[0].ch, TALLOW_CTL_STUN_SERVER, &a), 0);
    snprintf(out, cap, "%s", a.addr);
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
}

static void test_relay_stun_server_ctl(void **state)
{
    rt_env e;
    char got[300], want[300];
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    stun_server_of(&e, got, sizeof got);
    snprintf(want, sizeof want, "127.0.0.1:%u,127.0.0.1:%u", e.port, e.port + 1u);
    assert_string_equal(got, want);
    rt_env_stop(&e);

    tallow_kv off[] = {{"stun-port2", "off"}};
    assert_int_equal(rt_env_start(&e, off, 1), 0);
    stun_server_of(&e, got, sizeof got);
    snprintf(want, sizeof want, "127.0.0.1:%u", e.port);
    assert_string_equal(got, want);
    rt_env_stop(&e);
}

static void test_relay_ping(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    int fd = rt_raw_connect(&e);
    assert_true(fd >= 0);
    tallow_msg_Ping ping = {42, 7};
    assert_int_equal(rt_raw_send_ctrl(&e, fd, &tallow_msgtype_Ping, &ping), 0);
    uint8_t ch, buf[256];
    long n = rt_raw_read_frame(&e, fd, &ch, buf, sizeof buf, 3000);
    assert_true(n > 0);
    assert_int_equal(ch, 0);
    tallow_msg_any m;
    const tallow_msg_type *t;
    assert_int_equal(
        tallow_msg_decode(tallow_ctx_registry(e.ctx), buf, (size_t)n, &t, &m, sizeof m), 0);
    assert_int_equal(t->id, TALLOW_MSG_Pong);
    assert_int_equal(m.Pong.seq, 42);
    close(fd);
    rt_env_stop(&e);
}

/* IPv6: the relay listens on [::1], clients connect with a bracketed address, STUN answers
 * with an IPv6 mapped address. */
static void test_relay_ipv6(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"listen", "[::1]:0"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    snprintf(e.addr, sizeof e.addr, "[::1]:%u", e.port);
    rt_peer p[2];
    assert_int_equal(rt_peer_open(&e, &p[0], "v6", 2, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "v6", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, both_ready, p, 5000));
    assert_int_equal(tallow_channel_send(p[0].ch, 0, (const uint8_t *)"six", 3), 0);
    assert_int_equal(tallow_channel_send(p[1].ch, 0, (const uint8_t *)"four", 4), 0);
    assert_true(rt_run_until(&e, got_frames, p, 5000));
    assert_memory_equal(p[1].last, "six", 3);
    tallow_channel_info info;
    tallow_channel_get_info(p[0].ch, &info);
    assert_non_null(strstr(info.path, "[::1]:"));

    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 relay = {.sin6_family = AF_INET6, .sin6_port = htons(e.port)};
    relay.sin6_addr = in6addr_loopback;
    uint8_t req[64], txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, resp[256];
    int rl = tallow_stun_binding_request(req, sizeof req, txid);
    assert_true(rl > 0);
    assert_int_equal(sendto(fd, req, (size_t)rl, 0, (struct sockaddr *)&relay, sizeof relay), rl);
    ssize_t n = -1;
    for (int i = 0; i < 200 && n < 0; i++) {
        tallow_loop_run_once(e.loop, 10);
        n = recv(fd, resp, sizeof resp, MSG_DONTWAIT);
    }
    assert_true(n > 20);
    tallow_stun_msg m;
    assert_int_equal(tallow_stun_parse(resp, (size_t)n, &m), 0);
    struct sockaddr_storage mapped;
    socklen_t ml = sizeof mapped;
    assert_int_equal(tallow_stun_mapped_address(&m, &mapped, &ml), 0);
    assert_int_equal(mapped.ss_family, AF_INET6);
    assert_memory_equal(&((struct sockaddr_in6 *)&mapped)->sin6_addr, &in6addr_loopback, 16);
    close(fd);
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    rt_env_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_pair_exchange),
        cmocka_unit_test(test_relay_multi_room),
        cmocka_unit_test(test_relay_capacity_from_creator),
        cmocka_unit_test(test_relay_stun_binding),
        cmocka_unit_test(test_relay_stun_rate_limited),
        cmocka_unit_test(test_relay_stun_wildcard_v4),
        cmocka_unit_test(test_relay_stun_wildcard_dual),
        cmocka_unit_test(test_relay_stun_two_ports),
        cmocka_unit_test(test_relay_stun_server_ctl),
        cmocka_unit_test(test_relay_ping),
        cmocka_unit_test(test_relay_ipv6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
