/* core/transfer.c — the transfer engine (see transfer.h): offer/accept with resume offsets,
 * windowed streaming of chunks under the transfer's own key, a check of each resumed prefix, and
 * the closing handshake. Everything the peer says is checked against the manifest it sent.
 * Integrity: every byte sent in this session is authenticated by the transfer's AEAD records
 * (own key, implicit record numbers, so nothing is dropped, replayed or reordered unnoticed) and
 * placed by offset and size checks against the manifest; the one thing the AEAD cannot vouch for
 * is a prefix the receiver kept from an earlier, interrupted session. For such a file the sender
 * hashes the same prefix of its source (BLAKE2b-256) and puts that hash on the file's last chunk;
 * the receiver compares it with the hash of its kept prefix before the rename. A file sent from
 * offset 0 carries no hash, and a hash on one is refused. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "transfer.h"

/* Data per Chunk. 512 KiB and 1 MiB were measured on the relay path: no better for the sender,
 * and the receiver's kernel time doubled (1 GiB: 0.37 -> 1.04 s system), so 256 KiB it stays. */
#define CHUNK (256u * 1024u)
#define WINDOW (32u * 1024u * 1024u)
#define ACK_EVERY (4u * 1024u * 1024u)
#define RESUME_ALIGN (1u * 1024u * 1024u)
#define MAX_TEXT (64u * 1024u * 1024u)
#define MAX_ENTRIES TALLOW__MANIFEST_MAX_ENTRIES
#define PART TALLOW__MANIFEST_PART /* manifests and resume lists longer than this go in parts */

enum { X_OFFERED, X_STREAMING, X_FINISHING, X_DONE };

struct tallow__xfer {
    tallow__session *s;
    tallow_ctx *ctx;
    const tallow__xfer_cbs *cbs;
    void *ud;
    int sender;
    int state;
    uint64_t tid;
    uint32_t kind;
    tallow__manifest m;
    uint64_t *resume; /* per entry: where to (re)start, or size+1 for "skip" */
    uint64_t *kept;   /* per entry: the prefix the receiver kept from an earlier session */
    size_t accepted;  /* entries the receiver's resume list (FileAccept parts) covered so far */
    size_t refused_from; /* sender: the next refusal must name an entry at or after this */
    uint8_t *text;
    size_t textlen;
    tallow__xfer_stats st;
    tallow_timer *progress;
    uint64_t last_heard_ns; /* the peer's last message for this transfer */
    uint64_t stall_ns;      /* give up after this long without one while data should flow */
    /* sender */
    size_t cur;
    int fd;
    uint64_t off;
    uint8_t digest[TALLOW__HASH_LEN]; /* hash of the current file's kept prefix, when kept > 0 */
    int file_open;
    int blocked;
    int in_pump;
    uint64_t pos_sent, pos_max, acked; /* stream positions (see stream_pos) */
    int paused;                        /* waiting for the receiver's position after a resync */
    char refused_names[256]; /* the first entries the receiver refused, for the closing error */
    uint64_t refused_named;
    int refuse_err; /* receiver: why the first entry was refused (its closing error) */
    /* receiver */
    int destfd;
    int overwrite;
    tallow__sink sink;
    int sink_open;
    size_t sink_idx;
    size_t next_idx; /* files before this index are finished or skipped */
    uint64_t last_ack;
    int resynced; /* duplicates of data already written are tolerated after a resync */
    uint64_t *prefix; /* per entry: bytes of all files before it, in stream order */
};

/* Position of (file i, offset) in the stream of all files: what acks count. */
static uint64_t stream_pos(const tallow__xfer *x, size_t i, uint64_t off)
{
    return (i < x->m.n ? x->prefix[i] : x->m.total_size) + off;
}

static int make_prefix(tallow__xfer *x)
{
    x->prefix = calloc(x->m.n ? x->m.n : 1, sizeof(uint64_t));
    if (!x->prefix) return TALLOW_ENOMEM;
    uint64_t sum = 0;
    for (size_t i = 0; i < x->m.n; i++) {
        x->prefix[i] = sum;
        if (x->m.e[i].type == TALLOW__ENT_FILE) sum += x->m.e[i].size;
    }
    return 0;
}

static int is_skip(const tallow__xfer *x, size_t i)
{
    return x->resume[i] == x->m.e[i].size + 1;
}

