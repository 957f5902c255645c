/* core/session.c — pairing through a transport, the CPace handshake, and sealed messages.
 * The handshake runs in plaintext frames (kind 0); after it every frame is an AEAD record under
 * a per-direction key (kind 1) or a per-transfer key (kind 2). A failed confirmation tells the
 * peer (HandshakeFailed) and ends the session with TALLOW_ECODE on both sides. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "negotiate.h"
#include "session.h"

#define KIND_PLAIN 0
#define KIND_SEALED 1
#define KIND_TRANSFER 2
#define SESSION_MAX_FRAME (2u * 1024u * 1024u)
#define TX_KEYS 8

enum { ST_PAIRING, ST_HANDSHAKE, ST_READY, ST_FAILED };

typedef struct tx_key {
    uint64_t id;
    int used;
    uint64_t stamp;
    tallow__aead aead;
} tx_key;

struct tallow__session {
    tallow_ctx *ctx;
    tallow_channel *relay;  /* the first channel (whatever transport) */
    tallow_channel *direct; /* set once the negotiator moved the path */
    tallow_channel *path;   /* where sends go */
    int direct_rx_open;     /* the peer announced the switch: direct frames may be processed */
    const tallow__session_cbs *cbs;
    void *ud;
    tallow__session_filter filter;
    void *filter_ud;
    int state;
    int initiator;
    int ready_reported;
    int closed_reported;
    tallow__hs hs;
    tallow__keys keys;
    tallow__aead tx, rx;
    tx_key txk[TX_KEYS], rxk[TX_KEYS];
    uint8_t tx_epoch, rx_epoch;
    uint8_t base_tx[32], base_rx[32]; /* transfer bases of the current epochs */
    int resync_pending; /* a reconnection happened: old-epoch frames may have gaps */
    void (*resync)(void *ud);
    void *resync_ud;
    uint64_t stamp;
    uint8_t *buf;  /* sealing scratch */
    uint8_t *rbuf; /* opening scratch */
    /* frames that came on the direct channel before the peer's switch marker */
    struct pending {
        uint8_t *data;
        size_t len;
    } *pend;
    size_t npend, cappend;
    int in_callback;
    int close_requested;
    uint64_t rx_key_tid; /* key of the message being delivered: a transfer id or SESSION_KEY */
    /* the direct-path negotiator (negotiate.c), started once the keys are ready */
    tallow__neg *neg;
    int p2p, pair, peer_switched, direct_lost;
    char *stun, *relay_addr;
    uint32_t p2p_timeout_ms;
};

static void report_ready(tallow__session *s, int status)
{
    if (s->ready_reported) return;
    s->ready_reported = 1;
    if (s->cbs->on_ready) s->cbs->on_ready(s, status, s->ud);
}

static void report_closed(tallow__session *s, int err)
{
    if (!s->ready_reported) {
        report_ready(s, err ? err : TALLOW_ECLOSED);
        s->closed_reported = 1;
        return;
    }
    if (s->closed_reported) return;
    s->closed_reported = 1;
    if (s->cbs->on_closed) s->cbs->on_closed(s, err, s->ud);
}

static int send_frame(tallow__session *s, tallow_channel *ch, const uint8_t *f, size_t len)
{
    if (!ch) return TALLOW_ECLOSED;
    return tallow_channel_send(ch, 0, f, len);
}

static int send_plain(tallow__session *s, const tallow_msg_type *t, const void *msg)
{
    s->buf[0] = KIND_PLAIN;
    int n = tallow_msg_encode(t, msg, s->buf + 1, SESSION_MAX_FRAME - 1);
    if (n < 0) return n;
    return send_frame(s, s->path, s->buf, (size_t)n + 1);
}

static void fail(tallow__session *s, int err)
{
    if (s->state == ST_FAILED) return;
    s->state = ST_FAILED;
    tallow__hs_wipe(&s->hs);
    report_closed(s, err);
}

