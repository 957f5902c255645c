/* quic_conn_internal.h — what the quic_conn*.c files share: limits, the connection's state and
 * the functions one file calls in another. Only quic_conn*.c include it. */
#ifndef QUIC_CONN_INTERNAL_H
#define QUIC_CONN_INTERNAL_H

#include "quic_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <tallow/error.h>

/* Send buffer (a power of two): unsent plus unacknowledged stream data. Internet paths get room
 * for a long round trip (250 ms at 500 Mbit/s is ~16 MiB in flight, and a lost packet holds its
 * data one more round trip); local and on-link paths (large datagrams) need far less, and a
 * smaller ring keeps a peer's resident memory down. */
#define QUIC_RING_SIZE ((uint64_t)32 << 20)
#define QUIC_RING_SIZE_LOCAL ((uint64_t)4 << 20)
/* Writable again once this much is free (QUIC_CONN_LOWAT): small refills interleave the writer's
 * work with our sends. At half the ring, each refill sealed ~4 MiB while nothing went out and the
 * peer idled. */
#define QUIC_RING_LOWAT ((uint64_t)QUIC_CONN_LOWAT)
/* Largest datagram on an unknown path (PMTUD starts at 1200): it fills a 1500-byte frame over
 * IPv6 (40 + 8 header bytes), so it holds for either family; ngtcp2's probes assume 48 too. */
#define QUIC_MAX_PKT 1452
/* Every QUIC path carries this; over IPv6 it is 1248 bytes, within the 1280-byte minimum MTU. */
#define QUIC_MIN_PKT 1200
/* Fills a 1500-byte frame over IPv4 (1452 over IPv6): paths whose route MTU leaves more are jumbo
 * or local. */
#define QUIC_ETH_PKT 1472
/* Largest datagram on a path known to carry more (QUIC_CONN_BIG_PKT in the header). */
#define QUIC_BIG_PKT QUIC_CONN_BIG_PKT
#define QUIC_BATCH 64             /* datagrams per cbs->send, at most */
#define QUIC_BATCH_BYTES 65000    /* bytes per cbs->send, at most: one UDP_SEGMENT send */
#define QUIC_BIG_BLACKHOLE_PTOS 2 /* PTOs before unacknowledged large datagrams count as lost */
/* ... and at least this long since the first of them went out. PTOs alone are tens of ms on a
 * local path: a peer process kept off the CPU that long (a loaded machine) looked like a black
 * hole, and the rest of the transfer went in 11x as many datagrams for twice the CPU. */
#define QUIC_BIG_BLACKHOLE_NS (1000 * NGTCP2_MILLISECONDS)
/* With large datagrams: ngtcp2's unit for congestion control (see quic_settings). */
#define QUIC_BIG_CC_UNIT ((size_t)512 << 10)
/* Lateness of a paced send made up, at most (quic_write_burst). */
#define QUIC_PACE_CREDIT (2 * NGTCP2_MILLISECONDS)
#define QUIC_FLUSH_BURSTS 16 /* send quanta (64 KiB each with CUBIC) per flush, at most */
#define QUIC_CIDLEN 16
/* Flow control we grant: at least the bandwidth-delay product of a 250 ms, 500 Mbit/s path
 * (~16 MiB) with room for a round trip of loss recovery. Bytes are consumed as they arrive, so
 * a large window costs the receiver nothing. */
#define QUIC_STREAM_WINDOW ((uint64_t)32 << 20)
#define QUIC_CONN_WINDOW ((uint64_t)48 << 20)
#define QUIC_MIN_WINDOW ((uint64_t)128 << 10)
#define QUIC_IDLE_TIMEOUT (30 * NGTCP2_SECONDS)
#define QUIC_KEEPALIVE (10 * NGTCP2_SECONDS)
#define QUIC_HANDSHAKE_TIMEOUT (10 * NGTCP2_SECONDS)
#define QUIC_CLOSE_RESENDS 8
/* Nothing fixed that marks the handshake as tallow's: the ALPN is HTTP/3's, and the PSK identity
 * (which travels in clear) is derived from the session's PSK, so it differs in every session. */
#define QUIC_ALPN "h3"
#define QUIC_PRIORITY                                                                              \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:-GROUP-ALL:+GROUP-X25519:"                   \
    "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:%DISABLE_TLS13_COMPAT_MODE"

/* The client's first stream bytes: they open the stream on the server side (a server cannot send
 * on a client stream it has not seen yet) and double as a version check. */
extern const uint8_t quic_preamble[4];
/* STUN's magic cookie: a short-header datagram carries DCID bytes 3..6 where STUN has it. */
extern const uint8_t quic_stun_cookie[4];

struct quic_conn {
    int is_server;
    quic_conn_cbs cbs;
    void *ud;
    uint8_t psk[32];
    char psk_identity[17]; /* 16 hex digits of HMAC-SHA256(psk, label) */
    struct sockaddr_storage local, remote;
    socklen_t llen, rlen;