static void report_progress(tallow__xfer *x)
{
    if (x->cbs->on_progress) x->cbs->on_progress(x, x->ud);
}

static void abort_with(tallow__xfer *x, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void progress_tick(tallow_timer *t, void *ud)
{
    tallow__xfer *x = ud;
    /* a peer that stops mid-transfer (silent, or hostile) must not hold us forever; waiting for
     * the receiver to accept is a human's time and never times out */
    if (x->stall_ns && x->state != X_OFFERED && x->state != X_DONE &&
        tallow_now_ns() - x->last_heard_ns > x->stall_ns) {
        abort_with(x, TALLOW_ETIMEOUT, "nothing from the peer for %llu s: giving up (partial data is kept for resume)",
                   (unsigned long long)(x->stall_ns / 1000000000ull));
        return;
    }
    report_progress(x);
}

static void finish(tallow__xfer *x, int status)
{
    if (x->state == X_DONE) return;
    x->state = X_DONE;
    x->st.finished_ns = tallow_now_ns();
    if (x->progress) tallow_timer_stop(x->progress);
    x->progress = NULL;
    if (x->file_open) close(x->fd);
    x->file_open = 0;
    if (x->sink_open) tallow__sink_abort(&x->sink, 1);
    x->sink_open = 0;
    tallow__session_set_filter(x->s, NULL, NULL);
    tallow__session_set_resync(x->s, NULL, NULL);
    report_progress(x);
    if (x->cbs->on_done) x->cbs->on_done(x, status, x->ud);
}

/* Tells the peer, records the message, ends the transfer. */
static void abort_with(tallow__xfer *x, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tallow_ctx_set_error(x->ctx, "%s", msg);
    tallow_msg_TransferError te = {.transfer_id = x->tid, .code = err};
    te.message = (tallow_bytes){(const uint8_t *)msg, strlen(msg)};
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_TransferError, &te);
    finish(x, err);
}

void tallow__xfer_cancel(tallow__xfer *x)
{
    if (!x || x->state == X_DONE) return;
    abort_with(x, TALLOW_ECANCELED, "%s",
               x->sender ? "the sender cancelled" : "the receiver cancelled");
}

