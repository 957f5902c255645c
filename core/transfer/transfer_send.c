/* core/transfer/transfer_send.c — the transfer's sending role: the offer (in parts when long), the
 * receiver's resume list and refusals, windowed streaming of chunks (hashing a resumed file's
 * kept prefix for the receiver to check), acks, a resync after a reconnection, and the closing
 * handshake. Shared state and helpers: transfer_internal.h. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "transfer_internal.h"

static void pump(tallow__xfer *x);

/* ---- a resumed file's kept prefix, hashed off the loop
 * The work reads x->fd with pread while the loop sends from it: the loop closes x->fd only after
 * the hash is back (the file's last chunk waits for it) or after tallow__xfer_send_stop_work. */

void tallow__xfer_send_stop_work(tallow__xfer *x)
{
    tallow__work_cancel(x->hashw);
    x->hashw = NULL;
    x->hash_wait = 0;
}

static void hash_run(void *ud)
{
    tallow__xfer *x = ud;
    x->hash_rc = tallow__hash_prefix(x->fd, x->hash_len, x->digest);
}

static void hash_done(void *ud)
{
    tallow__xfer *x = ud;
    x->hashw = NULL;
    if (x->hash_rc) {
        tallow__xfer_abort(x, TALLOW_EHASH, "source changed while resuming");
        return;
    }
    if (x->hash_wait) {
        x->hash_wait = 0;
        pump(x);
    }
}

/* The receiver kept a prefix of the file just opened (x->fd) from an earlier session: hash the
 * same bytes here, locally, so it can check them (the hash goes on the last chunk). Off the loop
 * when a thread can be had, else here. 0 or TALLOW_EHASH. */
static int hash_kept(tallow__xfer *x)
{
    x->hash_len = x->kept[x->cur];
    if (tallow__work_start(tallow_ctx_loop(x->ctx), hash_run, hash_done, x, &x->hashw) == 0)
        return 0;
    return tallow__hash_prefix(x->fd, x->hash_len, x->digest) != 0 ? TALLOW_EHASH : 0;
}

static int send_chunk(tallow__xfer *x)
{
    tallow__entry *e = &x->m.e[x->cur];
    if (!x->file_open) {
        x->off = x->resume[x->cur];
        if (x->kind == TALLOW__XFER_TEXT) {
            x->fd = -1;
            x->file_open = 1;
        } else {
            int rc = tallow__source_open(e, &x->fd);
            if (rc < 0) {
                char b[300];
                tallow__xfer_abort(x, rc, "cannot read %s: %s",
                                   tallow__xfer_shown(e->path, b, sizeof(b)), tallow_strerror(rc));
                return rc;
            }
            posix_fadvise(x->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
            x->file_open = 1;
            if (x->kept[x->cur] && hash_kept(x) != 0) {
                tallow__xfer_abort(x, TALLOW_EHASH, "source changed while resuming");
                return TALLOW_EHASH;
            }
        }
    }
    size_t n = e->size - x->off < CHUNK ? (size_t)(e->size - x->off) : CHUNK;
    if (x->hashw && x->off + n == e->size) {
        x->hash_wait = 1; /* the last chunk carries the kept prefix's hash: pump again then */
        return 0;
    }
    tallow_msg_Chunk c = {.transfer_id = x->tid, .file_index = x->cur, .offset = x->off};
    c.data.len = n;
    if (x->off + n == e->size) {
        c.last = 1;
        if (x->kind != TALLOW__XFER_TEXT && x->kept[x->cur])
            c.hash = (tallow_bytes){x->digest, sizeof(x->digest)};
    }
    if (n > 0) {
        /* the data goes straight to its place in the session's sealing buffer: it is encoded,
         * sealed and handed to the transport from there, never copied in between */
        uint8_t *spot = tallow__session_tx_spot(x->s, x->tid, &tallow_msgtype_Chunk, &c, &c.data);
        if (!spot) {
            tallow__xfer_abort(x, TALLOW_ETOOBIG, "chunk too large for the session");
            return TALLOW_ETOOBIG;
        }
        if (x->kind == TALLOW__XFER_TEXT) {
            memcpy(spot, x->text + x->off, n);
        } else {
            ssize_t got = pread(x->fd, spot, n, (off_t)x->off);
            if (got != (ssize_t)n) {
                char b[300];
                tallow__xfer_abort(x, TALLOW_EHASH, "%s changed or shrank while sending",
                                   tallow__xfer_shown(e->path, b, sizeof(b)));
                return TALLOW_EHASH;
            }
        }
        c.data.ptr = spot;
    }
    x->off += n;
    int rc = tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_Chunk, &c);
    if (rc < 0) {
        tallow__xfer_abort(x, rc, "sending failed: %s", tallow_strerror(rc));
        return rc;
    }
    x->pos_sent = tallow__xfer_pos(x, x->cur, x->off);
    if (x->pos_sent > x->pos_max) x->pos_max = x->pos_sent;
    x->st.bytes_wire += n;
    if (c.last) {
        if (x->fd >= 0) close(x->fd);
        x->file_open = 0;
        x->cur++;
        x->st.files_done++;
    }
    if (rc == 1) x->blocked = 1;
    return 0;
}

