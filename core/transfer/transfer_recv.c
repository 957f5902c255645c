/* core/transfer/transfer_recv.c — the transfer's receiving role: what to accept of an offer (resume
 * offsets, files already there, refusals with their reasons), chunks written in order through
 * the sink, acks, the position sent after a reconnection, and the closing handshake (the
 * destination flushed before the sender hears it is done). Shared state: transfer_internal.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transfer_internal.h"

static void send_ack(tallow__xfer *x)
{
    uint64_t pos =
        x->sink_open ? tallow__xfer_pos(x, x->sink_idx,
                                        x->kind == TALLOW__XFER_TEXT ? x->textlen : x->sink.written)
                     : tallow__xfer_pos(x, x->next_idx, 0);
    tallow_msg_Ack a = {.transfer_id = x->tid, .bytes = pos, .file_index = x->sink_idx};
    x->last_ack = pos;
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_Ack, &a);
}

/* ---- flushing received files off the loop (MAX_FINS) */

/* A free slot of x->fin, or NULL. */
static struct xfer_fin *free_fin(tallow__xfer *x)
{
    for (size_t i = 0; i < MAX_FINS; i++)
        if (!x->fin[i].w) return &x->fin[i];
    return NULL;
}

static int fins_busy(const tallow__xfer *x)
{
    for (size_t i = 0; i < MAX_FINS; i++)
        if (x->fin[i].w) return 1;
    return 0;
}

void tallow__xfer_recv_stop_work(tallow__xfer *x)
{
    for (size_t i = 0; i < MAX_FINS; i++) {
        struct xfer_fin *f = &x->fin[i];
        if (!f->w) continue;
        tallow__work_cancel(f->w);
        f->w = NULL;
        tallow__sink_abort(&f->sink, 1);
    }
    tallow__work_cancel(x->syncw);
    x->syncw = NULL;
}

static void complete_files(tallow__xfer *x);

/* A file that could not be finished (checked, flushed, renamed): the transfer ends. */
static int finish_failed(tallow__xfer *x, size_t idx, int rc)
{
    char b[300];
    const char *shown = tallow__xfer_shown(x->m.e[idx].path, b, sizeof(b));
    if (rc == TALLOW_EHASH)
        return tallow__xfer_abort(x, rc,
                                  "%s: integrity check failed: the part kept from the interrupted "
                                  "transfer does not match the source (changed since, or damaged); "
                                  "partial copy removed, send again",
                                  shown);
    return tallow__xfer_abort(x, rc, "%s: %s", shown, tallow_strerror(rc));
}

static void fin_sync(void *ud)
{
    struct xfer_fin *f = ud;
    f->rc = tallow__sink_sync(&f->sink);
}

static void fin_done(void *ud)
{
    struct xfer_fin *f = ud;
    tallow__xfer *x = f->x;
    f->w = NULL;
    int rc = tallow__sink_publish(&f->sink, f->rc);
    if (rc < 0) {
        finish_failed(x, f->idx, rc);
        return;
    }
    if (x->completing && !fins_busy(x)) complete_files(x);
}

/* File idx was written whole: checked, flushed and renamed — the check of a resumed one's kept
 * prefix and the flush of a large one off the loop when a slot is free (the rename follows in
 * fin_done; until then it counts as done). */
static int finish_file(tallow__xfer *x, size_t idx, const uint8_t *hash)
{
    int rc = tallow__sink_seal(&x->sink, hash);
    if (rc) return rc;
    struct xfer_fin *f = tallow__sink_needs_sync(&x->sink) ? free_fin(x) : NULL;
    if (f) {
        *f = (struct xfer_fin){.x = x, .sink = x->sink, .idx = idx};
        if (tallow__work_start(tallow_ctx_loop(x->ctx), fin_sync, fin_done, f, &f->w) == 0) {
            x->sink.fd = x->sink.dirfd = -1; /* the slot has them now */
            return 0;
        }
    }
    return tallow__sink_publish(&x->sink, tallow__sink_sync(&x->sink));
}