static void handshake_failed(tallow__session *s, int err)
{
    tallow_msg_HandshakeFailed m = {.code = err};
    const char *why = tallow_strerror(err);
    m.reason = (tallow_bytes){(const uint8_t *)why, strlen(why)};
    send_plain(s, &tallow_msgtype_HandshakeFailed, &m);
    /* the relay closes the room on this, so each attempt gives a guesser one try at most */
    if (s->relay && strcmp(s->relay->ops->name, "relay") == 0)
        tallow_channel_send(s->relay, UINT32_MAX - 1, (const uint8_t *)"handshake-failed", 16);
    tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(err));
    fail(s, err);
}

static void enter_epoch(tallow__session *s, int tx, uint8_t epoch);

/* Frames went into a direct path that one side has given up (its QUIC died, or it failed while
 * the other had already switched): back to the relay under fresh keys, and a running transfer
 * resynchronises from the receiver's position, as after a relay reconnection. */
/* err: why the direct channel ended. 0 or TALLOW_ECLOSED is the peer closing QUIC itself (as it
 * does when its session ends right after a transfer), so that is not worth a warning. */
static void direct_lost(tallow__session *s, int err)
{
    if (s->direct_lost || s->state != ST_READY) return;
    s->direct_lost = 1;
    if (err == 0 || err == TALLOW_ECLOSED)
        tallow_ctx_log(s->ctx, TALLOW_LOG_INFO, "the peer closed the direct path; relay from here");
    else
        tallow_ctx_log(s->ctx, TALLOW_LOG_WARN, "direct path lost; continuing over the relay");
    s->path = s->relay;
    s->resync_pending = 1;
    enter_epoch(s, 1, (uint8_t)(s->tx_epoch + 1));
    /* the peer may not have noticed yet (its QUIC times out later): it must not keep sending
     * into the dead path, nor resume before we both resynchronise */
    static const char why[] = "direct path lost";
    tallow_msg_DirectFailed f = {.reason = {(const uint8_t *)why, sizeof(why) - 1}};
    tallow__session_send(s, &tallow_msgtype_DirectFailed, &f);
    if (s->resync) s->resync(s->resync_ud);
}

static void neg_settled(tallow__session *s, int state)
{
    if (state != TALLOW__NEG_DIRECT && s->peer_switched) direct_lost(s, TALLOW_ECANCELED);
    if (s->cbs->on_path) s->cbs->on_path(s, state == TALLOW__NEG_DIRECT, s->ud);
}

static void keys_ready(tallow__session *s)
{
    tallow__hs_keys(&s->hs, &s->keys);
    tallow__hs_wipe(&s->hs);
    tallow__aead_init(&s->tx, s->keys.tx, s->keys.alg);
    tallow__aead_init(&s->rx, s->keys.rx, s->keys.alg);
    memcpy(s->base_tx, s->keys.transfer_base_tx, 32);
    memcpy(s->base_rx, s->keys.transfer_base_rx, 32);
    s->state = ST_READY;
    int rc = TALLOW_ECANCELED; /* the script turned the direct path off */
    if (s->p2p) {
        tallow__neg_opts o = {.stun = s->stun, .relay = s->relay_addr,
                              .timeout_ms = s->p2p_timeout_ms};
        rc = tallow__neg_start(s, &o, neg_settled, &s->neg);
        if (rc < 0 && rc != TALLOW_EPOLICY)
            tallow_ctx_log(s->ctx, TALLOW_LOG_INFO, "direct path not attempted: %s",
                           tallow_strerror(rc));
    }
    if (rc < 0 && s->pair) {
        /* tell the peer at once, so it stops its own attempt instead of timing out */
        const char *why = rc == TALLOW_EPOLICY ? "not allowed by the peer's policy"
                          : rc == TALLOW_ECANCELED ? "turned off by the peer"
                                                   : tallow_strerror(rc);
        tallow_msg_DirectFailed f = {.reason = {(const uint8_t *)why, strlen(why)}};
        tallow__session_send(s, &tallow_msgtype_DirectFailed, &f);
    }
    report_ready(s, 0);
}

