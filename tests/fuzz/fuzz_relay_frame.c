/* tests/fuzz/fuzz_relay_frame.c — libFuzzer target for the relay's framing, both ways.
 * Service side (input byte 0, bit 0 clear): a relay_srv built in process with three client
 * connections on socketpairs; the input is a list of chunks {conn (1 byte), length (1 byte),
 * bytes} appended to a connection's input and parsed by relay_conn_process (frames, control
 * messages, RoomJoin with password/capacity/resume, forwarding), with the sweep run on request;
 * frames above 512 bytes are streamed, and while one is, the chunks go to the connection's
 * socket and are moved on by relay_stream_pump (splice, or copies in multi rooms).
 * Client side (bit 0 set): a relay client channel in JOINING state parses the same chunks as
 * what the relay sent it (relay_cl_frames: room events, refusals, data frames); with bit 2 set
 * it starts earlier, in the SOCKS5 exchange with a proxy (relay_socks_input), whose replies
 * come first in the same stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctx_internal.h"
#include "relay_cl.h"
#include "relay_srv.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_relay_frame: check failed: %s (line %d)\n", #c, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NCONN 3

static tallow_ctx *ctx;

static void drain(int fd)
{
    uint8_t b[65536];
    while (read(fd, b, sizeof b) > 0) {
    }
}

static relay_conn *conn_new(relay_srv *s, relay_ip *ip, int *peer_fd)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    relay_conn *c = calloc(1, sizeof *c);
    CHECK(c);
    c->srv = s;
    c->fd = sv[0];
    c->pfd[0] = c->pfd[1] = -1;
    *peer_fd = sv[1];
    c->ip = ip;
    ip->conns++;
    c->state = RC_PENDING;
    c->deadline = tallow_loop_now(s->loop) + s->lim.join_timeout_ms;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;
}

static void append(relay_inbuf *b, const uint8_t *p, size_t n)
{
    if (n == 0) return;
    CHECK(relay_inbuf_reserve(b, n) == 0);
    memcpy(b->buf + b->end, p, n);
    b->end += n;
}

static void fuzz_service(const uint8_t *data, size_t size)
{
    relay_srv *s = calloc(1, sizeof *s);
    CHECK(s);
    relay_srv_wire(s);
    s->ctx = ctx;
    static tallow_host host; /* the relay plugin's own, as the loader would make it */
    tallow__host_make(&host, ctx, "relay");
    s->host = &host;
    s->loop = tallow_ctx_loop(ctx);
    s->reg = tallow_ctx_registry(ctx);
    s->lfd = s->ufd = s->ufd2 = -1;
    s->lim = (relay_limits){
        .max_rooms = 4,
        .max_peers = 4,
        .max_frame = 4096,
        .max_conns_per_ip = 64,
        .max_rooms_per_ip = 3,
        .room_timeout_ms = 3600000,
        .unpaired_timeout_ms = 600000,
        .join_timeout_ms = 10000,
        .grace_ms = (data[0] & 4) ? 0 : 30000,
        .drain_ms = 2000,
        .high_water = 64 * 1024,
        .low_water = 16 * 1024,
    };
    if (data[0] & 2) s->password = strdup("pw");
    s->in_cap = 512; /* frames above it are streamed: from the socket, not the input buffer */
    s->scratch = malloc(RELAY_SCRATCH);
    CHECK(s->scratch);
    relay_ip *ip = calloc(1, sizeof *ip);
    CHECK(ip);
    ip->addr[15] = 1;
    ip->node.hash = relay_hash(s, ip->addr, 16);
    CHECK(relay_htab_add(&s->ips, &ip->node) == 0);
    relay_conn *c[NCONN];
    int peer[NCONN];
    for (int i = 0; i < NCONN; i++)
        c[i] = conn_new(s, ip, &peer[i]);
    uint64_t later = tallow_loop_now(s->loop);
    size_t pos = 1;
    while (pos + 2 <= size) {
        uint8_t who = data[pos], len = data[pos + 1];
        pos += 2;
        if (len > size - pos) len = (uint8_t)(size - pos);
        if (who & 0x80) { /* time passes: timeouts, grace expiries */
            later += (uint64_t)len * 60000;
            relay_room_sweep(s, later);
        } else {
            relay_conn *x = c[who % NCONN];
            if (x && (x->state == RC_PENDING || x->state == RC_JOINED)) {
                if (RELAY_STREAMING(x)) { /* the rest of a streamed frame comes by the socket */
                    if (len) (void)!write(peer[who % NCONN], data + pos, len); /* may be full */
                    relay_stream_pump(x);
                } else {
                    append(&x->in, data + pos, len);
                    relay_conn_process(x);
                }
            }
        }
        pos += len;
        for (int i = 0; i < NCONN; i++)
            drain(peer[i]);
        relay_srv_settle(s);
        for (int i = 0; i < NCONN; i++) { /* killed connections are gone after settle */
            relay_conn *l = s->conns;
            while (l && l != c[i])
                l = l->next;
            c[i] = l;
        }
    }
    relay_service_ops.stop(s);
    for (int i = 0; i < NCONN; i++)
        close(peer[i]);
}

