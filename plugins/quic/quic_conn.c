/* quic_conn.c — the sans-IO QUIC connection of the quic plugin: ngtcp2 0.12 with GnuTLS, TLS 1.3
 * external PSK (no certificates, an identity derived from it), ALPN "h3", one bidirectional stream, a ring send buffer
 * kept until acknowledged, and batched equal-size datagrams. Every ngtcp2/GnuTLS call of the
 * plugin is here so that a port to ngtcp2 1.x touches one file. */
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
#define QUIC_BATCH 64            /* datagrams per cbs->send, at most */
#define QUIC_BATCH_BYTES 65000   /* bytes per cbs->send, at most: one UDP_SEGMENT send */
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
static const uint8_t quic_preamble[4] = {'T', 'Q', 'L', '1'};
/* STUN's magic cookie: a short-header datagram carries DCID bytes 3..6 where STUN has it. */
static const uint8_t quic_stun_cookie[4] = {0x21, 0x12, 0xA4, 0x42};

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
    size_t path_udp; /* what the caller said the path carries (0: unknown), capped */
    uint64_t rx_window; /* flow-control window we give the peer */
    int hs_confirmed, big_proven;
    uint64_t big_probe_end;
    uint64_t big_probe_ts; /* when the first large datagram went out */
    /* When the next paced quantum was due (0: not pacing-limited). */
    uint64_t pace_due;

    quic_conn_stat cnt;        /* the counters of quic_conn_get_stat */
    uint64_t last_recovery_ts; /* congestion_recovery_start_ts last seen */
    uint8_t *txbuf; /* QUIC_BATCH_BYTES, at least one packet */
    uint8_t close_pkt[QUIC_MIN_PKT];
    size_t close_len;
    int close_resends;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static void quic_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *rctx)
{
    quic_conn *c = rctx ? rctx->native_handle : NULL;
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
    /* ngtcp2 0.12 draws exactly one byte while creating the connection and greases the QUIC
     * fixed bit if bit 0 is set; a cleared fixed bit would make QUIC look like STUN (0..3). */
    if (c && c->in_new && len == 1) dest[0] &= 0xfe;
}

static int quic_gen_cid(uint8_t *p, size_t n)
{
    do {
        if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0) return -1;
    } while (n >= 7 && memcmp(p + 3, quic_stun_cookie, 4) == 0);
    return 0;
}