/* ---- per-transfer keys */

static tallow__aead *transfer_key(tallow__session *s, tx_key *tab, const uint8_t base[32],
                                  uint64_t id)
{
    tx_key *victim = &tab[0];
    for (int i = 0; i < TX_KEYS; i++) {
        if (tab[i].used && tab[i].id == id) {
            tab[i].stamp = ++s->stamp;
            return &tab[i].aead;
        }
        if (!tab[i].used || tab[i].stamp < victim->stamp) victim = &tab[i];
    }
    uint8_t k[32];
    tallow__kdf(base, "transfer", id, k);
    tallow__aead_wipe(&victim->aead);
    tallow__aead_init(&victim->aead, k, s->keys.alg);
    sodium_memzero(k, sizeof(k));
    victim->used = 1;
    victim->id = id;
    victim->stamp = ++s->stamp;
    return &victim->aead;
}

/* ---- epochs: fresh keys after each reconnection of the path */

static void reset_keys(tx_key *tab)
{
    for (int i = 0; i < TX_KEYS; i++) {
        tallow__aead_wipe(&tab[i].aead);
        tab[i].used = 0;
    }
}

static void enter_epoch(tallow__session *s, int tx, uint8_t epoch)
{
    uint8_t k[32];
    tallow__kdf(tx ? s->keys.tx : s->keys.rx, "epoch", epoch, k);
    tallow__aead *a = tx ? &s->tx : &s->rx;
    tallow__aead_wipe(a);
    tallow__aead_init(a, k, s->keys.alg);
    tallow__kdf(tx ? s->keys.transfer_base_tx : s->keys.transfer_base_rx, "epoch", epoch,
                tx ? s->base_tx : s->base_rx);
    reset_keys(tx ? s->txk : s->rxk);
    sodium_memzero(k, sizeof(k));
    if (tx)
        s->tx_epoch = epoch;
    else
        s->rx_epoch = epoch;
}

static void ch_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    tallow__session *s = ud;
    if (ch != s->relay || s->state != ST_READY) return;
    if (s->direct && s->path == s->direct) return; /* frames go direct: a relay hiccup loses none */
    if (type == TALLOW_MSG_PeerDeparted) {
        const tallow_msg_PeerDeparted *d = msg;
        static const char why[] = "reconnecting";
        if (d->reason.len != sizeof(why) - 1 || memcmp(d->reason.ptr, why, sizeof(why) - 1) != 0)
            return;
        s->resync_pending = 1;
        tallow_ctx_log(s->ctx, TALLOW_LOG_INFO, "relay connection interrupted; resuming");
    } else if ((type == TALLOW_MSG_RoomJoined || type == TALLOW_MSG_PeerArrived) &&
               s->resync_pending) {
        /* back: new keys from here on, and the transfer resynchronises */
        enter_epoch(s, 1, (uint8_t)(s->tx_epoch + 1));
        if (s->resync) s->resync(s->resync_ud);
    }
}

/* ---- receiving */

/* Hands one decoded message to whoever owns its type: the direct-path negotiator, the running
 * transfer (filter), or the session's user. */
static void dispatch(tallow__session *s, const tallow_msg_type *t, const void *msg)
{
    if (t->id == TALLOW_MSG_DirectConnected) {
        /* the peer's last frame on the relay: what came direct may now be processed */
        s->peer_switched = 1;
        if (s->direct) s->direct_rx_open = 1;
        if (tallow__neg_state(s->neg) == TALLOW__NEG_FAILED) direct_lost(s, TALLOW_ECANCELED); /* we gave up */
    }
    if (t->id == TALLOW_MSG_DirectFailed && s->direct && s->path == s->direct)
        direct_lost(s, TALLOW_ECANCELED); /* the peer gave up after we switched */
    if (t->id >= TALLOW_MSG_CandidateOffer && t->id <= TALLOW_MSG_DirectFailed) {
        /* direct-path signalling is the negotiator's alone; without one (policy, a room) it is
         * dropped, never acted upon */
        if (s->neg) tallow__neg_on_message(s->neg, t, msg);
        return;
    }
    if (s->filter && s->filter(s, t, msg, s->filter_ud)) return;
    if (s->cbs->on_message) s->cbs->on_message(s, t, msg, s->ud);
}

