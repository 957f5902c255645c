/* tallow/transport.h — the transport interface: a channel that carries framed, ordered, reliable
 * byte messages between this peer and the other(s). The relay (TCP through a relay room), QUIC
 * (direct) and user plugins (a Unix socket, a LAN TCP link, ...) implement it; the session layer
 * on top encrypts every frame, so a transport only ever sees ciphertext after the handshake.
 *
 * Instances: the host allocates ops->instance_size zeroed bytes; the plugin's own struct embeds
 * tallow_channel first. The host frees them after close. */
#ifndef TALLOW_TRANSPORT_H
#define TALLOW_TRANSPORT_H

#include "common.h"
#include <sys/socket.h>

#define TALLOW_TRANSPORT_OPS_VERSION 1

typedef struct tallow_channel tallow_channel;
typedef struct tallow_udp tallow_udp;

/* Events a transport reports to its user (the session). Frames are borrowed for the call. */
typedef struct tallow_channel_events {
    /* The channel is connected to a peer and frames may flow. */
    void (*on_ready)(tallow_channel *ch, void *ud);
    /* One whole frame from peer `from` (0 for two-peer channels). */
    void (*on_frame)(tallow_channel *ch, uint32_t from, const uint8_t *data, size_t len, void *ud);
    /* send() returned 1 earlier and the queue has drained below the low-water mark. */
    void (*on_writable)(tallow_channel *ch, void *ud);
    /* A room event: TALLOW_MSG_PeerJoinedRoom / PeerLeftRoom / RoomPeerCount / PeerDeparted,
     * with the decoded message (borrowed). */
    void (*on_room)(tallow_channel *ch, uint32_t type, const void *msg, void *ud);
    /* The channel is gone for good (err 0: closed by the peer in order). After this the host
     * calls close; no further events. */
    void (*on_closed)(tallow_channel *ch, int err, void *ud);
} tallow_channel_events;

/* Where and how to open a channel. Every pointer is borrowed for the open call only. Start from
 * TALLOW_CHANNEL_PARAMS_INIT (it sets struct_size); new members are appended, and a transport
 * reads one only when struct_size covers it. */
typedef struct tallow_channel_params {
    uint32_t struct_size;
    const char *address; /* transport-specific: "host:port" (relay, tcp), a path (unix) */
    const uint8_t *room; /* rendezvous id (32 bytes) — never the code itself */
    size_t room_len;
    const char *password; /* relay password or NULL */
    uint32_t capacity;    /* peers in the room; 0 or 2 for a pair */
    int initiator;        /* 1 on the side that offers (sender), 0 on the other */
    const char *proxy;    /* "socks5://host:port" or NULL (relay connections only) */
    /* Direct transports (quic): the shared endpoint, the nominated peer address, and the key
     * both peers derived from the PAKE session (32 bytes) that pins the TLS identity. */
    tallow_udp *udp;
    const struct sockaddr *peer;
    socklen_t peer_len;
    const uint8_t *psk;
    uint32_t timeout_ms; /* give up opening after this long (0: transport default) */
    uint32_t flags;      /* TALLOW_CHANNEL_* (read only when struct_size covers it) */
    /* Relay transports: where to go if the relay dies after pairing, "host:port,host:port" in
     * the room's order (both peers pass the same list); NULL for none. Read only when
     * struct_size covers it. */
    const char *failover;
} tallow_channel_params;

/* tallow_channel_params p = TALLOW_CHANNEL_PARAMS_INIT(.address = a, .room = r, .room_len = 32);
 * every member not named is zero. */
#define TALLOW_CHANNEL_PARAMS_INIT(...)                                                            \
    {                                                                                              \
        .struct_size = sizeof(tallow_channel_params), __VA_ARGS__                                  \
    }

/* flags. ROOM: the user handles every peer of a multi-peer room itself (core/session/room.c):
 * send(to) names the peer, on_frame's from is the sender's index (in a pair room too: the other's
 * index), and capacity 0 joins whatever room exists. Without it, a channel that asked for a pair
 * (capacity 0 or 2) and lands in a multi-peer room talks to the room's creator (peer index 1)
 * only: its sends go there and it hears nobody else (how `tallow receive` joins
 * `send --to-many`); a channel that asked for a multi room sees the raw, index-addressed room. */
#define TALLOW_CHANNEL_ROOM 1u

typedef struct tallow_channel_info {
    int direct;          /* 1 if the bytes go straight to the peer, 0 through a relay */
    const char *path;    /* "relay 1.2.3.4:4433", "direct 5.6.7.8:9000", ...; borrowed */
    uint64_t rtt_us;     /* smoothed RTT if known, else 0 */
    uint64_t bytes_sent; /* frame bytes handed to the network */
    uint64_t bytes_recv;
    uint32_t peer_index; /* this peer's index in a room */
    uint32_t peers;      /* peers in the room, if known */
    uint32_t capacity;   /* the room's capacity (2: a pair), if known */
    /* What the channel cost so far, "name=value ..." (datagrams, batches, losses); NULL if the
     * transport keeps no counters; borrowed until the channel's next call. */
    const char *stats;
} tallow_channel_info;

