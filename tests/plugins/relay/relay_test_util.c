/* tests/plugins/relay/relay_test_util.c — helpers for the relay plugin's tests. */
#include "relay_test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void stat_cb(const char *key, uint64_t v, void *ud)
{
    struct {
        const char *key;
        uint64_t v;
    } *q = ud;
    if (strcmp(key, q->key) == 0) q->v = v;
}

uint64_t rt_stat(rt_env *e, const char *key)
{
    struct {
        const char *key;
        uint64_t v;
    } q = {key, UINT64_MAX};
    e->ops->stats(e->inst, stat_cb, &q);
    return q.v;
}

int rt_env_start(rt_env *e, const tallow_kv *opts, size_t n)
{
    memset(e, 0, sizeof *e);
    e->ctx = tallow_ctx_new();
    if (!e->ctx) return TALLOW_ENOMEM;
    if (getenv("RELAY_TEST_LOG")) tallow_ctx_set_log_level(e->ctx, TALLOW_LOG_DEBUG);
    e->loop = tallow_ctx_loop(e->ctx);
    int rc = tallow_plugin_load(e->ctx, TALLOW_TEST_BIN_DIR "/plugins/relay.so");
    if (rc < 0) {
        fprintf(stderr, "load: %s\n", tallow_ctx_last_error(e->ctx));
        return rc;
    }
    void *st = NULL;
    e->ops = tallow_service_find(e->ctx, "relay", &st);
    if (!e->ops) return TALLOW_ENOTFOUND;
    tallow_kv kv[32];
    size_t k = 0;
    kv[k++] = (tallow_kv){"listen", "127.0.0.1:0"};
    for (size_t i = 0; i < n && k < 32; i++)
        kv[k++] = opts[i];
    rc = e->ops->start(st, e->ctx, kv, k, &e->inst);
    if (rc < 0) return rc;
    e->port = (uint16_t)rt_stat(e, "port");
    snprintf(e->addr, sizeof e->addr, "127.0.0.1:%u", e->port);
    return 0;
}

void rt_env_stop(rt_env *e)
{
    if (e->inst) e->ops->stop(e->inst);
    e->inst = NULL;
    if (e->ctx) tallow_ctx_free(e->ctx);
    e->ctx = NULL;
}

int rt_run_until(rt_env *e, int (*cond)(void *ud), void *ud, int timeout_ms)
{
    uint64_t end = tallow_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (!cond(ud)) {
        if (tallow_now_ns() >= end) return cond(ud);
        tallow_loop_run_once(e->loop, 10);
    }
    return 1;
}

static int never(void *ud)
{
    (void)ud;
    return 0;
}

void rt_run_for(rt_env *e, int ms)
{
    rt_run_until(e, never, NULL, ms);
}

/* ---- channels */

static void ev_ready(tallow_channel *ch, void *ud)
{
    ((rt_peer *)ud)->ready = 1;
}

static void ev_frame(tallow_channel *ch, uint32_t from, const uint8_t *d, size_t len, void *ud)
{
    rt_peer *p = ud;
    p->frames++;
    p->bytes += len;
    p->last_from = from;
    p->last_len = len < sizeof p->last ? len : sizeof p->last;
    memcpy(p->last, d, p->last_len);
    for (size_t i = 0; i < len; i++)
        p->check += d[i];
}

static void ev_writable(tallow_channel *ch, void *ud)
{
    ((rt_peer *)ud)->writable_calls++;
}

static void ev_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    rt_peer *p = ud;
    p->room_events++;
    p->last_room_type = type;
    if (type == TALLOW_MSG_PeerDeparted) p->departed++;
    if (type == TALLOW_MSG_PeerArrived) p->arrived++;
    if (type == TALLOW_MSG_RoomJoined) p->resumed++;
    if (type == TALLOW_MSG_PeerJoinedRoom) p->joined_room++;
    if (type == TALLOW_MSG_RoomPeerCount) {
        const tallow_msg_RoomPeerCount *c = msg;
        p->count_peers = c->peers;
        p->count_capacity = c->capacity;
    }
}

static void ev_closed(tallow_channel *ch, int err, void *ud)
{
    rt_peer *p = ud;
    p->closed = 1;
    p->err = err;
    snprintf(p->errmsg, sizeof p->errmsg, "%s", tallow_ctx_last_error(p->env->ctx));
    if (p->close_on_closed) { /* close from inside the callback, as a session may */
        tallow_channel_close(p->ch);
        p->ch = NULL;
    }
}

