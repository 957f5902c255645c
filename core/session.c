/* core/session.c — pairing through a transport, the CPace handshake, and sealed messages.
 * The handshake runs in plaintext frames (kind 0); after it every frame is an AEAD record under
 * a per-direction key (kind 1) or a per-transfer key (kind 2). A failed confirmation tells the
 * peer (HandshakeFailed) and ends the session with TALLOW_ECODE on both sides.
 *
 * No (key, nonce) pair is ever used twice, by construction: a record's nonce is its number under
 * its key; the keys of epoch e are KDF(direction key, "epoch", e) and, per transfer,
 * KDF(KDF(transfer base, "epoch", e), "transfer", id); e is a 64-bit counter that only grows; and
 * a transfer id's record number survives the eviction of its key from the cache (ids_*), so an id
 * is never keyed at 0 twice in one epoch. The sender starts a new epoch after a reconnection (only
 * if the current one carried records: nothing else can have been lost) and by volume (REKEY_*);
 * the receiver moves to a newer epoch only on a frame that authenticates under its keys. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "negotiate.h"
#include "session.h"

#define KIND_PLAIN 0
#define KIND_SEALED 1
#define KIND_TRANSFER 2
/* 3 | varint epoch | AEAD(session key): the session's own control record, 1 byte op + le64 */
#define KIND_CTRL 3
#define CTRL_ACK 1    /* "I have delivered N of your messages": the sender may forget them */
#define CTRL_RESEND 2 /* "the messages that follow are my numbers N, N+1, ..." */
#define ACK_EVERY 32  /* delivered session messages between two acks */
/* Session-key messages kept for sending again after a reconnection lost them in flight. */
#define RETX_MAX 256
#define RETX_BYTES (1u << 20)
#define RETX_ONE (64u * 1024u)
#define VERSION_MISMATCH                                                                           \
    "incompatible versions: the peer speaks another handshake version than this tallow (%u); "    \
    "use the same tallow release on both sides"
#define HS_TIMEOUT_MS 30000u
static uint64_t hs_timeout_ms(void)
{
    const char *e = getenv("TALLOW_HANDSHAKE_TIMEOUT");
    return e && atoi(e) > 0 ? (uint64_t)atoi(e) * 1000u : HS_TIMEOUT_MS;
}
#define SESSION_MAX_FRAME (2u * 1024u * 1024u)
#define TX_KEYS 8 /* a cache of keys; the record numbers of every id live in ids_* */
#define IDS_MAX (1u << 20) /* transfer ids with records in one epoch and direction */
/* Rekey by volume: a new epoch (fresh session and transfer keys) once one epoch sealed 2^24
 * records or 2^34 bytes (16 GiB), whichever comes first: within TLS 1.3's bound for AES-GCM
 * (RFC 8446 5.5: 2^24.5 full-size records per key) for any mix of keys in the epoch. */
#define REKEY_RECORDS (1ull << 24)
#define REKEY_BYTES (1ull << 34)

enum { ST_PAIRING, ST_HANDSHAKE, ST_READY, ST_FAILED };

typedef struct tx_key {
    uint64_t id;
    int used;
    uint64_t stamp;
    tallow__aead aead;
} tx_key;

/* The next record number of every transfer id used in one epoch and direction (open
 * addressing; no deletion: the table empties when the epoch changes). */
