/* tests/plugins/relay/test_relay_refuse.c — what the relay refuses and how clients hear of it:
 * wrong relay password, a third peer in a pair room, too many rooms from one address, a silent
 * connection (join timeout), an oversized frame, data before a peer, a failed handshake closing
 * the room for everyone, a newer protocol version. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay_test_util.h"

static const tallow_channel_events no_events = {0}; /* for opens that must fail */

#define RELAY_TO_LEAVE (UINT32_MAX - 1) /* relay.h: send() of a RoomLeave reason */

static int both_ready(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready;
}

static int both_closed(void *ud)
{
    rt_peer *p = ud;
    return p[0].closed && p[1].closed;
}

static int no_conns(void *ud)
{
    return rt_stat(ud, "conns") == 0;
}

/* Reads frames until a control RoomLeave / VersionReject; returns its reason in out. */
static int read_refusal(rt_env *e, int fd, uint32_t *type, char *out, size_t cap)
{
    for (int i = 0; i < 16; i++) {
        uint8_t ch, buf[2048];
        long n = rt_raw_read_frame(e, fd, &ch, buf, sizeof buf, 5000);
        if (n <= 0) return -1;
        if (ch != 0) continue;
        tallow_msg_any m;
        const tallow_msg_type *t;
        if (tallow_msg_decode(tallow_ctx_registry(e->ctx), buf, (size_t)n, &t, &m, sizeof m) < 0)
            return -1;
        const tallow_bytes *r = t->id == TALLOW_MSG_RoomLeave       ? &m.RoomLeave.reason
                                : t->id == TALLOW_MSG_VersionReject ? &m.VersionReject.reason
                                                                    : NULL;
        if (!r) continue;
        *type = t->id;
        snprintf(out, cap, "%.*s", (int)r->len, (const char *)r->ptr);
        return 0;
    }
    return -1;
}

/* Reads the refusal on fd and checks its reason is exactly why; closes fd. */
static void expect_refusal(rt_env *e, int fd, const char *why)
{
    uint32_t type;
    char got[128];
    assert_true(fd >= 0);
    assert_int_equal(read_refusal(e, fd, &type, got, sizeof got), 0);
    assert_string_equal(got, why);
    close(fd);
}

/* Two peers in room, paired (both ready). */
static void open_pair(rt_env *e, rt_peer p[2], const char *room, const char *password)
{
    assert_int_equal(rt_peer_open(e, &p[0], room, 2, password, NULL), 0);
    assert_int_equal(rt_peer_open(e, &p[1], room, 2, password, NULL), 0);
    assert_true(rt_run_until(e, both_ready, p, 5000));
}

static void close_pair(rt_peer p[2])
{
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
}

/* A raw connection that has sent j; its fd, or -1. */
static int raw_join_msg(rt_env *e, const tallow_msg_RoomJoin *j)
{
    int fd = rt_raw_connect(e);
    if (fd < 0 || rt_raw_send_ctrl(e, fd, &tallow_msgtype_RoomJoin, j) < 0) return -1;
    return fd;
}

static int raw_join(rt_env *e, const char *room, uint32_t capacity, uint32_t version)
{
    uint8_t id[32];
    rt_room_id(room, id);
    tallow_msg_RoomJoin j = {.room = {id, 32}, .version = version, .capacity = capacity};
    return raw_join_msg(e, &j);
}

static void test_relay_refuse_wrong_password(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"password", "s3cret"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    rt_peer p[2];
    assert_int_equal(rt_peer_open(&e, &p[0], "pw-room", 2, "wrong", NULL), 0);
    assert_true(rt_run_until(&e, rt_cond_closed, &p[0], 5000));
    assert_int_equal(p[0].err, TALLOW_ERELAY);
    assert_non_null(strstr(p[0].errmsg, "wrong relay password"));
    assert_false(p[0].ready);
    /* the right password pairs */
    rt_peer_close(&p[0]);
    open_pair(&e, p, "pw-room", "s3cret");
    close_pair(p);
    rt_env_stop(&e);
}