static void notice(tallow__xfer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(tallow__xfer *x, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (x->cbs->on_notice) x->cbs->on_notice(x, msg, x->ud);
}

static const char *shown(const char *s, char *buf, size_t cap)
{
    return tallow__printable(s, strlen(s), buf, cap);
}

/* ================================================================ sender */

static void pump(tallow__xfer *x);

static int send_chunk(tallow__xfer *x)
{
    tallow__entry *e = &x->m.e[x->cur];
    if (!x->file_open) {
        x->off = x->resume[x->cur];
        if (x->kind == TALLOW__XFER_TEXT) {
            x->fd = -1;
        } else {
            int rc = tallow__source_open(e, &x->fd);
            if (rc < 0) {
                char b[300];
                abort_with(x, rc, "cannot read %s: %s", shown(e->path, b, sizeof(b)),
                           tallow_strerror(rc));
                return rc;
            }
            posix_fadvise(x->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
            /* the receiver kept a prefix from an earlier session: hash the same bytes here,
             * locally, so it can check them (the hash goes on the last chunk) */
            if (x->kept[x->cur] && tallow__hash_prefix(x->fd, x->kept[x->cur], x->digest) != 0) {
                abort_with(x, TALLOW_EHASH, "source changed while resuming");
                return TALLOW_EHASH;
            }
        }
        x->file_open = 1;
    }
    size_t n = e->size - x->off < CHUNK ? (size_t)(e->size - x->off) : CHUNK;
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
            abort_with(x, TALLOW_ETOOBIG, "chunk too large for the session");
            return TALLOW_ETOOBIG;
        }
        if (x->kind == TALLOW__XFER_TEXT) {
            memcpy(spot, x->text + x->off, n);
        } else {
            ssize_t got = pread(x->fd, spot, n, (off_t)x->off);
            if (got != (ssize_t)n) {
                char b[300];
                abort_with(x, TALLOW_EHASH, "%s changed or shrank while sending",
                           shown(e->path, b, sizeof(b)));
                return TALLOW_EHASH;
            }
        }
        c.data.ptr = spot;
    }
    x->off += n;
    int rc = tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_Chunk, &c);
    if (rc < 0) {
        abort_with(x, rc, "sending failed: %s", tallow_strerror(rc));
        return rc;
    }
    x->pos_sent = stream_pos(x, x->cur, x->off);
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
    while (x->state == X_STREAMING && !x->blocked && !x->paused &&
           (x->pos_sent <= x->acked || x->pos_sent - x->acked < WINDOW)) {
        while (x->cur < x->m.n && (x->m.e[x->cur].type == TALLOW__ENT_DIR || is_skip(x, x->cur)))
            x->cur++;
        if (x->cur >= x->m.n) {
            tallow_msg_TransferComplete tc = {.transfer_id = x->tid,
                                              .files = x->m.nfiles,
                                              .bytes = x->m.total_size};
            int rc = tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_TransferComplete, &tc);
            if (rc < 0) {
                abort_with(x, rc, "sending failed: %s", tallow_strerror(rc));
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
    int code = err > 0 && err < 2000 ? -(int)err : TALLOW_EPROTO;
    shown(e->path, b, sizeof(b));
    notice(x, "the receiver refused %s%s: %s", b, dir, tallow_strerror(code));
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
    x->kept[i] = is_skip(x, i) ? 0 : x->resume[i];
    if (x->m.e[i].type == TALLOW__ENT_FILE) {
        uint64_t had = is_skip(x, i) ? x->m.e[i].size : v;
        x->st.bytes_resumed += had;
        if (is_skip(x, i)) x->st.files_skipped++;
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
        if (!is_skip(x, i)) return TALLOW_EPROTO;
        x->st.bytes_resumed -= e->size;
        x->st.files_skipped--;
    }
    x->refused_from = (size_t)i + 1;
    note_refused(x, (size_t)i, err);
    return 0;
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

/* ================================================================ receiver */

static void send_ack(tallow__xfer *x)
{
    uint64_t pos = x->sink_open ? stream_pos(x, x->sink_idx, x->kind == TALLOW__XFER_TEXT
                                                                 ? x->textlen
                                                                 : x->sink.written)
                                : stream_pos(x, x->next_idx, 0);
    tallow_msg_Ack a = {.transfer_id = x->tid, .bytes = pos, .file_index = x->sink_idx};
    x->last_ack = pos;
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_Ack, &a);
}

static void on_chunk(tallow__xfer *x, const tallow_msg_Chunk *c)
{
    char b[300];
    if (x->state != X_STREAMING) return abort_with(x, TALLOW_EPROTO, "chunk after the transfer ended");
    if (x->resynced && c->file_index < x->next_idx) return; /* resent before the resync */
    if (c->file_index >= x->m.n || c->file_index < x->next_idx)
        return abort_with(x, TALLOW_EPROTO, "peer sent data for an unknown or finished file");
    size_t idx = (size_t)c->file_index;
    tallow__entry *e = &x->m.e[idx];
    if (e->type != TALLOW__ENT_FILE || is_skip(x, idx))
        return abort_with(x, TALLOW_EPROTO, "peer sent data for %s, which was not accepted",
                          shown(e->path, b, sizeof(b)));
    if (!x->sink_open || x->sink_idx != idx) {
        if (x->sink_open) return abort_with(x, TALLOW_EPROTO, "peer left a file unfinished");
        for (size_t i = x->next_idx; i < idx; i++)
            if (x->m.e[i].type == TALLOW__ENT_FILE && !is_skip(x, i))
                return abort_with(x, TALLOW_EPROTO, "peer skipped a file it had to send");
        if (x->kind == TALLOW__XFER_TEXT) {
            x->sink.written = 0;
        } else {
            uint64_t roff = 0;
            int rc = tallow__sink_open(&x->sink, x->destfd, e, x->overwrite, RESUME_ALIGN, &roff);
            if (rc < 0)
                return abort_with(x, rc, "cannot write %s: %s", shown(e->path, b, sizeof(b)),
                                  tallow_strerror(rc));
            if (roff != x->resume[idx]) {
                tallow__sink_abort(&x->sink, 1);
                return abort_with(x, TALLOW_EPROTO, "partial file of %s changed during the transfer",
                                  shown(e->path, b, sizeof(b)));
            }
        }
        x->sink_open = 1;
        x->sink_idx = idx;
    }
    uint64_t have = x->kind == TALLOW__XFER_TEXT ? x->textlen : x->sink.written;
    tallow_bytes data = c->data;
    if (x->resynced && c->offset < have && c->offset + data.len <= have && !c->last) return;
    if (x->resynced && c->offset < have && c->offset + data.len >= have) {
        data.ptr += have - c->offset; /* the part we already wrote before the resync */
        data.len -= (size_t)(have - c->offset);
    } else if (c->offset != have) {
        return abort_with(x, TALLOW_EPROTO, "out-of-order data for %s", shown(e->path, b, sizeof(b)));
    }
    if (data.len > e->size - have)
        return abort_with(x, TALLOW_EPROTO, "peer sent more bytes than declared for %s",
                          shown(e->path, b, sizeof(b)));
    if (x->kind == TALLOW__XFER_TEXT) {
        memcpy(x->text + x->textlen, data.ptr, data.len);
        x->textlen += data.len;
    } else if (data.len) {
        int rc = tallow__sink_write(&x->sink, have, data.ptr, data.len);
        if (rc < 0)
            return abort_with(x, rc, "writing %s failed: %s", shown(e->path, b, sizeof(b)),
                              tallow_strerror(rc));
    }
    x->st.bytes_wire += data.len;
    x->st.bytes_done += data.len;
    if (c->last) {
        have = x->kind == TALLOW__XFER_TEXT ? x->textlen : x->sink.written;
        if (have != e->size)
            return abort_with(x, TALLOW_EPROTO, "peer sent fewer bytes than declared for %s",
                              shown(e->path, b, sizeof(b)));
        /* a hash comes with (and only with) a prefix kept from an earlier session */
        uint64_t kept = x->kind == TALLOW__XFER_TEXT ? 0 : x->sink.prefix;
        if (kept && c->hash.len != TALLOW__HASH_LEN)
            return abort_with(x, TALLOW_EPROTO, "missing hash of the resumed part of %s",
                              shown(e->path, b, sizeof(b)));
        if (!kept && c->hash.len)
            return abort_with(x, TALLOW_EPROTO, "unexpected file hash for %s (sent from the start)",
                              shown(e->path, b, sizeof(b)));
        int rc = 0;
        if (x->kind != TALLOW__XFER_TEXT)
            rc = tallow__sink_finish(&x->sink, kept ? c->hash.ptr : NULL);
        x->sink_open = 0;
        if (rc == TALLOW_EHASH)
            return abort_with(x, rc,
                              "%s: integrity check failed: the part kept from the interrupted "
                              "transfer does not match the source (changed since, or damaged); "
                              "partial copy removed, send again",
                              shown(e->path, b, sizeof(b)));
        if (rc < 0)
            return abort_with(x, rc, "%s: %s", shown(e->path, b, sizeof(b)), tallow_strerror(rc));
        x->st.files_done++;
        x->next_idx = idx + 1;
    }
    if (stream_pos(x, idx, have + data.len) - x->last_ack >= ACK_EVERY || c->last) send_ack(x);
}

static void on_sender_complete(tallow__xfer *x, const tallow_msg_TransferComplete *tc)
{
    if (x->sink_open) return abort_with(x, TALLOW_EPROTO, "transfer ended in the middle of a file");
    for (size_t i = x->next_idx; i < x->m.n; i++)
        if (x->m.e[i].type == TALLOW__ENT_FILE && !is_skip(x, i))
            return abort_with(x, TALLOW_EPROTO, "transfer ended before every file arrived");
    if (x->kind == TALLOW__XFER_FILES)
        for (size_t i = x->m.n; i-- > 0;) /* deepest first: contents settle before parents */
            if (x->m.e[i].type == TALLOW__ENT_DIR && !is_skip(x, i))
                tallow__dir_finish(x->destfd, &x->m.e[i]);
    /* everything written reaches the disk before the sender hears it is done */
    if (x->kind == TALLOW__XFER_FILES && x->destfd >= 0 && syncfs(x->destfd) < 0) {
        int err = errno == ENOSPC || errno == EDQUOT ? TALLOW_ENOSPACE : -errno;
        return abort_with(x, err, "flushing the destination failed: %s", tallow_strerror(err));
    }
    tallow_msg_TransferComplete done = {.transfer_id = x->tid, .files = x->st.files_done,
                                        .bytes = x->st.bytes_done};
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_TransferComplete, &done);
    finish(x, x->st.refused ? (x->refuse_err ? x->refuse_err : TALLOW_EUNSAFEPATH) : 0);
}