static void pump(tallow__xfer *x)
{
    if (x->in_pump) return;
    x->in_pump = 1;
    while (x->state == X_STREAMING && !x->blocked && !x->paused && !x->hash_wait &&
           (x->pos_sent <= x->acked || x->pos_sent - x->acked < WINDOW)) {
        while (x->cur < x->m.n &&
               (x->m.e[x->cur].type == TALLOW__ENT_DIR || tallow__xfer_is_skip(x, x->cur)))
            x->cur++;
        if (x->cur >= x->m.n) {
            tallow_msg_TransferComplete tc = {
                .transfer_id = x->tid, .files = x->m.nfiles, .bytes = x->m.total_size};
            int rc = tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_TransferComplete, &tc);
            if (rc < 0) {
                tallow__xfer_abort(x, rc, "sending failed: %s", tallow_strerror(rc));
                break;
            }
            x->state = X_FINISHING;
            break;
        }
        if (send_chunk(x) < 0) break;
    }
    x->in_pump = 0;
}

void tallow__xfer_writable(tallow__xfer *x)
{
    if (!x || !x->sender) return;
    x->blocked = 0;
    pump(x);
}

/* The next (index, -error) pair of the receiver's refusal list; *idx = UINT64_MAX at its end. */
static int next_refused(const uint8_t **p, size_t *left, uint64_t *idx, uint64_t *err)
{
    *idx = UINT64_MAX;
    if (!*left) return 0;
    for (int k = 0; k < 2; k++) {
        int n = tallow_varint_get(*p, *left, k ? err : idx);
        if (n < 0) return TALLOW_EPROTO;
        *p += n;
        *left -= (size_t)n;
    }
    return *idx == UINT64_MAX ? TALLOW_EPROTO : 0;
}

/* An entry the receiver refused: told now (with its reason) and named in the closing error. */
static void note_refused(tallow__xfer *x, size_t i, uint64_t err)
{
    char b[300];
    const tallow__entry *e = &x->m.e[i];
    const char *dir = e->type == TALLOW__ENT_DIR ? "/" : "";
    int code = err > 0 && err < 2000 ? tallow_err_from_wire(-(int64_t)err) : TALLOW_EPROTO;
    tallow__xfer_shown(e->path, b, sizeof(b));
    if (x->st.refused >= x->refusals_told) /* not already told before the acceptance came again */
        tallow__xfer_notice(x, "the receiver refused %s%s: %s", b, dir, tallow_strerror(code));
    size_t used = strlen(x->refused_names);
    size_t want = strlen(b) + strlen(dir) + (used ? 2 : 0);
    /* names in order while they fit, with room left for " and N more" */
    if (x->refused_named == x->st.refused++ && used + want < sizeof(x->refused_names) - 24) {
        snprintf(x->refused_names + used, sizeof(x->refused_names) - used, "%s%s%s",
                 used ? ", " : "", b, dir);
        x->refused_named++;
    }
}