static void test_relay_refuse_room_full(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    rt_peer p[3];
    open_pair(&e, p, "full", NULL);
    p[2].close_on_closed = 1;
    assert_int_equal(rt_peer_open(&e, &p[2], "full", 2, NULL, NULL), 0);
    p[2].close_on_closed = 1; /* closes itself from inside on_closed */
    assert_true(rt_run_until(&e, rt_cond_closed, &p[2], 5000));
    assert_int_equal(p[2].err, TALLOW_EROOMFULL);
    assert_non_null(strstr(p[2].errmsg, "room full"));
    assert_null(p[2].ch);
    /* the pair is untouched */
    rt_run_for(&e, 100);
    assert_false(p[0].closed || p[1].closed);
    assert_int_equal(tallow_channel_send(p[0].ch, 0, (const uint8_t *)"x", 1), 0);
    close_pair(p);
    rt_env_stop(&e);
}

static void test_relay_refuse_rooms_per_ip(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"max-rooms-per-ip", "2"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    int a = raw_join(&e, "r1", 2, 2), b = raw_join(&e, "r2", 2, 2), c = raw_join(&e, "r3", 2, 2);
    assert_true(a >= 0 && b >= 0 && c >= 0);
    expect_refusal(&e, dup(c), "too many rooms from your address");
    assert_int_equal(rt_stat(&e, "rooms"), 2);
    close(a);
    close(b);
    close(c);
    assert_true(rt_run_until(&e, no_conns, &e, 5000));
    assert_int_equal(rt_stat(&e, "rooms"), 0);
    rt_env_stop(&e);
}

static void test_relay_refuse_join_timeout(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"join-timeout", "0.3"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    int fd = rt_raw_connect(&e);
    assert_true(fd >= 0);
    rt_run_for(&e, 50);
    assert_int_equal(rt_stat(&e, "conns"), 1);
    expect_refusal(&e, dup(fd), "join timeout");
    assert_true(rt_raw_wait_eof(&e, fd, 5000));
    close(fd);
    assert_true(rt_run_until(&e, no_conns, &e, 5000));
    rt_env_stop(&e);
}

static void test_relay_refuse_oversized_frame(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"max-frame", "1024"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    int fd = raw_join(&e, "big", 2, 2);
    assert_true(fd >= 0);
    uint8_t hdr[5] = {0, 0, 0x13, 0x88, 1}; /* 5000 bytes announced */
    assert_int_equal(write(fd, hdr, 5), 5);
    expect_refusal(&e, dup(fd), "frame too large");
    assert_true(rt_raw_wait_eof(&e, fd, 5000));
    close(fd);
    assert_true(rt_run_until(&e, no_conns, &e, 5000));
    assert_int_equal(rt_stat(&e, "rooms"), 0);
    rt_env_stop(&e);
}

static void test_relay_refuse_data_before_peer(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    int fd = raw_join(&e, "lonely", 2, 2);
    assert_int_equal(rt_raw_send(fd, 1, (const uint8_t *)"early", 5), 0);
    expect_refusal(&e, fd, "data before a peer joined");
    rt_env_stop(&e);
}

static void test_relay_refuse_version(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    /* a newer version, and the release before: refused too, never half-spoken */
    const struct {
        const char *room;
        uint32_t version;
        const char *why;
    } v[] = {{"future", 99, "version 99 (this relay speaks 2)"},
             {"past", 1, "version 1 (this relay speaks 2)"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int fd = raw_join(&e, v[i].room, 2, v[i].version);
        uint32_t type;
        char why[128];
        assert_int_equal(read_refusal(&e, fd, &type, why, sizeof why), 0);
        assert_int_equal(type, TALLOW_MSG_VersionReject);
        assert_non_null(strstr(why, v[i].why));
        close(fd);
    }
    expect_refusal(&e, raw_join(&e, "huge", 500, 2), "capacity above the relay's limit");
    rt_env_stop(&e);
}

static void test_relay_refuse_handshake_failed_closes_room(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    rt_peer p[2];
    open_pair(&e, p, "pake", NULL);
    const char *why = "handshake-failed";
    assert_int_equal(
        tallow_channel_send(p[0].ch, RELAY_TO_LEAVE, (const uint8_t *)why, strlen(why)), 0);
    assert_true(rt_run_until(&e, both_closed, p, 5000));
    assert_int_equal(p[0].err, TALLOW_ECODE);
    assert_int_equal(p[1].err, TALLOW_ECODE);
    assert_int_equal(rt_stat(&e, "rooms"), 0);
    close_pair(p);
    /* the room id is free again: a new attempt starts from scratch */
    assert_int_equal(rt_peer_open(&e, &p[0], "pake", 2, NULL, NULL), 0);
    rt_run_for(&e, 100);
    assert_false(p[0].closed);
    assert_int_equal(rt_stat(&e, "rooms"), 1);
    rt_peer_close(&p[0]);
    rt_env_stop(&e);
}

static void test_relay_refuse_bad_options(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"max-rooms", "lots"}};
    assert_int_equal(rt_env_start(&e, o, 1), TALLOW_EINVAL);
    assert_non_null(strstr(tallow_ctx_last_error(e.ctx), "max-rooms"));
    e.inst = NULL;
    rt_env_stop(&e);
    tallow_kv o2[] = {{"no-such-option", "1"}};
    assert_int_equal(rt_env_start(&e, o2, 1), TALLOW_EINVAL);
    e.inst = NULL;
    rt_env_stop(&e);
}