static void deliver(tallow__session *s, const uint8_t *m, size_t len)
{
    const tallow_registry *reg = tallow_ctx_registry(s->ctx);
    uint32_t id;
    int rc = tallow_msg_peek_type(m, len, &id);
    const tallow_msg_type *t = rc == 0 ? tallow_registry_find(reg, id) : NULL;
    if (rc == 0 && !t) {
        tallow_ctx_log(s->ctx, TALLOW_LOG_WARN, "peer sent a message of unknown type; ignored");
        return;
    }
    /* core types fit the union; a larger plugin type gets a heap buffer, decoded once either way */
    tallow_msg_any any;
    void *buf = t && t->struct_size > sizeof(any) ? calloc(1, t->struct_size) : &any;
    if (!buf) return fail(s, TALLOW_ENOMEM);
    if (rc == 0) rc = tallow_msg_decode(reg, m, len, &t, buf, buf == &any ? sizeof(any) : t->struct_size);
    if (rc < 0) {
        if (buf != &any) free(buf);
        tallow_ctx_set_error(s->ctx, "malformed message from the peer: %s", tallow_strerror(rc));
        fail(s, TALLOW_EPROTO);
        return;
    }
    dispatch(s, t, buf);
    if (buf != &any) free(buf);
}


static void on_handshake_msg(tallow__session *s, const uint8_t *m, size_t len)
{
    tallow_msg_any msg;
    const tallow_msg_type *t;
    int rc = tallow_msg_decode(tallow_ctx_registry(s->ctx), m, len, &t, &msg, sizeof(msg));
    if (rc < 0) {
        handshake_failed(s, TALLOW_EPROTO);
        return;
    }
    if (t->id == TALLOW_MSG_HandshakeFailed) {
        int64_t code = msg.HandshakeFailed.code;
        int err = code == TALLOW_EVERSION ? TALLOW_EVERSION : TALLOW_ECODE;
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(err));
        fail(s, err);
        return;
    }
    if (s->state != ST_HANDSHAKE) {
        tallow_ctx_set_error(s->ctx, "unexpected handshake message");
        fail(s, TALLOW_EPROTO);
        return;
    }
    if (!s->initiator && t->id == TALLOW_MSG_HandshakeInit) {
        tallow_msg_HandshakeResponse resp;
        rc = tallow__hs_on_init(&s->hs, &msg.HandshakeInit, &resp);
        if (rc < 0) return handshake_failed(s, rc == TALLOW_EPROTO ? TALLOW_EPROTO : rc);
        send_plain(s, &tallow_msgtype_HandshakeResponse, &resp);
    } else if (s->initiator && t->id == TALLOW_MSG_HandshakeResponse) {
        tallow_msg_HandshakeComplete done;
        rc = tallow__hs_on_response(&s->hs, &msg.HandshakeResponse, &done);
        if (rc < 0) return handshake_failed(s, rc);
        send_plain(s, &tallow_msgtype_HandshakeComplete, &done);
        keys_ready(s);
    } else if (!s->initiator && t->id == TALLOW_MSG_HandshakeComplete) {
        rc = tallow__hs_on_complete(&s->hs, &msg.HandshakeComplete);
        if (rc < 0) return handshake_failed(s, rc);
        keys_ready(s);
    } else {
        handshake_failed(s, TALLOW_EPROTO);
    }
}