typedef struct id_ent {
    uint64_t id, seq;
    int used;
} id_ent;
typedef struct id_tab {
    id_ent *e;
    size_t cap, n;
} id_tab;

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
    int peer_sealed;       /* a sealed frame from the peer opened: plaintext is over */
    tallow_timer *hs_timer; /* bounds the handshake (TALLOW_HANDSHAKE_TIMEOUT, s) */
    int ready_reported;
    int closed_reported;
    tallow__hs hs;
    tallow__keys keys;
    tallow__aead tx, rx;
    tx_key txk[TX_KEYS], rxk[TX_KEYS];
    id_tab tx_ids, rx_ids;
    uint64_t tx_epoch, rx_epoch;
    uint64_t tx_recs, tx_bytes;         /* sealed in the current tx epoch */
    uint64_t rekey_records, rekey_bytes; /* REKEY_* (tests lower them) */
    uint8_t base_tx[32], base_rx[32]; /* transfer bases of the current epochs */
    int resync_pending; /* a reconnection happened: old-epoch frames may have gaps */
    /* session-key messages: numbered from 0 in each direction, across epochs */
    uint64_t tx_count, rx_count, rx_skip;
    struct retx {
        uint8_t *m;
        size_t len;
    } retx[RETX_MAX]; /* tx numbers tx_count - retx_n .. tx_count - 1, oldest at retx_head */
    size_t retx_head, retx_n, retx_bytes;
    uint64_t retx_lost; /* numbers not kept (too large): sent once */
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
    int relay_dead; /* the relay channel failed while the session ran direct */
    char *stun, *relay_addr;
    uint32_t p2p_timeout_ms;
    /* the relay ended (the peer left) while frames moved over the direct path: the peer's last
     * frames may still be waiting in the UDP socket, so the end is reported when the direct path
     * closes too, or after RELAY_GONE_MS */
    int relay_gone, relay_gone_err;
    tallow_timer *relay_gone_timer;
};

#define RELAY_GONE_MS 1500

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

static void hs_timer_stop(tallow__session *s)
{
    if (s->hs_timer) tallow_timer_stop(s->hs_timer);
    s->hs_timer = NULL;
}

static void fail(tallow__session *s, int err)
{
    hs_timer_stop(s);
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
    /* a relay closes the room on this, so each attempt gives a guesser one try at most; a
     * transport without rooms ignores it (TALLOW_ENOTSUP). The NULL test goes once every
     * registered transport gets the host's default slot. */
    if (s->relay && s->relay->ops->control)
        s->relay->ops->control(s->relay, TALLOW_CTL_LEAVE, (void *)"handshake-failed");
    if (err == TALLOW_EVERSION)
        tallow_ctx_set_error(s->ctx, VERSION_MISMATCH, TALLOW__HS_VERSION);
    else
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(err));
    fail(s, err);
}

static void enter_epoch(tallow__session *s, int tx, uint64_t epoch);
static void resend_kept(tallow__session *s);

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
    enter_epoch(s, 1, s->tx_epoch + 1);
    /* the peer may not have noticed yet (its QUIC times out later): it must not keep sending
     * into the dead path, nor resume before we both resynchronise */
    static const char why[] = "direct path lost";
    tallow_msg_DirectFailed f = {.reason = {(const uint8_t *)why, sizeof(why) - 1}};
    resend_kept(s);
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
    hs_timer_stop(s);
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

