/* core/session/negotiate_int.h — the negotiator's private state, shared by negotiate.c (candidates,
 * checks, nomination) and negotiate_path.c (QUIC on the nominated pair, the session's switch to it
 * and back). Not for other files. */
#ifndef TALLOW_NEGOTIATE_INT_H
#define TALLOW_NEGOTIATE_INT_H

#include "negotiate.h"
#include "session_path.h"

#define NEG_DEFAULT_TIMEOUT_MS 5000
#define NEG_PACE_MS 10   /* one check every tick, across all pairs */
#define NEG_RTO_MS 200   /* a pair's next try after an unanswered one */
#define NEG_MAX_TRIES 8  /* then the pair failed (a check from the peer re-arms it) */
#define NEG_SETTLE_MS 60 /* after the first success, wait this long for better pairs */
#define NEG_QUIC_TIMEOUT_MS 4000
#define NEG_GRACE_MS 1000 /* the controlled side waits this much longer for a nomination */
#define NEG_MAX_LOCAL 32
#define NEG_MAX_PAIRS 48
#define NEG_MAX_STUN 8
#define NEG_RELAY_GONE_MS 1500
/* seconds in a row a direct path must be slow before a relay probe (negotiate_rate.c) */
#define NEG_RATE_WINDOWS 3
/* Gathering's bound. Where UDP is blocked no STUN server answers and the attempt cannot end
 * before this: 1.5 s (STUN tries at 0, 100, 300 and 700 ms) keeps that case within the checks'
 * own bound (NEG_MAX_TRIES x NEG_RTO_MS = 1.6 s), so the relay is chosen within 2 s of pairing. */
#define NEG_GATHER_MS 1500

enum { P_WAITING, P_INPROGRESS, P_SUCCEEDED, P_FAILED };

typedef struct neg_pair {
    struct sockaddr_storage addr;
    socklen_t len;
    uint32_t kind, remote_prio, local_prio;
    int state, tries, nominate;
    uint64_t next_due, sent_ns, rtt_us;
    uint8_t txid[TALLOW__CHECK_TXID]; /* outstanding check, all zero once answered */
    uint8_t txid_flags;               /* the flags it was sent with */
    tallow_udp *via;     /* our socket for this pair: the endpoint, or a strategy's socket */
    uint32_t local_kind; /* which of our candidates the peer saw (prflx when none of them) */
} neg_pair;

struct tallow__neg {
    tallow__session *s;
    tallow_ctx *ctx;
    tallow_loop *loop;
    int controlling, allow_loopback, state, dead;
    uint32_t timeout_ms;
    uint8_t check_key[32], psk[32];
    tallow_udp *udp;
    int v4, v6; /* the families our socket carries */
    int pending_gathers, local_done, remote_done, offers_sent, heard_peer;
    int releasing;       /* tallow__neg_free is asking gatherers to stop */
    uint64_t last_check; /* ms: when on_tick last sent a check */
    tallow_candidate local[NEG_MAX_LOCAL];
    size_t nlocal;
    neg_pair pairs[NEG_MAX_PAIRS];
    size_t npairs;
    int nominated; /* index, or -1 */
    int nom_acked; /* controlling: the peer answered our nominating check (it opened QUIC) */
    tallow_timer *tick, *deadline, *settle;
    tallow_channel *quic;
    tallow_udp *quic_udp; /* the strategy's socket QUIC runs on, when not udp */
    int quic_handed;      /* the session owns the channel now */
    uint64_t start_ns;
    struct sockaddr_storage stun[NEG_MAX_STUN];
    size_t nstun;
    tallow__punch punch; /* the punching strategies (negotiate_punch.c) */
    char why[128];       /* why the direct path failed */
    double direct_ms;    /* from start until QUIC was up */
    /* the session's side of the path (negotiate_path.c) */
    int p2p, pair;      /* attempt it (params and pairs only); the session is a pair */
    char *stun_opt;     /* the option, copied at attach */
    int peer_switched;  /* the peer's DirectConnected was processed */
    int direct_rx_open; /* frames on QUIC may be processed (peer switched, ours up) */
    int lost;           /* the direct path was given up after a switch */
    int relay_dead;     /* the relay channel failed while the session ran direct */
    /* the relay ended (the peer left) while frames moved over the direct path: the peer's last
     * frames may still be waiting in the UDP socket, so the end is reported when the direct path
     * closes too, or after NEG_RELAY_GONE_MS */
    int relay_gone, relay_gone_err;
    tallow_timer *relay_gone_timer;
    /* is the direct path worth keeping (negotiate_rate.c): while our sends saturate it, its
     * rate over a window, then once a relay probe (see PROBE_* there) */
    tallow_timer *rate_tick;
    /* the window's start: time (ns; 0 while none runs: the path is not full), bytes the peer
     * acknowledged, congestion events, our CPU seconds; the rates of the last windows (bytes/s)
     * and how many in a row counted */
    uint64_t rate_t0, rate_b0, rate_l0;
    double rate_c0, rate_win[NEG_RATE_WINDOWS];
    int rate_nwin;
    uint64_t rate_busy_ms; /* how long our sends kept the direct path saturated, in all */
    int probe_state;       /* NEG_PROBE_* */
    int handback;          /* the probe found the relay faster: leave at the next tick */
    uint64_t probe_id, probe_len, probe_start_ns, probe_deadline_ns;
    double probe_direct_bps;              /* the direct rate that started it, bytes/s */
    uint64_t rx_probe_id, rx_probe_bytes; /* the peer's probe being counted */
    unsigned rx_probe_answers;
    struct neg_held {
        uint8_t *data;
        size_t len;
    } * held; /* frames that came on QUIC before the peer's switch marker */
    size_t nheld, capheld;
};

