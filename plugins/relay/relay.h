/* plugins/relay/relay.h — what the relay plugin's files share: the wire framing (documented in
 * relay_proto.c), the chunked output queue, address and option helpers, and the two vtables
 * (the relay service, relay_service.c; the relay client transport, relay_client.c). */
#ifndef TALLOW_PLUGIN_RELAY_H
#define TALLOW_PLUGIN_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <tallow/tallow.h>

/* 2: 64-bit session epochs, nameplate rooms, every word in CPace. Versions are not mixed: a
 * relay refuses any other version with VersionReject, a client says both numbers. */
#define RELAY_PROTO_VERSION 2
#define RELAY_CH_CTRL 0   /* one registry-encoded control message */
#define RELAY_CH_DATA 1   /* opaque peer data, to every other peer of the room */
#define RELAY_CH_TARGET 2 /* 4-byte BE peer index, then opaque peer data, to one peer */
#define RELAY_HDR 5       /* 4-byte BE length + 1-byte channel */
#define RELAY_TGT_HDR 9   /* RELAY_HDR + 4-byte BE peer index */
#define RELAY_CTRL_MAX 2048
#define RELAY_ROOM_MAX 64 /* room ids are opaque, 1..64 bytes (tallow uses 32) */
#define RELAY_TOKEN_LEN 16
#define RELAY_CHAIN_LEN 4096 /* resumes one channel can make (client hash chain) */
#define RELAY_CHAIN_SKIP 64  /* chain elements a resume may skip (attempts that never arrived) */
#define RELAY_DEFAULT_PORT "4433"
#define RELAY_ANY_PEER UINT32_MAX
/* send(ch, RELAY_TO_LEAVE, reason, len) sends a control RoomLeave{reason} instead of data: a
 * session whose PAKE failed sends "handshake-failed" and the relay closes the room for all. */
#define RELAY_TO_LEAVE (UINT32_MAX - 1)

/* Reasons the relay puts in RoomLeave / VersionReject / PeerDeparted (the client maps some of
 * them to error codes, so they are part of the protocol). */
#define RELAY_R_FULL "room full"
#define RELAY_R_PASSWORD "wrong relay password"
#define RELAY_R_IPROOMS "too many rooms from your address"
#define RELAY_R_ROOMS "relay has too many rooms"
#define RELAY_R_JOINTIMEOUT "join timeout"
#define RELAY_R_FRAME "frame too large"
#define RELAY_R_PROTO "protocol error"
#define RELAY_R_NOPEER "data before a peer joined"
#define RELAY_R_HANDSHAKE "handshake-failed"
#define RELAY_R_VERSION "unsupported relay protocol version"
#define RELAY_R_CAPACITY "capacity above the relay's limit"
#define RELAY_R_RESUME "unknown resume token"
#define RELAY_R_TIMEOUT "room timeout"
#define RELAY_R_LEFT "left"
#define RELAY_R_GONE "gone"
#define RELAY_R_RECONNECTING "reconnecting"
#define RELAY_R_SHUTDOWN "relay shutting down"
#define RELAY_R_JOINRATE "too many joins from this address: try again in a moment"
#define RELAY_R_SLOT "peer slot taken" /* a failover join's slot: used, or not in the room */
#define RELAY_R_TAKEN                                                                              \
    "the code's number is in use by another sender on this relay: start again with a new code"

/* ---- framing (relay_proto.c) */
static inline void relay_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t relay_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
/* Encodes a control frame (header + message of type t) into out[cap]. Returns the frame length
 * or a negative error. */
int relay_ctrl_frame(const tallow_msg_type *t, const void *msg, uint8_t *out, size_t cap);
/* Short, stable, non-reversible name for a room id in logs: 8 hex digits + NUL. */
void relay_room_tag(const uint8_t *room, size_t len, char out[9]);

/* ---- output queue: a list of chunks, written out with writev. No allocation per frame: a
 * chunk is sized for what is pushed (RELAY_CHUNK_MIN..RELAY_CHUNK bytes, so a queued control
 * message costs a small chunk and a queued 256 KiB frame one large one), and one spare is kept
 * while the queue is not empty; a drained queue holds no memory. */
#define RELAY_CHUNK (256u * 1024u)
#define RELAY_CHUNK_MIN (4096u - 64u)
typedef struct relay_chunk relay_chunk;
typedef struct relay_outq {
    relay_chunk *head, *tail, *spare;
    size_t head_off; /* bytes of head already written */
    size_t bytes;    /* queued bytes */
} relay_outq;
/* Copies len bytes to the tail. 0 or -ENOMEM (nothing queued then). */
int relay_outq_push(relay_outq *q, const void *data, size_t len);
/* Same for several buffers, all or nothing. iovcnt <= 8 for relay_outq_send. */
int relay_outq_pushv(relay_outq *q, const struct iovec *iov, int iovcnt);
/* Writes as much as the socket takes. Returns bytes written (>= 0), or -errno (not -EAGAIN). */
ssize_t relay_outq_flush(relay_outq *q, int fd);
/* Same through a writer (a TLS session): wr returns bytes taken, or -1 with errno (EAGAIN:
 * full; it is called again with the same bytes). */
ssize_t relay_outq_flush_fn(relay_outq *q, ssize_t (*wr)(void *ud, const void *p, size_t len),
                            void *ud);
/* Writes iov to fd directly if the queue is empty, queues what the socket did not take (or all
 * of it if the queue is not empty). 0, -ENOMEM, or -errno from the socket. */
int relay_outq_send(relay_outq *q, int fd, const struct iovec *iov, int iovcnt);
/* Drops everything queued (keeps nothing allocated). */
void relay_outq_clear(relay_outq *q);
/* Moves everything queued in from (never written from: head_off 0) to the end of q. */
void relay_outq_move(relay_outq *q, relay_outq *from);

/* ---- input buffer: grows to the largest frame seen, bounded by the caller. */
typedef struct relay_inbuf {
    uint8_t *buf;
    size_t cap, start, end; /* live bytes are buf[start..end) */
} relay_inbuf;
/* Makes room for at least need contiguous bytes after the live data (compacting and growing).
 * 0 or -ENOMEM. */
int relay_inbuf_reserve(relay_inbuf *b, size_t need);
void relay_inbuf_free(relay_inbuf *b);

/* ---- helpers */
/* Splits "host:port", "[v6]:port", "host" (default port) into host and port. 0 or TALLOW_EINVAL. */
int relay_split_hostport(const char *s, char *host, size_t hostcap, char *port, size_t portcap);
/* Formats an address as "1.2.3.4:5" or "[::1]:5". */
void relay_fmt_addr(const struct sockaddr *sa, char *out, size_t cap);
/* Makes fd nonblocking and close-on-exec; when tcp, sets TCP_NODELAY and names the congestion
 * control for a connection to peer (NULL: the connected peer's address, if any). */
int relay_sock_setup(int fd, int tcp, const struct sockaddr *peer);

/* ---- the two roles */
extern const tallow_service_ops relay_service_ops;
extern const tallow_transport_ops relay_transport_ops;

/* Plugin state (relay_plugin.c): the host, kept for logging and the registry. */
typedef struct relay_plugin {
    const tallow_host *host;
} relay_plugin;

#endif
