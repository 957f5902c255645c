/* plugins/relay/relay_srv.h — the relay service's internals, shared by its files (listed at the
 * prototypes, bottom layer first: limits, options, STUN, connections, data path, rooms, then the
 * operating entry points and the service itself). Everything hangs off one
 * relay_srv; nothing is freed while a callback may still hold it: dead connections and rooms go
 * to a graveyard that relay_srv_settle() empties at the end of every loop callback. */
#ifndef TALLOW_PLUGIN_RELAY_SRV_H
#define TALLOW_PLUGIN_RELAY_SRV_H

#include <sodium.h>

#include "relay.h"
#include "relay_ops.h"

typedef struct relay_srv relay_srv;
typedef struct relay_room relay_room;
typedef struct relay_ip relay_ip;
typedef struct relay_tlscred relay_tlscred;
typedef struct relay_tlsb relay_tlsb;

/* Intrusive chained hash table; callers compare keys themselves. */
typedef struct relay_hnode {
    struct relay_hnode *next;
    uint64_t hash;
} relay_hnode;
typedef struct relay_htab {
    relay_hnode **b;
    size_t nb, n;
} relay_htab;

enum relay_conn_state { RC_PENDING, RC_JOINED, RC_CLOSING, RC_DEAD };

typedef struct relay_conn {
    relay_srv *srv;
    struct relay_conn *prev, *next; /* srv->conns */
    struct relay_conn *link;        /* graveyard or kick list */
    int fd;
    tallow_io *io;
    unsigned events;
    int state;
    int paused;  /* not reading: a destination's queue is above high water */
    int kicked;  /* on the kick list */
    int shut;    /* SHUT_WR done (closing) */
    int wdead;   /* writing failed: output dropped, waiting for the read side to end */
    int tls;     /* behind a TLS bridge (relay_tls_srv.c): never spliced */
    int bigmode; /* the last data frame was streamed: read the next header alone */
    relay_ip *ip;
    uint64_t deadline; /* join deadline (pending) or drain deadline (closing) */
    relay_inbuf in;    /* at most srv->in_cap bytes, held only while not empty */
    relay_outq out;
    /* Streaming. A data frame longer than srv->in_cap is not buffered: its header (and what came
     * with it) goes out at once, each destination is then owned by this sender (owner) until
     * the frame's last byte, and the payload moves from socket to socket as it arrives: through
     * this connection's pipe with splice() when there is one destination, through the server's
     * scratch buffer into the destinations' queues otherwise. Control messages for an owned
     * destination wait in its defer queue until the frame ends. A sender that stops mid-frame
     * takes its destinations down with it (with grace): their stream has a cut frame. */
    struct relay_conn *owner; /* the sender streaming a frame into this connection, or NULL */
    relay_outq defer;         /* control frames held while owner streams */
    uint64_t left;            /* payload bytes of this sender's current frame not yet read */
    int pfd[2];               /* splice pipe while streaming to one destination, else -1 */
    size_t piped;             /* bytes in the pipe, not yet written to the destination */
    relay_room *room;
    uint32_t index; /* 1-based slot in room */
} relay_conn;

/* A sender in the middle of a streamed frame (it reads no frame header until the end). */
#define RELAY_STREAMING(c) ((c)->left > 0 || (c)->piped > 0)

typedef struct relay_slot {
    relay_conn *conn; /* NULL while held for resume */
    int used;
    uint64_t grace_until;
    uint8_t token[RELAY_TOKEN_LEN];
    int has_anchor;     /* the client committed to a hash chain: resumes must prove it */
    uint8_t anchor[32]; /* its latest element */
} relay_slot;

struct relay_room {
    relay_hnode node;
    relay_room *prev, *next; /* srv->rooms */
    relay_room *link;        /* graveyard */
    relay_srv *srv;
    uint8_t id[RELAY_ROOM_MAX];
    size_t idlen;
    char tag[9];
    uint32_t capacity, live, used;
    int paired, dead;
    int has_creator; /* a RoomJoin with creator = 1 made or joined it */
    int kept_slots;  /* a failover join took back its slot here: fresh joins take the highest */
    relay_ip *ip;    /* creator's address */
    uint64_t created, paired_at, last_active;
    uint64_t bytes, dropped;
    relay_slot slots[];
};