/* ---- client side */

static int frames, closes;
static uint32_t last_from;

static void cl_on_ready(tallow_channel *ch, void *ud) {}
static void cl_on_frame(tallow_channel *ch, uint32_t from, const uint8_t *p, size_t len, void *ud)
{
    CHECK(len < RELAY_CL_MAX_FRAME);
    if (len) CHECK(p[0] == p[0] && p[len - 1] == p[len - 1]); /* readable */
    last_from = from;
    frames++;
}
static void cl_on_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    CHECK(msg != NULL);
}
static void cl_on_closed(tallow_channel *ch, int err, void *ud)
{
    closes++;
}
static const tallow_channel_events cl_events = {
    .on_ready = cl_on_ready,
    .on_frame = cl_on_frame,
    .on_room = cl_on_room,
    .on_closed = cl_on_closed,
};

static void fuzz_client(const uint8_t *data, size_t size)
{
    static tallow_channel ch;
    ch.ctx = ctx;
    ch.loop = tallow_ctx_loop(ctx);
    ch.ev = &cl_events;
    relay_cl *cl = calloc(1, sizeof *cl);
    CHECK(cl);
    relay_cl_wire(cl);
    cl->ch = &ch;
    cl->ctx = ctx;
    cl->loop = ch.loop;
    cl->fd = -1;
    cl->state = CL_JOINING;
    cl->capacity = (data[0] & 2) ? 4 : 2;
    snprintf(cl->host, sizeof cl->host, "relay.example");
    snprintf(cl->port, sizeof cl->port, "4433");
    snprintf(cl->hostport, sizeof cl->hostport, "relay.example:4433");
    memset(cl->room, 0xab, 32);
    cl->room_len = 32;
    int peer = -1;
    if (data[0] & 4) { /* through a SOCKS5 proxy: the hello has been sent */
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        cl->fd = sv[0];
        peer = sv[1];
        cl->state = CL_SOCKS;
        cl->socks_step = 1;
    }
    frames = closes = 0;
    size_t pos = 1;
    while (pos + 2 <= size && cl->state != CL_CLOSED) {
        uint8_t len = data[pos + 1];
        pos += 2;
        if (len > size - pos) len = (uint8_t)(size - pos);
        append(&cl->in, data + pos, len);
        pos += len;
        if (len == 0) continue; /* the client parses after a read that returned bytes */
        if (cl->state == CL_SOCKS && (relay_socks_input(cl) < 0 || cl->state == CL_SOCKS)) continue;
        relay_cl_frames(cl);
        if (peer >= 0) drain(peer);
    }
    CHECK(closes <= 1);
    if (cl->fd >= 0) close(cl->fd);
    if (peer >= 0) close(peer);
    relay_outq_clear(&cl->out);
    relay_inbuf_free(&cl->in);
    free(cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) {
        ctx = tallow_ctx_new();
        CHECK(ctx);
        tallow_ctx_set_log_level(ctx, TALLOW_LOG_ERROR);
    }
    if (size < 1) return 0;
    if (data[0] & 1)
        fuzz_client(data, size);
    else
        fuzz_service(data, size);
    return 0;
}