static void process_frame(tallow__session *s, const uint8_t *data, size_t len)
{
    if (s->state == ST_FAILED || len == 0) return;
    uint8_t kind = data[0];
    if (kind == KIND_PLAIN) {
        on_handshake_msg(s, data + 1, len - 1);
        return;
    }
    if (s->state != ST_READY) {
        tallow_ctx_set_error(s->ctx, "sealed frame before the handshake finished");
        fail(s, TALLOW_EPROTO);
        return;
    }
    if (kind != KIND_SEALED && kind != KIND_TRANSFER) {
        tallow_ctx_set_error(s->ctx, "unknown frame kind %u from the peer", kind);
        return fail(s, TALLOW_EPROTO);
    }
    if (len < 2) {
        tallow_ctx_set_error(s->ctx, "malformed frame from the peer (%zu bytes)", len);
        return fail(s, TALLOW_EPROTO);
    }
    uint8_t epoch = data[1];
    int8_t ahead = (int8_t)(uint8_t)(epoch - s->rx_epoch);
    if (ahead < 0) return;                      /* from before a reconnection: superseded */
    if (ahead > 0) {
        enter_epoch(s, 0, epoch); /* the peer resumed: follow it */
        s->resync_pending = 0;
    }
    tallow__aead *a = &s->rx;
    uint64_t key_tid = TALLOW__SESSION_KEY;
    size_t pos = 2;
    if (kind == KIND_TRANSFER) {
        uint64_t id;
        int n = tallow_varint_get(data + 2, len - 2, &id);
        if (n < 0) {
            tallow_ctx_set_error(s->ctx, "malformed frame from the peer (bad transfer id)");
            return fail(s, TALLOW_EPROTO);
        }
        pos += (size_t)n;
        a = transfer_key(s, s->rxk, s->base_rx, id);
        key_tid = id;
    }
    if (len - pos > SESSION_MAX_FRAME) {
        tallow_ctx_set_error(s->ctx, "frame larger than the session allows (%zu bytes)", len);
        return fail(s, TALLOW_EPROTO);
    }
    if (len - pos < TALLOW__AEAD_TAG) {
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
        return fail(s, TALLOW_ECRYPTO);
    }
    int n = tallow__aead_open(a, s->rbuf, data, pos, data + pos, len - pos);
    if (n < 0) {
        if (s->resync_pending) return; /* a gap left by the reconnection: the new epoch follows */
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
        return fail(s, TALLOW_ECRYPTO);
    }
    s->rx_key_tid = key_tid;
    deliver(s, s->rbuf, (size_t)n);
    s->rx_key_tid = TALLOW__SESSION_KEY;
}

static void flush_pending(tallow__session *s)
{
    for (size_t i = 0; i < s->npend && s->state != ST_FAILED; i++)
        process_frame(s, s->pend[i].data, s->pend[i].len);
    for (size_t i = 0; i < s->npend; i++) free(s->pend[i].data);
    s->npend = 0;
}

static void ch_frame(tallow_channel *ch, uint32_t from, const uint8_t *data, size_t len, void *ud)
{
    tallow__session *s = ud;
    if (ch == s->direct && !s->direct_rx_open) {
        /* hold direct frames until the relay's switch marker has been processed */
        if (s->npend == s->cappend) {
            size_t cap = s->cappend ? s->cappend * 2 : 16;
            struct pending *p = realloc(s->pend, cap * sizeof(*p));
            if (!p) return fail(s, TALLOW_ENOMEM);
            s->pend = p;
            s->cappend = cap;
        }
        uint8_t *copy = malloc(len);
        if (!copy) return fail(s, TALLOW_ENOMEM);
        memcpy(copy, data, len);
        s->pend[s->npend++] = (struct pending){copy, len};
        return;
    }
    int was_open = s->direct_rx_open;
    process_frame(s, data, len);
    if (!was_open && s->direct_rx_open) flush_pending(s);
}

static void ch_ready(tallow_channel *ch, void *ud)
{
    tallow__session *s = ud;
    if (ch != s->relay || s->state != ST_PAIRING) return;
    s->state = ST_HANDSHAKE;
    if (s->initiator) {
        tallow_msg_HandshakeInit init;
        int rc = tallow__hs_make_init(&s->hs, &init);
        if (rc < 0) return fail(s, rc);
        send_plain(s, &tallow_msgtype_HandshakeInit, &init);
    }
}

