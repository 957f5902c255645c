/* core/session/session.c — the session's handshake: pairing through a transport, CPace, the
 * channel's events, and the services a second path's owner uses (session_path.h). The handshake
 * runs in plaintext frames (kind 0); after it every frame is an AEAD record under a per-direction
 * key (kind 1) or a per-transfer key (kind 2). A failed confirmation tells the peer
 * (HandshakeFailed) and ends the session with TALLOW_ECODE on both sides.
 *
 * No (key, nonce) pair is ever used twice, by construction: a record's nonce is its number under
 * its key; the keys of epoch e are KDF(direction key, "epoch", e) and, per transfer,
 * KDF(KDF(transfer base, "epoch", e), "transfer", id); e is a 64-bit counter that only grows; and
 * a transfer id's record number survives the eviction of its key from the cache (ids_*), so an id
 * is never keyed at 0 twice in one epoch. The sender starts a new epoch after a reconnection (only
 * if the current one carried records: nothing else can have been lost) and by volume (REKEY_*);
 * the receiver moves to a newer epoch only on a frame that authenticates under its keys. The
 * record layer that does all this is session_record.c. */
#include <stdio.h>

#include "session_int.h"

#define VERSION_MISMATCH                                                                           \
    "incompatible versions: the peer speaks handshake version %s, this tallow %u; use the same "   \
    "tallow release on both sides"
/* What a HandshakeFailed for a version says since version 3 (older releases name none). */
#define VERSION_REASON "handshake version "

/* The version a peer's HandshakeFailed names ("2 or older" when it names none: releases before 3
 * did not). */
static void peer_version_of(tallow_bytes reason, char out[24])
{
    size_t k = sizeof(VERSION_REASON) - 1;
    for (size_t i = 0; reason.ptr && i + k < reason.len; i++) {
        if (memcmp(reason.ptr + i, VERSION_REASON, k) != 0) continue;
        unsigned long v = 0;
        size_t j = i + k;
        while (j < reason.len && j < i + k + 9 && reason.ptr[j] >= '0' && reason.ptr[j] <= '9')
            v = v * 10 + (unsigned long)(reason.ptr[j++] - '0');
        if (j > i + k) {
            snprintf(out, 24, "%lu", v);
            return;
        }
    }
    snprintf(out, 24, "2 or older");
}
#define HS_TIMEOUT_MS 30000u
static uint64_t hs_timeout_ms(void)
{
    const char *e = getenv("TALLOW_HANDSHAKE_TIMEOUT");
    return e && atoi(e) > 0 ? (uint64_t)atoi(e) * 1000u : HS_TIMEOUT_MS;
}

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

static int send_plain(tallow__session *s, const tallow_msg_type *t, const void *msg)
{
    s->buf[0] = KIND_PLAIN;
    int n = tallow_msg_encode(t, msg, s->buf + 1, SESSION_MAX_FRAME - 1);
    if (n < 0) return n;
    if (!s->path) return TALLOW_ECLOSED;
    return tallow_channel_send(s->path, 0, s->buf, (size_t)n + 1);
}

static void hs_timer_stop(tallow__session *s)
{
    if (s->hs_timer) tallow_timer_stop(s->hs_timer);
    s->hs_timer = NULL;
}

void tallow__sess_fail(tallow__session *s, int err)
{
    hs_timer_stop(s);
    if (s->state == ST_FAILED) return;
    s->state = ST_FAILED;
    tallow__hs_wipe(&s->hs);
    report_closed(s, err);
}

static void handshake_failed(tallow__session *s, int err)
{
    tallow_msg_HandshakeFailed m = {.code = tallow_err_to_wire(err)};
    char ver[96];
    const char *why = tallow_strerror(err);
    if (err == TALLOW_EVERSION) { /* names ours, so that the peer can name both */
        snprintf(ver, sizeof(ver), "%s: " VERSION_REASON "%u", why, TALLOW__HS_VERSION);
        why = ver;
    }
    m.reason = (tallow_bytes){(const uint8_t *)why, strlen(why)};
    send_plain(s, &tallow_msgtype_HandshakeFailed, &m);
    /* a relay closes the room on this, so each attempt gives a guesser one try at most; a
     * transport without rooms ignores it (TALLOW_ENOTSUP) */
    tallow__session_control(s, TALLOW_CTL_LEAVE, (void *)"handshake-failed");
    if (err == TALLOW_EVERSION) {
        char peer[24];
        snprintf(peer, sizeof(peer), "%u", (unsigned)s->hs.peer_version);
        tallow_ctx_set_error(s->ctx, VERSION_MISMATCH, peer, TALLOW__HS_VERSION);
    } else {
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(err));
    }
    tallow__sess_fail(s, err);
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
    if (s->owner) s->owner->keys_ready(s->owner_st);
    report_ready(s, 0);
}