/* ================================================================ resync */

/* The session's path came back after a reconnection: frames in flight may be lost. The
 * receiver says where it stands; the sender waits for that and continues from there. */
static void on_resync(void *ud)
{
    tallow__xfer *x = ud;
    if (x->state == X_DONE) return;
    if (x->sender) {
        if (x->state != X_OFFERED) x->paused = 1;
        return;
    }
    x->resynced = 1;
    tallow_msg_ResumeInfo ri = {.transfer_id = x->tid};
    if (x->sink_open) {
        ri.file_index = x->sink_idx;
        ri.offset = x->kind == TALLOW__XFER_TEXT ? x->textlen : x->sink.written;
    } else {
        ri.file_index = x->next_idx;
        ri.offset = x->next_idx < x->m.n && !is_skip(x, x->next_idx) ? x->resume[x->next_idx] : 0;
    }
    x->last_ack = stream_pos(x, (size_t)ri.file_index, ri.offset);
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_ResumeInfo, &ri);
}

static int on_resume_info(tallow__xfer *x, const tallow_msg_ResumeInfo *ri)
{
    if (ri->file_index > x->m.n) return TALLOW_EPROTO;
    size_t i = (size_t)ri->file_index;
    if (i < x->m.n && x->m.e[i].type == TALLOW__ENT_FILE && !is_skip(x, i)) {
        if (ri->offset > x->m.e[i].size) return TALLOW_EPROTO;
        x->resume[i] = ri->offset;
    }
    if (x->file_open && x->fd >= 0) close(x->fd);
    x->file_open = 0;
    x->cur = i;
    x->acked = stream_pos(x, i, i < x->m.n && !is_skip(x, i) ? x->resume[i] : 0);
    x->pos_sent = x->acked;
    x->paused = 0;
    x->blocked = 0;
    x->state = X_STREAMING; /* a TransferComplete lost in flight is sent again */
    pump(x);
    return 0;
}