static int accept_entry(tallow__xfer *x, size_t i, uint64_t v)
{
    if (v > x->m.e[i].size + 1 || (x->m.e[i].type == TALLOW__ENT_DIR && v > 1))
        return TALLOW_EPROTO;
    x->resume[i] = x->m.e[i].type == TALLOW__ENT_DIR ? 0 : v;
    x->kept[i] = tallow__xfer_is_skip(x, i) ? 0 : x->resume[i];
    if (x->m.e[i].type == TALLOW__ENT_FILE) {
        uint64_t had = tallow__xfer_is_skip(x, i) ? x->m.e[i].size : v;
        x->st.bytes_resumed += had;
        if (tallow__xfer_is_skip(x, i)) x->st.files_skipped++;
    }
    return 0;
}

/* A refusal names an entry the resume list already covered, in ascending order; a refused file
 * is skipped like one already there, so it is taken back out of those counts. */
static int refuse_entry(tallow__xfer *x, uint64_t i, uint64_t err)
{
    if (i >= x->accepted || i < x->refused_from) return TALLOW_EPROTO;
    const tallow__entry *e = &x->m.e[i];
    if (e->type == TALLOW__ENT_FILE) {
        if (!tallow__xfer_is_skip(x, i)) return TALLOW_EPROTO;
        x->st.bytes_resumed -= e->size;
        x->st.files_skipped--;
    }
    x->refused_from = (size_t)i + 1;
    note_refused(x, (size_t)i, err);
    return 0;
}

/* The receiver says its acceptance again from its first part (after a resync: some parts may
 * have been lost): what came of the earlier one is dropped. Its refusals were told already and
 * come again in the same order, so they are not told twice. Parts of the earlier one that
 * arrive after this cannot: they belong to an older epoch, which the session drops. */
static void restart_accept(tallow__xfer *x)
{
    if (x->refusals_told < x->st.refused) x->refusals_told = x->st.refused;
    x->accepted = 0;
    x->refused_from = 0;
    x->st.bytes_resumed = 0;
    x->st.files_skipped = 0;
    x->st.refused = 0;
    x->refused_named = 0;
    x->refused_names[0] = 0;
}

/* One FileAccept. Long lists come in parts, all but the last with more: the resume list in whole
 * varints first, then the refusals in whole pairs. Entries the resume list does not reach start
 * at 0. */
static int on_accept(tallow__xfer *x, const tallow_msg_FileAccept *a)
{
    const uint8_t *p = a->resume.ptr, *rp = a->refused.ptr;
    size_t left = a->resume.len, rleft = a->refused.len;
    while (left > 0) {
        uint64_t v;
        int n = tallow_varint_get(p, left, &v);
        if (n < 0 || x->accepted >= x->m.n || accept_entry(x, x->accepted, v) < 0)
            return TALLOW_EPROTO;
        p += n;
        left -= (size_t)n;
        x->accepted++;
    }
    for (;;) {
        uint64_t ridx, rerr;
        if (next_refused(&rp, &rleft, &ridx, &rerr) < 0) return TALLOW_EPROTO;
        if (ridx == UINT64_MAX) break;
        if (refuse_entry(x, ridx, rerr) < 0) return TALLOW_EPROTO;
    }
    if (a->more) return 0;
    for (; x->accepted < x->m.n; x->accepted++)
        accept_entry(x, x->accepted, 0);
    x->st.bytes_done = x->st.bytes_resumed;
    x->state = X_STREAMING;
    pump(x);
    return 0;
}

