/* core/transfer/transfer.c — what the transfer engine's two roles share: a transfer's life (start,
 * stall watch and progress, finish, abort, cancel, free) and the first step of each role's message
 * filter. The roles: transfer_send.c, transfer_recv.c (see transfer.h).
 * The engine as a whole: offer/accept with resume offsets, windowed streaming of chunks under the
 * transfer's own key, a check of each resumed prefix, and the closing handshake. Everything the
 * peer says is checked against the manifest it sent.
 * Integrity: every byte sent in this session is authenticated by the transfer's AEAD records
 * (own key, implicit record numbers, so nothing is dropped, replayed or reordered unnoticed) and
 * placed by offset and size checks against the manifest; the one thing the AEAD cannot vouch for
 * is a prefix the receiver kept from an earlier, interrupted session. For such a file the sender
 * hashes the same prefix of its source (BLAKE2b-256) and puts that hash on the file's last chunk;
 * the receiver compares it with the hash of its kept prefix before the rename. A file sent from
 * offset 0 carries no hash, and a hash on one is refused. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "transfer_internal.h"

int tallow__xfer_make_prefix(tallow__xfer *x)
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

void tallow__xfer_report(tallow__xfer *x)
{
    if (x->cbs->on_progress) x->cbs->on_progress(x, x->ud);
}

static void progress_tick(tallow_timer *t, void *ud)
{
    tallow__xfer *x = ud;
    /* a peer that stops mid-transfer (silent, or hostile) must not hold us forever; waiting for
     * the receiver to accept is a human's time and never times out; nor does a receiver
     * flushing its destination after the sender's last word (it waits on its own disk) */
    if (x->stall_ns && x->state != X_OFFERED && x->state != X_DONE && !x->completing &&
        tallow_now_ns() - x->last_heard_ns > x->stall_ns) {
        tallow__xfer_abort(
            x, TALLOW_ETIMEOUT,
            "nothing from the peer for %llu s: giving up (partial data is kept for resume)",
            (unsigned long long)(x->stall_ns / 1000000000ull));
        return;
    }
    tallow__xfer_report(x);
}

/* What the receiver keeps of a transfer it completed, for as long as the session lives (or until
 * another transfer takes the session's resync hook): its TransferComplete can be lost with a path
 * that dies while it is in flight (a direct path given up; a relay connection broken), and the
 * sender, still waiting for it, resynchronises after the switch back. The answer is the same
 * completion again, as a new record of the transfer's key in the session's current epoch (the
 * session leaves an epoch that carried records before it calls the hook, and never reuses a
 * record number within one): no (key, nonce) is used twice. */
typedef struct finished {
    tallow__session *s;
    uint64_t tid, files, bytes;
} finished;

static void finished_resync(void *ud)
{
    finished *f = ud;
    tallow_msg_TransferComplete done = {
        .transfer_id = f->tid, .files = f->files, .bytes = f->bytes};
    tallow__session_send_tx(f->s, f->tid, &tallow_msgtype_TransferComplete, &done);
}

static void keep_finished(tallow__xfer *x)
{
    finished *f = x->completed ? malloc(sizeof(*f)) : NULL;
    if (!f) { /* nothing to say again (or no memory: the sender's stall watch ends it) */
        tallow__session_set_resync(x->s, NULL, NULL);
        return;
    }
    *f = (finished){x->s, x->tid, x->st.files_done, x->st.bytes_done};
    tallow__session_set_resync_owned(x->s, finished_resync, f, free);
}

/* What a finished transfer's peer says again after a resync that came once we were done is that
 * transfer's, not news for the script: the sender drops a completion said again (it resynced
 * after the first one arrived); the receiver, which stays until the sender hangs up, drops the
 * chunks and the completion of a sender that rewound to the position we said (a relay that
 * reconnects, or fakes it). ud: the transfer's id. */
static int drop_late(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    (void)s;
    uint64_t tid = t->id == TALLOW_MSG_Chunk
                       ? ((const tallow_msg_Chunk *)msg)->transfer_id
                       : ((const tallow_msg_TransferComplete *)msg)->transfer_id;
    return tid == (uint64_t)(uintptr_t)ud;
}

/* Waits for the disk work still off the loop, then closes the open source file or sink. */
static void release_files(tallow__xfer *x)
{
    tallow__xfer_send_stop_work(x);
    tallow__xfer_recv_stop_work(x);
    if (x->file_open && x->fd >= 0) close(x->fd);
    x->file_open = 0;
    if (x->sink_open) tallow__sink_abort(&x->sink, 1);
    x->sink_open = 0;
}

