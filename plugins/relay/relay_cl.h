/* plugins/relay/relay_cl.h — the relay client transport's internals, shared by its files, bottom
 * layer first: relay_client_tls.c (TLS and the connection's I/O), relay_socks.c (SOCKS5),
 * relay_client_fo.c (the failover list), relay_client_rx.c (the room protocol: RoomJoin out,
 * frames and room events in), and on top relay_client.c (the state machine: connecting, losing,
 * resuming, the transport vtable). A file calls only the ones below it; the lower ones report
 * up through the callbacks of relay_cl_up. */
#ifndef TALLOW_PLUGIN_RELAY_CL_H
#define TALLOW_PLUGIN_RELAY_CL_H

#include <netdb.h>
#include <sodium.h>

#include "relay.h"

#define RELAY_CL_HIGH (2u * 1024u * 1024u) /* send() returns 1 above this */
#define RELAY_CL_LOW (2u * 1024u * 1024u)  /* on_writable below this */
#define RELAY_CL_FLUSH_NOW (256u * 1024u)  /* write at once instead of at the next round */
#define RELAY_CL_MAX_FRAME (TALLOW_MSG_MAX_FRAME + RELAY_TGT_HDR)
#define RELAY_CL_CONNECT_MS 10000u /* one connection attempt (TCP) */
#define RELAY_CL_PROXY_MS 60000u   /* one attempt through a proxy (Tor builds circuits) */
#define RELAY_CL_RETRY_MS 500u     /* pause between resume attempts */
#define RELAY_RECONNECT_MS                                                                         \
    20000u /* how long a dropped channel tries to resume (TALLOW_RELAY_RECONNECT_MS: tests) */
/* Keepalive: a Ping after this long without receiving anything; the connection counts as dead
 * (and is resumed) when neither a byte arrived nor a blocked write drained for twice as long.
 * TALLOW_RELAY_KEEPALIVE_MS overrides it (tests). */
#define RELAY_KEEPALIVE_MS 15000u
/* Failover: a channel given other relays (tallow_channel_params.failover) that loses its
 * relay after pairing moves to the next one at once when the relay refuses connections or no
 * longer knows the room, else after this long without getting back. */
#define RELAY_FAILOVER_MS 3000u
/* Group rooms: the peer indexes a channel keeps track of across a failover (a relay allows at
 * most 1024 peers in a room; higher indexes are not tracked). */
#define RELAY_CL_MAX_PEERS 1024u
#define RELAY_CL_PEER_WORDS (RELAY_CL_MAX_PEERS / 64u)

enum relay_cl_state {
    CL_BACKOFF,    /* no socket; the tick (or a deferred call) connects at retry_at */
    CL_CONNECTING, /* nonblocking connect in progress */
    CL_SOCKS,      /* SOCKS5 negotiation with the proxy */
    CL_TLS,        /* TLS handshake (tls://), then the RoomJoin */
    CL_JOINING,    /* RoomJoin sent, waiting for RoomJoined */
    CL_WAITING,    /* in the room, waiting for a peer */
    CL_READY,      /* paired: frames flow */
    CL_CLOSED,     /* on_closed reported (or closed by the user) */
};

/* The plugin's own state for one channel. It is allocated separately from the host's instance
 * (relay_chan) because the user may close the channel from inside one of its callbacks: close
 * detaches it (ch = NULL) and it is freed once no callback holds it (timers are cancelled; no
 * tallow_defer is used, since a deferred call cannot be cancelled). */
typedef struct relay_cl relay_cl;

/* What the lower layers (TLS, SOCKS5, the room protocol) report to the state machine above them
 * (relay_client.c), which they do not call by name; relay_cl_wire sets it. */
typedef struct relay_cl_up {
    void (*fail)(relay_cl *cl, int err, const char *reason); /* closes; reports on_closed */
    void (*lost)(relay_cl *cl, int err); /* the connection dropped: resume or fail */
    int (*join)(relay_cl *cl);           /* TLS is up: send the RoomJoin; 0 or an error */
    int (*proxied)(relay_cl *cl);        /* SOCKS5 is through: TLS or the RoomJoin; 0 or error */
    void (*ready)(relay_cl *cl);         /* paired: state READY, flushes what was queued */
    /* a paired channel whose relay lost the room or shuts down: to the next relay of the room;
     * 1 if it moved, 0 if there is nowhere to go */
    int (*failover)(relay_cl *cl, const char *why);
} relay_cl_up;

