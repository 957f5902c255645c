/* core/session/negotiate.h — the direct-path negotiator: after the session's handshake it gathers
 * candidates on one UDP endpoint, exchanges them sealed over the session, runs authenticated
 * connectivity checks from both sides (hole punching), nominates a pair, brings the "quic"
 * transport up on it and moves the session there; otherwise it gives up within a bounded time
 * and the session stays on the relay. Not installed.
 *
 * Check datagrams (class CHECK on the endpoint, first byte 0x2A/0x2B), TALLOW__CHECK_LEN bytes:
 *   0      type: 0x2A request, 0x2B response
 *   1      flags: bit 0 nominate (request: "use this pair"; response: echoed),
 *                 bit 1 the sender is the controlling side
 *   2      version (1)
 *   3      0
 *   4..15  transaction id (random; a response repeats its request's)
 *   16..19 priority, big endian (request: what a peer-reflexive candidate of the sender gets)
 *   20..39 mapped address (response: the request's source as the responder saw it, in
 *          tallow_sockaddr_encode form, zero padded; request: zeros)
 *   40..55 MAC: keyed BLAKE2b-128 of bytes 0..39 under keys->check_key
 * Only the two peers know check_key, so nobody else can forge a check or a response; a check
 * that carries our own role bit (our packet reflected back) is refused. */
#ifndef TALLOW_NEGOTIATE_H
#define TALLOW_NEGOTIATE_H

#include <tallow/tallow.h>

typedef struct tallow__session tallow__session;
typedef struct tallow__neg tallow__neg;

/* ---- check datagrams (negotiate_check.c) -------------------------------------------------- */

#define TALLOW__CHECK_LEN 56
#define TALLOW__CHECK_REQ 0x2A
#define TALLOW__CHECK_RESP 0x2B
#define TALLOW__CHECK_NOMINATE 0x01
#define TALLOW__CHECK_CONTROLLING 0x02
#define TALLOW__CHECK_TXID 12

typedef struct tallow__check {
    uint8_t type;  /* TALLOW__CHECK_REQ or _RESP */
    uint8_t flags; /* TALLOW__CHECK_NOMINATE | TALLOW__CHECK_CONTROLLING */
    uint8_t txid[TALLOW__CHECK_TXID];
    uint32_t priority;
    struct sockaddr_storage mapped; /* responses only */
    socklen_t mapped_len;           /* 0 when absent */
} tallow__check;

/* Writes c into out[TALLOW__CHECK_LEN], MAC'd with key. Returns TALLOW__CHECK_LEN, or
 * TALLOW_EINVAL (bad type, or a mapped address that cannot be encoded). */
int tallow__check_encode(const uint8_t key[32], const tallow__check *c,
                         uint8_t out[TALLOW__CHECK_LEN]);
/* Parses and authenticates one datagram. Returns 0; TALLOW_EBADMSG (wrong length, type,
 * version, reserved byte, or a malformed mapped address); TALLOW_ECRYPTO (MAC mismatch). On
 * error *out is zeroed. */
int tallow__check_parse(const uint8_t key[32], const uint8_t *buf, size_t len, tallow__check *out);

/* RFC 8445 §6.1.2.3 pair priority seen from one side: controlling = 1 when this side is the
 * controlling agent (its candidate is G), else the peer's candidate is G. */
uint64_t tallow__neg_pair_priority(int controlling, uint32_t local_prio, uint32_t remote_prio);

/* One checked pair for ranking. */
typedef struct tallow__neg_rank {
    uint32_t local_prio, remote_prio;
    int valid; /* a check on it succeeded */
} tallow__neg_rank;
/* Index of the valid pair with the highest pair priority (ties: the lowest index), or -1. */
int tallow__neg_best(int controlling, const tallow__neg_rank *pairs, size_t n);

/* ---- punching strategies (negotiate_punch.c) ----------------------------------------------
 * Each side learns its own NAT's mapping behaviour from the server-reflexive candidates of one
 * socket seen by two or more STUN servers (one mapping: endpoint-independent, "eim"; several
 * ports for one address: endpoint-dependent, "edm") and tells the peer in the foundation of its
 * srflx offers ("srflx/eim", "srflx/edm"; plain "srflx" when unknown). What to do with that is
 * the punching strategies' (include/tallow/punch.h; birthday probing and port prediction are the
 * punch-bday plugin): this module opens one instance of every registered strategy per attempt,
 * keeps their view of both sides up to date, ticks them, and is the only way their packets go
 * out: it builds each check (MAC'd with the check key, an id of the strategy's own), refuses an
 * address whose IP the peer did not offer, and enforces the bounds (TALLOW_PUNCH_MAX_PACKETS,
 * _MAX_SOCKETS, _MAX_MS from the first packet) and no_p2p. */

#define TALLOW__PUNCH_MAX_STRATEGIES 8
#define TALLOW__PUNCH_MAX_REMOTE 48

typedef struct tallow__punch tallow__punch;

typedef struct tallow__punch_inst {
    tallow_punch pub; /* first: what the strategy is handed */
    tallow__punch *pu;
    const tallow_punch_ops *ops;
    void *inst;
    int busy;      /* its last tick said it is punching */
    uint32_t sent; /* its checks */
    uint8_t txid[TALLOW__CHECK_TXID];
} tallow__punch_inst;