struct relay_ip {
    relay_hnode node;
    uint8_t addr[16];
    uint32_t conns, rooms;
};

#define RELAY_IN_CAP (16u * 1024u)
#define RELAY_STUN_SOURCES 4096
#define RELAY_STUN_BURST 64u /* answers a source may get at once */
#define RELAY_STUN_RATE 32u  /* answers per second per source, sustained */
#define RELAY_SCRATCH (64u * 1024u)
#define RELAY_PIPE_POOL 64
/* A streaming pipe holds 256 KiB rather than 64: a quarter of the splice() calls per byte. Only
 * the first RELAY_PIPE_BIG_MAX pipes grow: an unprivileged user's pipes share 64 MiB
 * (fs/pipe-user-pages-soft), past which the kernel gives new pipes two pages. */
#define RELAY_PIPE_BIG (256 * 1024)
#define RELAY_PIPE_BIG_MAX 64

typedef struct relay_limits {
    uint64_t max_rooms, max_peers, max_frame, max_conns_per_ip, max_rooms_per_ip, max_conns;
    uint64_t room_timeout_ms, unpaired_timeout_ms, join_timeout_ms, grace_ms, drain_ms;
    uint64_t high_water, low_water;
    uint64_t join_rate; /* RoomJoins per second per address (IPv6 /64), bursts of 4x; 0: off */
} relay_limits;

/* What the connection layer (relay_conn.c) tells the layers above it, which it does not call by
 * name: the arrows between the service's files point one way (down), and these callbacks are
 * the way back up. relay_srv_wire (relay_service.c) sets them to the room and data-path
 * functions. */
typedef struct relay_conn_up {
    void (*input)(relay_conn *c); /* bytes arrived in c->in: relay_conn_process (relay_room.c) */
    int (*pump)(relay_conn *c);   /* c's streamed frame can move on: relay_stream_pump; 1 if gone */
    void (*abort)(relay_conn *c); /* c stops mid-frame: relay_stream_abort */
    /* c leaves its room (closing or killed); grace: hold its slot for a resume */
    void (*detach)(relay_conn *c, const char *why, int grace);
    /* a queue of r fell below low water: its paused senders may read (relay_stream_unblock) */
    void (*unblock)(relay_room *r);
} relay_conn_up;

struct relay_srv {
    const relay_conn_up *up; /* relay_srv_wire */
    tallow_ctx *ctx;
    tallow_loop *loop;
    const tallow_host *host;
    tallow_registry *reg;
    relay_limits lim;
    char *password;
    int lfd, ufd;
    tallow_io *lio, *uio;
    /* A second STUN port (relay_stun.c): a client that asks both sees whether its NAT maps each
     * destination to a port of its own. stun2: -1 the listen port + 1, 0 none, or the port. */
    int stun2, ufd2;
    tallow_io *uio2;
    uint16_t stun_port2; /* bound, or 0 */
    tallow_timer *sweep;
    uint16_t port;
    /* STUN answers per source (IPv4 address, IPv6 /64), a token bucket each: no reflector */
    struct relay_stun_rl {
        uint64_t key, at_ms;
        uint32_t tokens;
    } stun_rl[RELAY_STUN_SOURCES], join_rl[RELAY_STUN_SOURCES]; /* join_rl: the same for joins */
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    relay_htab rooms_by_id, ips;
    relay_conn *conns;
    relay_room *rooms;
    relay_conn *grave_conns, *kicks;
    relay_room *grave_rooms;
    int in_settle;
    size_t in_cap;    /* input buffer; longer data frames are streamed */
    uint8_t *scratch; /* RELAY_SCRATCH bytes: streamed payload without a pipe, discarded input */
    int pipes[RELAY_PIPE_POOL][2]; /* empty pipes kept for the next streamed frame */
    int npipes;
    int big_pipes; /* open pipes grown to RELAY_PIPE_BIG */
    int nosplice;  /* option splice=off, or the kernel refused: copies only */
    /* counters */
    uint64_t bytes_forwarded, dropped, nrooms, nconns, rooms_total, conns_total, queued,
        queued_peak;
    /* operating (relay_ops.h): counters for the metrics, their endpoint, settings, draining */
    relay_counters ctr;
    relay_metrics *metrics;
    relay_opsconf opc;
    int draining;
    /* TLS (relay_tls_srv.c): with a certificate the listener is TLS-only */
    char *cert, *key;
    relay_tlscred *tls; /* for new connections; NULL: plain */
    relay_tlsb *tlsb;   /* live bridges */
};

