/* tests/plugins/relay/relay_test_util.h — a relay service on a free loopback port inside a real
 * context, client channels that record their events, raw framed sockets, and bounded waits. */
#ifndef RELAY_TEST_UTIL_H
#define RELAY_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <tallow/tallow.h>

typedef struct rt_env {
    tallow_ctx *ctx;
    tallow_loop *loop;
    const tallow_service_ops *ops;
    void *inst;
    uint16_t port;
    char addr[64];        /* "127.0.0.1:PORT": where rt_peer_open connects */
    uint32_t timeout_ms;  /* rt_peer_open's open timeout (0: the transport's default) */
    const char *failover; /* rt_peer_open's failover list (NULL: none) */
} rt_env;

/* Loads build/plugins/relay.so into a fresh context and starts the service on 127.0.0.1:0 with
 * the extra options. Returns 0 or an error. */
int rt_env_start(rt_env *e, const tallow_kv *opts, size_t n);
void rt_env_stop(rt_env *e);
uint64_t rt_stat(rt_env *e, const char *key);
/* Runs the loop until cond(ud) is true or timeout_ms passed. Returns cond's last value. */
int rt_run_until(rt_env *e, int (*cond)(void *ud), void *ud, int timeout_ms);
void rt_run_for(rt_env *e, int ms);

typedef struct rt_peer {
    rt_env *env;
    tallow_channel *ch;
    int ready, closed, err, writable_calls;
    char errmsg[256];
    uint64_t frames, bytes;
    uint32_t last_from;
    uint8_t last[512];
    size_t last_len;
    int room_events;
    uint32_t last_room_type;
    uint32_t departed, arrived, resumed;  /* PeerDeparted / PeerArrived / RoomJoined events */
    uint32_t joined_room;                 /* PeerJoinedRoom events */
    uint32_t count_peers, count_capacity; /* the last RoomPeerCount */
    uint64_t check;                       /* running sum of received bytes' values, for streams */
    int close_on_closed;
} rt_peer;

/* Opens a relay channel into room `room` (a short string, zero padded to 32 bytes). */
int rt_peer_open(rt_env *e, rt_peer *p, const char *room, uint32_t capacity, const char *password,
                 const char *proxy);
void rt_peer_close(rt_peer *p);
int rt_cond_ready(void *p);  /* rt_peer */
int rt_cond_closed(void *p); /* rt_peer */
int rt_cond_frame(void *p);  /* rt_peer: at least one frame */
void rt_room_id(const char *room, uint8_t out[32]);

/* Raw framed sockets (nonblocking, so the relay on the same loop keeps running). */
int rt_raw_connect(rt_env *e);
/* Writes a frame header and payload into out (5 + len bytes). */
void relay_test_put_frame(uint8_t *out, uint8_t ch, const uint8_t *payload, size_t len);
int rt_raw_send(int fd, uint8_t ch, const uint8_t *payload, size_t len);
int rt_raw_send_ctrl(rt_env *e, int fd, const tallow_msg_type *t, const void *msg);
/* Reads one frame, pumping the loop. Returns payload length, 0 on EOF, -1 on timeout. */
long rt_raw_read_frame(rt_env *e, int fd, uint8_t *ch, uint8_t *buf, size_t cap, int timeout_ms);
/* Reads until EOF (pumping the loop). 1 on EOF, 0 on timeout. */
int rt_raw_wait_eof(rt_env *e, int fd, int timeout_ms);

#endif