static int quic_addr_eq(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b,
                        socklen_t blen)
{
    if (a->sa_family != b->sa_family) return 0;
    if (a->sa_family == AF_INET && alen >= sizeof(struct sockaddr_in) &&
        blen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6 && alen >= sizeof(struct sockaddr_in6) &&
        blen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

static uint64_t quic_ring_free(const quic_conn *c)
{
    return c->ring_size - (c->end - c->acked);
}

static size_t quic_ring_vecs(const quic_conn *c, ngtcp2_vec v[2])
{
    uint64_t n = c->end - c->sent;
    size_t off = (size_t)(c->sent & (c->ring_size - 1));
    size_t first = n < c->ring_size - off ? (size_t)n : (size_t)(c->ring_size - off);
    v[0].base = c->ring + off;
    v[0].len = first;
    if (n == first) return 1;
    v[1].base = c->ring;
    v[1].len = (size_t)n - first;
    return 2;
}

static void quic_ring_put(quic_conn *c, const uint8_t *data, size_t n)
{
    size_t off = (size_t)(c->end & (c->ring_size - 1));
    size_t first = n < c->ring_size - off ? n : (size_t)(c->ring_size - off);
    memcpy(c->ring + off, data, first);
    memcpy(c->ring, data + first, n - first);
    c->end += n;
}

static void quic_send(quic_conn *c, const ngtcp2_addr *to, const uint8_t *data, size_t len,
                      size_t segsz)
{
    const struct sockaddr *sa = to && to->addrlen ? to->addr : (const struct sockaddr *)&c->remote;
    socklen_t salen = to && to->addrlen ? to->addrlen : c->rlen;
    /* A failed send is a lost packet: QUIC recovers. */
    uint64_t count = segsz ? (len + segsz - 1) / segsz : 1;
    int n = c->cbs.send(c->ud, sa, salen, data, len, segsz);
    c->cnt.tx_calls++;
    c->cnt.tx_dgrams += count;
    c->cnt.tx_bytes += len;
    if (n >= 0 && (uint64_t)n < count)
        c->cnt.tx_failed += count - (uint64_t)n;
    else if (n < 0)
        c->cnt.tx_failed += count;
}

/* Error the peer's CONNECTION_CLOSE means for us. */
static int quic_remote_close_err(quic_conn *c)
{
    ngtcp2_connection_close_error cc;
    ngtcp2_conn_get_connection_close_error(c->conn, &cc);
    switch (cc.type) {
    case NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT:
        if (cc.error_code == NGTCP2_NO_ERROR) break;
        if ((cc.error_code & ~(uint64_t)0xff) == NGTCP2_CRYPTO_ERROR) return TALLOW_ECRYPTO;
        return TALLOW_ECLOSED;
    case NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION:
        if (cc.error_code == 0) break;
        return TALLOW_ECLOSED;
    case NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT_IDLE_CLOSE:
        return TALLOW_ETIMEOUT;
    default:
        return TALLOW_ECLOSED;
    }
    /* An orderly close is only orderly for us if the peer has everything we wrote. */
    return c->acked == c->end ? 0 : TALLOW_ECLOSED;
}

static int quic_map_liberr(quic_conn *c, int liberr)
{
    switch (liberr) {
    case NGTCP2_ERR_CRYPTO:
        return TALLOW_ECRYPTO;
    case NGTCP2_ERR_IDLE_CLOSE:
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
        return TALLOW_ETIMEOUT;
    case NGTCP2_ERR_NOMEM:
        return TALLOW_ENOMEM;
    case NGTCP2_ERR_DRAINING:
        return quic_remote_close_err(c);
    case NGTCP2_ERR_CALLBACK_FAILURE:
        return c->proto_err ? TALLOW_EPROTO : TALLOW_ECRYPTO;
    default:
        return TALLOW_EPROTO;
    }
}

/* Ends the connection: liberr 0 = orderly (CONNECTION_CLOSE with NO_ERROR), an ngtcp2 error =
 * local failure (CONNECTION_CLOSE with the matching code), except the errors after which the
 * protocol forbids sending anything. on_closed(err) follows from quic_dispatch. */
static void quic_close(quic_conn *c, int liberr, int err, uint64_t now)
{
    if (c->closed) return;
    c->closed = 1;
    c->close_err = err;
    if (!c->conn || liberr == NGTCP2_ERR_DRAINING || liberr == NGTCP2_ERR_DROP_CONN ||
        liberr == NGTCP2_ERR_IDLE_CLOSE || liberr == NGTCP2_ERR_HANDSHAKE_TIMEOUT ||
        ngtcp2_conn_is_in_closing_period(c->conn) || ngtcp2_conn_is_in_draining_period(c->conn))
        return;
    ngtcp2_connection_close_error cc;
    ngtcp2_connection_close_error_default(&cc);
    if (liberr == NGTCP2_ERR_CRYPTO)
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &cc, ngtcp2_conn_get_tls_alert(c->conn), NULL, 0);
    else if (liberr == NGTCP2_ERR_CALLBACK_FAILURE && c->proto_err)
        ngtcp2_connection_close_error_set_transport_error(&cc, NGTCP2_PROTOCOL_VIOLATION, NULL, 0);
    else if (liberr != 0)
        ngtcp2_connection_close_error_set_transport_error_liberr(&cc, liberr, NULL, 0);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, NULL, c->close_pkt,
                                                        sizeof(c->close_pkt), &cc, now);
    if (n > 0) {
        c->close_len = (size_t)n;
        quic_send(c, &ps.path.remote, c->close_pkt, c->close_len, c->close_len);
    }
}

/* Reports pending events; the last thing every public entry point does. Returns 0 or
 * TALLOW_ECLOSED (then c may already be freed by on_closed). */
static int quic_dispatch(quic_conn *c)
{
    if (!c->closed && c->connected && !c->connected_reported) {
        c->connected_reported = 1;
        if (c->cbs.on_connected) c->cbs.on_connected(c->ud);
    }
    if (!c->closed && c->want_writable && quic_ring_free(c) >= QUIC_RING_LOWAT) {
        c->want_writable = 0;
        if (c->cbs.on_writable) c->cbs.on_writable(c->ud);
    }
    if (!c->closed) return 0;
    if (!c->close_reported) {
        c->close_reported = 1;
        if (c->cbs.on_closed) c->cbs.on_closed(c->ud, c->close_err); /* may free c */
    }
    return TALLOW_ECLOSED;
}

static void quic_check_connected(quic_conn *c)
{
    if (c->hs_done && c->stream_id >= 0 && (!c->is_server || c->preamble_got == 4))
        c->connected = 1;
}