/* RELAY_LOG(srv, lvl, "format", args...): the format is the first of the variadic arguments (a
 * string literal, joined to the prefix), so a call without args stays ISO C (no ##__VA_ARGS__). */
#define RELAY_LOG(srv, lvl, ...) (srv)->host->log((srv)->host, (lvl), "relay: " __VA_ARGS__)

/* ---- the service's files, bottom to top; each calls only the ones above it in this list
 * (relay_proto.c, relay_metrics.c and relay_tls_srv.c are leaves beside them). */

/* relay_limits.c: keyed hash tables, per-address accounting, token buckets */
uint64_t relay_hash(relay_srv *s, const void *key, size_t len);
relay_hnode *relay_htab_first(relay_htab *t, uint64_t hash);
int relay_htab_add(relay_htab *t, relay_hnode *n);
void relay_htab_del(relay_htab *t, relay_hnode *n);
/* The entry of a client's address (an IPv4 address, an IPv6 /64), made if new; NULL: no memory. */
relay_ip *relay_ip_get(relay_srv *s, const struct sockaddr_storage *ss);
/* Frees an address entry nothing counts any more. */
void relay_ip_put(relay_srv *s, relay_ip *ip);
/* A token for one RoomJoin from ip (join-rate; loopback is exempt), or 0: refuse it. */
int relay_join_allow(relay_srv *s, const relay_ip *ip);
/* A token for one STUN answer to this source, or 0: drop the request. */
int relay_stun_allow(relay_srv *s, const struct sockaddr_storage *from);

/* relay_options.c */
extern const char *const relay_options_help[];
/* The defaults of every limit and setting. */
void relay_srv_defaults(relay_srv *s);
/* Parses service options into s (limits, password, splice, TLS files, the operating options of
 * relay_ops.h); *listen and *stun are set when given. 0 or TALLOW_EINVAL (message set). */
int relay_parse_opts(relay_srv *s, const tallow_kv *o, size_t n, const char **listen, int *stun);

/* relay_stun.c: the STUN responder */
/* A nonblocking UDP socket bound to a (asking for each request's destination address), or -1:
 * *taken is set when the bind failed (the port is in use). */
int relay_stun_socket(int family, const struct sockaddr *a, socklen_t al, int *taken);
/* The second STUN socket, beside the first (bound to a, on s->port): on s->stun2's port, or
 * s->port + 1. Its fd (s->stun_port2 set), or -1 (*taken: the port is in use or there is none). */
int relay_stun_socket2(relay_srv *s, const struct sockaddr *a, socklen_t al, int *taken);
/* Answers on s->ufd and s->ufd2 (those open) from now on. 0 or TALLOW_ENOMEM. */
int relay_stun_start(relay_srv *s);
/* Stops answering and closes the sockets. */
void relay_stun_stop(relay_srv *s);

/* relay_tls_srv.c */
/* Loads a certificate chain and key (PEM) into new credentials (one reference). */
int relay_tlscred_load(relay_srv *s, const char *cert, const char *key, relay_tlscred **out);
void relay_tlscred_put(relay_tlscred *c);
/* Takes the accepted TCP socket tfd into a TLS bridge; *relay_fd is the socket the relay
 * serves instead. 0, or an error (tfd is then still the caller's). */
int relay_tls_accept(relay_srv *s, int tfd, int *relay_fd);
/* Ends bridges whose relay side closed and whose TLS peer has not taken the rest in time. */
void relay_tls_sweep(relay_srv *s, uint64_t now);
/* Closes every bridge and drops the credentials. */
void relay_tls_stop(relay_srv *s);

/* relay_conn.c: the connection API */
/* A new connection on the accepted socket cfd from ip (counted there), served in the loop.
 * 0, or TALLOW_ENOMEM (cfd and ip are then still the caller's). */
