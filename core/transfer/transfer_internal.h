/* core/transfer/transfer_internal.h — what the transfer engine's three files share: the transfer's
 * state (struct tallow__xfer), its constants, and the helpers of core/transfer/transfer.c
 * (lifecycle, progress, errors, the common part of each role's message filter) that transfer_send.c
 * and transfer_recv.c call. Not for use outside the engine. */
#ifndef TALLOW_TRANSFER_INTERNAL_H
#define TALLOW_TRANSFER_INTERNAL_H

#include "transfer.h"
#include "work.h"

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

/* Received files whose check (a resumed file's kept prefix, hashed) and fsync (files of
 * TALLOW__SYNC_EACH bytes or more) run off the loop at once, per transfer (a receiver that waited
 * on the disk in its loop acknowledged nothing meanwhile; over QUIC its sender took that for a
 * dead path). One more waits in the loop. */
#define MAX_FINS 4

/* A received file being flushed off the loop: renamed onto its name when the fsync is back. */
struct xfer_fin {
    struct tallow__xfer *x;
    tallow__work *w; /* NULL: the slot is free */
    tallow__sink sink;
    size_t idx;
    int rc; /* the fsync's result, written by the work's thread */
};

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
    uint64_t *resume;    /* per entry: where to (re)start, or size+1 for "skip" */
    uint64_t *kept;      /* per entry: the prefix the receiver kept from an earlier session */
    size_t accepted;     /* entries the receiver's resume list (FileAccept parts) covered so far */
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
    /* that hash, computed off the loop while the file's new bytes go out; its last chunk waits
     * for it (hash_wait) */
    tallow__work *hashw;
    uint64_t hash_len;
    int hash_rc;
    int hash_wait;
    int file_open;
    int blocked;
    int in_pump;
    uint64_t pos_sent, pos_max, acked; /* stream positions (see stream_pos) */
    int paused;                        /* waiting for the receiver's position after a resync */
    char refused_names[256]; /* the first entries the receiver refused, for the closing error */
    uint64_t refused_named;
    uint64_t refusals_told; /* refusals already told (the acceptance may come again) */
    int refuse_err;         /* receiver: why the first entry was refused (its closing error) */
    /* receiver */
    int destfd;
    int overwrite;
    tallow__sink sink;
    int sink_open;
    size_t sink_idx;
    size_t next_idx; /* files before this index are finished or skipped */
    uint64_t last_ack;
    int resynced;     /* duplicates of data already written are tolerated after a resync */
    int completed;    /* its TransferComplete went out: said again on a resync after the end */
    uint64_t *prefix; /* per entry: bytes of all files before it, in stream order */
    struct xfer_fin fin[MAX_FINS];
    int completing;      /* the sender's TransferComplete came: waiting for fin[] and syncfs */
    tallow__work *syncw; /* the destination's syncfs, off the loop */
    int sync_rc;         /* its result, written by the work's thread */
    /* a one-part FileAccept's lists, kept until the sender's first word for this transfer shows
     * it arrived: a resync before that says it again (it may have been lost with the path) */
    uint8_t *acc_resume, *acc_refused;
    size_t acc_resume_len, acc_refused_len;
};

/* Position of (file i, offset) in the stream of all files: what acks count. */
static inline uint64_t tallow__xfer_pos(const tallow__xfer *x, size_t i, uint64_t off)
{
    return (i < x->m.n ? x->prefix[i] : x->m.total_size) + off;
}

/* Entry i is not sent: the receiver has it whole, or refused it. */
static inline int tallow__xfer_is_skip(const tallow__xfer *x, size_t i)
{
    return x->resume[i] == x->m.e[i].size + 1;
}

/* A transfer on session s (state X_OFFERED, clock started); NULL without memory. */
tallow__xfer *tallow__xfer_new(tallow__session *s, const tallow__xfer_cbs *cbs, void *ud);
/* x->prefix from the manifest: 0 or TALLOW_ENOMEM. */
int tallow__xfer_make_prefix(tallow__xfer *x);
/* Starts the progress timer and the stall watch, and hands the session this role's message
 * filter and resync handler (both get x as ud). */
void tallow__xfer_start(tallow__xfer *x, tallow__session_filter filter, void (*resync)(void *ud));
/* The first step of each role's filter: 0 when the message is not this transfer's (not consumed),
 * 1 when it was handled here (came under another key: aborted; TransferError: ended), 2 when the
 * role must handle it. */
int tallow__xfer_claim(tallow__xfer *x, tallow__session *s, const tallow_msg_type *t,
                       const void *msg);
void tallow__xfer_report(tallow__xfer *x);
/* Ends the transfer once (X_DONE): closes what is open, detaches from the session (a receiver
 * that sent its TransferComplete leaves a record that says it again on a resync), on_done. */
void tallow__xfer_finish(tallow__xfer *x, int status);
/* Wait for the disk work still running off the loop, never reporting it: the receiver's
 * (fin[], syncw: the files it flushed keep their temporary names), the sender's (hashw). For a
 * transfer ending, before its descriptors close. */
void tallow__xfer_recv_stop_work(tallow__xfer *x);
void tallow__xfer_send_stop_work(tallow__xfer *x);
/* Records the message, tells the peer (TransferError), ends the transfer; returns err. */
int tallow__xfer_abort(tallow__xfer *x, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A refusal or warning for the user (on_notice). */
void tallow__xfer_notice(tallow__xfer *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A peer's name made printable into buf. */
const char *tallow__xfer_shown(const char *s, char *buf, size_t cap);

#endif