static const tallow_channel_events rt_events = {
    .on_ready = ev_ready,
    .on_frame = ev_frame,
    .on_writable = ev_writable,
    .on_room = ev_room,
    .on_closed = ev_closed,
};

void rt_room_id(const char *room, uint8_t out[32])
{
    memset(out, 0, 32);
    memcpy(out, room, strlen(room) < 32 ? strlen(room) : 32);
}

int rt_peer_open(rt_env *e, rt_peer *p, const char *room, uint32_t capacity, const char *password,
                 const char *proxy)
{
    uint8_t id[32];
    rt_room_id(room, id);
    memset(p, 0, sizeof *p);
    p->env = e;
    tallow_channel_params prm = {
        .struct_size = sizeof prm,
        .address = e->addr,
        .room = id,
        .room_len = 32,
        .password = password,
        .capacity = capacity,
        .proxy = proxy,
        .timeout_ms = e->timeout_ms,
        .failover = e->failover,
    };
    return tallow_channel_open(e->ctx, "relay", &prm, &rt_events, p, &p->ch);
}

void rt_peer_close(rt_peer *p)
{
    if (p->ch) tallow_channel_close(p->ch);
    p->ch = NULL;
}

int rt_cond_ready(void *p)
{
    return ((rt_peer *)p)->ready;
}

int rt_cond_frame(void *p)
{
    return ((rt_peer *)p)->frames > 0;
}

int rt_cond_closed(void *p)
{
    return ((rt_peer *)p)->closed;
}

/* ---- raw sockets */

int rt_raw_connect(rt_env *e)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(e->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

void relay_test_put_frame(uint8_t *out, uint8_t ch, const uint8_t *payload, size_t len)
{
    uint32_t L = (uint32_t)len + 1;
    out[0] = (uint8_t)(L >> 24);
    out[1] = (uint8_t)(L >> 16);
    out[2] = (uint8_t)(L >> 8);
    out[3] = (uint8_t)L;
    out[4] = ch;
    memcpy(out + 5, payload, len);
}

int rt_raw_send(int fd, uint8_t ch, const uint8_t *payload, size_t len)
{
    uint8_t hdr[5];
    uint32_t L = (uint32_t)len + 1;
    hdr[0] = (uint8_t)(L >> 24);
    hdr[1] = (uint8_t)(L >> 16);
    hdr[2] = (uint8_t)(L >> 8);
    hdr[3] = (uint8_t)L;
    hdr[4] = ch;
    if (send(fd, hdr, 5, MSG_NOSIGNAL) != 5) return -1;
    if (len && send(fd, payload, len, MSG_NOSIGNAL) != (ssize_t)len) return -1;
    return 0;
}

int rt_raw_send_ctrl(rt_env *e, int fd, const tallow_msg_type *t, const void *msg)
{
    uint8_t buf[1024];
    int n = tallow_msg_encode(t, msg, buf, sizeof buf);
    if (n < 0) return n;
    return rt_raw_send(fd, 0, buf, (size_t)n);
}

static int read_exact(rt_env *e, int fd, uint8_t *buf, size_t n, uint64_t end)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r == 0) return 0;
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) return 0;
        if (tallow_now_ns() >= end) return -1;
        tallow_loop_run_once(e->loop, 5);
    }
    return 1;
}

long rt_raw_read_frame(rt_env *e, int fd, uint8_t *ch, uint8_t *buf, size_t cap, int timeout_ms)
{
    uint64_t end = tallow_now_ns() + (uint64_t)timeout_ms * 1000000u;
    uint8_t hdr[5];
    int r = read_exact(e, fd, hdr, 5, end);
    if (r <= 0) return r;
    size_t L = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    *ch = hdr[4];
    if (L - 1 > cap) return -1;
    r = read_exact(e, fd, buf, L - 1, end);
    if (r <= 0) return r;
    return (long)(L - 1);
}

int rt_raw_wait_eof(rt_env *e, int fd, int timeout_ms)
{
    uint64_t end = tallow_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint8_t b[4096];
        ssize_t r = read(fd, b, sizeof b);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return 1;
        if (r > 0) continue;
        if (tallow_now_ns() >= end) return 0;
        tallow_loop_run_once(e->loop, 5);
    }
}