static int on_resume_info(tallow__xfer *x, const tallow_msg_ResumeInfo *ri)
{
    if (ri->file_index > x->m.n) return TALLOW_EPROTO;
    size_t i = (size_t)ri->file_index;
    if (i < x->m.n && x->m.e[i].type == TALLOW__ENT_FILE && !tallow__xfer_is_skip(x, i)) {
        if (ri->offset > x->m.e[i].size) return TALLOW_EPROTO;
        x->resume[i] = ri->offset;
    }
    tallow__xfer_send_stop_work(x); /* the file is opened again: hashed again */
    if (x->file_open && x->fd >= 0) close(x->fd);
    x->file_open = 0;
    x->cur = i;
    x->acked = tallow__xfer_pos(x, i, i < x->m.n && !tallow__xfer_is_skip(x, i) ? x->resume[i] : 0);
    x->pos_sent = x->acked;
    x->paused = 0;
    x->blocked = 0;
    x->state = X_STREAMING; /* a TransferComplete lost in flight is sent again */
    pump(x);
    return 0;
}

/* The session's path came back after a reconnection: frames in flight may be lost. The sender
 * waits for the receiver's position (ResumeInfo) and continues from there. */
static void send_resync(void *ud)
{
    tallow__xfer *x = ud;
    if (x->state == X_DONE) return;
    if (x->state != X_OFFERED) x->paused = 1;
}

/* The receiver said it is done: every byte it wrote, or what it refused. */
static void on_receiver_complete(tallow__xfer *x, const tallow_msg_TransferComplete *rtc)
{
    /* the accept list named what the receiver refused; a receiver from before that list is
     * caught by its final byte count (except for refused empty files) */
    if (x->st.refused) {
        uint64_t more = x->st.refused - x->refused_named;
        char tail[48] = "";
        if (more)
            snprintf(tail, sizeof(tail), "%s%llu %s", x->refused_named ? " and " : "",
                     (unsigned long long)more,
                     x->refused_named ? "more"
                     : more == 1      ? "entry"
                                      : "entries");
        tallow_ctx_set_error(x->ctx, "the receiver refused %s%s", x->refused_names, tail);
        tallow__xfer_finish(x, TALLOW_EREJECTED);
        return;
    }
    if (rtc->bytes < x->st.bytes_total) {
        tallow_ctx_set_error(x->ctx,
                             "the receiver refused some files: %llu of %llu bytes were not written",
                             (unsigned long long)(x->st.bytes_total - rtc->bytes),
                             (unsigned long long)x->st.bytes_total);
        tallow__xfer_finish(x, TALLOW_EREJECTED);
        return;
    }
    x->st.files_done = x->m.nfiles;
    x->st.bytes_done = x->st.bytes_total;
    tallow__xfer_finish(x, 0);
}

/* The sender's message filter: the receiver's answers, acks, position and completion. */
static int send_filter(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    tallow__xfer *x = ud;
    int claimed = tallow__xfer_claim(x, s, t, msg);
    if (claimed != 2) return claimed;
    char reason[300];
    switch (t->id) {
    case TALLOW_MSG_FileAccept:
        /* said again after a reconnection by a receiver that had no word from us since: the
         * first one came, the ResumeInfo behind it says where the receiver stands */
        if (x->state != X_OFFERED) return 1;
        if (((const tallow_msg_FileAccept *)msg)->again) restart_accept(x);
        /* the clock (rate, seconds) starts when the receiver said yes, not while it was asked */
        x->st.started_ns = tallow_now_ns();
        if (on_accept(x, msg) < 0)
            tallow__xfer_abort(x, TALLOW_EPROTO, "malformed resume list from the peer");
        return 1;
    case TALLOW_MSG_FileReject: {
        const tallow_msg_FileReject *r = msg;
        if (x->state != X_OFFERED) break;
        tallow_ctx_set_error(x->ctx, "the receiver declined%s%s", r->reason.len ? ": " : "",
                             r->reason.len
                                 ? tallow__printable((const char *)r->reason.ptr, r->reason.len,
                                                     reason, sizeof(reason))
                                 : "");
        tallow__xfer_finish(x, TALLOW_EREJECTED);
        return 1;
    }
    case TALLOW_MSG_Ack: {
        const tallow_msg_Ack *a = msg;
        if (a->bytes > x->pos_max) {
            tallow__xfer_abort(x, TALLOW_EPROTO, "acknowledgement for bytes never sent");
            return 1;
        }
        if (a->bytes > x->acked) {
            x->st.bytes_done += a->bytes - x->acked;
            x->acked = a->bytes;
        }
        pump(x);
        return 1;
    }
    case TALLOW_MSG_TransferComplete:
        if (x->state != X_FINISHING) break;
        on_receiver_complete(x, msg);
        return 1;
    case TALLOW_MSG_ResumeInfo:
        if (x->state == X_OFFERED) break;
        if (on_resume_info(x, msg) < 0)
            tallow__xfer_abort(x, TALLOW_EPROTO, "malformed resume position");
        return 1;
    }
    tallow__xfer_abort(x, TALLOW_EPROTO, "unexpected %s from the peer", t->name);
    return 1;
}