static void test_relay_refuse_unpaired_timeout(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"unpaired-timeout", "0.3"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    rt_peer a;
    assert_int_equal(rt_peer_open(&e, &a, "alone", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, rt_cond_closed, &a, 5000));
    assert_int_equal(a.err, TALLOW_ERELAY);
    assert_non_null(strstr(a.errmsg, "room timeout"));
    assert_int_equal(rt_stat(&e, "rooms"), 0);
    rt_peer_close(&a);
    rt_env_stop(&e);
}

/* A relay whose option limit is 2 connections: a third is closed at once, the two stay. */
static void third_conn_closed(const char *limit)
{
    rt_env e;
    tallow_kv o[] = {{limit, "2"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    int a = rt_raw_connect(&e), b = rt_raw_connect(&e), c = rt_raw_connect(&e);
    assert_true(a >= 0 && b >= 0 && c >= 0);
    assert_true(rt_raw_wait_eof(&e, c, 5000));
    assert_int_equal(rt_stat(&e, "conns"), 2);
    assert_false(rt_raw_wait_eof(&e, a, 100));
    close(a);
    close(b);
    close(c);
    assert_true(rt_run_until(&e, no_conns, &e, 5000));
    rt_env_stop(&e);
}

static void test_relay_refuse_conns_per_ip(void **state)
{
    third_conn_closed("max-conns-per-ip");
}

static void test_relay_refuse_conns_total(void **state)
{
    third_conn_closed("max-conns"); /* the relay is full */
}

/* Reads frames until RoomJoined; copies its resume token. 0 or -1. */
static int read_token(rt_env *e, int fd, uint8_t token[16])
{
    for (int i = 0; i < 16; i++) {
        uint8_t ch, buf[2048];
        long n = rt_raw_read_frame(e, fd, &ch, buf, sizeof buf, 5000);
        if (n <= 0) return -1;
        tallow_msg_any m;
        const tallow_msg_type *t;
        if (ch != 0 ||
            tallow_msg_decode(tallow_ctx_registry(e->ctx), buf, (size_t)n, &t, &m, sizeof m) < 0 ||
            t->id != TALLOW_MSG_RoomJoined)
            continue;
        if (m.RoomJoined.resume_token.len != 16) return -1;
        memcpy(token, m.RoomJoined.resume_token.ptr, 16);
        return 0;
    }
    return -1;
}

static int raw_resume(rt_env *e, const uint8_t token[16], const uint8_t *proof)
{
    uint8_t id[32];
    rt_room_id("chain", id);
    tallow_msg_RoomJoin j = {.room = {id, 32},
                             .version = 2,
                             .capacity = 2,
                             .resume_token = {token, 16},
                             .resume_proof = {proof, proof ? 32 : 0}};
    return raw_join_msg(e, &j);
}

/* What travels in clear (the resume token, every proof already used) does not let an observer
 * take a slot over: a resume needs the next element back of the client's hash chain. */
static void test_relay_refuse_observed_resume(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"grace", "30"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    uint8_t chain[4][32]; /* chain[i + 1] = H(chain[i]); chain[3] is the anchor */
    randombytes_buf(chain[0], 32);
    for (int i = 0; i < 3; i++)
        crypto_generichash(chain[i + 1], 32, chain[i], 32, NULL, 0);
    uint8_t id[32], token[16];
    rt_room_id("chain", id);
    int a = rt_raw_connect(&e), b = rt_raw_connect(&e);
    tallow_msg_RoomJoin ja = {
        .room = {id, 32}, .version = 2, .capacity = 2, .resume_anchor = {chain[3], 32}};
    tallow_msg_RoomJoin jb = {.room = {id, 32}, .version = 2, .capacity = 2};
    assert_int_equal(rt_raw_send_ctrl(&e, a, &tallow_msgtype_RoomJoin, &ja), 0);
    assert_int_equal(read_token(&e, a, token), 0);
    assert_int_equal(rt_raw_send_ctrl(&e, b, &tallow_msgtype_RoomJoin, &jb), 0);
    uint8_t tb[16];
    assert_int_equal(read_token(&e, b, tb), 0); /* paired */
    close(a);                                   /* A's slot waits for its resume */
    const char *unknown = "unknown resume token";
    /* the token alone; with the anchor, seen on the first join */
    expect_refusal(&e, raw_resume(&e, token, NULL), unknown);
    expect_refusal(&e, raw_resume(&e, token, chain[3]), unknown);
    int x = raw_resume(&e, token, chain[2]); /* the owner: the next element back */
    uint8_t t2[16];
    assert_int_equal(read_token(&e, x, t2), 0);
    close(x);
    /* that proof, replayed by whoever saw it */
    expect_refusal(&e, raw_resume(&e, token, chain[2]), unknown);
    x = raw_resume(&e, token, chain[0]); /* the owner again, having skipped one attempt */
    assert_int_equal(read_token(&e, x, t2), 0);
    close(x);
    close(b);
    rt_env_stop(&e);
}

static void test_relay_refuse_client_errors(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    /* nobody listens there: on_closed from the loop, never from inside open */
    rt_peer a;
    snprintf(e.addr, sizeof e.addr, "127.0.0.1:1");
    assert_int_equal(rt_peer_open(&e, &a, "x", 2, NULL, NULL), 0);
    assert_false(a.closed);
    assert_true(rt_run_until(&e, rt_cond_closed, &a, 5000));
    assert_int_equal(a.err, -ECONNREFUSED);
    rt_peer_close(&a);
    /* the peer never comes: the caller's timeout */
    snprintf(e.addr, sizeof e.addr, "127.0.0.1:%u", e.port);
    e.timeout_ms = 300;
    assert_int_equal(rt_peer_open(&e, &a, "never", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, rt_cond_closed, &a, 5000));
    assert_int_equal(a.err, TALLOW_ETIMEOUT);
    rt_peer_close(&a);
    /* bad parameters are refused by open itself */
    uint8_t id[32];
    rt_room_id("bad", id);
    tallow_channel_params prm = {.struct_size = sizeof prm, .room = id, .room_len = 32};
    tallow_channel *ch = NULL;
    prm.address = "127.0.0.1:99999";
    assert_int_equal(tallow_channel_open(e.ctx, "relay", &prm, &no_events, NULL, &ch),
                     TALLOW_EINVAL);
    prm.address = e.addr;
    prm.room_len = 0;
    assert_int_equal(tallow_channel_open(e.ctx, "relay", &prm, &no_events, NULL, &ch),
                     TALLOW_EINVAL);
    prm.room_len = 32;
    assert_int_equal(tallow_channel_open(e.ctx, "relay", &prm, NULL, NULL, &ch), TALLOW_EINVAL);
    rt_env_stop(&e);
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Garbage from many connections (random bytes, random frames after a valid join, random
 * control payloads) never takes the relay down; afterwards it is empty and still pairs. */
static void test_relay_refuse_garbage(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    uint8_t buf[4096];
    for (int batch = 0; batch < 8; batch++) {
        int fds[32];
        for (int i = 0; i < 32; i++) {
            fds[i] = rt_raw_connect(&e);
            assert_true(fds[i] >= 0);
            int kind = (int)(rng(&x) % 3);
            if (kind > 0) {
                uint8_t id[32];
                char room[16];
                snprintf(room, sizeof room, "g%d", (int)(rng(&x) % 8));
                rt_room_id(room, id);
                tallow_msg_RoomJoin j = {.room = {id, 32}, .version = 2, .capacity = 2};
                rt_raw_send_ctrl(&e, fds[i], &tallow_msgtype_RoomJoin, &j);
            }
            for (int k = 0; k < 4; k++) {
                size_t len = (size_t)(rng(&x) % sizeof buf);
                for (size_t b = 0; b < len; b++)
                    buf[b] = (uint8_t)rng(&x);
                if (kind == 0) {
                    (void)!send(fds[i], buf, len, MSG_NOSIGNAL);
                } else {
                    uint8_t ch = kind == 2 ? 0 : (uint8_t)(rng(&x) % 4);
                    rt_raw_send(fds[i], ch, buf, len);
                }
            }
            tallow_loop_run_once(e.loop, 0);
        }
        rt_run_for(&e, 50);
        for (int i = 0; i < 32; i++)
            close(fds[i]);
    }
    assert_true(rt_run_until(&e, no_conns, &e, 5000));
    /* rooms where two garbage peers paired are held for resume; the relay still works */
    rt_peer p[2];
    open_pair(&e, p, "after", NULL);
    close_pair(p);
    rt_env_stop(&e);
}

/* A client that floods Pings and never reads its Pongs is no longer read from once its answers
 * pile up: the relay's queue stays bounded. */
static void test_relay_refuse_ping_flood(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"queue-high", "262144"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(e.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static uint8_t pings[256 * 1024];
    size_t n = 0;
    while (n + 32 < sizeof pings) {
        uint8_t msg[32];
        tallow_msg_Ping ping = {n, n};
        int l = tallow_msg_encode(&tallow_msgtype_Ping, &ping, msg, sizeof msg);
        relay_test_put_frame(pings + n, 0, msg, (size_t)l);
        n += 5 + (size_t)l;
    }
    uint64_t sent = 0, stalled_since = 0, end = tallow_now_ns() + 10ull * 1000000000ull;
    while (sent < 64ull * 1024 * 1024 && tallow_now_ns() < end) {
        ssize_t w = send(fd, pings, n, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (uint64_t)w; /* frames may be cut: the relay parses a stream */
            stalled_since = 0;
        } else if (!stalled_since) {
            stalled_since = tallow_now_ns();
        } else if (tallow_now_ns() - stalled_since > 500000000ull) {
            break; /* the relay stopped reading us: that is the point */
        }
        tallow_loop_run_once(e.loop, 1);
    }
    uint64_t peak = rt_stat(&e, "queued_peak");
    printf("# ping flood: %llu bytes sent before the relay stopped reading, queue peak %llu\n",
           (unsigned long long)sent, (unsigned long long)peak);
    assert_true(peak >= 262144);
    assert_true(peak <= 262144 + 1024);
    close(fd);
    assert_true(rt_run_until(&e, no_conns, &e, 5000));
    rt_env_stop(&e);
}

static int one_conn(void *ud)
{
    return rt_stat(ud, "conns") <= 1;
}

/* A sender held back (the receiver does not read) that vanishes is noticed at once, although
 * the relay is not reading from it. (It vanishes in the middle of a streamed frame, so the
 * receiver, whose stream now ends in a cut frame, is disconnected too, to resume.) */
static void test_relay_refuse_paused_sender_vanishes(void **state)
{
    rt_env e;
    tallow_kv o[] = {{"queue-high", "262144"}};
    assert_int_equal(rt_env_start(&e, o, 1), 0);
    int rx = raw_join(&e, "held", 2, 2), tx = raw_join(&e, "held", 2, 2);
    assert_true(rx >= 0 && tx >= 0);
    rt_run_for(&e, 50);
    static uint8_t data[64 * 1024];
    uint64_t stalled_since = 0, end = tallow_now_ns() + 10ull * 1000000000ull;
    int held = 0;
    while (tallow_now_ns() < end) {
        int r = rt_raw_send(tx, 1, data, sizeof data - 5);
        if (r == 0) {
            stalled_since = 0;
        } else if (!stalled_since) {
            stalled_since = tallow_now_ns();
        } else if (tallow_now_ns() - stalled_since > 300000000ull) {
            held = 1;
            break;
        }
        tallow_loop_run_once(e.loop, 1);
    }
    /* held back: the relay stopped reading it (long frames wait in kernel buffers and the
     * relay's pipe, not in its queues) */
    assert_true(held);
    assert_true(rt_stat(&e, "queued_bytes") <= 262144 + 16384);
    struct linger lg = {1, 0};
    setsockopt(tx, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(tx); /* a reset */
    assert_true(rt_run_until(&e, one_conn, &e, 3000));
    close(rx);
    assert_true(rt_run_until(&e, no_conns, &e, 5000));
    rt_env_stop(&e);
}

/* A failover join into a group room (RoomJoin.slot): the slot it held on the room's previous
 * relay, echoed in RoomJoined; refused when that slot is taken, beyond the room or the room's
 * capacity differs; a join without a slot then takes the highest free slot (the low ones are the
 * returning peers'). */
static int slot_join(rt_env *e, uint32_t capacity, uint32_t slot)
{
    uint8_t id[32];
    rt_room_id("slots", id);
    tallow_msg_RoomJoin j = {.room = {id, 32}, .version = 2, .capacity = capacity, .slot = slot};
    return raw_join_msg(e, &j);
}

static void expect_joined(rt_env *e, int fd, uint32_t index, uint32_t slot)
{
    assert_true(fd >= 0);
    for (int i = 0; i < 16; i++) {
        uint8_t ch, buf[2048];
        long n = rt_raw_read_frame(e, fd, &ch, buf, sizeof buf, 5000);
        assert_true(n > 0);
        tallow_msg_any m;
        const tallow_msg_type *t;
        if (ch != 0 ||
            tallow_msg_decode(tallow_ctx_registry(e->ctx), buf, (size_t)n, &t, &m, sizeof m) < 0)
            continue;
        assert_int_not_equal(t->id, TALLOW_MSG_RoomLeave);
        if (t->id != TALLOW_MSG_RoomJoined) continue;
        assert_int_equal(m.RoomJoined.peer_index, index);
        assert_int_equal(m.RoomJoined.slot, slot);
        assert_int_equal(m.RoomJoined.capacity, 4);
        return;
    }
    fail();
}

static void test_relay_refuse_slots(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    int third = slot_join(&e, 4, 3); /* the first back creates the room, in its old slot */
    expect_joined(&e, third, 3, 3);
    int first = slot_join(&e, 4, 1);
    expect_joined(&e, first, 1, 1);
    expect_refusal(&e, slot_join(&e, 4, 3), "peer slot taken");
    expect_refusal(&e, slot_join(&e, 4, 5), "peer slot taken");
    expect_refusal(&e, slot_join(&e, 5, 2), "peer slot taken"); /* another room's capacity */
    int fresh = slot_join(&e, 0, 0);
    expect_joined(&e, fresh, 4, 0);
    int last = slot_join(&e, 4, 2);
    expect_joined(&e, last, 2, 2);
    close(third);
    close(first);
    close(fresh);
    close(last);
    rt_env_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_refuse_wrong_password),
        cmocka_unit_test(test_relay_refuse_room_full),
        cmocka_unit_test(test_relay_refuse_rooms_per_ip),
        cmocka_unit_test(test_relay_refuse_join_timeout),
        cmocka_unit_test(test_relay_refuse_oversized_frame),
        cmocka_unit_test(test_relay_refuse_data_before_peer),
        cmocka_unit_test(test_relay_refuse_version),
        cmocka_unit_test(test_relay_refuse_conns_total),
        cmocka_unit_test(test_relay_refuse_observed_resume),
        cmocka_unit_test(test_relay_refuse_slots),
        cmocka_unit_test(test_relay_refuse_handshake_failed_closes_room),
        cmocka_unit_test(test_relay_refuse_bad_options),
        cmocka_unit_test(test_relay_refuse_unpaired_timeout),
        cmocka_unit_test(test_relay_refuse_conns_per_ip),
        cmocka_unit_test(test_relay_refuse_client_errors),
        cmocka_unit_test(test_relay_refuse_garbage),
        cmocka_unit_test(test_relay_refuse_ping_flood),
        cmocka_unit_test(test_relay_refuse_paused_sender_vanishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