static inline void tallow__neg_stop_timer(tallow_timer **t)
{
    if (*t) tallow_timer_stop(*t);
    *t = NULL;
}

/* negotiate.c */
/* Opens the endpoint and starts gathering before the keys exist (the peer arrived, the handshake
 * runs): what is gathered is kept, not offered, until tallow__neg_begin adopts it all. 0,
 * TALLOW_EPOLICY (nothing started), or an error (tallow__neg_begin then starts from nothing). */
int tallow__neg_prepare(tallow__neg *n, const tallow__neg_opts *o);
/* Starts gathering and checking (the keys are ready); offers what tallow__neg_prepare gathered. 0,
 * TALLOW_EPOLICY (nothing started), or an error. */
int tallow__neg_begin(tallow__neg *n, const tallow__neg_opts *o);
/* Stops everything of the attempt (timers, QUIC not handed over, gatherers) and frees n once the
 * gatherers answered. */
void tallow__neg_end(tallow__neg *n);
/* The pair's sockets may go (nothing runs on them any more). */
void tallow__neg_release_udp(tallow__neg *n);
/* The checks' pacing tick (also run at once for a new pair or a nomination). */
void tallow__neg_tick(tallow_timer *t, void *ud);
const char *tallow__neg_kind_name(uint32_t kind);
/* The session's handler for CandidateOffer and CandidatesDone. */
int tallow__neg_on_candidates(tallow__session *s, const tallow_msg_type *t, const void *msg,
                              void *ud);

/* negotiate_path.c */
void tallow__neg_fail(tallow__neg *n, const char *why);
/* Leave the direct path we switched to: back to the relay in a new epoch, DirectFailed(why)
 * tells the peer, the transfer resynchronises; close: our QUIC closes too (it was not lost). */
void tallow__neg_leave_direct(tallow__neg *n, const char *why, int close);

/* negotiate_rate.c */
enum { NEG_PROBE_NONE, NEG_PROBE_RUNNING, NEG_PROBE_DONE };
/* The direct path carries our sends: watch its rate (nothing if the peer takes no probes). */
void tallow__neg_rate_start(tallow__neg *n);
void tallow__neg_rate_stop(tallow__neg *n);
/* The session's probe op (session_path.h): the peer's relay probe frames. */
void tallow__neg_probe_in(void *st, uint64_t id, size_t len, int last);
/* The session's handler for PathProbeDone. */
int tallow__neg_on_probe_done(tallow__session *s, const tallow_msg_type *t, const void *msg,
                              void *ud);
/* QUIC on pair idx (the nominated one). */
void tallow__neg_open_quic(tallow__neg *n, int idx);

#endif