static void ch_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    tallow__session *s = ud;
    if (ch == s->relay && s->state == ST_HANDSHAKE && type == TALLOW_MSG_PeerDeparted) {
        /* a handshake message may be lost with the connection: no half-done key exchange */
        tallow_ctx_set_error(s->ctx, "the relay connection broke during the key exchange; "
                                     "run both sides again");
        tallow__sess_fail(s, TALLOW_ECLOSED);
        return;
    }
    if (ch != s->relay || s->state != ST_READY) return;
    if (s->path != s->relay) return; /* frames go another way: a relay hiccup loses none */
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
        if (s->tx_recs > 0) tallow__sess_enter_epoch(s, 1, s->tx_epoch + 1);
        tallow__sess_resend_kept(s); /* what the peer has not acknowledged, before anything new */
        if (s->resync) s->resync(s->resync_ud);
    }
}

void tallow__sess_on_plain(tallow__session *s, const uint8_t *m, size_t len)
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
        int err = tallow_err_from_wire(code) == TALLOW_EVERSION ? TALLOW_EVERSION : TALLOW_ECODE;
        char peer[24];
        peer_version_of(msg.HandshakeFailed.reason, peer);
        if (err == TALLOW_EVERSION)
            tallow_ctx_set_error(s->ctx, VERSION_MISMATCH, peer, TALLOW__HS_VERSION);
        else
            tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(err));
        tallow__sess_fail(s, err);
        return;
    }
    if (s->state != ST_HANDSHAKE) {
        tallow_ctx_set_error(s->ctx, "unexpected handshake message");
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    if (!s->initiator && t->id == TALLOW_MSG_HandshakeInit) {
        tallow_msg_HandshakeResponse resp;
        rc = tallow__hs_on_init(&s->hs, &msg.HandshakeInit, &resp);
        if (rc < 0) {
            handshake_failed(s, rc == TALLOW_EPROTO ? TALLOW_EPROTO : rc);
            return;
        }
        send_plain(s, &tallow_msgtype_HandshakeResponse, &resp);
    } else if (s->initiator && t->id == TALLOW_MSG_HandshakeResponse) {
        tallow_msg_HandshakeComplete done;
        rc = tallow__hs_on_response(&s->hs, &msg.HandshakeResponse, &done);
        if (rc < 0) {
            handshake_failed(s, rc);
            return;
        }
        send_plain(s, &tallow_msgtype_HandshakeComplete, &done);
        keys_ready(s);
    } else if (!s->initiator && t->id == TALLOW_MSG_HandshakeComplete) {
        rc = tallow__hs_on_complete(&s->hs, &msg.HandshakeComplete);
        if (rc < 0) {
            handshake_failed(s, rc);
            return;
        }
        keys_ready(s);
    } else {
        handshake_failed(s, TALLOW_EPROTO);
    }
}

static void ch_frame(tallow_channel *ch, uint32_t from, const uint8_t *data, size_t len, void *ud)
{
    (void)ch;
    (void)from;
    tallow__sess_process(ud, 0, data, len); /* the first channel: the relay path */
}

static void hs_timeout(tallow_timer *t, void *ud)
{
    tallow__session *s = ud;
    (void)t;
    s->hs_timer = NULL; /* one-shot: the loop frees it */
    if (s->state != ST_HANDSHAKE) return;
    tallow_ctx_set_error(s->ctx,
                         "the key exchange got no answer within %u s (the peer or the "
                         "relay stopped in the middle)",
                         (unsigned)(hs_timeout_ms() / 1000));
    tallow__sess_fail(s, TALLOW_ETIMEOUT);
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
        if (rc < 0) {
            tallow__sess_fail(s, rc);
            return;
        }
        send_plain(s, &tallow_msgtype_HandshakeInit, &init);
    }
    if (s->owner && s->owner->paired) s->owner->paired(s->owner_st);
}