static int on_chunk(tallow__xfer *x, const tallow_msg_Chunk *c)
{
    char b[300];
    if (x->state != X_STREAMING)
        return tallow__xfer_abort(x, TALLOW_EPROTO, "chunk after the transfer ended");
    if (x->resynced && c->file_index < x->next_idx) return 0; /* resent before the resync */
    if (c->file_index >= x->m.n || c->file_index < x->next_idx)
        return tallow__xfer_abort(x, TALLOW_EPROTO,
                                  "peer sent data for an unknown or finished file");
    size_t idx = (size_t)c->file_index;
    tallow__entry *e = &x->m.e[idx];
    if (e->type != TALLOW__ENT_FILE || tallow__xfer_is_skip(x, idx))
        return tallow__xfer_abort(x, TALLOW_EPROTO, "peer sent data for %s, which was not accepted",
                                  tallow__xfer_shown(e->path, b, sizeof(b)));
    if (!x->sink_open || x->sink_idx != idx) {
        if (x->sink_open)
            return tallow__xfer_abort(x, TALLOW_EPROTO, "peer left a file unfinished");
        for (size_t i = x->next_idx; i < idx; i++)
            if (x->m.e[i].type == TALLOW__ENT_FILE && !tallow__xfer_is_skip(x, i))
                return tallow__xfer_abort(x, TALLOW_EPROTO, "peer skipped a file it had to send");
        if (x->kind == TALLOW__XFER_TEXT) {
            x->sink.written = 0;
        } else {
            uint64_t roff = 0;
            int rc = tallow__sink_open(&x->sink, x->destfd, e, x->overwrite, RESUME_ALIGN, &roff);
            if (rc < 0)
                return tallow__xfer_abort(x, rc, "cannot write %s: %s",
                                          tallow__xfer_shown(e->path, b, sizeof(b)),
                                          tallow_strerror(rc));
            if (roff != x->resume[idx]) {
                tallow__sink_abort(&x->sink, 1);
                return tallow__xfer_abort(x, TALLOW_EPROTO,
                                          "partial file of %s changed during the transfer",
                                          tallow__xfer_shown(e->path, b, sizeof(b)));
            }
        }
        x->sink_open = 1;
        x->sink_idx = idx;
    }
    uint64_t have = x->kind == TALLOW__XFER_TEXT ? x->textlen : x->sink.written;
    tallow_bytes data = c->data;
    if (x->resynced && c->offset < have && c->offset + data.len <= have && !c->last) return 0;
    if (x->resynced && c->offset < have && c->offset + data.len >= have) {
        data.ptr += have - c->offset; /* the part we already wrote before the resync */
        data.len -= (size_t)(have - c->offset);
    } else if (c->offset != have) {
        return tallow__xfer_abort(x, TALLOW_EPROTO, "out-of-order data for %s",
                                  tallow__xfer_shown(e->path, b, sizeof(b)));
    }
    if (data.len > e->size - have)
        return tallow__xfer_abort(x, TALLOW_EPROTO, "peer sent more bytes than declared for %s",
                                  tallow__xfer_shown(e->path, b, sizeof(b)));
    if (x->kind == TALLOW__XFER_TEXT) {
        memcpy(x->text + x->textlen, data.ptr, data.len);
        x->textlen += data.len;
    } else if (data.len) {
        int rc = tallow__sink_write(&x->sink, have, data.ptr, data.len);
        if (rc < 0)
            return tallow__xfer_abort(x, rc, "writing %s failed: %s",
                                      tallow__xfer_shown(e->path, b, sizeof(b)),
                                      tallow_strerror(rc));
    }
    x->st.bytes_wire += data.len;
    x->st.bytes_done += data.len;
    if (c->last) {
        have = x->kind == TALLOW__XFER_TEXT ? x->textlen : x->sink.written;
        if (have != e->size)
            return tallow__xfer_abort(x, TALLOW_EPROTO,
                                      "peer sent fewer bytes than declared for %s",
                                      tallow__xfer_shown(e->path, b, sizeof(b)));
        /* a hash comes with (and only with) a prefix kept from an earlier session */
        uint64_t kept = x->kind == TALLOW__XFER_TEXT ? 0 : x->sink.prefix;
        if (kept && c->hash.len != TALLOW__HASH_LEN)
            return tallow__xfer_abort(x, TALLOW_EPROTO, "missing hash of the resumed part of %s",
                                      tallow__xfer_shown(e->path, b, sizeof(b)));
        if (!kept && c->hash.len)
            return tallow__xfer_abort(x, TALLOW_EPROTO,
                                      "unexpected file hash for %s (sent from the start)",
                                      tallow__xfer_shown(e->path, b, sizeof(b)));
        int rc = 0;
        if (x->kind != TALLOW__XFER_TEXT) rc = finish_file(x, idx, kept ? c->hash.ptr : NULL);
        x->sink_open = 0;
        if (rc < 0) return finish_failed(x, idx, rc);
        x->st.files_done++;
        x->next_idx = idx + 1;
    }
    if (tallow__xfer_pos(x, idx, have + data.len) - x->last_ack >= ACK_EVERY || c->last)
        send_ack(x);
    return 0;
}

