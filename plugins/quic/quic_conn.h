/* quic_conn.h — a sans-IO QUIC connection (ngtcp2 0.12 + GnuTLS, TLS 1.3 external PSK) carrying
 * one ordered, reliable byte stream in each direction. No sockets, no clock, no timers: the caller
 * feeds datagrams and the time in, and gets datagrams (through cbs->send) and deadlines out. Every
 * ngtcp2 and GnuTLS call of the quic plugin lives in quic_conn*.c. */
#ifndef QUIC_CONN_H
#define QUIC_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct quic_conn quic_conn;

/* Largest datagram we send or accept on a path known to carry more than the internet's usual
 * 1452 (loopback, a jumbo-frame LAN). Bigger gained nothing on loopback: four of them fill one
 * UDP_SEGMENT send. */
#define QUIC_CONN_BIG_PKT 16000

/* Events. All are called from inside quic_conn_recv / quic_conn_flush / quic_conn_on_expiry.
 * Inside any of them the user may call quic_conn_write and quic_conn_shutdown; only inside
 * on_closed may it call quic_conn_free (nothing touches the connection after on_closed).
 * Pointers are borrowed for the call. */
typedef struct quic_conn_cbs {
    /* Send `len` bytes = datagrams of size segsz (the last may be shorter) to `to`, e.g. with
     * UDP_SEGMENT or sendmmsg. Returns the datagrams sent (from the start; fewer than given when
     * the socket was full) or -errno; a datagram not sent counts as packet loss. */
    int (*send)(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *data,
                size_t len, size_t segsz);
    /* Handshake done (peer proved the same PSK, ALPN "h3") and the stream is open. */
    void (*on_connected)(void *ud);
    /* Ordered stream bytes from the peer. */
    void (*on_data)(void *ud, const uint8_t *data, size_t len);
    /* quic_conn_write accepted less than asked earlier, and the send buffer is now below half. */
    void (*on_writable)(void *ud);
    /* The connection is over: 0 when closed in order with all our bytes acknowledged, else a
     * negative tallow error (TALLOW_ECRYPTO handshake/authentication failure, TALLOW_ETIMEOUT
     * idle or handshake timeout, TALLOW_ECLOSED peer closed with an error or before our data
     * was acknowledged, TALLOW_EPROTO protocol error, TALLOW_ENOMEM). Called once. */
    void (*on_closed)(void *ud, int err);
} quic_conn_cbs;

typedef struct quic_conn_stat {
    uint64_t rtt_ns;     /* smoothed RTT, 0 before the first sample */
    uint64_t bytes_sent; /* stream bytes acknowledged by the peer */
    uint64_t bytes_recv; /* stream bytes delivered through on_data */
    uint64_t queued;     /* stream bytes accepted by quic_conn_write and not yet acknowledged */
    uint64_t unsent;     /* of those, bytes not yet handed to the network */
    uint32_t max_dgram;  /* the largest datagram we would send now */
    uint64_t in_flight;  /* bytes in packets sent and neither acknowledged nor declared lost */
    /* Counters since the start (what a transfer cost: --json's final event, the debug log). */
    uint64_t tx_dgrams, tx_bytes; /* datagrams written (handed to cbs->send) and their bytes */
    uint64_t tx_calls;            /* cbs->send calls (one UDP_SEGMENT batch each, at best) */
    uint64_t tx_failed;           /* datagrams cbs->send refused (socket full: lost) */
    uint64_t tx_nodata;           /* packets with no new stream data: ACKs, resends, control */
    uint64_t rx_dgrams, rx_bytes; /* datagrams fed to quic_conn_recv */
    uint64_t recoveries;          /* congestion events (loss detected) */
    uint64_t loss_timer;          /* loss-detection timer expiries (PTO or time-threshold) */
    uint64_t cwnd_stops;          /* bursts ended by the congestion window */
    uint64_t pace_stops;          /* bursts ended by pacing with window left */
    uint64_t fc_stops;            /* bursts ended by the peer's flow control */
    uint64_t ring_full;           /* writes cut short by the full send buffer */
    uint64_t cwnd;                /* congestion window now */
} quic_conn_stat;