/* The base every channel instance starts with. Filled by the host before open.
 *
 * Frozen: plugins embed it first in their own instance struct (instance_size covers both), so its
 * size and layout are part of TALLOW_PLUGIN_ABI. Its members never move, change type or go away,
 * and none is ever added: a member added here would shift every plugin's own fields. Whatever a
 * channel needs from the host later comes through a new tallow_transport_ops slot, a
 * tallow_host slot or a host function taking the channel, never through this struct. Changing it
 * anyway means a new TALLOW_PLUGIN_ABI. */
struct tallow_channel {
    const struct tallow_transport_ops *ops;
    void *plugin_state;
    tallow_ctx *ctx;
    tallow_loop *loop;
    const tallow_channel_events *ev;
    void *ev_ud;
};

typedef struct tallow_transport_ops {
    uint32_t version;     /* TALLOW_TRANSPORT_OPS_VERSION */
    uint32_t struct_size; /* sizeof(tallow_transport_ops) as built */
    const char *name;     /* "relay", "quic", "unix", ... */
    size_t instance_size; /* >= sizeof(tallow_channel) */
    /* Starts opening; reports on_ready or on_closed later, never from inside open. Returns 0 or
     * a negative error (then no event follows). */
    int (*open)(tallow_channel *ch, const tallow_channel_params *p);
    /* Queues one frame (copied) to peer `to` (ignored by two-peer transports). Returns 0, or 1
     * when the queue is now above its high-water mark (the caller waits for on_writable), or a
     * negative error (frame not taken). */
    int (*send)(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len);
    /* Everything below is optional: a slot left NULL (or absent from an older plugin's smaller
     * struct) gets the host's default, and the core calls every slot without testing it. */
    /* Flushes what it can and releases everything; no event afterwards. Default: nothing. */
    void (*close)(tallow_channel *ch);
    /* Fills info (zeroed by the host); strings borrowed until the next call. Default: nothing
     * (the host then names the path by the transport's name). */
    void (*get_info)(tallow_channel *ch, tallow_channel_info *info);
    /* Bytes queued and not yet handed to the kernel. Default: 0. */
    size_t (*queued)(tallow_channel *ch);
    /* Transport-specific operations the core may ask for without naming the transport
     * (TALLOW_CTL_*); arg is op-specific. Returns 0, or TALLOW_ENOTSUP for an op the transport
     * does not implement. Optional: the default returns TALLOW_ENOTSUP. */
    int (*control)(tallow_channel *ch, int op, void *arg);
} tallow_transport_ops;

/* Operations of tallow_transport_ops.control. A transport implements those that mean something
 * for it and returns TALLOW_ENOTSUP for the others. */
enum {
    /* Leave the room in order, after what is queued, telling the service why. arg: const char *,
     * the reason (NUL-terminated, at most 200 bytes). A session whose handshake failed sends
     * "handshake-failed": a relay then closes the room for everyone, so each attempt gives a
     * guesser one try at most. */
    TALLOW_CTL_LEAVE = 1,
    /* A STUN responder the transport's service runs for its users, for the direct path's
     * candidates when the user named none (a relay answers STUN on its own port). arg:
     * tallow_ctl_addr *, filled with "host:port" (IPv6 in brackets), or a comma-separated list of
     * them when the service answers on several ports (a relay's second STUN port). */
    TALLOW_CTL_STUN_SERVER = 2,
};

/* The arg of TALLOW_CTL_STUN_SERVER. */
typedef struct tallow_ctl_addr {
    char addr[280];
} tallow_ctl_addr;

/* Looks up a registered transport by name; borrowed, or NULL. */
TALLOW_API const tallow_transport_ops *tallow_transport_find(tallow_ctx *ctx, const char *name);
/* Allocates and opens a channel of the named transport. p must come from
 * TALLOW_CHANNEL_PARAMS_INIT (TALLOW_EINVAL without a struct_size). On success *out is owned by
 * the caller and released with tallow_channel_close (which also frees it). */
TALLOW_API int tallow_channel_open(tallow_ctx *ctx, const char *transport,
                                   const tallow_channel_params *p, const tallow_channel_events *ev,
                                   void *ud, tallow_channel **out);
TALLOW_API int tallow_channel_send(tallow_channel *ch, uint32_t to, const uint8_t *frame,
                                   size_t len);
TALLOW_API void tallow_channel_get_info(tallow_channel *ch, tallow_channel_info *info);
TALLOW_API void tallow_channel_close(tallow_channel *ch);
/* Bytes the channel holds not yet handed to the kernel (ops->queued). */
TALLOW_API size_t tallow_channel_queued(tallow_channel *ch);
/* A transport-specific operation (ops->control): 0, or TALLOW_ENOTSUP, or an op's error. */
TALLOW_API int tallow_channel_control(tallow_channel *ch, int op, void *arg);

#endif
