/* plugins/relay/relay_proto.c — the relay wire protocol (documented here, once) and the buffers
 * both roles use: the chunked output queue, the growable input buffer, address helpers.
 *
 * WIRE PROTOCOL (TCP, version 2, RELAY_PROTO_VERSION)
 *   frame = u32be L | u8 channel | payload[L-1]        1 <= L <= max-frame (relay option)
 *   A frame with L = 0, L > max-frame or an unknown channel ends the connection (RoomLeave
 *   "frame too large" / "protocol error" first).
 *   channel 0  control: exactly one registry-encoded core message (tallow_msg_encode).
 *     client -> relay:
 *       RoomJoin{room (1..64 opaque bytes), password, version = 2, capacity, resume_token,
 *                creator, resume_anchor, resume_proof, slot}
 *         capacity 0 or 2: a pair room; > 2: a multi room with that many slots (the creator's
 *         value counts). Must come within join-timeout of connecting. With a resume_token the
 *         client takes back its slot in a paired room (see below). slot (optional, added within
 *         version 2): a peer of a multi room whose relay died joins the room's next relay with
 *         the slot it held there and the room's capacity, and gets that slot ("peer slot taken"
 *         if it is used or the room's capacity differs): peer indexes then mean the same peers
 *         on every relay of the room. Once a room has had such a join, a join without a slot
 *         takes the highest free slot. A relay that predates the field ignores it (unknown
 *         fields are skipped) and does not echo it: the client then does not fail over there.
 *       RoomLeave{reason}  an orderly leave. reason "handshake-failed" closes the whole room for
 *         everyone (so each attempt at the code costs an attacker the room).
 *       Ping{seq, time}    answered with Pong{seq, time}.
 *     relay -> client:
 *       RoomJoined{peers, peer_index, resume_token, capacity, stun_port2, slot}  the join
 *         worked; peers counts connected peers including the joiner; capacity is the room's real
 *         one (the creator's: a joiner asking for another one still joins); stun_port2 the
 *         relay's second STUN port (0 or absent: none); slot the RoomJoin's slot, echoed when
 *         given (0 otherwise). Always followed by
 *         RoomPeerCount{peers, capacity} (the same capacity, for clients that predate the field),
 *         then in multi rooms by PeerJoinedRoom for each peer already there.
 *       PeerArrived{peer_index, peers}      pair rooms: the other peer joined, or came back.
 *       PeerJoinedRoom / PeerLeftRoom{peer_index, peers}, RoomPeerCount{peers, capacity}:
 *         multi rooms, to the others on every join and departure.
 *       PeerDeparted{peer_index, reason, peers}  reason "reconnecting": its connection dropped
 *         and its slot is held for the grace period; otherwise ("left", "gone" when the grace
 *         ran out, "protocol error") it is gone, and a pair room is closed with it (the relay
 *         then closes the other connection without a further message).
 *       RoomLeave{reason} / VersionReject{version, reason}  refusal, or the relay closing the
 *         room ("room full", "wrong relay password", "too many rooms from your address",
 *         "relay has too many rooms", "join timeout", "room timeout", "handshake-failed",
 *         "unknown resume token", "capacity above the relay's limit", ...); the relay then
 *         closes the connection.
 *       Pong{seq, time}.
 *   channel 1  peer data, forwarded verbatim to every other connected peer of the room.
 *   channel 2  u32be peer index | peer data: delivered only to that peer, the relay rewriting the
 *              index to the sender's before forwarding.
 *   Peer indexes are 1-based slot numbers; 0 never names a peer.
 *   The relay forwards data only once the room has been paired (two peers connected at the same
 *   time). Data before that is a protocol error (RoomLeave "data before a peer joined"). After
 *   pairing, data for a peer whose connection is down (slot held for resume), for an empty slot
 *   or for oneself is dropped and counted (bytes_dropped): peers resynchronise after the
 *   PeerDeparted "reconnecting" / PeerArrived pair. A slow receiver slows its senders down:
 *   the relay stops reading from a sender while a destination's queue is above queue-high.
 *   The relay never parses, logs or keeps peer data beyond its bounded per-connection queues:
 *   a long data frame is streamed (its header first, its payload as it arrives), so a
 *   destination may hold the start of a frame whose sender then disconnects; the relay then
 *   disconnects that destination too (it resumes; the cut frame is never delivered whole).
 *   Control frames are at most 2 KiB (L <= 2049); a longer one is "frame too large".
 *
 * UDP on the same port number: STUN Binding requests answered (XOR-MAPPED-ADDRESS,
 * MAPPED-ADDRESS, SOFTWARE, FINGERPRINT), anything else dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

/* writev without SIGPIPE: every fd here is a socket. */
static ssize_t sock_writev(int fd, const struct iovec *iov, int n)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

struct relay_chunk {
    relay_chunk *next;
    size_t len, cap; /* bytes filled, bytes available */
    uint8_t data[];
};