/* ================================================================ shared */

static int filter(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    tallow__xfer *x = ud;
    uint64_t tid;
    switch (t->id) {
    case TALLOW_MSG_FileAccept:
    case TALLOW_MSG_FileReject:
    case TALLOW_MSG_Chunk:
    case TALLOW_MSG_Ack:
    case TALLOW_MSG_TransferComplete:
    case TALLOW_MSG_TransferError:
    case TALLOW_MSG_ResumeInfo:
        memcpy(&tid, msg, sizeof(tid)); /* transfer_id is the first field of each */
        break;
    default:
        return 0;
    }
    if (tid != x->tid || x->state == X_DONE) return 0;
    if (tallow__session_rx_key(s) != x->tid) {
        abort_with(x, TALLOW_EPROTO, "%s for this transfer came under another key", t->name);
        return 1;
    }
    char reason[300];
    switch (t->id) {
    case TALLOW_MSG_FileAccept:
        if (!x->sender || x->state != X_OFFERED) break;
        /* the clock (rate, seconds) starts when the receiver said yes, not while it was asked */
        x->st.started_ns = tallow_now_ns();
        if (on_accept(x, msg) < 0) abort_with(x, TALLOW_EPROTO, "malformed resume list from the peer");
        return 1;
    case TALLOW_MSG_FileReject: {
        const tallow_msg_FileReject *r = msg;
        if (!x->sender || x->state != X_OFFERED) break;
        tallow_ctx_set_error(x->ctx, "the receiver declined%s%s", r->reason.len ? ": " : "",
                             r->reason.len ? tallow__printable((const char *)r->reason.ptr,
                                                               r->reason.len, reason, sizeof(reason))
                                           : "");
        finish(x, TALLOW_EREJECTED);
        return 1;
    }
    case TALLOW_MSG_Chunk:
        if (x->sender) break;
        on_chunk(x, msg);
        return 1;
    case TALLOW_MSG_Ack: {
        const tallow_msg_Ack *a = msg;
        if (!x->sender) break;
        if (a->bytes > x->pos_max) {
            abort_with(x, TALLOW_EPROTO, "acknowledgement for bytes never sent");
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
        if (x->sender) {
            if (x->state != X_FINISHING) break;
            /* the accept list named what the receiver refused; a receiver from before that
             * list is caught by its final byte count (except for refused empty files) */
            const tallow_msg_TransferComplete *rtc = msg;
            if (x->st.refused) {
                uint64_t more = x->st.refused - x->refused_named;
                char tail[48] = "";
                if (more)
                    snprintf(tail, sizeof(tail), "%s%llu %s", x->refused_named ? " and " : "",
                             (unsigned long long)more,
                             x->refused_named ? "more" : more == 1 ? "entry" : "entries");
                tallow_ctx_set_error(x->ctx, "the receiver refused %s%s", x->refused_names, tail);
                finish(x, TALLOW_EREJECTED);
                return 1;
            }
            if (rtc->bytes < x->st.bytes_total) {
                tallow_ctx_set_error(x->ctx, "the receiver refused some files: %llu of %llu bytes "
                                     "were not written",
                                     (unsigned long long)(x->st.bytes_total - rtc->bytes),
                                     (unsigned long long)x->st.bytes_total);
                finish(x, TALLOW_EREJECTED);
                return 1;
            }
            x->st.files_done = x->m.nfiles;
            x->st.bytes_done = x->st.bytes_total;
            finish(x, 0);
        } else {
            if (x->state != X_STREAMING) break;
            on_sender_complete(x, msg);
        }
        return 1;
    case TALLOW_MSG_ResumeInfo:
        if (!x->sender || x->state == X_OFFERED) break;
        if (on_resume_info(x, msg) < 0) abort_with(x, TALLOW_EPROTO, "malformed resume position");
        return 1;
    case TALLOW_MSG_TransferError: {
        const tallow_msg_TransferError *te = msg;
        tallow_ctx_set_error(
            x->ctx, te->code == TALLOW_ECANCELED ? "%s" : "the peer stopped the transfer: %s",
            tallow__printable((const char *)te->message.ptr, te->message.len, reason,
                              sizeof(reason)));
        int code = te->code < 0 && te->code > -2000 ? (int)te->code : TALLOW_EPROTO;
        finish(x, code);
        return 1;
    }
    }
    abort_with(x, TALLOW_EPROTO, "unexpected %s from the peer", t->name);
    return 1;
}

static tallow__xfer *xfer_new(tallow__session *s, const tallow__xfer_cbs *cbs, void *ud)
{
    tallow__xfer *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->s = s;
    x->ctx = tallow__session_ctx(s);
    x->cbs = cbs;
    x->ud = ud;
    x->fd = -1;
    x->destfd = -1;
    x->st.started_ns = tallow_now_ns();
    return x;
}

static void start_progress(tallow__xfer *x)
{
    const char *env = getenv("TALLOW_STALL_TIMEOUT"); /* seconds; 0 turns it off */
    x->stall_ns = (uint64_t)(env && *env ? strtoull(env, NULL, 10) : 120) * 1000000000ull;
    x->last_heard_ns = tallow_now_ns();
    x->progress = tallow_timer_start(tallow_ctx_loop(x->ctx), 100, 100, progress_tick, x);
    tallow__session_set_filter(x->s, filter, x);
    tallow__session_set_resync(x->s, on_resync, x);
}

int tallow__xfer_send(tallow__session *s, tallow__manifest *m, const char *text, size_t textlen,
                      const tallow__xfer_cbs *cbs, void *ud, tallow__xfer **out)
{
    tallow__xfer *x = xfer_new(s, cbs, ud);
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
    if (!x->resume || !x->kept || make_prefix(x) < 0) goto fail;
    randombytes_buf(&x->tid, sizeof(x->tid));
    x->tid &= 0x7fffffffffffffffull; /* fits a Lua integer */
    x->st.bytes_total = x->m.total_size;
    x->st.files_total = x->m.nfiles;

    uint8_t *enc = NULL;
    size_t enclen = 0;
    rc = tallow__manifest_encode(&x->m, &enc, &enclen);
    if (rc < 0) goto fail;
    tallow_msg_FileOffer fo = {.transfer_id = x->tid, .kind = x->kind, .count = x->m.n,
                               .total_size = x->m.total_size};
    size_t at = 0;
    do { /* in parts when long: the receiver joins them (core/offer_parts.c) */
        size_t n = enclen - at < PART ? enclen - at : PART;
        fo.manifest = (tallow_bytes){enc + at, n};
        at += n;
        fo.more = at < enclen;
        rc = tallow__session_send_tx(s, x->tid, &tallow_msgtype_FileOffer, &fo);
    } while (rc >= 0 && at < enclen);
    free(enc);
    if (rc < 0) goto fail;
    x->state = X_OFFERED;
    start_progress(x);
    *out = x;
    return 0;
fail:
    tallow__xfer_free(x);
    return rc;
}

int tallow__xfer_recv(tallow__session *s, const tallow_msg_FileOffer *offer, int destfd,
                      int overwrite, const tallow__xfer_cbs *cbs, void *ud, tallow__xfer **out)
{
    tallow__xfer *x = xfer_new(s, cbs, ud);
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
    if (!x->resume || !list || !rlist || make_prefix(x) < 0 ||
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
                notice(x, "refused %s: %s", shown(e->path, b, sizeof(b)), tallow_strerror(rc));
                x->st.refused++;
                if (!x->refuse_err) x->refuse_err = rc;
                v = 1; /* dirs: 1 marks refused; the sender ignores dirs anyway */
                rpos += tallow_varint_put(rlist + rpos, i);
                rpos += tallow_varint_put(rlist + rpos, (uint64_t)-(int64_t)rc);
            }
        } else {
            uint64_t off = 0;
            rc = tallow__sink_probe(x->destfd, e, x->overwrite, RESUME_ALIGN, &off);
            if (rc < 0) {
                notice(x, "refused %s: %s", shown(e->path, b, sizeof(b)), tallow_strerror(rc));
                x->st.refused++;
                if (!x->refuse_err) x->refuse_err = rc;
                v = e->size + 1;
                rpos += tallow_varint_put(rlist + rpos, i);
                rpos += tallow_varint_put(rlist + rpos, (uint64_t)-(int64_t)rc);
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
    tallow_msg_FileAccept fa = {.transfer_id = x->tid};
    size_t at = 0, rat = 0;
    do { /* in parts when long: whole varints of the resume list, then whole refusal pairs */
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
        rc = tallow__session_send_tx(s, x->tid, &tallow_msgtype_FileAccept, &fa);
    } while (rc >= 0 && (at < pos || rat < rpos));
    free(list);
    free(rlist);
    if (rc < 0) {
        tallow__xfer_free(x);
        return rc;
    }
    x->state = X_STREAMING;
    start_progress(x);
    *out = x;
    return 0;
}

int tallow__xfer_reject(tallow__session *s, uint64_t tid, const char *reason)
{
    tallow_msg_FileReject r = {.transfer_id = tid};
    r.reason = (tallow_bytes){(const uint8_t *)reason, strlen(reason)};
    return tallow__session_send_tx(s, tid, &tallow_msgtype_FileReject, &r);
}

void tallow__xfer_get_stats(const tallow__xfer *x, tallow__xfer_stats *st)
{
    *st = x->st;
}

const char *tallow__xfer_text(const tallow__xfer *x, size_t *len)
{
    *len = x->textlen;
    return (const char *)x->text;
}

void tallow__xfer_path(const tallow__xfer *x, char *out, size_t cap)
{
    tallow_channel_info info;
    tallow__session_info(x->s, &info);
    snprintf(out, cap, "%s", info.direct ? "direct" : "relay");
}

void tallow__xfer_free(tallow__xfer *x)
{
    if (!x) return;
    if (x->progress) tallow_timer_stop(x->progress);
    if (x->file_open && x->fd >= 0) close(x->fd);
    if (x->sink_open) tallow__sink_abort(&x->sink, 1);
    if (x->s && x->state != X_DONE) {
        tallow__session_set_filter(x->s, NULL, NULL);
        tallow__session_set_resync(x->s, NULL, NULL);
    }
    tallow__manifest_free(&x->m);
    free(x->resume);
    free(x->kept);
    free(x->prefix);
    /* plaintext: the text sent or received */
    if (x->text) sodium_memzero(x->text, x->textlen);
    free(x->text);
    free(x);
}