static void ch_writable(tallow_channel *ch, void *ud)
{
    tallow__session *s = ud;
    /* the relay draining after a switch to direct still wakes a sender it held back */
    if ((ch == s->path || ch == s->relay) && s->cbs->on_writable) s->cbs->on_writable(s, s->ud);
}

static void ch_closed(tallow_channel *ch, int err, void *ud)
{
    tallow__session *s = ud;
    if (ch == s->direct && s->relay) {
        /* the direct path died: fall back to the relay */
        if (s->path == s->direct || s->peer_switched) direct_lost(s, err);
        s->path = s->relay;
        return;
    }
    if (s->state == ST_FAILED) return;
    s->state = ST_FAILED;
    if (err == 0) err = s->ready_reported ? 0 : TALLOW_EPEERGONE;
    if (!s->ready_reported && !tallow_ctx_last_error(s->ctx)[0])
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(err));
    report_closed(s, err);
}

static const tallow_channel_events ch_events = {
    .on_ready = ch_ready,
    .on_frame = ch_frame,
    .on_writable = ch_writable,
    .on_room = ch_room,
    .on_closed = ch_closed,
};

/* The session without its channel: keys, buffers, handshake state. */
static int session_new(tallow_ctx *ctx, const tallow__session_params *p,
                       const tallow__session_cbs *cbs, void *ud, uint8_t room[32],
                       tallow__session **out)
{
    int rc = tallow__code_room_id(p->code, room);
    if (rc < 0) {
        tallow_ctx_set_error(ctx, "malformed code phrase (expected NUMBER-word-word-...)");
        return rc;
    }
    /* cache-line aligned: the hot fields and keys do not straddle lines */
    tallow__session *s = NULL;
    if (posix_memalign((void **)&s, 64, sizeof(*s)) != 0) return TALLOW_ENOMEM;
    memset(s, 0, sizeof(*s));
    s->rx_key_tid = TALLOW__SESSION_KEY;
    s->buf = malloc(SESSION_MAX_FRAME + 64);
    s->rbuf = malloc(SESSION_MAX_FRAME + 64);
    if (!s->buf || !s->rbuf) {
        rc = TALLOW_ENOMEM;
        goto fail;
    }
    s->ctx = ctx;
    s->cbs = cbs;
    s->ud = ud;
    s->initiator = p->initiator;
    s->pair = p->capacity == 0 || p->capacity == 2;
    s->p2p = p->p2p && s->pair;
    s->p2p_timeout_ms = p->p2p_timeout_ms;
    s->stun = p->stun ? strdup(p->stun) : NULL;
    s->relay_addr = p->address && (!p->transport || !strcmp(p->transport, "relay"))
                        ? strdup(p->address)
                        : NULL;
    rc = tallow__hs_init(&s->hs, p->initiator, p->code, room);
    if (rc < 0) goto fail;
    *out = s;
    return 0;
fail:
    tallow__hs_wipe(&s->hs);
    free(s->stun);
    free(s->relay_addr);
    free(s->buf);
    free(s->rbuf);
    free(s);
    return rc;
}

static void session_free_unopened(tallow__session *s)
{
    s->relay = s->path = NULL;
    tallow__session_close(s);
}

int tallow__session_open(tallow_ctx *ctx, const tallow__session_params *p,
                         const tallow__session_cbs *cbs, void *ud, tallow__session **out)
{
    uint8_t room[32];
    tallow__session *s;
    int rc = session_new(ctx, p, cbs, ud, room, &s);
    if (rc < 0) return rc;
    tallow_channel_params cp = {
        .struct_size = sizeof(cp),
        .address = p->address,
        .room = room,
        .room_len = sizeof(room),
        .password = p->password,
        .capacity = p->capacity ? p->capacity : 2,
        .initiator = p->initiator,
        .proxy = tallow_policy_proxy(tallow_ctx_policy(ctx)),
    };
    rc = tallow_channel_open(ctx, p->transport ? p->transport : "relay", &cp, &ch_events, s,
                             &s->relay);
    if (rc < 0) {
        session_free_unopened(s);
        return rc;
    }
    s->path = s->relay;
    *out = s;
    return 0;
}