struct tallow__punch {
    tallow_ctx *ctx;
    tallow_udp *base; /* the session's endpoint (socket 0) */
    const uint8_t *check_key;
    int controlling;
    tallow_udp_recv_cb on_check; /* the negotiator's handler, on every socket opened */
    void *ud;
    uint32_t mine, peer; /* enum tallow_nat_mapping */
    const tallow_candidate *local;
    size_t nlocal;
    tallow_candidate remote[TALLOW__PUNCH_MAX_REMOTE];
    size_t nremote;
    tallow__punch_inst inst[TALLOW__PUNCH_MAX_STRATEGIES];
    size_t ninst;
    tallow_udp *sock[TALLOW_PUNCH_MAX_SOCKETS];
    uint8_t sock_owner[TALLOW_PUNCH_MAX_SOCKETS]; /* index into inst */
    size_t nsock;
    uint32_t sent;
    uint64_t start_ms; /* the first packet or socket; 0 before */
    int exhausted;     /* a bound was reached */
    int stopped;
    uint64_t (*now_ms)(void); /* the clock (a unit test sets its own) */
};

void tallow__punch_init(tallow__punch *pu, tallow_ctx *ctx, tallow_udp *base,
                        const uint8_t *check_key, int controlling, tallow_udp_recv_cb on_check,
                        void *ud);
/* Opens one instance of every registered strategy. Returns how many, or TALLOW_EPOLICY under
 * no_p2p (none opened). */
int tallow__punch_open(tallow__punch *pu);
/* Our gathered candidates (one gatherer's answer); nstun: how many STUN servers were asked. */
void tallow__punch_local(tallow__punch *pu, const tallow_candidate *c, size_t n, size_t nstun);
/* All our candidates so far (borrowed until the next call or the stop). */
void tallow__punch_set_local(tallow__punch *pu, const tallow_candidate *all, size_t n);
/* The foundation our srflx offers carry. */
const char *tallow__punch_foundation(const tallow__punch *pu);
/* An offer of the peer (its foundation tells the peer's mapping behaviour). */
void tallow__punch_remote(tallow__punch *pu, const tallow_candidate *c, const uint8_t *foundation,
                          size_t flen);
/* The view changed: every strategy's update. */
void tallow__punch_update(tallow__punch *pu);
/* Every negotiator tick: every strategy's tick, within the bounds. */
void tallow__punch_tick(tallow__punch *pu);
/* Some strategy is punching (and the bounds allow more). */
int tallow__punch_running(const tallow__punch *pu);
/* The name of the strategy whose check carried txid (NULL: none), and how many it sent. */
const char *tallow__punch_probe_of(const tallow__punch *pu, const uint8_t txid[TALLOW__CHECK_TXID],
                                   uint32_t *sent);
/* The name of the strategy that opened socket u (NULL: not one of ours). */
const char *tallow__punch_socket_owner(const tallow__punch *pu, const tallow_udp *u);
uint32_t tallow__punch_sent(const tallow__punch *pu);
/* Ends it: every strategy's close, every socket closed but keep (the one QUIC runs on; NULL for
 * all). Idempotent. */
void tallow__punch_stop(tallow__punch *pu, tallow_udp *keep);
/* The behaviour from one socket's srflx candidates (IPv4): enum tallow_nat_mapping. */
int tallow__punch_classify(const tallow_candidate *c, size_t n, size_t nstun);

/* ---- the negotiator (negotiate.c) --------------------------------------------------------- */

enum tallow__neg_state {
    TALLOW__NEG_OFF = -1,    /* not started: policy, a room, or disabled */
    TALLOW__NEG_PENDING = 0, /* gathering, checking or bringing QUIC up */
    TALLOW__NEG_DIRECT = 1,  /* the session's path is the QUIC channel */
    TALLOW__NEG_FAILED = 2,  /* gave up; the session stays on the relay */
};

/* What tallow__neg_begin needs from the session's params. */
typedef struct tallow__neg_opts {
    const char *stun;    /* "host:port[,host:port...]"; NULL or "": the relay address */
    const char *relay;   /* the relay "host:port" (default STUN server); may be NULL */
    uint32_t timeout_ms; /* give up after this long (0: 5000) */
} tallow__neg_opts;

/* The negotiator as the owner of the session's second path (session_path.h): give it as
 * tallow__session_params.path_owner. It claims CandidateOffer, CandidatesDone, DirectConnected and
 * DirectFailed on every session (so they never reach the session's user); on a pair with p2p set
 * it starts once the keys are ready (with policy no_p2p it sends nothing at all, but tells the
 * peer it will not try), takes the session's sends to the QUIC channel when it comes up, and back
 * to the relay if that path is lost. */
extern const struct tallow__path_owner tallow__neg_owner;
/* The session's negotiator (NULL when it has none). */
tallow__neg *tallow__neg_of(const tallow__session *s);
/* TALLOW__NEG_*; NULL is TALLOW__NEG_OFF. */
int tallow__neg_state(const tallow__neg *n);
/* Why the attempt failed ("" unless it did). */
const char *tallow__neg_why(const tallow__neg *n);
/* On a direct path: the kinds of the winning pair's candidates ("host", "srflx", "prflx",
 * "mapped"; ours as the peer's answers showed it, prflx when it matched none) and the time from
 * the start until QUIC was up. 0, or TALLOW_ENOTFOUND when not direct. */
int tallow__neg_winner(const tallow__neg *n, const char **local, const char **remote, double *ms);

#endif
