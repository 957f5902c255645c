/* quic_conn.c — the sans-IO QUIC connection's lifecycle: creation (settings, transport
 * parameters), orderly and immediate close with the errors they report, and the counters.
 * quic_conn_tls.c holds the TLS 1.3 PSK handshake and ngtcp2's callbacks, quic_conn_io.c the
 * packets (send ring, batched writes, receive, timers); every ngtcp2/GnuTLS call of the plugin
 * is in these three files so that a port to ngtcp2 1.x touches them alone. */
#include "quic_conn_internal.h"

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

int quic_map_liberr(quic_conn *c, int liberr)
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
void quic_close(quic_conn *c, int liberr, int err, uint64_t now)
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
int quic_dispatch(quic_conn *c)
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

static int quic_client_start(quic_conn *c, uint64_t now)
{
    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    ngtcp2_cid dcid, scid;
    ngtcp2_path path = {
        {(struct sockaddr *)&c->local, c->llen}, {(struct sockaddr *)&c->remote, c->rlen}, NULL};
    dcid.datalen = scid.datalen = QUIC_CIDLEN;
    int rv = quic_gen_cid(dcid.data, dcid.datalen);
    if (rv == 0) rv = quic_gen_cid(scid.data, scid.datalen);
    if (rv != 0) return rv;
    quic_callbacks(&cb, 0);
    quic_settings(c, &s, &p, now);
    c->in_new = 1;
    rv = ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &s, &p,
                                NULL, c);
    c->in_new = 0;
    if (rv != 0) {
        c->conn = NULL;
        return rv == NGTCP2_ERR_NOMEM ? TALLOW_ENOMEM : TALLOW_EPROTO;
    }
    ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
    ngtcp2_conn_set_keep_alive_timeout(c->conn, QUIC_KEEPALIVE);
    quic_ring_put(c, quic_preamble, sizeof(quic_preamble));
    return 0;
}

int quic_server_accept(quic_conn *c, const struct sockaddr *from, socklen_t fromlen,
                       const uint8_t *pkt, size_t len, uint64_t now)
{
    ngtcp2_pkt_hd hd;
    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    ngtcp2_cid scid;
    if (!quic_addr_eq(from, fromlen, (struct sockaddr *)&c->remote, c->rlen) ||
        ngtcp2_accept(&hd, pkt, len) != 0)
        return TALLOW_EPROTO; /* not the client's Initial, or not from the peer */
    ngtcp2_path path = {
        {(struct sockaddr *)&c->local, c->llen}, {(struct sockaddr *)&c->remote, c->rlen}, NULL};
    scid.datalen = QUIC_CIDLEN;
    int rv = quic_gen_cid(scid.data, scid.datalen);
    if (rv != 0) return rv;
    quic_callbacks(&cb, 1);
    quic_settings(c, &s, &p, now);
    p.original_dcid = hd.dcid;
    c->in_new = 1;
    rv = ngtcp2_conn_server_new(&c->conn, &hd.scid, &scid, &path, hd.version, &cb, &s, &p, NULL, c);
    c->in_new = 0;
    if (rv != 0) {
        c->conn = NULL;
        return rv == NGTCP2_ERR_NOMEM ? TALLOW_ENOMEM : TALLOW_EPROTO;
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
    } else if (c->conn)
        out->max_dgram = (uint32_t)ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
}