int tallow__session_open_on(tallow_ctx *ctx, tallow_channel *ch, const tallow__session_params *p,
                            const tallow__session_cbs *cbs, void *ud, tallow__session **out)
{
    uint8_t room[32];
    tallow__session *s;
    int rc = session_new(ctx, p, cbs, ud, room, &s);
    if (rc < 0) return rc;
    s->state = ST_HANDSHAKE; /* the channel is ready already */
    s->path = ch;
    if (s->initiator) {
        tallow_msg_HandshakeInit init;
        rc = tallow__hs_make_init(&s->hs, &init);
        if (rc == 0) rc = send_plain(s, &tallow_msgtype_HandshakeInit, &init);
        if (rc < 0) {
            s->path = NULL;
            session_free_unopened(s);
            return rc;
        }
    }
    ch->ev = &ch_events;
    ch->ev_ud = s;
    s->relay = ch;
    *out = s;
    return 0;
}

static int seal_and_send(tallow__session *s, tallow__aead *a, const uint8_t *hdr, size_t hlen,
                         const tallow_msg_type *t, const void *msg)
{
    if (s->state != ST_READY) return s->state == ST_FAILED ? TALLOW_ECLOSED : TALLOW_EINVAL;
    size_t need = tallow_msg_encoded_size(t, msg);
    if (need + hlen + TALLOW__AEAD_TAG > SESSION_MAX_FRAME) return TALLOW_ETOOBIG;
    memcpy(s->buf, hdr, hlen);
    /* encode at the end of the header, then seal in place */
    int n = tallow_msg_encode(t, msg, s->buf + hlen, need);
    if (n < 0) return n;
    int rc = tallow__aead_seal(a, s->buf + hlen, s->buf, hlen, s->buf + hlen, (size_t)n);
    if (rc < 0) return rc;
    return send_frame(s, s->path, s->buf, hlen + (size_t)n + TALLOW__AEAD_TAG);
}

int tallow__session_send(tallow__session *s, const tallow_msg_type *t, const void *msg)
{
    uint8_t hdr[2] = {KIND_SEALED, s->tx_epoch};
    tallow_channel *before = s->path;
    int rc = seal_and_send(s, &s->tx, hdr, 2, t, msg);
    if (rc >= 0 && t->id == TALLOW_MSG_DirectConnected && s->direct && before == s->relay)
        s->path = s->direct; /* our switch marker went on the relay; everything after goes direct */
    return rc;
}

/* msg.c: offset of a BYTES field's bytes within msg's encoding */
size_t tallow__msg_bytes_offset(const tallow_msg_type *t, const void *msg,
                                const tallow_bytes *field);

/* A transfer frame's clear header (sealed as associated data): kind, epoch, transfer id. */
#define TX_HDR_MAX 12
static size_t tx_header(const tallow__session *s, uint64_t tid, uint8_t hdr[TX_HDR_MAX])
{
    hdr[0] = KIND_TRANSFER;
    hdr[1] = s->tx_epoch;
    return 2 + tallow_varint_put(hdr + 2, tid);
}

uint8_t *tallow__session_tx_spot(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                                 const void *msg, const tallow_bytes *field)
{
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = tx_header(s, tid, hdr); /* the header send_tx puts before the message */
    size_t need = tallow_msg_encoded_size(t, msg);
    size_t off = tallow__msg_bytes_offset(t, msg, field);
    if (off == SIZE_MAX || need + hlen + TALLOW__AEAD_TAG > SESSION_MAX_FRAME) return NULL;
    return s->buf + hlen + off;
}