/* Creates a connection. is_server: 0 = QUIC client (starts the handshake at the first flush),
 * 1 = server (waits for the client's first Initial from `remote`). psk: the 32-byte key both
 * peers derived; copied. local/remote: the socket's own address and the peer's; copied.
 * max_udp: the UDP payload our side of the path is known to carry (route MTU less IP and UDP
 * headers, for a peer that is local or on-link), 0 if unknown. It is advertised as our
 * max_udp_payload_size (at most QUIC_CONN_BIG_PKT). Up to 1472 (a 1500-byte link) datagrams are
 * as on any path: 1200, grown to 1452 by PMTUD. Above, once the handshake is confirmed they are
 * min(max_udp, QUIC_CONN_BIG_PKT, the peer's max_udp_payload_size), and 1452 for good if the
 * first of them is still unacknowledged after two PTOs and 1 s (a black hole); congestion control
 * then also starts at, and never falls below, 1 MiB. rcvbuf: our socket's receive buffer as the
 * kernel reports it (SO_RCVBUF), 0 if unknown; with large datagrams the flow-control window we
 * give the peer is half of it, so what it may have in flight fits. cbs is copied; ud is passed
 * back. now_ns: any monotonic clock in ns, used consistently afterwards. Returns NULL on failure
 * (out of memory, TLS setup). Free with quic_conn_free. */
quic_conn *quic_conn_new(int is_server, const uint8_t psk[32], const struct sockaddr *local,
                         socklen_t llen, const struct sockaddr *remote, socklen_t rlen,
                         size_t max_udp, size_t rcvbuf, const quic_conn_cbs *cbs, void *ud,
                         uint64_t now_ns);

/* Feeds one received datagram. A server creates its connection state from the first valid
 * Initial coming from `remote`; other datagrams before that are dropped. Returns 0 (also when a
 * datagram is dropped) or TALLOW_ECLOSED once the connection is over. Call quic_conn_flush after
 * a batch of datagrams to send acknowledgements and data. */
int quic_conn_recv(quic_conn *c, const struct sockaddr *from, socklen_t fromlen, const uint8_t *pkt,
                   size_t len, uint64_t now_ns);

/* on_writable comes once this much of the send buffer is free. */
#define QUIC_CONN_LOWAT (512u << 10)

/* Copies up to len bytes into the bounded send buffer (8 MiB). Returns the bytes accepted; fewer
 * than len (0 = full) means on_writable follows once the peer has acknowledged half of it.
 * Accepts bytes before the handshake completes; they go out once it has. 0 after shutdown. */
size_t quic_conn_write(quic_conn *c, const uint8_t *data, size_t len);

/* Free room in the send buffer now (0 after shutdown or close). */
size_t quic_conn_room(quic_conn *c);

/* Asks for on_writable once QUIC_CONN_LOWAT bytes are free, as after a short write: lets a
 * writer stop before a write would be cut. */
void quic_conn_want_writable(quic_conn *c);

/* Writes as many packets as congestion control, pacing and flow control allow, in batches of
 * equal-size datagrams through cbs->send. Returns 0 or TALLOW_ECLOSED. */
int quic_conn_flush(quic_conn *c, uint64_t now_ns);

/* Absolute time (ns, the caller's clock) of the next timer; UINT64_MAX if none. */
uint64_t quic_conn_expiry(quic_conn *c);

/* Handles an expired timer (retransmission, pacing, keep-alive, idle) and flushes. Returns 0 or
 * TALLOW_ECLOSED. */
int quic_conn_on_expiry(quic_conn *c, uint64_t now_ns);

/* Orderly close: once every byte written so far is acknowledged, sends CONNECTION_CLOSE and
 * reports on_closed(0) (from a later flush/recv/expiry). Further writes are refused. */
void quic_conn_shutdown(quic_conn *c);

/* Immediate close: sends what congestion control allows now, then CONNECTION_CLOSE (no error);
 * bytes not yet acknowledged may be lost. No event follows (not even on_closed). Must not be
 * called from inside a callback. */
void quic_conn_close(quic_conn *c, uint64_t now_ns);

/* Counters for get_info. */
void quic_conn_get_stat(quic_conn *c, quic_conn_stat *out);

/* Releases everything at once (no event, nothing sent). NULL is allowed. */
void quic_conn_free(quic_conn *c);

#endif