int relay_ctrl_frame(const tallow_msg_type *t, const void *msg, uint8_t *out, size_t cap)
{
    if (cap < RELAY_HDR + 1) return TALLOW_ETOOBIG;
    int n = tallow_msg_encode(t, msg, out + RELAY_HDR, cap - RELAY_HDR);
    if (n < 0) return n;
    relay_put32(out, (uint32_t)n + 1);
    out[4] = RELAY_CH_CTRL;
    return n + RELAY_HDR;
}

void relay_room_tag(const uint8_t *room, size_t len, char out[9])
{
    /* keyed with a random key of this process: tags in two logs (or two runs) cannot be
     * matched, nor checked against a guessed nameplate */
    static uint8_t key[32];
    static int keyed;
    uint8_t h[16];
    static const char hex[] = "0123456789abcdef";
    if (!keyed) {
        randombytes_buf(key, sizeof key);
        keyed = 1;
    }
    crypto_generichash(h, sizeof h, room, len, key, sizeof key);
    for (int i = 0; i < 4; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[8] = 0;
}

/* ---- output queue */

/* A chunk for at least want bytes (up to RELAY_CHUNK): the spare if it is large enough. */
static relay_chunk *outq_new_chunk(relay_outq *q, size_t want)
{
    if (want < RELAY_CHUNK_MIN) want = RELAY_CHUNK_MIN;
    if (want > RELAY_CHUNK) want = RELAY_CHUNK;
    relay_chunk *c = q->spare;
    q->spare = NULL;
    if (c && c->cap < want) {
        free(c);
        c = NULL;
    }
    if (!c) {
        if (!(c = malloc(sizeof *c + want))) return NULL;
        c->cap = want;
    }
    c->next = NULL;
    c->len = 0;
    return c;
}

static void outq_release_chunk(relay_outq *q, relay_chunk *c)
{
    if (!q->spare)
        q->spare = c;
    else
        free(c);
}

int relay_outq_pushv(relay_outq *q, const struct iovec *iov, int iovcnt)
{
    relay_chunk *first_new = NULL, *prev_tail = q->tail;
    size_t prev_len = q->tail ? q->tail->len : 0, prev_bytes = q->bytes;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len > 0) {
            if (!q->tail || q->tail->len == q->tail->cap) {
                relay_chunk *c = outq_new_chunk(q, total);
                if (!c) goto nomem;
                if (!first_new) first_new = c;
                if (q->tail)
                    q->tail->next = c;
                else
                    q->head = c;
                q->tail = c;
            }
            size_t n = q->tail->cap - q->tail->len;
            if (n > len) n = len;
            memcpy(q->tail->data + q->tail->len, p, n);
            q->tail->len += n;
            q->bytes += n;
            p += n;
            len -= n;
            total -= n;
        }
    }
    return 0;
nomem: /* undo: nothing partial stays queued */
    q->bytes = prev_bytes;
    if (prev_tail) {
        prev_tail->len = prev_len;
        prev_tail->next = NULL;
    } else {
        q->head = NULL;
    }
    q->tail = prev_tail;
    while (first_new) {
        relay_chunk *n = first_new->next;
        outq_release_chunk(q, first_new);
        first_new = n;
    }
    return TALLOW_ENOMEM;
}

int relay_outq_push(relay_outq *q, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return relay_outq_pushv(q, &iov, 1);
}

static void outq_consume(relay_outq *q, size_t n)
{
    q->bytes -= n;
    while (n > 0 && q->head) {
        relay_chunk *c = q->head;
        size_t avail = c->len - q->head_off;
        if (n < avail) {
            q->head_off += n;
            return;
        }
        n -= avail;
        q->head = c->next;
        q->head_off = 0;
        if (!q->head) q->tail = NULL;
        outq_release_chunk(q, c);
    }
    if (!q->head) { /* drained: an idle connection holds no output memory */
        q->tail = NULL;
        q->head_off = 0;
        free(q->spare);
        q->spare = NULL;
    }
}

ssize_t relay_outq_flush(relay_outq *q, int fd)
{
    size_t total = 0;
    while (q->bytes > 0) {
        struct iovec iov[64];
        int n = 0;
        size_t off = q->head_off, want = 0;
        for (relay_chunk *c = q->head; c && n < 64; c = c->next) {
            iov[n].iov_base = c->data + off;
            iov[n].iov_len = c->len - off;
            want += iov[n].iov_len;
            off = 0;
            n++;
        }
        ssize_t w = sock_writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -errno;
        }
        outq_consume(q, (size_t)w);
        total += (size_t)w;
        if ((size_t)w < want) break; /* short write: the socket is full */
    }
    return (ssize_t)total;
}