int tallow__session_send_raw_tx(tallow__session *s, uint64_t tid, const uint8_t *m, size_t len)
{
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = tx_header(s, tid, hdr);
    if (s->state != ST_READY) return s->state == ST_FAILED ? TALLOW_ECLOSED : TALLOW_EINVAL;
    if (len + hlen + TALLOW__AEAD_TAG > SESSION_MAX_FRAME) return TALLOW_ETOOBIG;
    tallow__aead *a = transfer_key(s, s->txk, s->base_tx, tid);
    memcpy(s->buf, hdr, hlen);
    memcpy(s->buf + hlen, m, len);
    int rc = tallow__aead_seal(a, s->buf + hlen, s->buf, hlen, s->buf + hlen, len);
    if (rc < 0) return rc;
    return send_frame(s, s->path, s->buf, hlen + len + TALLOW__AEAD_TAG);
}

int tallow__session_send_tx(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                            const void *msg)
{
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = tx_header(s, tid, hdr);
    if (s->state != ST_READY) return s->state == ST_FAILED ? TALLOW_ECLOSED : TALLOW_EINVAL;
    tallow__aead *a = transfer_key(s, s->txk, s->base_tx, tid);
    return seal_and_send(s, a, hdr, hlen, t, msg);
}

void tallow__session_set_resync(tallow__session *s, void (*fn)(void *ud), void *ud)
{
    s->resync = fn;
    s->resync_ud = ud;
}

void tallow__session_set_filter(tallow__session *s, tallow__session_filter f, void *ud)
{
    s->filter = f;
    s->filter_ud = ud;
}

uint64_t tallow__session_rx_key(const tallow__session *s)
{
    return s->rx_key_tid;
}

size_t tallow__session_queued(tallow__session *s)
{
    if (!s->path || !s->path->ops->queued) return 0;
    return s->path->ops->queued(s->path);
}

void tallow__session_info(tallow__session *s, tallow_channel_info *info)
{
    memset(info, 0, sizeof(*info));
    if (s->path) tallow_channel_get_info(s->path, info);
}

const tallow__keys *tallow__session_keys(tallow__session *s)
{
    return s->state == ST_READY ? &s->keys : NULL;
}

int tallow__session_is_initiator(tallow__session *s)
{
    return s->initiator;
}

tallow_ctx *tallow__session_ctx(tallow__session *s)
{
    return s->ctx;
}

void tallow__session_use_channel(tallow__session *s, tallow_channel *direct)
{
    s->direct = direct;
    /* from now on the session gets the channel's events, as for its first channel */
    direct->ev = &ch_events;
    direct->ev_ud = s;
    if (s->peer_switched) s->direct_rx_open = 1;
}

int tallow__session_p2p_state(tallow__session *s)
{
    return tallow__neg_state(s->neg);
}

const struct tallow__neg *tallow__session_neg(const tallow__session *s)
{
    return s->neg;
}

void tallow__session_close(tallow__session *s)
{
    if (!s) return;
    if (s->direct) tallow_channel_close(s->direct);
    tallow__neg_free(s->neg); /* after the QUIC channel: it needs the endpoint to close */
    free(s->stun);
    free(s->relay_addr);
    if (s->relay) tallow_channel_close(s->relay);
    for (size_t i = 0; i < s->npend; i++) free(s->pend[i].data);
    free(s->pend);
    tallow__hs_wipe(&s->hs);
    tallow__aead_wipe(&s->tx);
    tallow__aead_wipe(&s->rx);
    for (int i = 0; i < TX_KEYS; i++) {
        tallow__aead_wipe(&s->txk[i].aead);
        tallow__aead_wipe(&s->rxk[i].aead);
    }
    /* the scratch buffers held plaintext (the last message sealed and opened) */
    if (s->buf) sodium_memzero(s->buf, SESSION_MAX_FRAME + 64);
    if (s->rbuf) sodium_memzero(s->rbuf, SESSION_MAX_FRAME + 64);
    free(s->buf);
    free(s->rbuf);
    sodium_memzero(s->base_tx, sizeof(s->base_tx));
    sodium_memzero(s->base_rx, sizeof(s->base_rx));
    sodium_memzero(&s->keys, sizeof(s->keys));
    free(s);
}
