/* quic_conn_tls.c — the QUIC connection's TLS 1.3 external PSK (GnuTLS; no certificates, an
 * identity derived from the PSK, ALPN "h3") and the ngtcp2 callbacks that drive the handshake
 * and the one bidirectional stream. */
#include "quic_conn_internal.h"

/* The client's first stream bytes: they open the stream on the server side (a server cannot send
 * on a client stream it has not seen yet) and double as a version check. */
const uint8_t quic_preamble[4] = {'T', 'Q', 'L', '1'};
/* STUN's magic cookie: a short-header datagram carries DCID bytes 3..6 where STUN has it. */
const uint8_t quic_stun_cookie[4] = {0x21, 0x12, 0xA4, 0x42};

static void quic_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *rctx)
{
    quic_conn *c = rctx ? rctx->native_handle : NULL;
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
    /* ngtcp2 0.12 draws exactly one byte while creating the connection and greases the QUIC
     * fixed bit if bit 0 is set; a cleared fixed bit would make QUIC look like STUN (0..3). */
    if (c && c->in_new && len == 1) dest[0] &= 0xfe;
}

int quic_gen_cid(uint8_t *p, size_t n)
{
    do {
        if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0) return TALLOW_ECRYPTO;
    } while (n >= 7 && memcmp(p + 3, quic_stun_cookie, 4) == 0);
    return 0;
}

void quic_check_connected(quic_conn *c)
{
    if (c->hs_done && c->stream_id >= 0 && (!c->is_server || c->preamble_got == 4))
        c->connected = 1;
}

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

void quic_callbacks(ngtcp2_callbacks *cb, int is_server)
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

static int quic_psk_server_key(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    quic_conn *c = ref->user_data;
    /* GnuTLS takes any negative value as "no key": a GnuTLS error code, not a tallow one. */
    if (strcmp(user, c->psk_identity) != 0) return GNUTLS_E_USER_ERROR;
    key->data = gnutls_malloc(sizeof(c->psk));
    if (!key->data) return GNUTLS_E_MEMORY_ERROR;
    memcpy(key->data, c->psk, sizeof(c->psk));
    key->size = sizeof(c->psk);
    return 0;
}

int quic_tls_init(quic_conn *c)
{
    static const gnutls_datum_t alpn = {(unsigned char *)QUIC_ALPN, sizeof(QUIC_ALPN) - 1};
    int rv;
    if (gnutls_init(&c->tls, (c->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                                 GNUTLS_NO_END_OF_EARLY_DATA) != 0) {
        c->tls = NULL;
        return TALLOW_ENOMEM;
    }
    if (c->is_server) {
        if (gnutls_psk_allocate_server_credentials(&c->psk_srv) != 0) {
            c->psk_srv = NULL;
            return TALLOW_ENOMEM;
        }
        gnutls_psk_set_server_credentials_function(c->psk_srv, quic_psk_server_key);
        rv = ngtcp2_crypto_gnutls_configure_server_session(c->tls);
        if (rv == 0) rv = gnutls_credentials_set(c->tls, GNUTLS_CRD_PSK, c->psk_srv);
    } else {
        gnutls_datum_t key = {c->psk, sizeof(c->psk)};
        if (gnutls_psk_allocate_client_credentials(&c->psk_cli) != 0) {
            c->psk_cli = NULL;
            return TALLOW_ENOMEM;
        }
        rv = gnutls_psk_set_client_credentials(c->psk_cli, c->psk_identity, &key,
                                               GNUTLS_PSK_KEY_RAW);
        if (rv == 0) rv = ngtcp2_crypto_gnutls_configure_client_session(c->tls);
        if (rv == 0) rv = gnutls_credentials_set(c->tls, GNUTLS_CRD_PSK, c->psk_cli);
    }
    if (rv == 0) rv = gnutls_priority_set_direct(c->tls, QUIC_PRIORITY, NULL);
    if (rv == 0) rv = gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY);
    if (rv != 0) return rv == GNUTLS_E_MEMORY_ERROR ? TALLOW_ENOMEM : TALLOW_ECRYPTO;
    c->conn_ref.get_conn = quic_get_conn;
    c->conn_ref.user_data = c;
    gnutls_session_set_ptr(c->tls, &c->conn_ref);
    return 0;
}
