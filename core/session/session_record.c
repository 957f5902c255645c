/* core/session/session_record.c — the session's record layer: per-direction and per-transfer keys,
 * epochs, sealing and opening frames of kinds 1-3, the kept session messages sent again after a
 * loss, and the handler table that hands each opened message to its owner (see session.h for the
 * frames and session.c for why no (key, nonce) pair repeats). */
#include "msg_int.h"
#include "session_int.h"

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

void tallow__sess_enter_epoch(tallow__session *s, int tx, uint64_t epoch)
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
        tallow__sess_enter_epoch(s, 1, s->tx_epoch + 1);
    return tid == TALLOW__SESSION_KEY ? &s->tx : transfer_key(s, 1, tid);
}

/* 1 when sends go to the owner's direct channel: frames get KIND_DIRECT, transfer records are
 * not sealed. */
static int tx_direct(const tallow__session *s)
{
    return s->path && s->path != s->relay;
}

/* Seals s->buf[hlen, hlen + n) in place under a, behind the header already at s->buf, and
 * sends the frame. A direct transfer record (its header built by frame_header with a's record
 * number in it) is not sealed: it only takes that number, so the key never meets it. */
static int seal_buf(tallow__session *s, tallow__aead *a, size_t hlen, size_t n)
{
    size_t tag = TALLOW__AEAD_TAG;
    if (s->buf[0] == (KIND_DIRECT | KIND_TRANSFER)) {
        if (a->seq == UINT64_MAX) return TALLOW_ETOOBIG;
        a->seq++;
        tag = 0;
    } else {
        int rc = tallow__aead_seal(a, s->buf + hlen, s->buf, hlen, s->buf + hlen, n);
        if (rc < 0) return rc;
    }
    s->tx_recs++;
    s->tx_bytes += (uint64_t)n;
    if (!s->path) return TALLOW_ECLOSED;
    return tallow_channel_send(s->path, 0, s->buf, hlen + n + tag);
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

void tallow__sess_record_free(tallow__session *s)
{
    tallow__aead_wipe(&s->tx);
    tallow__aead_wipe(&s->rx);
    for (int i = 0; i < TX_KEYS; i++) {
        tallow__aead_wipe(&s->txk[i].aead);
        tallow__aead_wipe(&s->rxk[i].aead);
    }
    ids_clear(&s->tx_ids);
    ids_clear(&s->rx_ids);
    while (s->retx_n)
        retx_drop_oldest(s);
    free(s->handlers);
    s->handlers = NULL;
    s->nhandlers = 0;
    tallow__session_set_resync(s, NULL, NULL); /* frees a hook's own state (set_resync_owned) */
}

static size_t frame_header(const tallow__session *s, const tallow__aead *a, uint64_t tid,
                           uint8_t hdr[]);

static int send_ctrl(tallow__session *s, uint8_t op, uint64_t v)
{
    if (s->state != ST_READY) return TALLOW_EINVAL;
    tallow__aead *a = tx_prepare(s, TALLOW__SESSION_KEY);
    size_t hlen = frame_header(s, a, TALLOW__SESSION_KEY, s->buf);
    s->buf[0] = (uint8_t)(KIND_CTRL | (s->buf[0] & KIND_DIRECT));
    s->buf[hlen] = op;
    for (int i = 0; i < 8; i++)
        s->buf[hlen + 1 + i] = (uint8_t)(v >> (8 * i));
    return seal_buf(s, a, hlen, 9);
}

/* After a reconnection: every kept message again, behind CTRL_RESEND (none: nothing to do). */
void tallow__sess_resend_kept(tallow__session *s)
{
    if (s->state != ST_READY) return;
    if (s->retx_n == 0 && !s->retx_lost) return;
    uint64_t oldest = s->tx_count - s->retx_n;
    s->retx_lost = 0;
    if (send_ctrl(s, CTRL_RESEND, oldest) < 0) return;
    for (size_t k = 0; k < s->retx_n && s->state == ST_READY; k++) {
        struct retx *r = &s->retx[(s->retx_head + k) % RETX_MAX];
        tallow__aead *a = tx_prepare(s, TALLOW__SESSION_KEY);
        size_t hlen = frame_header(s, a, TALLOW__SESSION_KEY, s->buf);
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
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
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
    if (!a) return TALLOW_ETOOBIG;
    memcpy(s->buf, hdr, hlen);
    /* encode at the end of the header, then seal in place */
    int n = tallow_msg_encode(t, msg, s->buf + hlen, need);
    if (n < 0) return n;
    if ((hdr[0] & ~KIND_DIRECT) == KIND_SEALED) retx_keep(s, s->buf + hlen, (size_t)n);
    return seal_buf(s, a, hlen, (size_t)n);
}

/* A frame's clear header (sealed as associated data): kind (KIND_DIRECT set on the direct
 * path), epoch, and for a transfer frame the transfer id, as varints; a direct transfer record,
 * which is not sealed, then carries the record number a (its transfer key) gives it. */
#define TX_HDR_MAX 34
static size_t frame_header(const tallow__session *s, const tallow__aead *a, uint64_t tid,
                           uint8_t hdr[])
{
    hdr[0] = tid == TALLOW__SESSION_KEY ? KIND_SEALED : KIND_TRANSFER;
    if (tx_direct(s)) hdr[0] |= KIND_DIRECT;
    size_t n = 1 + tallow_varint_put(hdr + 1, s->tx_epoch);
    if (tid != TALLOW__SESSION_KEY) n += tallow_varint_put(hdr + n, tid);
    if (hdr[0] == (KIND_DIRECT | KIND_TRANSFER)) n += tallow_varint_put(hdr + n, a ? a->seq : 0);
    return n;
}

int tallow__session_send(tallow__session *s, const tallow_msg_type *t, const void *msg)
{
    if (s->state != ST_READY) return s->state == ST_FAILED ? TALLOW_ECLOSED : TALLOW_EINVAL;
    tallow__aead *a = tx_prepare(s, TALLOW__SESSION_KEY);
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = frame_header(s, a, TALLOW__SESSION_KEY, hdr);
    return seal_and_send(s, a, hdr, hlen, t, msg);
}

uint8_t *tallow__session_tx_spot(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                                 const void *msg, const tallow_bytes *field)
{
    if (s->state != ST_READY || tid == TALLOW__SESSION_KEY) return NULL;
    /* a rekey happens here, not between this call and send_tx: the header keeps its length (and
     * the record number in a direct one) */
    tallow__aead *a = tx_prepare(s, tid);
    if (!a) return NULL;
    uint8_t hdr[TX_HDR_MAX];
    size_t hlen = frame_header(s, a, tid, hdr); /* the header send_tx puts before the message */
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
    size_t hlen = frame_header(s, a, tid, hdr);
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
    size_t hlen = frame_header(s, a, tid, hdr);
    return seal_and_send(s, a, hdr, hlen, t, msg);
}

void tallow__session_set_resync(tallow__session *s, void (*fn)(void *ud), void *ud)
{
    tallow__session_set_resync_owned(s, fn, ud, NULL);
}

void tallow__session_set_resync_owned(tallow__session *s, void (*fn)(void *ud), void *ud,
                                      void (*free_ud)(void *ud))
{
    void (*old_free)(void *) = s->resync_free;
    void *old = s->resync_ud;
    s->resync = fn;
    s->resync_ud = ud;
    s->resync_free = free_ud;
    if (old_free && old != ud) old_free(old);
}

int tallow__session_on(tallow__session *s, uint32_t id, tallow__session_filter f, void *ud)
{
    for (size_t i = 0; i < s->nhandlers; i++) {
        if (s->handlers[i].id != id) continue;
        if (f) {
            s->handlers[i] = (tallow__session_handler){id, f, ud};
        } else {
            s->handlers[i] = s->handlers[s->nhandlers - 1];
            s->nhandlers--;
        }
        return 0;
    }
    if (!f) return 0;
    tallow__session_handler *h = realloc(s->handlers, (s->nhandlers + 1) * sizeof(*h));
    if (!h) return TALLOW_ENOMEM;
    s->handlers = h;
    h[s->nhandlers++] = (tallow__session_handler){id, f, ud};
    return 0;
}

void tallow__session_set_filter(tallow__session *s, tallow__session_filter f, void *ud)
{
    /* removing an entry never fails; a transfer's filter is set on a session that had one */
    if (tallow__session_on(s, TALLOW__SESSION_ANY, f, ud) < 0)
        tallow_ctx_log(s->ctx, TALLOW_LOG_ERROR, "no memory for the session's handler table");
}

static const tallow__session_handler *handler_of(const tallow__session *s, uint32_t id)
{
    for (size_t i = 0; i < s->nhandlers; i++)
        if (s->handlers[i].id == id) return &s->handlers[i];
    return NULL;
}

uint64_t tallow__session_rx_key(const tallow__session *s)
{
    return s->rx_key_tid;
}

/* ---- receiving */

/* Hands one decoded message to the handler of its id (the path owner's signalling), else to
 * the catch-all one (the running transfer), else to the session's user. */
static void dispatch(tallow__session *s, const tallow_msg_type *t, const void *msg)
{
    const tallow__session_handler *h = handler_of(s, t->id);
    if (h && h->fn(s, t, msg, h->ud)) return;
    h = handler_of(s, TALLOW__SESSION_ANY);
    if (h && h->fn(s, t, msg, h->ud)) return;
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
    if (!buf) {
        tallow__sess_fail(s, TALLOW_ENOMEM);
        return;
    }
    if (rc == 0)
        rc = tallow_msg_decode(reg, m, len, &t, buf, buf == &any ? sizeof(any) : t->struct_size);
    if (rc < 0) {
        if (buf != &any) free(buf);
        tallow_ctx_set_error(s->ctx, "malformed message from the peer: %s", tallow_strerror(rc));
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    dispatch(s, t, buf);
    if (buf != &any) free(buf);
}

/* A direct transfer record (kind 0x82, not sealed) after its header: its number must be the
 * next one of its key, as an AEAD's nonce would have to be; the channel it came on (QUIC, keyed
 * from the PAKE) authenticated it. Returns the key (its number taken) or NULL: dropped (a gap
 * that a reconnection explains) or refused (the session failed). */
static tallow__aead *direct_record(tallow__session *s, uint64_t epoch, uint64_t id, uint64_t num)
{
    if (epoch > s->rx_epoch) {
        /* the peer moved to a newer epoch: its first record under any key is number 0 */
        if (num != 0) {
            if (s->resync_pending) return NULL;
            tallow_ctx_set_error(s->ctx,
                                 "direct record %llu of a new epoch from the peer: out of order",
                                 (unsigned long long)num);
            tallow__sess_fail(s, TALLOW_ECRYPTO);
            return NULL;
        }
        tallow__sess_enter_epoch(s, 0, epoch);
        s->resync_pending = 0;
    }
    tallow__aead *a = transfer_key(s, 0, id);
    if (!a) {
        tallow__sess_fail(s, TALLOW_EPROTO);
        return NULL;
    }
    if (num != a->seq || a->seq == UINT64_MAX) {
        if (s->resync_pending)
            return NULL; /* a gap left by the reconnection: a new epoch follows */
        tallow_ctx_set_error(s->ctx,
                             "direct record %llu of transfer %llu from the peer, expected %llu "
                             "(replayed, reordered or lost)",
                             (unsigned long long)num, (unsigned long long)id,
                             (unsigned long long)a->seq);
        tallow__sess_fail(s, TALLOW_ECRYPTO);
        return NULL;
    }
    a->seq++;
    return a;
}

/* ---- relay probes (KIND_PROBE): filler the path owner times; nothing in them is trusted but
 * their length, and they are taken on the relay only */

static void on_probe(tallow__session *s, int direct, const uint8_t *data, size_t len)
{
    uint64_t id = 0;
    int n = tallow_varint_get(data + 1, len - 1, &id);
    size_t pos = 1 + (size_t)(n > 0 ? n : 0);
    if (direct || n <= 0 || pos >= len || data[pos] > 1 ||
        len - pos - 1 > TALLOW__PROBE_FRAME_MAX) {
        tallow_ctx_set_error(s->ctx, direct ? "a relay probe arrived on the direct path: refused"
                                            : "malformed relay probe from the peer");
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    if (s->owner && s->owner->probe) s->owner->probe(s->owner_st, id, len - pos - 1, data[pos]);
}

int tallow__session_can_probe(const tallow__session *s)
{
    return s->state == ST_READY && s->keys.probe;
}

int tallow__session_send_probe(tallow__session *s, uint64_t id, size_t len, int last)
{
    if (!tallow__session_can_probe(s) || !s->relay) return TALLOW_EINVAL;
    if (len > TALLOW__PROBE_FRAME_MAX) return TALLOW_ETOOBIG;
    s->buf[0] = KIND_PROBE;
    size_t hl = 1 + tallow_varint_put(s->buf + 1, id);
    s->buf[hl++] = last ? 1 : 0;
    memset(s->buf + hl, 0, len);
    return tallow_channel_send(s->relay, 0, s->buf, hl + len);
}

void tallow__sess_process(tallow__session *s, int direct, const uint8_t *data, size_t len)
{
    if (s->state == ST_FAILED || len == 0) return;
    uint8_t kind = data[0];
    if (kind == KIND_PLAIN) {
        tallow__sess_on_plain(s, data + 1, len - 1);
        return;
    }
    if (s->state != ST_READY) {
        tallow_ctx_set_error(s->ctx, "sealed frame before the handshake finished");
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    /* a frame is taken only on the path its kind names: never a direct one (an unsealed record
     * among them) on the relay, where every record must authenticate, nor a relay one direct */
    int for_direct = (kind & KIND_DIRECT) != 0;
    uint8_t base = (uint8_t)(kind & ~KIND_DIRECT);
    if (base == KIND_SEALED || base == KIND_TRANSFER || base == KIND_CTRL) {
        if (for_direct != direct) {
            tallow_ctx_set_error(s->ctx, "a %s frame (kind 0x%02x) arrived on the %s: refused%s",
                                 for_direct ? "direct-path" : "relay-path", kind,
                                 for_direct ? "relay channel" : "direct path",
                                 for_direct ? " (every frame there must be sealed)" : "");
            tallow__sess_fail(s, TALLOW_ECRYPTO);
            return;
        }
    } else if (kind == KIND_PROBE && s->keys.probe) {
        on_probe(s, direct, data, len);
        return;
    } else {
        tallow_ctx_set_error(s->ctx, "unknown frame kind %u from the peer", kind);
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    int unsealed = kind == (KIND_DIRECT | KIND_TRANSFER);
    if (len < 2) {
        tallow_ctx_set_error(s->ctx, "malformed frame from the peer (%zu bytes)", len);
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    uint64_t epoch, id = TALLOW__SESSION_KEY, num = 0;
    int n = tallow_varint_get(data + 1, len - 1, &epoch);
    size_t pos = 1 + (size_t)(n > 0 ? n : 0);
    if (n > 0 && base == KIND_TRANSFER) {
        int m = tallow_varint_get(data + pos, len - pos, &id);
        n = m > 0 && id != TALLOW__SESSION_KEY ? m : -1;
        pos += (size_t)(n > 0 ? n : 0);
    }
    if (n > 0 && unsealed) {
        n = tallow_varint_get(data + pos, len - pos, &num);
        pos += (size_t)(n > 0 ? n : 0);
    }
    if (n <= 0) {
        tallow_ctx_set_error(s->ctx, "malformed frame from the peer (bad header)");
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    if (epoch < s->rx_epoch) return; /* from before a reconnection: superseded */
    if (len - pos > SESSION_MAX_FRAME) {
        tallow_ctx_set_error(s->ctx, "frame larger than the session allows (%zu bytes)", len);
        tallow__sess_fail(s, TALLOW_EPROTO);
        return;
    }
    if (unsealed) {
        if (!direct_record(s, epoch, id, num)) return;
        s->peer_sealed = 1; /* it came through QUIC, keyed from the same handshake */
        s->rx_key_tid = id;
        deliver(s, data + pos, len - pos);
        s->rx_key_tid = TALLOW__SESSION_KEY;
        return;
    }
    if (len - pos < TALLOW__AEAD_TAG) {
        tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
        tallow__sess_fail(s, TALLOW_ECRYPTO);
        return;
    }
    uint64_t key_tid = base == KIND_TRANSFER ? id : TALLOW__SESSION_KEY;
    if (epoch > s->rx_epoch) {
        /* the peer moved to a newer epoch: follow only if this frame authenticates under it */
        uint8_t k[32], b32[32];
        tallow__aead trial;
        tallow__kdf(s->keys.rx, "epoch", epoch, k);
        if (base == KIND_TRANSFER) {
            tallow__kdf(s->keys.transfer_base_rx, "epoch", epoch, b32);
            tallow__kdf(b32, "transfer", id, k);
            sodium_memzero(b32, sizeof(b32));
        }
        tallow__aead_init(&trial, k, s->keys.alg);
        sodium_memzero(k, sizeof(k));
        n = tallow__aead_open(&trial, s->rbuf, data, pos, data + pos, len - pos);
        tallow__aead_wipe(&trial);
        if (n < 0) {
            if (s->resync_pending) return;
            tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
            tallow__sess_fail(s, TALLOW_ECRYPTO);
            return;
        }
        tallow__sess_enter_epoch(s, 0, epoch);
        s->resync_pending = 0;
        tallow__aead *a = base == KIND_TRANSFER ? transfer_key(s, 0, id) : &s->rx;
        if (!a) {
            tallow__sess_fail(s, TALLOW_EPROTO);
            return;
        }
        a->seq = 1; /* record 0 of the epoch's key was this one */
    } else {
        tallow__aead *a = base == KIND_TRANSFER ? transfer_key(s, 0, id) : &s->rx;
        if (!a) {
            tallow__sess_fail(s, TALLOW_EPROTO);
            return;
        }
        n = tallow__aead_open(a, s->rbuf, data, pos, data + pos, len - pos);
        if (n < 0) {
            if (s->resync_pending) return; /* a gap left by the reconnection: a new epoch follows */
            tallow_ctx_set_error(s->ctx, "%s", tallow_strerror(TALLOW_ECRYPTO));
            tallow__sess_fail(s, TALLOW_ECRYPTO);
            return;
        }
    }
    s->peer_sealed = 1;
    if (base == KIND_CTRL) {
        on_ctrl(s, s->rbuf, (size_t)n);
        return;
    }
    if (base == KIND_SEALED) {
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