static void ch_writable(tallow_channel *ch, void *ud)
{
    tallow__session *s = ud;
    /* the relay draining after sends moved elsewhere still wakes a sender it held back */
    (void)ch;
    if (s->cbs->on_writable) s->cbs->on_writable(s, s->ud);
}

void tallow__session_end(tallow__session *s, int err)
{
    if (s->state == ST_FAILED) return;
    s->state = ST_FAILED;
    if (err == 0) err = s->ready_reported ? 0 : TALLOW_EPEERGONE;
    if (!s->ready_reported && !tallow_ctx_last_error(s->ctx)[0])
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(err));
    report_closed(s, err);
}

static void ch_closed(tallow_channel *ch, int err, void *ud)
{
    tallow__session *s = ud;
    (void)ch;
    /* sends go over the path owner's channel: it says whether the session goes on */
    if (s->path != s->relay && s->state == ST_READY && s->owner &&
        s->owner->first_closed(s->owner_st, err))
        return;
    tallow__session_end(s, err);
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
    rc = tallow__hs_init(&s->hs, p->initiator, p->code, room);
    if (rc < 0) goto fail;
    if (p->path_owner) {
        rc = p->path_owner->attach(s, p, &s->owner_st);
        if (rc < 0) goto fail;
        s->owner = p->path_owner;
    }
    *out = s;
    return 0;
fail:
    tallow__hs_wipe(&s->hs);
    free(s->handlers);
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
    tallow_channel_params cp =
        TALLOW_CHANNEL_PARAMS_INIT(.address = p->address, .room = room, .room_len = sizeof(room),
                                   .password = p->password,
                                   .capacity = p->capacity ? p->capacity : 2,
                                   .initiator = p->initiator,
                                   .proxy = tallow_policy_proxy(tallow_ctx_policy(ctx)),
                                   .failover = p->failover);
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

size_t tallow__session_queued(tallow__session *s)
{
    return s->path ? tallow_channel_queued(s->path) : 0;
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

void *tallow__session_path_owner(const tallow__session *s, const struct tallow__path_owner *ops)
{
    return s->owner == ops ? s->owner_st : NULL;
}

void tallow__session_use_channel(tallow__session *s, tallow_channel *ch)
{
    s->path = ch ? ch : s->relay;
    tallow__session_set_direct(s, ch);
}

int tallow__session_on_first(const tallow__session *s)
{
    return s->path == s->relay;
}

void tallow__session_set_direct(tallow__session *s, tallow_channel *ch)
{
    if (ch && ch != s->relay) s->direct = ch;
}

void tallow__session_input(tallow__session *s, tallow_channel *ch, const uint8_t *data, size_t len)
{
    tallow__sess_process(s, ch && ch == s->direct, data, len);
}

void tallow__session_writable(tallow__session *s)
{
    if (s->cbs->on_writable) s->cbs->on_writable(s, s->ud);
}

void tallow__session_new_epoch(tallow__session *s)
{
    if (s->state != ST_READY) return;
    s->resync_pending = 1;
    tallow__sess_enter_epoch(s, 1, s->tx_epoch + 1);
    tallow__sess_resend_kept(s);
}

void tallow__session_resync(tallow__session *s)
{
    if (s->resync) s->resync(s->resync_ud);
}

void tallow__session_report_path(tallow__session *s, int direct)
{
    if (s->cbs->on_path) s->cbs->on_path(s, direct, s->ud);
}

int tallow__session_control(tallow__session *s, int op, void *arg)
{
    /* the NULL test goes once every transport gets the host's default slot */
    return s->relay ? tallow_channel_control(s->relay, op, arg) : TALLOW_ENOTSUP;
}

int tallow__session_is_ready(const tallow__session *s)
{
    return s->state == ST_READY;
}

void tallow__session_close(tallow__session *s)
{
    if (!s) return;
    hs_timer_stop(s);
    /* the owner's channel first: it needs the owner's endpoint to close */
    if (s->owner) s->owner->detach(s->owner_st);
    s->owner = NULL;
    if (s->relay) tallow_channel_close(s->relay);
    tallow__hs_wipe(&s->hs);
    tallow__sess_record_free(s);
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