/* Everything arrived and every file is renamed: directories settle, the destination is flushed
 * (off the loop), then the sender hears it is done. */
static void send_complete(tallow__xfer *x)
{
    if (x->sync_rc < 0) {
        int err = x->sync_rc == -ENOSPC || x->sync_rc == -EDQUOT ? TALLOW_ENOSPACE : x->sync_rc;
        tallow__xfer_abort(x, err, "flushing the destination failed: %s", tallow_strerror(err));
        return;
    }
    tallow_msg_TransferComplete done = {
        .transfer_id = x->tid, .files = x->st.files_done, .bytes = x->st.bytes_done};
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_TransferComplete, &done);
    x->completed = 1;
    tallow__xfer_finish(x,
                        x->st.refused ? (x->refuse_err ? x->refuse_err : TALLOW_EUNSAFEPATH) : 0);
}

static void dest_sync(void *ud)
{
    tallow__xfer *x = ud;
    x->sync_rc = syncfs(x->destfd) < 0 ? -errno : 0;
}

static void dest_synced(void *ud)
{
    tallow__xfer *x = ud;
    x->syncw = NULL;
    send_complete(x);
}

static void complete_files(tallow__xfer *x)
{
    if (x->kind == TALLOW__XFER_FILES)
        for (size_t i = x->m.n; i-- > 0;) /* deepest first: contents settle before parents */
            if (x->m.e[i].type == TALLOW__ENT_DIR && !tallow__xfer_is_skip(x, i))
                tallow__dir_finish(x->destfd, &x->m.e[i]);
    /* everything written reaches the disk before the sender hears it is done */
    x->sync_rc = 0;
    if (x->kind == TALLOW__XFER_FILES && x->destfd >= 0) {
        if (tallow__work_start(tallow_ctx_loop(x->ctx), dest_sync, dest_synced, x, &x->syncw) == 0)
            return;
        dest_sync(x);
    }
    send_complete(x);
}

static int on_sender_complete(tallow__xfer *x)
{
    if (x->completing) return 0; /* said again after a resync: already on it */
    if (x->sink_open)
        return tallow__xfer_abort(x, TALLOW_EPROTO, "transfer ended in the middle of a file");
    for (size_t i = x->next_idx; i < x->m.n; i++)
        if (x->m.e[i].type == TALLOW__ENT_FILE && !tallow__xfer_is_skip(x, i))
            return tallow__xfer_abort(x, TALLOW_EPROTO, "transfer ended before every file arrived");
    x->completing = 1;
    if (!fins_busy(x)) complete_files(x); /* else when the last flush is back (fin_done) */
    return 0;
}

static void forget_accept(tallow__xfer *x)
{
    free(x->acc_resume);
    free(x->acc_refused);
    x->acc_resume = x->acc_refused = NULL;
}