void tallow__xfer_finish(tallow__xfer *x, int status)
{
    if (x->state == X_DONE) return;
    x->state = X_DONE;
    x->st.finished_ns = tallow_now_ns();
    if (x->progress) tallow_timer_stop(x->progress);
    x->progress = NULL;
    release_files(x);
    tallow__session_set_filter(x->s, NULL, NULL);
    keep_finished(x);
    void *tid = (void *)(uintptr_t)x->tid;
    if (x->sender || x->completed)
        tallow__session_on(x->s, TALLOW_MSG_TransferComplete, drop_late, tid);
    if (!x->sender && x->completed) tallow__session_on(x->s, TALLOW_MSG_Chunk, drop_late, tid);
    tallow__xfer_report(x);
    if (x->cbs->on_done) x->cbs->on_done(x, status, x->ud);
}

/* Tells the peer, records the message, ends the transfer. */
int tallow__xfer_abort(tallow__xfer *x, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tallow_ctx_set_error(x->ctx, "%s", msg);
    tallow_msg_TransferError te = {.transfer_id = x->tid, .code = tallow_err_to_wire(err)};
    te.message = (tallow_bytes){(const uint8_t *)msg, strlen(msg)};
    tallow__session_send_tx(x->s, x->tid, &tallow_msgtype_TransferError, &te);
    tallow__xfer_finish(x, err);
    return err;
}

void tallow__xfer_cancel(tallow__xfer *x)
{
    if (!x || x->state == X_DONE) return;
    tallow__xfer_abort(x, TALLOW_ECANCELED, "%s",
                       x->sender ? "the sender cancelled" : "the receiver cancelled");
}

void tallow__xfer_notice(tallow__xfer *x, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (x->cbs->on_notice) x->cbs->on_notice(x, msg, x->ud);
}

const char *tallow__xfer_shown(const char *s, char *buf, size_t cap)
{
    return tallow__printable(s, strlen(s), buf, cap);
}

/* ================================================================ filter, common part */

int tallow__xfer_claim(tallow__xfer *x, tallow__session *s, const tallow_msg_type *t,
                       const void *msg)
{
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
        tallow__xfer_abort(x, TALLOW_EPROTO, "%s for this transfer came under another key",
                           t->name);
        return 1;
    }
    x->last_heard_ns = tallow_now_ns();      /* the stall watch counts from the peer's last word */
    if (t->id == TALLOW_MSG_TransferError) { /* either role, any state */
        const tallow_msg_TransferError *te = msg;
        char reason[300];
        int code = tallow_err_from_wire(te->code);
        tallow_ctx_set_error(x->ctx,
                             code == TALLOW_ECANCELED ? "%s" : "the peer stopped the transfer: %s",
                             tallow__printable((const char *)te->message.ptr, te->message.len,
                                               reason, sizeof(reason)));
        tallow__xfer_finish(x, code);
        return 1;
    }
    return 2;
}

/* ================================================================ lifecycle */

tallow__xfer *tallow__xfer_new(tallow__session *s, const tallow__xfer_cbs *cbs, void *ud)
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

void tallow__xfer_start(tallow__xfer *x, tallow__session_filter filter, void (*resync)(void *ud))
{
    const char *env = getenv("TALLOW_STALL_TIMEOUT"); /* seconds; 0 turns it off */
    x->stall_ns = (uint64_t)(env && *env ? strtoull(env, NULL, 10) : 120) * 1000000000ull;
    x->last_heard_ns = tallow_now_ns();
    x->progress = tallow_timer_start(tallow_ctx_loop(x->ctx), 100, 100, progress_tick, x);
    tallow__session_set_filter(x->s, filter, x);
    tallow__session_set_resync(x->s, resync, x);
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
    release_files(x);
    if (x->s && x->state != X_DONE) {
        tallow__session_set_filter(x->s, NULL, NULL);
        tallow__session_set_resync(x->s, NULL, NULL);
    }
    tallow__manifest_free(&x->m);
    free(x->resume);
    free(x->kept);
    free(x->prefix);
    free(x->acc_resume);
    free(x->acc_refused);
    /* plaintext: the text sent or received */
    if (x->text) sodium_memzero(x->text, x->textlen);
    free(x->text);
    free(x);
}
