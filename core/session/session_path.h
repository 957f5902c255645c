/* core/session/session_path.h — what the session offers the owner of a second path (the direct-path
 * negotiator, core/negotiate*.c), and the table through which the session reaches that owner.
 * The owner includes this header; the session never includes the owner's: the session knows
 * only the table below, given in its params (tallow__session_params.path_owner).
 *
 * The owner opens its own channel and keeps that channel's events: it hands the frames that
 * arrive on it to tallow__session_input (in the order the session must process them: frames it
 * holds while the peer's switch marker is still on the way are handed over after it), moves the
 * session's sends with tallow__session_use_channel, and after losing a path it had moved them to
 * starts a new epoch (tallow__session_new_epoch) and lets the transfer resynchronise
 * (tallow__session_resync). Its messages reach it through the session's handler table
 * (tallow__session_on), which it fills in attach. */
#ifndef TALLOW_SESSION_PATH_H
#define TALLOW_SESSION_PATH_H

#include "session.h"

struct tallow__path_owner {
    /* At open, on every session (pairs and rooms): claims its message ids with tallow__session_on
     * and keeps what it needs of p (copied). Returns 0 with its state in *st, or an error (the
     * session does not open). */
    int (*attach)(tallow__session *s, const tallow__session_params *p, void **st);
    /* Optional (NULL: nothing): the peer is in the room and the handshake starts; no key exists
     * yet. What needs no key starts now (the negotiator gathers its candidates during the
     * handshake's round trip, so that they are offered the moment the keys are ready). */
    void (*paired)(void *st);
    /* The handshake finished: the keys are ready and the session sends sealed messages. Called
     * before the session reports on_ready. */
    void (*keys_ready)(void *st);
    /* The session's first channel closed with err while its sends go over the owner's channel:
     * 1 if the owner takes the end over (it calls tallow__session_end when the session is over,
     * or never if it goes on without that channel), 0 to let the session end now. */
    int (*first_closed)(void *st, int err);
    /* The session is closing: close the owner's channel (before the session closes its first
     * one) and free. No call into the session from inside. */
    void (*detach)(void *st);
    /* Optional: a relay probe frame from the peer arrived on the first channel (KIND_PROBE):
     * its probe id, its filler bytes, 1 on the probe's last frame. */
    void (*probe)(void *st, uint64_t id, size_t len, int last);
};

/* The state (attach's *st) of the session's owner if that owner is `ops`, else NULL. */
void *tallow__session_path_owner(const tallow__session *s, const struct tallow__path_owner *ops);
/* Sends go to ch from the next one on (NULL: back to the session's first channel). A ch other
 * than the first channel becomes the session's direct path for good: frames sent on it are marked
 * direct and its transfer records are not sealed (QUIC protects them); only frames handed over
 * from it (tallow__session_input) may be marked so. */
void tallow__session_use_channel(tallow__session *s, tallow_channel *ch);
/* 1 while sends go to the session's first channel. */
int tallow__session_on_first(const tallow__session *s);
/* ch (the owner's QUIC channel, up) is the session's direct path from now on: frames handed over
 * from it are taken as direct ones, whether or not sends have moved there yet. */
void tallow__session_set_direct(tallow__session *s, tallow_channel *ch);
/* One frame that arrived on the owner's channel ch. If ch is the direct path installed (set_direct
 * or use_channel), only frames marked direct are accepted from it; from any other ch, only the
 * first channel's kinds (sealed). */
void tallow__session_input(tallow__session *s, tallow_channel *ch, const uint8_t *data, size_t len);
/* The owner's channel drained: the session's user may send again (on_writable). */
void tallow__session_writable(tallow__session *s);
/* Frames sent since the last epoch may be lost: a new sending epoch (fresh keys), frames of the
 * old one that fail to open are dropped until the peer's new epoch arrives, and every session
 * message the peer has not acknowledged is sent again, before anything new. Only when READY. */
void tallow__session_new_epoch(tallow__session *s);
/* The running transfer resynchronises from the receiver's position (set_resync's hook). */
void tallow__session_resync(tallow__session *s);
/* The attempt settled: on_path(direct) to the session's user. */
void tallow__session_report_path(tallow__session *s, int direct);
/* The session is over (every path closed): on_closed(err) unless it ended already. */
void tallow__session_end(tallow__session *s, int err);
/* A TALLOW_CTL_* operation of the session's first channel (TALLOW_ENOTSUP when it has none). */
int tallow__session_control(tallow__session *s, int op, void *arg);
#define TALLOW__PROBE_FRAME_MAX (256u * 1024u)
/* 1 if both sides take relay probes (TALLOW__FEAT_PROBE in both handshake messages). */
int tallow__session_can_probe(const tallow__session *s);
/* One relay probe frame of `len` filler bytes (at most TALLOW__PROBE_FRAME_MAX) on the first
 * channel, whatever the sends' path: the peer's path owner counts them (probe op). last: 1 on
 * the probe's last frame. The channel's send result, TALLOW_EINVAL if the peer takes no probes
 * or the session is not READY, TALLOW_ETOOBIG above the bound. */
int tallow__session_send_probe(tallow__session *s, uint64_t id, size_t len, int last);
/* 1 while READY (keys ready, not failed). */
int tallow__session_is_ready(const tallow__session *s);

#endif