/* The acceptance (x->acc_*: the resume list, then the refusals) in FileAccepts: in parts when
 * long, whole varints of the resume list, then whole refusal pairs; again marks the first part
 * of one said again after a resync. 0 or the session's error. */
static int send_accept(tallow__xfer *x, int again)
{
    const uint8_t *list = x->acc_resume, *rlist = x->acc_refused;
    size_t pos = x->acc_resume_len, rpos = x->acc_refused_len, at = 0, rat = 0;
    tallow_msg_FileAccept fa = {.transfer_id = x->tid, .again = (uint8_t)(again ? 1 : 0)};
    int rc;
    do {
        size_t end = at;
        while (end < pos && end - at < PART) {
            uint64_t v;
            end += (size_t)tallow_varint_get(list + end, pos - end, &v);
        }
        fa.resume = (tallow_bytes){list + at, end - at};
        at = end;
        fa.refused = (tallow_bytes){NULL, 0};
        if (at == pos) {
            size_t rend = rat;
            while (rend < rpos && rend - rat < PART / 2) {
                uint64_t v;
                for (int k = 0; k < 2; k++)
                    rend += (size_t)tallow_varint_get(rlist + rend, rpos - rend, &v);
            }
            fa.refused = (tallow_bytes){rlist + rat, rend - rat};
            rat = rend;
        }
        fa.more = at < pos || rat < rpos;
        rc = tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_FileAccept, &fa);
        fa.again = 0;
    } while (rc >= 0 && (at < pos || rat < rpos));
    return rc < 0 ? rc : 0;
}

/* The session's path came back after a reconnection: frames in flight may be lost. The
 * receiver says where it stands (ResumeInfo); the sender continues from there. */
static void recv_resync(void *ud)
{
    tallow__xfer *x = ud;
    if (x->state == X_DONE) return;
    x->resynced = 1;
    if (x->acc_resume) {
        /* nothing came from the sender since the accept: it may have been lost in flight (a
         * relay that died under it), and a sender still waiting for it could not take the
         * position below. Said again first, every part; a sender that had it all ignores the
         * repeat, one that had some parts starts over (again). */
        send_accept(x, 1);
    }
    tallow_msg_ResumeInfo ri = {.transfer_id = x->tid};
    if (x->sink_open) {
        ri.file_index = x->sink_idx;
        ri.offset = x->kind == TALLOW__XFER_TEXT ? x->textlen : x->sink.written;
    } else {
        ri.file_index = x->next_idx;
        ri.offset = x->next_idx < x->m.n && !tallow__xfer_is_skip(x, x->next_idx)
                        ? x->resume[x->next_idx]
                        : 0;
    }
    x->last_ack = tallow__xfer_pos(x, (size_t)ri.file_index, ri.offset);
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_ResumeInfo, &ri);
}

/* The receiver's message filter: the sender's chunks and its completion. */
static int recv_filter(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    tallow__xfer *x = ud;
    int claimed = tallow__xfer_claim(x, s, t, msg);
    if (claimed != 2) return claimed;
    forget_accept(x); /* the sender speaks: it had the accept */
    switch (t->id) {
    case TALLOW_MSG_Chunk:
        /* after the sender's last word: ignored, as once the transfer is done */
        if (!x->completing) on_chunk(x, msg);
        return 1;
    case TALLOW_MSG_TransferComplete:
        if (x->state != X_STREAMING) break;
        on_sender_complete(x);
        return 1;
    }
    tallow__xfer_abort(x, TALLOW_EPROTO, "unexpected %s from the peer", t->name);
    return 1;
}

