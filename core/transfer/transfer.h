/* core/transfer/transfer.h — the transfer engine: one offer (files, folders or text) streamed over
 * a session. The sender starts at once and hashes while sending; the receiver writes each file to
 * a temporary name, verifies its BLAKE2b hash, then renames it. A sliding window of bytes in
 * flight (acknowledged by the receiver) keeps the pipe full without unbounded buffering; resume
 * offsets from the receiver skip what it already holds verified. The sender is transfer_send.c, the
 * receiver transfer_recv.c, what both share transfer.c (state in transfer_internal.h). */
#ifndef TALLOW_TRANSFER_H
#define TALLOW_TRANSFER_H

#include "fsutil.h"
#include "session.h"

typedef struct tallow__xfer tallow__xfer;

enum tallow__xfer_kind { TALLOW__XFER_FILES = 0, TALLOW__XFER_TEXT = 1 };

typedef struct tallow__xfer_stats {
    uint64_t bytes_total;   /* bytes of all files in the offer */
    uint64_t bytes_done;    /* bytes sent (acked) / written and verified so far, resumed included */
    uint64_t bytes_resumed; /* bytes not sent because the receiver had them */
    uint64_t bytes_wire;    /* file bytes that crossed the network in this run */
    uint64_t files_total, files_done, files_skipped, refused;
    uint64_t started_ns, finished_ns;
} tallow__xfer_stats;

typedef struct tallow__xfer_cbs {
    void (*on_progress)(tallow__xfer *x, void *ud); /* at most every 100 ms, and at the end */
    /* A refusal or warning worth telling the user; msg is printable (escaped). */
    void (*on_notice)(tallow__xfer *x, const char *msg, void *ud);
    /* The transfer ended: 0, or an error (details in tallow_ctx_last_error). Once. */
    void (*on_done)(tallow__xfer *x, int status, void *ud);
} tallow__xfer_cbs;

/* Sender. Takes ownership of *m (moved out and zeroed). text/textlen instead of files when
 * non-NULL (kind TEXT, copied). Returns 0 (callbacks follow) or a negative error. */
int tallow__xfer_send(tallow__session *s, tallow__manifest *m, const char *text, size_t textlen,
                      const tallow__xfer_cbs *cbs, void *ud, tallow__xfer **out);
/* Receiver, for an offer already received (borrowed for the call). destfd is borrowed for the
 * transfer's life. */
int tallow__xfer_recv(tallow__session *s, const tallow_msg_FileOffer *offer, int destfd,
                      int overwrite, const tallow__xfer_cbs *cbs, void *ud, tallow__xfer **out);
/* Stops a running transfer because the user cancelled it (Ctrl-C, SIGTERM): the peer is told
 * ("the sender cancelled" / "the receiver cancelled", TALLOW_ECANCELED) and on_done follows with
 * TALLOW_ECANCELED. Nothing when the transfer already ended. */
void tallow__xfer_cancel(tallow__xfer *x);
/* Rejects an offer (sends FileReject with reason). */
int tallow__xfer_reject(tallow__session *s, uint64_t transfer_id, const char *reason);
void tallow__xfer_get_stats(const tallow__xfer *x, tallow__xfer_stats *st);
/* Received text (TEXT kind), borrowed until free. */
const char *tallow__xfer_text(const tallow__xfer *x, size_t *len);
/* The path the session uses now ("relay ..."/"direct ...") for progress lines. */
void tallow__xfer_path(const tallow__xfer *x, char *out, size_t cap);
/* Pumps the sender after the session became writable (called by the session's owner). */
void tallow__xfer_writable(tallow__xfer *x);
/* Stops and frees; partial files are kept for resume. */
void tallow__xfer_free(tallow__xfer *x);

#endif