int relay_outq_send(relay_outq *q, int fd, const struct iovec *iov, int iovcnt)
{
    size_t written = 0;
    if (q->bytes == 0) {
        ssize_t w;
        do {
            w = sock_writev(fd, iov, iovcnt);
        } while (w < 0 && errno == EINTR);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        } else {
            written = (size_t)w;
        }
    }
    struct iovec rest[8];
    int n = 0;
    for (int i = 0; i < iovcnt && n < 8; i++) {
        if (written >= iov[i].iov_len) {
            written -= iov[i].iov_len;
            continue;
        }
        rest[n].iov_base = (uint8_t *)iov[i].iov_base + written;
        rest[n].iov_len = iov[i].iov_len - written;
        written = 0;
        n++;
    }
    return n ? relay_outq_pushv(q, rest, n) : 0;
}

void relay_outq_move(relay_outq *q, relay_outq *from)
{
    if (from->head) {
        if (q->tail)
            q->tail->next = from->head;
        else
            q->head = from->head;
        q->tail = from->tail;
        q->bytes += from->bytes;
    }
    free(from->spare);
    memset(from, 0, sizeof *from);
}

void relay_outq_clear(relay_outq *q)
{
    relay_chunk *c = q->head;
    while (c) {
        relay_chunk *n = c->next;
        free(c);
        c = n;
    }
    free(q->spare);
    memset(q, 0, sizeof *q);
}

/* ---- input buffer */

int relay_inbuf_reserve(relay_inbuf *b, size_t need)
{
    size_t live = b->end - b->start;
    if (b->cap - b->end >= need) return 0;
    if (b->start > 0) {
        memmove(b->buf, b->buf + b->start, live);
        b->start = 0;
        b->end = live;
        if (b->cap - b->end >= need) return 0;
    }
    size_t ncap = b->cap ? b->cap : 64 * 1024;
    while (ncap - live < need)
        ncap *= 2;
    uint8_t *nb = realloc(b->buf, ncap);
    if (!nb) return TALLOW_ENOMEM;
    b->buf = nb;
    b->cap = ncap;
    return 0;
}

void relay_inbuf_free(relay_inbuf *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

/* ---- helpers */

int relay_split_hostport(const char *s, char *host, size_t hostcap, char *port, size_t portcap)
{
    if (!s || !*s) return TALLOW_EINVAL;
    const char *h = s, *p = NULL;
    size_t hl;
    if (*s == '[') {
        const char *e = strchr(s, ']');
        if (!e) return TALLOW_EINVAL;
        h = s + 1;
        hl = (size_t)(e - h);
        if (e[1] == ':')
            p = e + 2;
        else if (e[1] != 0)
            return TALLOW_EINVAL;
    } else {
        const char *c = strrchr(s, ':');
        if (c && strchr(s, ':') != c) c = NULL; /* bare IPv6 without brackets: no port */
        hl = c ? (size_t)(c - s) : strlen(s);
        if (c) p = c + 1;
    }
    if (hl + 1 > hostcap) return TALLOW_EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    if (!p) p = RELAY_DEFAULT_PORT;
    if (!*p || strlen(p) + 1 > portcap || strspn(p, "0123456789") != strlen(p))
        return TALLOW_EINVAL;
    if (atoi(p) > 65535) return TALLOW_EINVAL;
    strcpy(port, p);
    return 0;
}

void relay_fmt_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        snprintf(out, cap, "?");
    }
}

/* 127.0.0.0/8, ::1 or ::ffff:127.x: a peer on this machine. */
static int peer_is_loopback(int fd, const struct sockaddr *peer)
{
    struct sockaddr_storage ss;
    if (!peer) {
        socklen_t sl = sizeof ss;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return 0;
        peer = (const struct sockaddr *)&ss;
    }
    if (peer->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)peer)->sin_addr.s_addr) >> 24) == 127;
    if (peer->sa_family != AF_INET6) return 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)peer)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

int relay_sock_setup(int fd, int tcp, const struct sockaddr *peer)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (tcp) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Congestion control by name rather than the machine's default (Debian's is CUBIC,
         * which collapses on a long path with random loss): BBR where the kernel has it and
         * allows it to us, else the default stays. To a peer on this machine CUBIC: there is no
         * queue for BBR to keep short, and its pacing costs a timer per burst (a quarter of the
         * relay's CPU on loopback). TALLOW_TCP_CC names another; empty keeps the system's. */
        const char *cc = getenv("TALLOW_TCP_CC");
        if (!cc) cc = peer_is_loopback(fd, peer) ? "cubic" : "bbr";
        if (*cc) (void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc));
    }
    return 0;
}

ssize_t relay_outq_flush_fn(relay_outq *q, ssize_t (*wr)(void *ud, const void *p, size_t len),
                            void *ud)
{
    size_t total = 0;
    while (q->bytes > 0) {
        relay_chunk *c = q->head;
        size_t want = c->len - q->head_off;
        ssize_t w = wr(ud, c->data + q->head_off, want);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -errno;
        }
        if (w == 0) break;
        outq_consume(q, (size_t)w);
        total += (size_t)w;
    }
    return (ssize_t)total;
}