int tallow__xfer_recv(tallow__session *s, const tallow_msg_FileOffer *offer, int destfd,
                      int overwrite, const tallow__xfer_cbs *cbs, void *ud, tallow__xfer **out)
{
    tallow__xfer *x = tallow__xfer_new(s, cbs, ud);
    if (!x) return TALLOW_ENOMEM;
    x->tid = offer->transfer_id;
    x->kind = offer->kind;
    x->destfd = destfd;
    x->overwrite = overwrite;
    int rc = tallow__manifest_decode(offer->manifest.ptr, offer->manifest.len, MAX_ENTRIES, &x->m);
    if (rc < 0) {
        tallow_ctx_set_error(x->ctx, "refused the offer: %s", tallow_strerror(rc));
        tallow__xfer_reject(s, x->tid, tallow_strerror(rc));
        tallow__xfer_free(x);
        return rc;
    }
    if (x->kind == TALLOW__XFER_TEXT) {
        if (x->m.n != 1 || x->m.e[0].size > MAX_TEXT) {
            tallow__xfer_reject(s, x->tid, "text too large");
            tallow__xfer_free(x);
            return TALLOW_ETOOBIG;
        }
        x->text = malloc(x->m.e[0].size + 1);
    } else if (x->kind != TALLOW__XFER_FILES) {
        tallow__xfer_reject(s, x->tid, "unknown offer kind");
        tallow__xfer_free(x);
        return TALLOW_EPROTO;
    }
    x->resume = calloc(x->m.n ? x->m.n : 1, sizeof(uint64_t));
    size_t cap = x->m.n * 11 + 1;
    uint8_t *list = malloc(cap), *rlist = malloc(x->m.n * 15 + 1); /* (index, -error) pairs */
    size_t rpos = 0;
    if (!x->resume || !list || !rlist || tallow__xfer_make_prefix(x) < 0 ||
        (x->kind == TALLOW__XFER_TEXT && !x->text)) {
        free(list);
        free(rlist);
        tallow__xfer_free(x);
        return TALLOW_ENOMEM;
    }
    x->st.bytes_total = x->m.total_size;
    x->st.files_total = x->m.nfiles;
    size_t pos = 0;
    char b[300];
    for (size_t i = 0; i < x->m.n; i++) {
        tallow__entry *e = &x->m.e[i];
        uint64_t v = 0;
        if (x->kind == TALLOW__XFER_TEXT) {
            v = 0;
        } else if (e->type == TALLOW__ENT_DIR) {
            rc = tallow__dir_apply(destfd, e);
            if (rc < 0) {
                tallow__xfer_notice(x, "refused %s: %s", tallow__xfer_shown(e->path, b, sizeof(b)),
                                    tallow_strerror(rc));
                x->st.refused++;
                if (!x->refuse_err) x->refuse_err = rc;
                v = 1; /* dirs: 1 marks refused; the sender ignores dirs anyway */
                rpos += tallow_varint_put(rlist + rpos, i);
                rpos += tallow_varint_put(rlist + rpos, (uint64_t)-tallow_err_to_wire(rc));
            }
        } else {
            uint64_t off = 0;
            rc = tallow__sink_probe(x->destfd, e, x->overwrite, RESUME_ALIGN, &off);
            if (rc < 0) {
                tallow__xfer_notice(x, "refused %s: %s", tallow__xfer_shown(e->path, b, sizeof(b)),
                                    tallow_strerror(rc));
                x->st.refused++;
                if (!x->refuse_err) x->refuse_err = rc;
                v = e->size + 1;
                rpos += tallow_varint_put(rlist + rpos, i);
                rpos += tallow_varint_put(rlist + rpos, (uint64_t)-tallow_err_to_wire(rc));
            } else if (rc == 1) {
                v = e->size + 1;
                x->st.files_skipped++;
                x->st.bytes_resumed += e->size;
            } else {
                v = off;
                x->st.bytes_resumed += off;
            }
        }
        x->resume[i] = v;
        pos += tallow_varint_put(list + pos, v);
    }
    x->st.bytes_done = x->st.bytes_resumed;
    /* kept until the sender shows it had them (its first word for the transfer) */
    x->acc_resume = list;
    x->acc_resume_len = pos;
    x->acc_refused = rlist;
    x->acc_refused_len = rpos;
    rc = send_accept(x, 0);
    if (rc < 0) {
        tallow__xfer_free(x);
        return rc;
    }
    x->state = X_STREAMING;
    tallow__xfer_start(x, recv_filter, recv_resync);
    *out = x;
    return 0;
}