    ngtcp2_conn *conn; /* NULL on a server until the client's first Initial */
    ngtcp2_crypto_conn_ref conn_ref;
    gnutls_session_t tls;
    gnutls_psk_client_credentials_t psk_cli;
    gnutls_psk_server_credentials_t psk_srv;
    int in_new; /* inside ngtcp2_conn_{client,server}_new: see quic_rand */
    int64_t stream_id;

    /* Send ring by absolute stream offset: [acked, end) stays put until acknowledged (ngtcp2
     * keeps pointers into it), [sent, end) has not been handed to ngtcp2 yet. */
    uint8_t *ring;
    uint64_t ring_size; /* QUIC_RING_SIZE or QUIC_RING_SIZE_LOCAL */
    uint64_t acked, sent, end;
    uint64_t preamble_got; /* server: preamble bytes consumed */
    uint64_t bytes_recv;

    int hs_done, connected, connected_reported;
    int want_writable, shutdown, proto_err;
    int closed, close_err, close_reported;

    /* Large datagrams (a path known to carry more than QUIC_MAX_PKT): big is their size, 0 if
     * not used (never, or no longer after they went unacknowledged). They start once the
     * handshake is confirmed; big_probe_end is the stream offset after the first large
     * datagram's data (0 until one went out), big_proven set once that offset is acknowledged. */
    size_t big;
    size_t path_udp;    /* what the caller said the path carries (0: unknown), capped */
    uint64_t rx_window; /* flow-control window we give the peer */
    int hs_confirmed, big_proven;
    uint64_t big_probe_end;
    uint64_t big_probe_ts; /* when the first large datagram went out */
    /* When the next paced quantum was due (0: not pacing-limited). */
    uint64_t pace_due;

    quic_conn_stat cnt;        /* the counters of quic_conn_get_stat */
    uint64_t last_recovery_ts; /* congestion_recovery_start_ts last seen */
    uint8_t *txbuf;            /* QUIC_BATCH_BYTES, at least one packet */
    uint8_t close_pkt[QUIC_MIN_PKT];
    size_t close_len;
    int close_resends;
};

/* ---- shared between quic_conn.c, quic_conn_tls.c and quic_conn_io.c ---------------------- */

/* quic_conn_tls.c: a random connection ID that cannot look like STUN. 0 or TALLOW_ECRYPTO. */
int quic_gen_cid(uint8_t *p, size_t n);

/* quic_conn_io.c: free bytes in the send ring. */
uint64_t quic_ring_free(const quic_conn *c);

/* quic_conn_io.c: appends n bytes (the caller checked the room). */
void quic_ring_put(quic_conn *c, const uint8_t *data, size_t n);

/* quic_conn_io.c: hands datagrams to cbs->send and counts them; to NULL: the peer. */
void quic_send(quic_conn *c, const ngtcp2_addr *to, const uint8_t *data, size_t len, size_t segsz);

/* quic_conn.c: the tallow error an ngtcp2 error means. */
int quic_map_liberr(quic_conn *c, int liberr);

/* Ends the connection: liberr 0 = orderly (CONNECTION_CLOSE with NO_ERROR), an ngtcp2 error =
 * local failure (CONNECTION_CLOSE with the matching code), except the errors after which the
 * protocol forbids sending anything. on_closed(err) follows from quic_dispatch. */
void quic_close(quic_conn *c, int liberr, int err, uint64_t now);

/* Reports pending events; the last thing every public entry point does. Returns 0 or
 * TALLOW_ECLOSED (then c may already be freed by on_closed). */
int quic_dispatch(quic_conn *c);

/* quic_conn_tls.c: connected once the handshake is done and the stream open (and, on a
 * server, the client's preamble checked). */
void quic_check_connected(quic_conn *c);

/* quic_conn_tls.c: ngtcp2's callbacks for a client or a server. */
void quic_callbacks(ngtcp2_callbacks *cb, int is_server);

/* quic_conn_tls.c: the GnuTLS session with the PSK. 0, TALLOW_ENOMEM or TALLOW_ECRYPTO. */
int quic_tls_init(quic_conn *c);

/* Room offered for one packet. With shaping (the default), ngtcp2 sizes ordinary packets to the
 * validated path MTU itself and the room must also fit its PMTUD probes (up to QUIC_MAX_PKT), or
 * the path never grows beyond 1200. With large datagrams the room is the size. */
size_t quic_pkt_room(const quic_conn *c);

/* Bursts while ngtcp2 allows: its pacing lets the next quantum go at once when the gap would be
 * under a millisecond (a fast local path), else the next burst writes nothing. One quantum per
 * loop round left the loop's own cost on every 64 KiB. */
void quic_write(quic_conn *c, uint64_t now);

/* quic_conn.c: on a server, the client's first Initial creates the connection. Returns 0, or a
 * negative tallow error (drop the datagram). */
int quic_server_accept(quic_conn *c, const struct sockaddr *from, socklen_t fromlen,
                       const uint8_t *pkt, size_t len, uint64_t now);

#endif