/* ---- ngtcp2 callbacks --------------------------------------------------------------------- */

static ngtcp2_conn *quic_get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((quic_conn *)ref->user_data)->conn;
}

static int quic_cb_handshake_completed(ngtcp2_conn *conn, void *ud)
{
    quic_conn *c = ud;
    gnutls_datum_t alpn = {0};
    if (gnutls_alpn_get_selected_protocol(c->tls, &alpn) != 0 || alpn.size != strlen(QUIC_ALPN) ||
        memcmp(alpn.data, QUIC_ALPN, alpn.size) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    c->hs_done = 1;
    c->hs_confirmed = c->is_server; /* 0.12 calls handshake_confirmed on clients only */
    if (!c->is_server) {
        int64_t sid;
        if (ngtcp2_conn_open_bidi_stream(conn, &sid, NULL) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
        c->stream_id = sid;
    }
    quic_check_connected(c);
    return 0;
}

static int quic_cb_stream_open(ngtcp2_conn *conn, int64_t sid, void *ud)
{
    quic_conn *c = ud;
    (void)conn;
    if (c->is_server && c->stream_id < 0 && ngtcp2_is_bidi_stream(sid)) c->stream_id = sid;
    return 0;
}

static int quic_cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t offset,
                                    const uint8_t *data, size_t len, void *ud, void *sud)
{
    quic_conn *c = ud;
    size_t all = len;
    (void)flags, (void)offset, (void)sud;
    if (sid != c->stream_id) return 0;
    if (c->is_server && c->preamble_got < sizeof(quic_preamble)) {
        size_t k = sizeof(quic_preamble) - (size_t)c->preamble_got;
        if (k > len) k = len;
        if (memcmp(data, quic_preamble + c->preamble_got, k) != 0) {
            c->proto_err = 1;
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
        c->preamble_got += k;
        data += k;
        len -= k;
        quic_check_connected(c);
    }
    if (len && !c->closed) {
        c->bytes_recv += len;
        if (c->cbs.on_data) c->cbs.on_data(c->ud, data, len);
    }
    /* Consumed at once: give the window straight back. */
    ngtcp2_conn_extend_max_stream_offset(conn, sid, all);
    ngtcp2_conn_extend_max_offset(conn, all);
    return 0;
}

static int quic_cb_acked(ngtcp2_conn *conn, int64_t sid, uint64_t offset, uint64_t len, void *ud,
                         void *sud)
{
    quic_conn *c = ud;
    (void)conn, (void)sud;
    if (sid == c->stream_id && offset + len > c->acked) c->acked = offset + len;
    return 0;
}

static int quic_cb_stream_reset(ngtcp2_conn *conn, int64_t sid, uint64_t final_size, uint64_t code,
                                void *ud, void *sud)
{
    quic_conn *c = ud;
    (void)conn, (void)final_size, (void)code, (void)sud;
    if (sid == c->stream_id) {
        c->proto_err = 1;
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int quic_cb_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                           void *ud)
{
    (void)conn, (void)ud;
    if (quic_gen_cid(cid->data, cidlen) != 0 ||
        gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = cidlen;
    return 0;
}

/* Client: the server's HANDSHAKE_DONE arrived, so no Handshake packet of ours is needed any
 * more and large datagrams carry only 1-RTT packets. */
static int quic_cb_handshake_confirmed(ngtcp2_conn *conn, void *ud)
{
    (void)conn;
    ((quic_conn *)ud)->hs_confirmed = 1;
    return 0;
}

static void quic_callbacks(ngtcp2_callbacks *cb, int is_server)
{
    memset(cb, 0, sizeof(*cb));
    if (is_server) {
        cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
        cb->client_initial = ngtcp2_crypto_client_initial_cb;
        cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
    cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb->encrypt = ngtcp2_crypto_encrypt_cb;
    cb->decrypt = ngtcp2_crypto_decrypt_cb;
    cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb->update_key = ngtcp2_crypto_update_key_cb;
    cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb->rand = quic_rand;
    cb->get_new_connection_id = quic_cb_new_cid;
    cb->handshake_completed = quic_cb_handshake_completed;
    cb->handshake_confirmed = quic_cb_handshake_confirmed;
    cb->stream_open = quic_cb_stream_open;
    cb->recv_stream_data = quic_cb_recv_stream_data;
    cb->acked_stream_data_offset = quic_cb_acked;
    cb->stream_reset = quic_cb_stream_reset;
}

/* Congestion control per path. Local and on-link paths (large datagrams) keep CUBIC with the
 * window floor below: no loss, microsecond RTTs. Internet paths get BBR: CUBIC reads every random
 * loss as congestion and collapses on a long lossy path (emulated 100 ms, 1 %: ~2 Mbit/s against
 * 70-180 with BBR). BBR2 did better there (195-250) but halved behind a rate limit with 0.1 %
 * loss (40 ms, 500 Mbit/s: ~110 against ~260); tests/bench/RESULTS.md, Run W.
 * TALLOW_QUIC_CC=cubic|reno|bbr|bbr2 overrides (measurements). */
static ngtcp2_cc_algo quic_cc_algo(const quic_conn *c)
{
    const char *e = getenv("TALLOW_QUIC_CC");
    if (e && !strcmp(e, "cubic")) return NGTCP2_CC_ALGO_CUBIC;
    if (e && !strcmp(e, "reno")) return NGTCP2_CC_ALGO_RENO;
    if (e && !strcmp(e, "bbr")) return NGTCP2_CC_ALGO_BBR;
    if (e && !strcmp(e, "bbr2")) return NGTCP2_CC_ALGO_BBR2;
    return c->big ? NGTCP2_CC_ALGO_CUBIC : NGTCP2_CC_ALGO_BBR;
}

static void quic_settings(quic_conn *c, ngtcp2_settings *s, ngtcp2_transport_params *p,
                          uint64_t now)
{
    ngtcp2_settings_default(s);
    s->initial_ts = now;
    s->cc_algo = quic_cc_algo(c);
    s->max_tx_udp_payload_size = QUIC_MAX_PKT;
    if (c->big) {
        /* Sizes come from the buffer we offer (QUIC_MIN_PKT until the handshake is confirmed,
         * then c->big), capped by the peer's max_udp_payload_size; PMTUD would only probe
         * below what we use. */
        s->no_tx_udp_payload_size_shaping = 1;
        s->no_pmtud = 1;
        /* Unshaped, this setting only caps sizes (our buffer already does) and is the unit of
         * ngtcp2 0.12's congestion control: its CUBIC stops growing the window at 2.89 x
         * max(2 units, rate x min RTT). A local or on-link min RTT is tens of microseconds, so
         * the window stayed near 230 KB, less than one of the session's 256 KiB chunks: each
         * side waited on the other's chunk work and both idled a third of the time. A 512 KiB
         * unit starts at 1 MiB, floors at 1 MiB after a loss and may grow to ~3 MiB; the peer's
         * flow-control window (its receive buffer) still bounds what is in flight. */
        s->max_tx_udp_payload_size = QUIC_BIG_CC_UNIT;
    }
    s->max_window = c->rx_window;
    s->max_stream_window = c->rx_window < QUIC_STREAM_WINDOW ? c->rx_window : QUIC_STREAM_WINDOW;
    s->handshake_timeout = QUIC_HANDSHAKE_TIMEOUT;
    s->rand_ctx.native_handle = c;

    ngtcp2_transport_params_default(p);
    p->initial_max_stream_data_bidi_local = s->max_stream_window;
    p->initial_max_stream_data_bidi_remote = s->max_stream_window;
    p->initial_max_stream_data_uni = 0; /* no unidirectional streams */
    p->initial_max_data = c->rx_window;
    p->initial_max_streams_bidi = 1; /* the one stream, opened by the client */
    p->initial_max_streams_uni = 0;
    /* We receive at most what our side of the path carries: a peer with large datagrams then
     * sends no more than that (one on a jumbo link talking to us on a 1500-byte one). */
    if (c->path_udp) p->max_udp_payload_size = c->path_udp;
    p->max_idle_timeout = QUIC_IDLE_TIMEOUT;
    p->disable_active_migration = 1;
}

/* ---- TLS ---------------------------------------------------------------------------------- */

static int quic_psk_server_key(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    quic_conn *c = ref->user_data;
    if (strcmp(user, c->psk_identity) != 0) return -1;
    key->data = gnutls_malloc(sizeof(c->psk));
    if (!key->data) return -1;
    memcpy(key->data, c->psk, sizeof(c->psk));
    key->size = sizeof(c->psk);
    return 0;
}

static int quic_tls_init(quic_conn *c)
{
    static const gnutls_datum_t alpn = {(unsigned char *)QUIC_ALPN, sizeof(QUIC_ALPN) - 1};
    int rv;
    if (gnutls_init(&c->tls, (c->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                                 GNUTLS_NO_END_OF_EARLY_DATA) != 0) {
        c->tls = NULL;
        return -1;
    }
    if (c->is_server) {
        if (gnutls_psk_allocate_server_credentials(&c->psk_srv) != 0) {
            c->psk_srv = NULL;
            return -1;
        }
        gnutls_psk_set_server_credentials_function(c->psk_srv, quic_psk_server_key);
        rv = ngtcp2_crypto_gnutls_configure_server_session(c->tls);
        if (rv == 0) rv = gnutls_credentials_set(c->tls, GNUTLS_CRD_PSK, c->psk_srv);
    } else {
        gnutls_datum_t key = {c->psk, sizeof(c->psk)};
        if (gnutls_psk_allocate_client_credentials(&c->psk_cli) != 0) {
            c->psk_cli = NULL;
            return -1;
        }
        rv = gnutls_psk_set_client_credentials(c->psk_cli, c->psk_identity, &key,
                                               GNUTLS_PSK_KEY_RAW);
        if (rv == 0) rv = ngtcp2_crypto_gnutls_configure_client_session(c->tls);
        if (rv == 0) rv = gnutls_credentials_set(c->tls, GNUTLS_CRD_PSK, c->psk_cli);
    }
    if (rv == 0) rv = gnutls_priority_set_direct(c->tls, QUIC_PRIORITY, NULL);
    if (rv == 0) rv = gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY);
    if (rv != 0) return -1;
    c->conn_ref.get_conn = quic_get_conn;
    c->conn_ref.user_data = c;
    gnutls_session_set_ptr(c->tls, &c->conn_ref);
    return 0;
}

/* ---- connection setup --------------------------------------------------------------------- */

static int quic_client_start(quic_conn *c, uint64_t now)
{
    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    ngtcp2_cid dcid, scid;
    ngtcp2_path path = {
        {(struct sockaddr *)&c->local, c->llen}, {(struct sockaddr *)&c->remote, c->rlen}, NULL};
    dcid.datalen = scid.datalen = QUIC_CIDLEN;
    if (quic_gen_cid(dcid.data, dcid.datalen) != 0 || quic_gen_cid(scid.data, scid.datalen) != 0)
        return -1;
    quic_callbacks(&cb, 0);
    quic_settings(c, &s, &p, now);
    c->in_new = 1;
    int rv = ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &s, &p,
                                    NULL, c);
    c->in_new = 0;
    if (rv != 0) {
        c->conn = NULL;
        return -1;
    }
    ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
    ngtcp2_conn_set_keep_alive_timeout(c->conn, QUIC_KEEPALIVE);
    quic_ring_put(c, quic_preamble, sizeof(quic_preamble));
    return 0;
}

/* Server: the client's first Initial creates the connection. Returns 0, or -1 (drop it). */
static int quic_server_accept(quic_conn *c, const struct sockaddr *from, socklen_t fromlen,
                              const uint8_t *pkt, size_t len, uint64_t now)
{
    ngtcp2_pkt_hd hd;
    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    ngtcp2_cid scid;
    if (!quic_addr_eq(from, fromlen, (struct sockaddr *)&c->remote, c->rlen) ||
        ngtcp2_accept(&hd, pkt, len) != 0)
        return -1;
    ngtcp2_path path = {
        {(struct sockaddr *)&c->local, c->llen}, {(struct sockaddr *)&c->remote, c->rlen}, NULL};
    scid.datalen = QUIC_CIDLEN;
    if (quic_gen_cid(scid.data, scid.datalen) != 0) return -1;
    quic_callbacks(&cb, 1);
    quic_settings(c, &s, &p, now);
    p.original_dcid = hd.dcid;
    c->in_new = 1;
    int rv =
        ngtcp2_conn_server_new(&c->conn, &hd.scid, &scid, &path, hd.version, &cb, &s, &p, NULL, c);
    c->in_new = 0;
    if (rv != 0) {
        c->conn = NULL;
        return -1;
    }
    ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
    ngtcp2_conn_set_keep_alive_timeout(c->conn, QUIC_KEEPALIVE);
    return 0;
}

quic_conn *quic_conn_new(int is_server, const uint8_t psk[32], const struct sockaddr *local,
                         socklen_t llen, const struct sockaddr *remote, socklen_t rlen,
                         size_t max_udp, size_t rcvbuf, const quic_conn_cbs *cbs, void *ud,
                         uint64_t now_ns)
{
    if (!psk || !local || !remote || !cbs || !cbs->send || llen > sizeof(struct sockaddr_storage) ||
        rlen > sizeof(struct sockaddr_storage))
        return NULL;
    quic_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->is_server = is_server;
    c->cbs = *cbs;
    c->ud = ud;
    memcpy(c->psk, psk, sizeof(c->psk));
    static const char label[] = "tallow quic psk identity";
    uint8_t id[32];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, psk, 32, label, sizeof label - 1, id) != 0) {
        free(c);
        return NULL;
    }
    for (int i = 0; i < 8; i++) {
        c->psk_identity[2 * i] = "0123456789abcdef"[id[i] >> 4];
        c->psk_identity[2 * i + 1] = "0123456789abcdef"[id[i] & 15];
    }
    memcpy(&c->local, local, llen);
    memcpy(&c->remote, remote, rlen);
    c->llen = llen;
    c->rlen = rlen;
    c->stream_id = -1;
    if (max_udp) c->path_udp = max_udp < QUIC_MIN_PKT ? QUIC_MIN_PKT : max_udp;
    if (c->path_udp > QUIC_BIG_PKT) c->path_udp = QUIC_BIG_PKT;
    if (c->path_udp > QUIC_ETH_PKT) c->big = c->path_udp;
    c->rx_window = QUIC_CONN_WINDOW;
    /* With large datagrams the window is tight (see quic_settings): what the peer may have in
     * flight fits our socket's buffer (the kernel counts about twice the payload). */
    if (c->big && rcvbuf && rcvbuf / 2 < c->rx_window)
        c->rx_window = rcvbuf / 2 > QUIC_MIN_WINDOW ? rcvbuf / 2 : QUIC_MIN_WINDOW;
    c->ring_size = c->big ? QUIC_RING_SIZE_LOCAL : QUIC_RING_SIZE;
    c->ring = malloc(c->ring_size);
    c->txbuf = malloc(QUIC_BATCH_BYTES > QUIC_BIG_PKT ? QUIC_BATCH_BYTES : QUIC_BIG_PKT);
    if (!c->ring || !c->txbuf || quic_tls_init(c) != 0 ||
        (!is_server && quic_client_start(c, now_ns) != 0)) {
        quic_conn_free(c);
        return NULL;
    }
    return c;
}

void quic_conn_free(quic_conn *c)
{
    if (!c) return;
    if (c->conn) ngtcp2_conn_del(c->conn);
    if (c->tls) gnutls_deinit(c->tls);
    if (c->psk_cli) gnutls_psk_free_client_credentials(c->psk_cli);
    if (c->psk_srv) gnutls_psk_free_server_credentials(c->psk_srv);
    free(c->ring);
    free(c->txbuf);
    gnutls_memset(c->psk, 0, sizeof(c->psk));
    free(c);
}

/* ---- I/O ---------------------------------------------------------------------------------- */

int quic_conn_recv(quic_conn *c, const struct sockaddr *from, socklen_t fromlen, const uint8_t *pkt,
                   size_t len, uint64_t now_ns)
{
    if (c->closed) {
        /* In the closing period, answer the peer's packets with our CONNECTION_CLOSE. */
        if (c->close_len && c->close_resends < QUIC_CLOSE_RESENDS) {
            c->close_resends++;
            quic_send(c, NULL, c->close_pkt, c->close_len, c->close_len);
        }
        return quic_dispatch(c);
    }
    c->cnt.rx_dgrams++;
    c->cnt.rx_bytes += len;
    if (!c->conn && (!c->is_server || quic_server_accept(c, from, fromlen, pkt, len, now_ns) != 0))
        return 0;
    ngtcp2_path path = {
        {(struct sockaddr *)&c->local, c->llen}, {(struct sockaddr *)from, fromlen}, NULL};
    ngtcp2_pkt_info pi = {0};
    int rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, pkt, len, now_ns);
    if (rv != 0 && rv != NGTCP2_ERR_DISCARD_PKT) quic_close(c, rv, quic_map_liberr(c, rv), now_ns);
    return quic_dispatch(c);
}

size_t quic_conn_room(quic_conn *c)
{
    return c->closed || c->shutdown ? 0 : (size_t)quic_ring_free(c);
}

void quic_conn_want_writable(quic_conn *c)
{
    if (!c->closed && !c->shutdown) c->want_writable = 1;
}

size_t quic_conn_write(quic_conn *c, const uint8_t *data, size_t len)
{
    if (c->closed || c->shutdown) return 0;
    uint64_t room = quic_ring_free(c);
    size_t n = len < room ? len : (size_t)room;
    quic_ring_put(c, data, n);
    if (n < len) {
        c->want_writable = 1;
        c->cnt.ring_full++;
    }
    return n;
}

/* Large datagrams that no acknowledgement has vouched for yet while timeouts pile up: the path
 * drops them (a middlebox with a smaller MTU). Back to QUIC_MAX_PKT for good; ngtcp2 resends
 * their frames in the smaller packets. */
static void quic_check_blackhole(quic_conn *c, uint64_t now)
{
    if (!c->big || c->big_proven || !c->big_probe_end) return;
    if (c->acked >= c->big_probe_end) {
        c->big_proven = 1;
        return;
    }
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(c->conn, &st);
    if (st.pto_count >= QUIC_BIG_BLACKHOLE_PTOS && now - c->big_probe_ts >= QUIC_BIG_BLACKHOLE_NS)
        c->big = 0;
}

/* Room offered for one packet. With shaping (the default), ngtcp2 sizes ordinary packets to the
 * validated path MTU itself and the room must also fit its PMTUD probes (up to QUIC_MAX_PKT), or
 * the path never grows beyond 1200. With large datagrams the room is the size. */
static size_t quic_pkt_room(const quic_conn *c)
{
    if (!c->big) return QUIC_MAX_PKT;
    return c->hs_confirmed ? c->big : QUIC_MIN_PKT;
}

/* Why a burst ended with nothing more written (the counters), and congestion events. */
static void quic_count_stop(quic_conn *c, int blocked, size_t pmax)
{
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(c->conn, &st);
    if (st.congestion_recovery_start_ts != c->last_recovery_ts &&
        st.congestion_recovery_start_ts != UINT64_MAX && st.congestion_recovery_start_ts != 0) {
        c->last_recovery_ts = st.congestion_recovery_start_ts;
        c->cnt.recoveries++;
    }
    if (!c->hs_done || c->stream_id < 0 || c->sent >= c->end) return; /* nothing to send */
    if (blocked)
        c->cnt.fc_stops++;
    else if (st.bytes_in_flight + pmax > st.cwnd)
        c->cnt.cwnd_stops++;
    else
        c->cnt.pace_stops++;
}

/* One burst: packets of up to the path MTU written back to back, handed to cbs->send in runs of
 * equal size. Stops when ngtcp2 has nothing more to send now (congestion, pacing, flow control)
 * or after one send quantum; returns 1 in that last case. */
static int quic_write_burst(quic_conn *c, uint64_t now)
{
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    quic_check_blackhole(c, now);
    size_t pmax = quic_pkt_room(c);
    size_t unit = c->path_udp > QUIC_ETH_PKT ? pmax /* sizes are ours */
                                             : ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
    size_t maxpkts = ngtcp2_conn_get_send_quantum(c->conn) / unit;
    if (maxpkts < 1) maxpkts = 1;
    if (maxpkts > QUIC_BATCH) maxpkts = QUIC_BATCH;
    size_t total = 0, segsz = 0, npkts = 0, sent_pkts = 0;
    int blocked = 0, quantum = 0, pkt_data = 0;
    ngtcp2_path_storage_zero(&ps);
    for (;;) {
        ngtcp2_vec v[2];
        size_t nv = 0;
        int64_t sid = -1;
        ngtcp2_ssize nd = -1;
        if (!blocked && c->stream_id >= 0 && c->hs_done && c->sent < c->end) {
            nv = quic_ring_vecs(c, v);
            sid = c->stream_id;
        }
        ngtcp2_ssize n =
            ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, c->txbuf + total, pmax, &nd,
                                      NGTCP2_WRITE_STREAM_FLAG_MORE, sid, nv ? v : NULL, nv, now);
        if (nd > 0) {
            pkt_data = 1;
            c->sent += (uint64_t)nd;
            if (n > QUIC_MAX_PKT && !c->big_probe_end) {
                c->big_probe_end = c->sent;
                c->big_probe_ts = now;
            }
        }
        if (n == NGTCP2_ERR_WRITE_MORE) continue;
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
            n == NGTCP2_ERR_STREAM_NOT_FOUND) {
            blocked = 1;
            continue;
        }
        if (n < 0) {
            if (total) quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
            quic_close(c, (int)n, quic_map_liberr(c, (int)n), now);
            return 0;
        }
        if (n == 0) {
            quic_count_stop(c, blocked, pmax);
            break;
        }
        if (!pkt_data) c->cnt.tx_nodata++;
        pkt_data = 0;
        if (npkts && (size_t)n > segsz) { /* larger than the run (a PMTUD probe): new run */
            quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
            memmove(c->txbuf, c->txbuf + total, (size_t)n);
            total = npkts = 0;
        }
        if (!npkts) segsz = (size_t)n;
        total += (size_t)n;
        npkts++;
        sent_pkts++;
        if ((size_t)n < segsz || npkts == QUIC_BATCH || total + pmax > QUIC_BATCH_BYTES ||
            sent_pkts >= maxpkts) {
            quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
            total = npkts = 0;
            if (sent_pkts >= maxpkts) {
                quantum = 1;
                break;
            }
        }
    }
    if (total) quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
    /* ngtcp2 0.12 schedules the next quantum one pacing interval after the time given here, so
     * every wakeup that comes late (millisecond timers, a busy machine) is rate lost for good:
     * at 500 Mbit/s a 64 KiB quantum is due every ~1 ms and half the rate went. On internet
     * paths credit the lateness, at most QUIC_PACE_CREDIT, as ngtcp2 1.x does. */
    uint64_t txts = now;
    if (!c->big && c->pace_due && now > c->pace_due)
        txts = now - (now - c->pace_due < QUIC_PACE_CREDIT ? now - c->pace_due : QUIC_PACE_CREDIT);
    ngtcp2_conn_update_pkt_tx_time(c->conn, txts);
    c->pace_due = quantum ? ngtcp2_conn_get_expiry(c->conn) : 0;
    return quantum;
}

