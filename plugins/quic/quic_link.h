/* quic_link.h — what quic_plugin.c and quic_link.c share: the channel instance, the link (one
 * QUIC connection on the loop) and the link's entry points. */
#ifndef QUIC_LINK_H
#define QUIC_LINK_H

#include <tallow/loop.h>
#include <tallow/nat.h>
#include <tallow/plugin.h>
#include <tallow/transport.h>

#include "quic_conn.h"

#define QUIC_DEFAULT_TIMEOUT_MS 5000
#define QUIC_MAX_FRAME (16u << 20)
#define QUIC_GSO_BYTES 65000 /* one UDP_SEGMENT send must stay under 64 KiB */
#define QUIC_STD_DGRAM 1452  /* datagrams on an ordinary path */
/* Read between our flushes (which carry acknowledgements): this many datagrams or bytes. */
#define QUIC_ACK_DGRAMS 32
#define QUIC_ACK_BYTES (256u << 10)
/* A direct path that dies mid-transfer: once packets are in flight and nothing at all has come
 * back for 3 smoothed RTTs plus QUIC_DEAD_SLACK_MS (a live path acknowledges within about one
 * RTT plus the peer's ACK delay, even at a few % loss), the channel closes with TALLOW_ETIMEOUT
 * and the session goes on over the relay — instead of QUIC's 30 s idle timeout. Checked every
 * QUIC_WATCH_MS, on internet paths only: towards a peer on loopback or on-link, silence is the
 * peer's process being busy (a loaded machine kept one quiet for 0.9 s while it drained a relay
 * backlog), and the idle timeout still applies there. Datagrams waiting unread in our own socket
 * (our loop was the busy one) count as heard. The slack was 3 s while a receiver fsynced in its
 * loop (silent 1.8 s across two NATs before a 30 MB file's rename, on a loaded machine); the
 * receiver now waits on its disk off the loop (core/base/work.h), and 600 ms keeps a cut found
 * within about 1 s + 3 RTT. */
#define QUIC_DEAD_SLACK_MS 600
/* Close waits until the peer has acknowledged every byte we wrote (our last frames: a
 * receiver's TransferComplete), at most 3 smoothed RTTs plus QUIC_LINGER_SLACK_MS (a peer on a
 * busy machine acknowledges late) and never more than QUIC_LINGER_MAX_MS. */
#define QUIC_LINGER_SLACK_MS 250
#define QUIC_LINGER_MAX_MS 1000
#define QUIC_WATCH_MS 100

typedef struct quic_plugin {
    const tallow_host *host;
} quic_plugin;

typedef struct quic_link quic_link;

/* The instance the host allocates and frees. Everything that must outlive a close called from
 * inside one of our own callbacks lives in the separately allocated link. */
typedef struct quic_chan {
    tallow_channel base; /* first */
    quic_link *link;
} quic_chan;

struct quic_link {
    tallow_channel *ch; /* NULL once closed: no more events */
    const tallow_host *host;
    tallow_loop *loop;
    tallow_udp *udp; /* NULL once our CONNECTION_CLOSE went out */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int initiator;
    quic_conn *qc;
    tallow_timer *timer; /* the connection's next expiry */
    uint64_t timer_due_ms;
    tallow_timer *open_timer; /* gives up opening */
    tallow_timer *watch;      /* dead-path watchdog, once connected (internet paths) */
    int internet;             /* the peer is neither local nor on-link */
    int defer_pending;        /* a link_on_defer is queued: the link must stay allocated */
    int depth;                /* our entry points on the stack */
    int in_quic;              /* inside a quic_conn call: no quic_conn_close now */
    /* The last datagram from the peer, or the last moment nothing was in flight. */
    uint64_t heard_ns;
    int ready, failed, dead, quic_closed, proto_err, want_writable;
    size_t rx_unflushed; /* bytes read since our last flush (it carries our ACK) */
    unsigned rx_dgrams;  /* datagrams read since then */
    uint32_t max_dgram;  /* last seen: a drop is worth a log line */
    /* Frame bytes waiting for room in the connection's own (8 MiB) send buffer. */
    uint8_t *pend;
    size_t pend_off, pend_len, pend_cap;
    /* The frame being received. */
    uint8_t hdr[4];
    size_t hdr_got;
    uint8_t *rx;
    size_t rx_len, rx_got, rx_cap;
    char path[80];
    char stats[400];    /* quic_get_info's stats, and the debug line at close */
    uint32_t rx_drops0; /* the socket's drop count when we opened (SO_MEMINFO) */
    uint32_t rx_drops;  /* datagrams the kernel dropped at our socket since (buffer full) */
    uint64_t defers;    /* flushes run at the start of a loop round */
    uint64_t timers;    /* flushes run by the connection's timer */
    int stats_logged;
    int lingering; /* inside link_linger: datagrams still go to the connection */
    int gro;       /* the endpoint receives coalesced datagrams (UDP_GRO) */
};

/* quic_link.c */
/* The connection's events, with the link as ud. */
extern const quic_conn_cbs link_cbs;
/* Sends our CONNECTION_CLOSE now (once); the endpoint is not used after. */
void link_quic_close(quic_link *l);
/* Frees what a closed link no longer needs once none of our frames is on the stack. */
void link_maybe_destroy(quic_link *l);
/* Moves frames waiting in pend into the connection while it has room. */
void link_pump(quic_link *l);
/* A flush at the start of the next loop round (link_on_defer). */
void link_request_flush(quic_link *l);
/* Loop callbacks: the deferred flush, the open timeout, a datagram for QUIC. */
void link_on_defer(void *ud);
void link_on_open_timeout(tallow_timer *t, void *ud);
void link_on_dgram(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                   const uint8_t *data, size_t len, void *ud);
/* Datagrams the kernel dropped at the endpoint's socket so far (SO_MEMINFO), 0 if unknown. */
uint32_t link_sock_drops(tallow_udp *u);
/* The counters as "name=value ..." (in l->stats). */
const char *link_stats(quic_link *l);
/* At close: waits, bounded (QUIC_LINGER_*), until the peer acknowledged what we wrote. */
void link_linger(quic_link *l);

#endif