static id_ent *ids_slot(const id_tab *t, uint64_t id)
{
    size_t mask = t->cap - 1, i = (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & mask;
    while (t->e[i].used && t->e[i].id != id)
        i = (i + 1) & mask;
    return &t->e[i];
}

static const uint64_t *ids_find(const id_tab *t, uint64_t id)
{
    if (!t->cap) return NULL;
    id_ent *e = ids_slot(t, id);
    return e->used ? &e->seq : NULL;
}

static int ids_put(id_tab *t, uint64_t id, uint64_t seq)
{
    if (t->n + 1 > t->cap / 2) {
        if (t->n >= IDS_MAX) return TALLOW_ETOOBIG;
        size_t cap = t->cap ? t->cap * 2 : 64;
        id_tab nt = {calloc(cap, sizeof(id_ent)), cap, t->n};
        if (!nt.e) return TALLOW_ENOMEM;
        for (size_t i = 0; i < t->cap; i++)
            if (t->e[i].used) *ids_slot(&nt, t->e[i].id) = t->e[i];
        free(t->e);
        *t = nt;
    }
    id_ent *e = ids_slot(t, id);
    if (!e->used) t->n++;
    *e = (id_ent){id, seq, 1};
    return 0;
}

static void ids_clear(id_tab *t)
{
    free(t->e);
    memset(t, 0, sizeof(*t));
}

/* The key of transfer `id` in the current epoch, with its next record number: from the cache,
 * or derived again with the number its id reached (an id evicted from the cache never starts
 * again at 0). NULL (and the session's error set) when the id table cannot take more. */
static tallow__aead *transfer_key(tallow__session *s, int tx, uint64_t id)
{
    tx_key *tab = tx ? s->txk : s->rxk;
    id_tab *ids = tx ? &s->tx_ids : &s->rx_ids;
    tx_key *victim = &tab[0];
    for (int i = 0; i < TX_KEYS; i++) {
        if (tab[i].used && tab[i].id == id) {
            tab[i].stamp = ++s->stamp;
            return &tab[i].aead;
        }
        if (!tab[i].used || (victim->used && tab[i].stamp < victim->stamp)) victim = &tab[i];
    }
    /* a key that sealed or opened nothing has no position to keep (forged frames for unknown
     * ids do not grow the table) */
    if (victim->used && victim->aead.seq > 0) {
        int rc = ids_put(ids, victim->id, victim->aead.seq);
        if (rc < 0) {
            tallow_ctx_set_error(s->ctx, "too many transfers in one epoch: %s",
                                 tallow_strerror(rc));
            return NULL;
        }
    }
    const uint64_t *seq = ids_find(ids, id);
    uint8_t k[32];
    tallow__kdf(tx ? s->base_tx : s->base_rx, "transfer", id, k);
    tallow__aead_wipe(&victim->aead);
    tallow__aead_init(&victim->aead, k, s->keys.alg);
    sodium_memzero(k, sizeof(k));
    victim->aead.seq = seq ? *seq : 0;
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

static void enter_epoch(tallow__session *s, int tx, uint64_t epoch)
{
    uint8_t k[32];
    tallow__kdf(tx ? s->keys.tx : s->keys.rx, "epoch", epoch, k);
    tallow__aead *a = tx ? &s->tx : &s->rx;
    tallow__aead_wipe(a);
    tallow__aead_init(a, k, s->keys.alg);
    tallow__kdf(tx ? s->keys.transfer_base_tx : s->keys.transfer_base_rx, "epoch", epoch,
                tx ? s->base_tx : s->base_rx);
    reset_keys(tx ? s->txk : s->rxk);
    ids_clear(tx ? &s->tx_ids : &s->rx_ids);
    sodium_memzero(k, sizeof(k));
    if (tx) {
        s->tx_epoch = epoch;
        s->tx_recs = s->tx_bytes = 0;
    } else {
        s->rx_epoch = epoch;
    }
}

/* Before sealing under the key of `tid` (or the session key): a new epoch when this one is
 * used up; then the key. NULL on error (the session's error is set). */
static tallow__aead *tx_prepare(tallow__session *s, uint64_t tid)
{
    if (s->tx_recs >= s->rekey_records || s->tx_bytes >= s->rekey_bytes ||
        (tid != TALLOW__SESSION_KEY && s->tx_ids.n >= IDS_MAX))
        enter_epoch(s, 1, s->tx_epoch + 1);
    return tid == TALLOW__SESSION_KEY ? &s->tx : transfer_key(s, 1, tid);
}

static void ch_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    tallow__session *s = ud;
    if (ch == s->relay && s->state == ST_HANDSHAKE && type == TALLOW_MSG_PeerDeparted) {
        /* a handshake message may be lost with the connection: no half-done key exchange */
        tallow_ctx_set_error(s->ctx, "the relay connection broke during the key exchange; "
                                     "run both sides again");
        return fail(s, TALLOW_ECLOSED);
    }
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
        /* back: new keys from here on (if this epoch carried records: only those can have been
         * lost), and the transfer resynchronises */
        if (s->tx_recs > 0) enter_epoch(s, 1, s->tx_epoch + 1);
        resend_kept(s); /* what the peer has not acknowledged, before anything new */
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
    if (s->state == ST_READY && s->peer_sealed) {
        /* the peer's sealed frames proved the keys: a HandshakeFailed (or anything plain) now
         * comes from the relay or the path, and must not end the session as a "wrong code" */
        tallow_ctx_log(s->ctx, TALLOW_LOG_WARN,
                       "ignored a plaintext frame after the key exchange (injected on the way)");
        return;
    }
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
        if (err == TALLOW_EVERSION)
            tallow_ctx_set_error(s->ctx, VERSION_MISMATCH, TALLOW__HS_VERSION);
        else
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

static void on_ctrl(tallow__session *s, const uint8_t *m, size_t len);
static int send_ctrl(tallow__session *s, uint8_t op, uint64_t v);

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
    if (kind != KIND_SEALED && kind != KIND_TRANSFER && kind != KIND_CTRL) {
        tallow_ctx_set_error(s->ctx, "unknown frame kind %u from the peer", kind);
        return fail(s, TALLOW_EPROTO);
    }
    if (len < 2) {
        tallow_ctx_set_error(s->ctx, "malformed frame from the peer (%zu bytes)", len);
        return fail(s, TALLOW_EPROTO);
    }
    uint64_t epoch, id = TALLOW__SESSION_KEY;
    int n = tallow_varint_get(data + 1, len - 1, &epoch);
    size_t pos = 1 + (size_t)(n > 0 ? n : 0);
    if (n > 0 && kind == KIND_TRANSFER) {
        int m = tallow_varint_get(data + pos, len - pos, &id);
        n = m > 0 && id != TALLOW__SESSION_KEY ? m : -1;
        pos += (size_t)(n > 0 ? n : 0);
    }
    if (n <= 0) {
        tallow_ctx_set_error(s->ctx, "malformed frame from the peer (bad header)");
        return fail(s, TALLOW_EPROTO);
    }
    if (epoch < s->rx_epoch) return; /* from before a reconnection: superseded */
    if (len - pos > SESSION_MAX_FRAME) {
        tallow_ctx_set_error(s->ctx, "frame larger than the session allows (%zu bytes)", len);
        return fail(s, TALLOW_EPROTO);
    }
    if (len - pos < TALLOW__AEAD_TAG) {
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
        return fail(s, TALLOW_ECRYPTO);
    }
    uint64_t key_tid = kind == KIND_TRANSFER ? id : TALLOW__SESSION_KEY;
    if (epoch > s->rx_epoch) {
        /* the peer moved to a newer epoch: follow only if this frame authenticates under it */
        uint8_t k[32], base[32];
        tallow__aead trial;
        tallow__kdf(s->keys.rx, "epoch", epoch, k);
        if (kind == KIND_TRANSFER) {
            tallow__kdf(s->keys.transfer_base_rx, "epoch", epoch, base);
            tallow__kdf(base, "transfer", id, k);
            sodium_memzero(base, sizeof(base));
        }
        tallow__aead_init(&trial, k, s->keys.alg);
        sodium_memzero(k, sizeof(k));
        n = tallow__aead_open(&trial, s->rbuf, data, pos, data + pos, len - pos);
        tallow__aead_wipe(&trial);
        if (n < 0) {
            if (s->resync_pending) return;
            tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
            return fail(s, TALLOW_ECRYPTO);
        }
        enter_epoch(s, 0, epoch);
        s->resync_pending = 0;
        tallow__aead *a = kind == KIND_TRANSFER ? transfer_key(s, 0, id) : &s->rx;
        if (!a) return fail(s, TALLOW_EPROTO);
        a->seq = 1; /* record 0 of the epoch's key was this one */
    } else {
        tallow__aead *a = kind == KIND_TRANSFER ? transfer_key(s, 0, id) : &s->rx;
        if (!a) return fail(s, TALLOW_EPROTO);
        n = tallow__aead_open(a, s->rbuf, data, pos, data + pos, len - pos);
        if (n < 0) {
            if (s->resync_pending) return; /* a gap left by the reconnection: a new epoch follows */
            tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
            return fail(s, TALLOW_ECRYPTO);
        }
    }
    s->peer_sealed = 1;
    if (kind == KIND_CTRL) return on_ctrl(s, s->rbuf, (size_t)n);
    if (kind == KIND_SEALED) {
        if (s->rx_skip) { /* sent again after a reconnection, but it had arrived */
            s->rx_skip--;
            return;
        }
        if (++s->rx_count % ACK_EVERY == 0) send_ctrl(s, CTRL_ACK, s->rx_count);
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

static void hs_timeout(tallow_timer *t, void *ud)
{
    tallow__session *s = ud;
    (void)t;
    s->hs_timer = NULL; /* one-shot: the loop frees it */
    if (s->state != ST_HANDSHAKE) return;
    tallow_ctx_set_error(s->ctx, "the key exchange got no answer within %u s (the peer or the "
                                 "relay stopped in the middle)",
                         (unsigned)(hs_timeout_ms() / 1000));
    fail(s, TALLOW_ETIMEOUT);
}

static void hs_timer_start(tallow__session *s)
{
    s->hs_timer = tallow_timer_start(tallow_ctx_loop(s->ctx), hs_timeout_ms(), 0, hs_timeout, s);
}

static void ch_ready(tallow_channel *ch, void *ud)
{
    tallow__session *s = ud;
    if (ch != s->relay || s->state != ST_PAIRING) return;
    s->state = ST_HANDSHAKE;
    hs_timer_start(s);
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

static void relay_gone_expired(tallow_timer *t, void *ud)
{
    tallow__session *s = ud;
    (void)t;
    s->relay_gone_timer = NULL; /* a one-shot timer is freed after this returns */
    if (s->state == ST_FAILED) return;
    s->state = ST_FAILED;
    report_closed(s, s->relay_gone_err);
}

static void ch_closed(tallow_channel *ch, int err, void *ud)
{
    tallow__session *s = ud;
    if (s->relay_gone && ch == s->direct) {
        /* both paths are closed now: whatever the peer sent last was delivered before this */
        if (s->relay_gone_timer) tallow_timer_stop(s->relay_gone_timer);
        s->relay_gone_timer = NULL;
        if (s->state == ST_FAILED) return;
        s->state = ST_FAILED;
        report_closed(s, s->relay_gone_err);
        return;
    }
    if (ch == s->relay && s->direct && s->path == s->direct && s->state == ST_READY && err != 0 &&
        err != TALLOW_EPEERGONE && !s->relay_dead) {
        /* the relay died (not the peer) while frames go direct: go on; only a fallback needs it */
        s->relay_dead = 1;
        tallow_ctx_log(s->ctx, TALLOW_LOG_WARN, "relay lost (%s); going on over the direct path",
                       tallow_strerror(err));
        return;
    }
    if (ch == s->relay && s->direct && s->path == s->direct && s->state == ST_READY &&
        !s->relay_gone && !s->relay_dead) {
        /* A peer that ends its session closes the direct path and then leaves the relay; the
         * two arrive on different sockets, so the relay's "left" can be read before the peer's
         * last frames on the direct path (its TransferComplete): wait for those. */
        s->relay_gone = 1;
        s->relay_gone_err = err;
        s->relay_gone_timer =
            tallow_timer_start(tallow_ctx_loop(s->ctx), RELAY_GONE_MS, 0, relay_gone_expired, s);
        if (!s->relay_gone_timer) relay_gone_expired(NULL, s);
        return;
    }
    if (ch == s->direct && s->relay && !s->relay_dead) {
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

/* The session holds the handshake state and every key (in its tallow__keys and tallow__aead
 * structs): sodium_malloc'd, so guarded, locked in memory and never in a core dump. The size is
 * rounded to 64 bytes: sodium_malloc ends the region at a page boundary, so the struct stays
 * cache-line aligned (the hot fields and keys do not straddle lines). */
#define SESSION_ALLOC_SIZE ((sizeof(tallow__session) + 63) & ~(size_t)63)

/* LeakSanitizer does not scan the pages sodium_malloc maps itself, so in sanitizer builds what
 * only a live session points to (its frame buffers) would be reported as leaked when a process
 * exits with a session open; there the session comes from the ordinary heap, 64-byte aligned,
 * and is wiped before it is freed all the same. */
#if defined(__SANITIZE_ADDRESS__)
#define SESSION_ON_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SESSION_ON_HEAP 1
#endif
#endif

static tallow__session *session_alloc(void)
{
    size_t n = SESSION_ALLOC_SIZE;
    if (sodium_init() < 0) return NULL;
#ifdef SESSION_ON_HEAP
    tallow__session *s = aligned_alloc(64, n);
#else
    tallow__session *s = sodium_malloc(n);
#endif
    if (s) memset(s, 0, n);
    return s;
}

static void session_dealloc(tallow__session *s)
{
#ifdef SESSION_ON_HEAP
    sodium_memzero(s, SESSION_ALLOC_SIZE);
    free(s);
#else
    sodium_free(s);
#endif
}

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
    if (tallow__code_words(p->code) < TALLOW__CODE_MIN_WORDS) {
        tallow_ctx_set_error(ctx,
                             "a code needs at least %d secret words after the number (like "
                             "7-apple-banana): one word is one guess in 2048",
                             TALLOW__CODE_MIN_WORDS);
        return TALLOW_EINVAL;
    }
    tallow__session *s = session_alloc();
    if (!s) return TALLOW_ENOMEM;
    s->rx_key_tid = TALLOW__SESSION_KEY;
    s->rekey_records = REKEY_RECORDS;
    s->rekey_bytes = REKEY_BYTES;
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
    session_dealloc(s);
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
        .failover = p->failover,
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
    hs_timer_start(s);
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

/* Seals s->buf[hlen, hlen + n) in place under a, behind the header already at s->buf, and
 * sends the frame. */
static int seal_buf(tallow__session *s, tallow__aead *a, size_t hlen, size_t n)
{
    int rc = tallow__aead_seal(a, s->buf + hlen, s->buf, hlen, s->buf + hlen, n);
    if (rc < 0) return rc;
    s->tx_recs++;
    s->tx_bytes += (uint64_t)n;
    return send_frame(s, s->path, s->buf, hlen + n + TALLOW__AEAD_TAG);
}

/* ---- session messages lost in flight by a reconnection are sent again: each side numbers the
 * session-key messages it sends and keeps those the other has not acknowledged (CTRL_ACK every
 * ACK_EVERY messages; at most RETX_*). After a reconnection it sends them all again, under the
 * current keys and before anything new, behind a CTRL_RESEND naming the first one's number: the
 * receiver drops what had arrived after all, and says how many were lost for good (a message
 * larger than RETX_ONE, or more than the ring holds). */

static void retx_drop_oldest(tallow__session *s)
{
    struct retx *r = &s->retx[s->retx_head];
    s->retx_bytes -= r->len;
    sodium_memzero(r->m, r->len);
    free(r->m);
    r->m = NULL;
    s->retx_head = (s->retx_head + 1) % RETX_MAX;
    s->retx_n--;
}

/* A copy of the session message numbered tx_count, about to be sealed; then tx_count++. */
static void retx_keep(tallow__session *s, const uint8_t *m, size_t len)
{
    uint8_t *copy = len <= RETX_ONE ? malloc(len ? len : 1) : NULL;
    if (!copy) { /* not kept: what came before it can no longer be sent again in order */
        while (s->retx_n)
            retx_drop_oldest(s);
        s->retx_lost = 1;
    } else {
        while (s->retx_n == RETX_MAX || s->retx_bytes + len > RETX_BYTES)
            retx_drop_oldest(s);
        memcpy(copy, m, len);
        s->retx[(s->retx_head + s->retx_n) % RETX_MAX] = (struct retx){copy, len};
        s->retx_n++;
        s->retx_bytes += len;
    }
    s->tx_count++;
}

static void retx_free(tallow__session *s)
{
    while (s->retx_n)
        retx_drop_oldest(s);
}

static size_t frame_header(const tallow__session *s, uint64_t tid, uint8_t hdr[]);

static int send_ctrl(tallow__session *s, uint8_t op, uint64_t v)
{
    if (s->state != ST_READY) return TALLOW_EINVAL;
    tallow__aead *a = tx_prepare(s, TALLOW__SESSION_KEY);
    size_t hlen = frame_header(s, TALLOW__SESSION_KEY, s->buf);
    s->buf[0] = KIND_CTRL;
    s->buf[hlen] = op;
    for (int i = 0; i < 8; i++)
        s->buf[hlen + 1 + i] = (uint8_t)(v >> (8 * i));
    return seal_buf(s, a, hlen, 9);
}

/* After a reconnection: every kept message again, behind CTRL_RESEND (none: nothing to do). */
static void resend_kept(tallow__session *s)
{
    if (s->state != ST_READY) return;
    if (s->retx_n == 0 && !s->retx_lost) return;
    uint64_t oldest = s->tx_count - s->retx_n;
    s->retx_lost = 0;
    if (send_ctrl(s, CTRL_RESEND, oldest) < 0) return;
    for (size_t k = 0; k < s->retx_n && s->state == ST_READY; k++) {
        struct retx *r = &s->retx[(s->retx_head + k) % RETX_MAX];
        tallow__aead *a = tx_prepare(s, TALLOW__SESSION_KEY);
        size_t hlen = frame_header(s, TALLOW__SESSION_KEY, s->buf);
        memcpy(s->buf + hlen, r->m, r->len);
        if (seal_buf(s, a, hlen, r->len) < 0) return;
    }
}

static void on_ctrl(tallow__session *s, const uint8_t *m, size_t len)
{
    uint64_t v = 0;
    if (len == 9)
        for (int i = 0; i < 8; i++)
            v |= (uint64_t)m[1 + i] << (8 * i);
    if (len != 9 || (m[0] != CTRL_ACK && m[0] != CTRL_RESEND) ||
        (m[0] == CTRL_ACK && v > s->tx_count)) {
        tallow_ctx_set_error(s->ctx, "malformed control record from the peer");
        return fail(s, TALLOW_EPROTO);
    }
    if (m[0] == CTRL_ACK) {
        while (s->retx_n && s->tx_count - s->retx_n < v)
            retx_drop_oldest(s);
        return;
    }
    if (v > s->rx_count) {
        tallow_ctx_log(s->ctx, TALLOW_LOG_WARN,
                       "%llu message(s) from the peer were lost in a reconnection",
                       (unsigned long long)(v - s->rx_count));
        s->rx_count = v;
        s->rx_skip = 0;
    } else {
        s->rx_skip = s->rx_count - v;
    }
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
    if (hdr[0] == KIND_SEALED) retx_keep(s, s->buf + hlen, (size_t)n);
    return seal_buf(s, a, hlen, (size_t)n);
}

/* A sealed frame's clear header (sealed as associated data): kind, epoch, and for a transfer
 * frame the transfer id, as varints. */
#define TX_HDR_MAX 24
static size_t frame_header(const tallow__session *s, uint64_t tid, uint8_t hdr[])
{
    hdr[0] = tid == TALLOW__SESSION_KEY ? KIND_SEALED : KIND_TRANSFER;
    size_t n = 1 + tallow_varint_put(hdr + 1, s->tx_epoch);
    if (tid != TALLOW__SESSION_KEY) n += tallow_varint_put(hdr + n, tid);
    return n;
}

int tallow__session_send(tallow__session *s, const tallow_msg_type *t, const void *msg)
{
    if (s->state != ST_READY) return s->state == ST_FAILED ? TALLOW_ECLOSED : TALLOW_EINVAL;
    tallow__aead *a = tx_prepare(s, TALLOW__SESSION_KEY);
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = frame_header(s, TALLOW__SESSION_KEY, hdr);
    tallow_channel *before = s->path;
    int rc = seal_and_send(s, a, hdr, hlen, t, msg);
    if (rc >= 0 && t->id == TALLOW_MSG_DirectConnected && s->direct && before == s->relay)
        s->path = s->direct; /* our switch marker went on the relay; everything after goes direct */
    return rc;
}

/* msg.c: offset of a BYTES field's bytes within msg's encoding */
size_t tallow__msg_bytes_offset(const tallow_msg_type *t, const void *msg,
                                const tallow_bytes *field);

uint8_t *tallow__session_tx_spot(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                                 const void *msg, const tallow_bytes *field)
{
    if (s->state != ST_READY || tid == TALLOW__SESSION_KEY) return NULL;
    /* a rekey happens here, not between this call and send_tx: the header keeps its length */
    if (!tx_prepare(s, tid)) return NULL;
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = frame_header(s, tid, hdr); /* the header send_tx puts before the message */
    size_t need = tallow_msg_encoded_size(t, msg);
    size_t off = tallow__msg_bytes_offset(t, msg, field);
    if (off == SIZE_MAX || need + hlen + TALLOW__AEAD_TAG > SESSION_MAX_FRAME) return NULL;
    return s->buf + hlen + off;
}

int tallow__session_send_raw_tx(tallow__session *s, uint64_t tid, const uint8_t *m, size_t len)
{
    if (s->state != ST_READY) return s->state == ST_FAILED ? TALLOW_ECLOSED : TALLOW_EINVAL;
    if (tid == TALLOW__SESSION_KEY) return TALLOW_EINVAL;
    tallow__aead *a = tx_prepare(s, tid);
    if (!a) return TALLOW_ETOOBIG;
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = frame_header(s, tid, hdr);
    if (len + hlen + TALLOW__AEAD_TAG > SESSION_MAX_FRAME) return TALLOW_ETOOBIG;
    memcpy(s->buf, hdr, hlen);
    memcpy(s->buf + hlen, m, len);
    return seal_buf(s, a, hlen, len);
}

int tallow__session_send_tx(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                            const void *msg)
{
    if (s->state != ST_READY) return s->state == ST_FAILED ? TALLOW_ECLOSED : TALLOW_EINVAL;
    if (tid == TALLOW__SESSION_KEY) return TALLOW_EINVAL;
    tallow__aead *a = tx_prepare(s, tid);
    if (!a) return TALLOW_ETOOBIG;
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = frame_header(s, tid, hdr);
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
    hs_timer_stop(s);
    if (s->relay_gone_timer) tallow_timer_stop(s->relay_gone_timer);
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
    ids_clear(&s->tx_ids);
    ids_clear(&s->rx_ids);
    retx_free(s);
    /* the scratch buffers held plaintext (the last message sealed and opened) */
    if (s->buf) sodium_memzero(s->buf, SESSION_MAX_FRAME + 64);
    if (s->rbuf) sodium_memzero(s->rbuf, SESSION_MAX_FRAME + 64);
    free(s->buf);
    free(s->rbuf);
    sodium_memzero(s->base_tx, sizeof(s->base_tx));
    sodium_memzero(s->base_rx, sizeof(s->base_rx));
    sodium_memzero(&s->keys, sizeof(s->keys));
    session_dealloc(s);
}