/* Bursts while ngtcp2 allows: its pacing lets the next quantum go at once when the gap would be
 * under a millisecond (a fast local path), else the next burst writes nothing. One quantum per
 * loop round left the loop's own cost on every 64 KiB. */
static void quic_write(quic_conn *c, uint64_t now)
{
    for (int i = 0; i < QUIC_FLUSH_BURSTS && !c->closed && quic_write_burst(c, now); i++)
        ;
}

int quic_conn_flush(quic_conn *c, uint64_t now_ns)
{
    if (!c->closed && c->conn) quic_write(c, now_ns); /* first: it carries our last ACKs */
    if (!c->closed && c->shutdown && c->acked == c->end) quic_close(c, 0, 0, now_ns);
    return quic_dispatch(c);
}

uint64_t quic_conn_expiry(quic_conn *c)
{
    if (c->closed || !c->conn) return UINT64_MAX;
    return ngtcp2_conn_get_expiry(c->conn);
}

int quic_conn_on_expiry(quic_conn *c, uint64_t now_ns)
{
    if (!c->closed && c->conn) {
        ngtcp2_conn_stat st;
        ngtcp2_conn_get_conn_stat(c->conn, &st);
        if (st.loss_detection_timer <= now_ns) c->cnt.loss_timer++;
        int rv = ngtcp2_conn_handle_expiry(c->conn, now_ns);
        if (rv != 0) quic_close(c, rv, quic_map_liberr(c, rv), now_ns);
    }
    return quic_conn_flush(c, now_ns);
}