struct relay_cl {
    const relay_cl_up *up; /* relay_cl_wire */
    tallow_channel *ch;    /* NULL once closed by the user */
    relay_plugin *host_pl;
    tallow_ctx *ctx;
    tallow_loop *loop;
    int state;
    int fd;
    tallow_io *io;
    unsigned events;
    tallow_timer *tick;
    int depth;          /* callbacks into the user in progress */
    tallow_timer *kick; /* one-shot 0 ms timer: connect or flush after this round */
    int werr;           /* socket write error seen, not yet handled */
    int want_writable;  /* send() returned 1 */
    int paired;         /* has been ready once: resume instead of failing */
    int proxy;
    struct addrinfo *ai, *ai_cur; /* relay's addresses (or the proxy's) */
    char host[256], port[16], hostport[280], path[320];
    uint8_t room[RELAY_ROOM_MAX];
    size_t room_len;
    char *password;
    uint32_t capacity;   /* asked for, then the room's real one once joined */
    uint16_t stun_port2; /* the relay's second STUN port (RoomJoined), or 0 */
    int room_aware;      /* TALLOW_CHANNEL_ROOM: the user addresses every peer itself */
    int pair_only;       /* asked for a pair (capacity 0 or 2, not ROOM): held to the creator */
    int initiator;       /* made the code: joins as the room's creator */
    uint8_t token[RELAY_TOKEN_LEN];
    size_t token_len;
    uint8_t chain_seed[32]; /* resume proofs: H^(RELAY_CHAIN_LEN - i)(seed) for resume i */
    uint32_t chain_next;    /* i of the next resume attempt (1..) */
    uint32_t peer_index, peers;
    uint64_t open_deadline, attempt_deadline, resume_deadline, retry_at;
    uint64_t sent, recv;
    uint64_t keepalive_ms, last_rx, last_drain, ping_at; /* ping_at: 0 or when a Ping left */
    uint64_t rtt_us, ping_seq;
    relay_inbuf in;
    relay_outq out;
    /* failover (relay_client_fo.c) */
    char *failover;   /* relays still to try, "a:1,b:2", consumed from the front; or NULL */
    int fresh_join;   /* the next RoomJoin creates or joins the room anew (no resume token) */
    int fo_wait;      /* joining a failover relay, until the peer is there: data is held */
    int refused;      /* the last connection attempt was refused */
    uint32_t fo_real; /* our index on the failover relay (peer_index keeps the first relay's, so
                       * that a room-aware user sees the same two indexes); 0 before a failover */
    /* group rooms (TALLOW_CHANNEL_ROOM, capacity > 2): the other peers in the room, and those
     * of them not yet back on the failover relay, reported gone (PeerLeftRoom) at fo_until */
    uint64_t members[RELAY_CL_PEER_WORDS], fo_missing[RELAY_CL_PEER_WORDS];
    uint32_t fo_nmissing;
    uint64_t fo_until;
    uint64_t lost_at;
    uint64_t reconnect_ms; /* RELAY_RECONNECT_MS unless the environment says otherwise */
    /* SOCKS5 */
    int socks_step;
    uint8_t socks_out[300];
    size_t socks_out_len, socks_out_off;
    /* TLS (relay_client_tls.c) */
    int tls;    /* the current relay is tls:// */
    char *pins; /* TALLOW_RELAY_PIN: replaces CA trust */
    struct gnutls_session_int *tls_s;
    struct gnutls_certificate_credentials_st *tls_cred;
};

typedef struct relay_chan {
    tallow_channel base;
    relay_cl *cl;
} relay_chan;

/* A channel that asked for a pair (a plain `tallow receive`) and landed in a multi room talks to
 * the room's creator only. */
#define RELAY_CREATOR 1u
static inline int relay_cl_pair_in_multi(const relay_cl *cl)
{
    return cl->capacity > 2 && cl->pair_only;
}

/* relay_client_tls.c: TLS, and the connection's I/O */
/* The address after an optional scheme (tls:// sets *tls, tcp:// is plain). */
const char *relay_cl_strip_scheme(const char *addr, int *tls);
int relay_cl_pins_check(const char *pins); /* 0 if every pin is base64 or hex of 32 bytes */
int relay_cl_tls_start(relay_cl *cl);      /* on the connected socket: state CL_TLS */
void relay_cl_tls_step(relay_cl *cl);      /* drives the handshake; up->join after */
void relay_cl_tls_free(relay_cl *cl);      /* the session (the socket's) */
void relay_cl_tls_cred_free(relay_cl *cl);
void relay_cl_tls_bye(relay_cl *cl);
/* I/O on the connection, TLS or not (read/send semantics, errno set). */
ssize_t relay_cl_recv(relay_cl *cl, void *buf, size_t len);
ssize_t relay_cl_write(relay_cl *cl, const void *p, size_t len);
ssize_t relay_cl_flush_out(relay_cl *cl); /* relay_outq_flush of cl->out */
int relay_cl_pending(relay_cl *cl);       /* decrypted bytes waiting in the TLS session */
void relay_cl_update(relay_cl *cl);       /* recomputes the events waited for */

/* relay_socks.c: 0, or a negative error after which the attempt is abandoned (the caller moves
 * on). input returns < 0 also when it has failed the channel itself. */
int relay_socks_start(relay_cl *cl);
int relay_socks_input(relay_cl *cl);
void relay_socks_output(relay_cl *cl);
/* Parses a socks5://HOST:PORT proxy address. 0 or TALLOW_EINVAL (message set when unsupported). */
int relay_socks_parse_url(relay_cl *cl, const char *url, char *host, size_t hc, char *port,
                          size_t pc);

/* relay_client_fo.c: takes the next failover relay of the list as the channel's relay (address,
 * a new join, data held until the peer is there). 1 if there is one (the caller connects), 0 if
 * there is nowhere to go. */
int relay_cl_fo_next(relay_cl *cl, const char *why);
/* The slot a RoomJoin asks for: on a failover relay, a group room's channel asks for its index
 * on the previous relay (peer numbers stay the same from relay to relay); else 0. */
uint32_t relay_cl_fo_slot(const relay_cl *cl);
/* A group room's peer is in the room (in = 1: back on a failover relay too) or left it (0). */
void relay_cl_fo_member(relay_cl *cl, uint32_t peer, int in);
/* The next peer still missing on the failover relay, taken off the room's members; 0: none. */
uint32_t relay_cl_fo_take_missing(relay_cl *cl);

/* relay_client_rx.c: the room protocol */
int relay_cl_send_join(relay_cl *cl); /* on a connected socket; 0 or an error */
void relay_cl_frames(relay_cl *cl);   /* dispatches the complete frames in cl->in */
void relay_cl_room_event(relay_cl *cl, uint32_t type, const void *msg);
/* A group room's peers that did not come back to the failover relay in time: PeerLeftRoom each. */
void relay_cl_fo_expire(relay_cl *cl);

/* relay_client.c: sets cl->up (also for the relay fuzz target, which builds a channel itself). */
void relay_cl_wire(relay_cl *cl);

#endif