int tallow__xfer_send(tallow__session *s, tallow__manifest *m, const char *text, size_t textlen,
                      const tallow__xfer_cbs *cbs, void *ud, tallow__xfer **out)
{
    tallow__xfer *x = tallow__xfer_new(s, cbs, ud);
    if (!x) return TALLOW_ENOMEM;
    x->sender = 1;
    int rc = TALLOW_ENOMEM;
    if (text) {
        if (textlen > MAX_TEXT) {
            rc = TALLOW_ETOOBIG;
            goto fail;
        }
        x->kind = TALLOW__XFER_TEXT;
        x->text = malloc(textlen ? textlen : 1);
        if (!x->text) goto fail;
        memcpy(x->text, text, textlen);
        x->textlen = textlen;
        x->m.e = calloc(1, sizeof(tallow__entry));
        if (!x->m.e || !(x->m.e[0].path = strdup("text"))) goto fail;
        x->m.n = 1;
        x->m.e[0].size = textlen;
        x->m.e[0].mode = 0644;
        x->m.nfiles = 1;
        x->m.total_size = textlen;
    } else {
        x->m = *m;
        memset(m, 0, sizeof(*m));
    }
    if (x->m.n > MAX_ENTRIES) {
        tallow_ctx_set_error(x->ctx, "%zu entries: more than %u in one transfer", x->m.n,
                             MAX_ENTRIES);
        rc = TALLOW_ETOOBIG;
        goto fail;
    }
    x->resume = calloc(x->m.n ? x->m.n : 1, sizeof(uint64_t));
    x->kept = calloc(x->m.n ? x->m.n : 1, sizeof(uint64_t));
    if (!x->resume || !x->kept || tallow__xfer_make_prefix(x) < 0) goto fail;
    randombytes_buf(&x->tid, sizeof(x->tid));
    x->tid &= 0x7fffffffffffffffull; /* fits a Lua integer */
    x->st.bytes_total = x->m.total_size;
    x->st.files_total = x->m.nfiles;

    uint8_t *enc = NULL;
    size_t enclen = 0;
    rc = tallow__manifest_encode(&x->m, &enc, &enclen);
    if (rc < 0) goto fail;
    tallow_msg_FileOffer fo = {
        .transfer_id = x->tid, .kind = x->kind, .count = x->m.n, .total_size = x->m.total_size};
    size_t at = 0;
    do { /* in parts when long: the receiver joins them (core/transfer/offer_parts.c) */
        size_t n = enclen - at < PART ? enclen - at : PART;
        fo.manifest = (tallow_bytes){enc + at, n};
        at += n;
        fo.more = at < enclen;
        rc = tallow__session_send_tx(s, x->tid, &tallow_msgtype_FileOffer, &fo);
    } while (rc >= 0 && at < enclen);
    free(enc);
    if (rc < 0) goto fail;
    x->state = X_OFFERED;
    tallow__xfer_start(x, send_filter, send_resync);
    *out = x;
    return 0;
fail:
    tallow__xfer_free(x);
    return rc;
}