void quic_conn_shutdown(quic_conn *c)
{
    c->shutdown = 1;
    c->want_writable = 0;
}

void quic_conn_close(quic_conn *c, uint64_t now_ns)
{
    if (c->closed) return;
    if (c->conn) quic_write(c, now_ns);
    c->close_reported = 1; /* silent */
    if (!c->closed) quic_close(c, 0, 0, now_ns);
}

void quic_conn_get_stat(quic_conn *c, quic_conn_stat *out)
{
    *out = c->cnt;
    if (c->conn) {
        ngtcp2_conn_stat st;
        ngtcp2_conn_get_conn_stat(c->conn, &st);
        out->rtt_ns = st.first_rtt_sample_ts != UINT64_MAX ? st.smoothed_rtt : 0;
        out->in_flight = st.bytes_in_flight;
        out->cwnd = st.cwnd;
    }
    uint64_t pre = c->is_server ? 0 : sizeof(quic_preamble);
    out->bytes_sent = c->sent > pre ? c->sent - pre : 0;
    out->bytes_recv = c->bytes_recv;
    out->queued = c->end - c->acked;
    out->unsent = c->end - c->sent;
    if (c->path_udp > QUIC_ETH_PKT) {
        out->max_dgram = (uint32_t)quic_pkt_room(c);
        const ngtcp2_transport_params *rp =
            c->conn ? ngtcp2_conn_get_remote_transport_params(c->conn) : NULL;
        if (rp && rp->max_udp_payload_size < out->max_dgram)
            out->max_dgram = (uint32_t)rp->max_udp_payload_size;
    }
    else if (c->conn)
        out->max_dgram = (uint32_t)ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
}