int relay_conn_new(relay_srv *s, int cfd, relay_ip *ip, int tls);
/* Recomputes the events a connection waits for (read unless paused, write if data queued). */
void relay_conn_update(relay_conn *c);
/* Closes now: fd and watcher released, detached from its room (grace: hold the slot for
 * resume), freed at settle time. */
void relay_conn_kill(relay_conn *c, const char *why, int grace);
/* Writing to c failed: drop its output and let reading find out why (a RoomLeave may still be
 * in its input). */
void relay_conn_wfail(relay_conn *c);
/* Sends a final control message (t may be NULL), then closes after flushing. */
void relay_conn_close_after(relay_conn *c, const tallow_msg_type *t, const void *msg);
/* Queues one control message. 0 or a negative error (the connection is then killed). */
int relay_conn_ctrl(relay_conn *c, const tallow_msg_type *t, const void *msg);
/* Bytes queued for c in user space (its output and deferred control messages). */
static inline size_t relay_conn_queued(const relay_conn *c)
{
    return c->out.bytes + c->defer.bytes;
}
/* Adds to the queued-bytes accounting after c's queues changed from before bytes. */
void relay_conn_acct(relay_conn *c, size_t before);
/* Marks a paused connection to resume reading at settle time. */
void relay_conn_kick(relay_conn *c);
/* Gives c a pipe (from the pool or new). 0, or < 0 (no pipe: copy instead). */
int relay_pipe_get(relay_srv *s, relay_conn *c);
/* Returns c's pipe to the pool (when empty) or closes it. */
void relay_pipe_put(relay_srv *s, relay_conn *c);
/* Closes a pipe (fd[0] < 0: none) and sets both to -1. */
void relay_pipe_close(relay_srv *s, int fd[2]);
/* Join deadlines (refused) and drain deadlines (killed) that have passed; the sweep timer. */
void relay_conn_sweep(relay_srv *s, uint64_t now);
/* Resumes kicked connections and frees the graveyard; the end of every loop callback (and of
 * each input of the relay fuzz target, tests/fuzz/fuzz_relay_frame.c). */
void relay_srv_settle(relay_srv *s);

/* relay_stream.c: the data path */
/* Writes a run of c's frames (in place: len bytes at p) to its destinations, every other live
 * peer (to == 0) or one; with own, they then belong to c until its streamed frame ends.
 * Returns how many destinations took it. */
size_t relay_forward(relay_conn *c, const uint8_t *p, size_t len, uint32_t to, int own);
/* 1 if a frame of c's for to must wait: a destination's queue is above high water, or another
 * sender is streaming into it. */
int relay_blocked(relay_conn *c, uint32_t to);
/* c's frame of which len bytes (header included) are at p is longer than them: sends them and
 * makes the destinations c's until the frame ends. With one destination they go by c's pipe
 * (with what follows, in one write), else like relay_forward. c->left is already set. */
void relay_stream_start(relay_conn *c, const uint8_t *p, size_t len, uint32_t to);
/* Moves c's streamed frame on (socket -> pipe -> destination, or through the scratch buffer)
 * as far as the sockets allow; pauses c when a destination is full. Returns 1 if c is gone. */
int relay_stream_pump(relay_conn *c);
/* c stops mid-frame (gone or closing): its destinations, which have a cut frame, are killed
 * (with grace) and the rest of the frame is forgotten. */
void relay_stream_abort(relay_conn *c);

/* Lets the paused senders of r read again (its queues have room, or a stream into it ended). */
void relay_stream_unblock(relay_room *r);

/* relay_room.c: rooms, joins, what a connection sends */
/* Parses and acts on the frames in c->in (until paused, closed, or a frame is streamed). */
void relay_conn_process(relay_conn *c);
/* Takes c out of its room; grace: hold its slot for a resume. */
void relay_room_detach(relay_conn *c, const char *why, int grace);
/* Closes a room: every peer gets RoomLeave{why} (if leave) and is disconnected. */
void relay_room_close(relay_room *r, const char *why, int leave);
/* Timeouts and grace expiries; called by the sweep timer. */
void relay_room_sweep(relay_srv *s, uint64_t now);
/* relay_ops.c (relay_ops.h) and relay_service.c (the vtable) are the top. */
/* relay_service.c: connects the connection layer to the rooms and the data path (s->up). */
void relay_srv_wire(relay_srv *s);

#endif
