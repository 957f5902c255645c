/* tallow/punch.h — the punching-strategy interface. A strategy helps the direct-path negotiator
 * through NATs its ordinary checks (one check per offered candidate pair) cannot cross: birthday
 * probing between a per-destination-mapping NAT and an endpoint-independent one, port prediction
 * on a sequential allocator (the punch-bday plugin), or whatever a plugin author knows better.
 *
 * A strategy never builds or sends a packet itself. For every session that tries the direct path
 * the negotiator opens one instance of each registered strategy and hands it a tallow_punch: its
 * view of both sides (our NAT's mapping behaviour and the peer's, our candidates and the ones the
 * peer offered through the sealed session) and two services, open_socket and send_check. The
 * negotiator builds every check (authenticated with the session's check key, like its own), and
 * refuses what the session does not allow, whatever the strategy asks:
 * - no packet at all under the no_p2p policy (no instance is even opened);
 * - only to an address whose IP is the IP of a candidate the peer offered (any port: a strategy
 *   guesses ports, never hosts);
 * - at most max_packets checks and max_sockets sockets per session (all strategies together),
 *   and nothing after max_ms from the first check or socket.
 * A check of a strategy that the peer answers makes a candidate pair of the answering address and
 * the socket it was sent from; the negotiator checks it, nominates it and runs QUIC on it as on
 * any other pair. */
#ifndef TALLOW_PUNCH_H
#define TALLOW_PUNCH_H

#include "common.h"
#include "gather.h"

/* A NAT's mapping behaviour (RFC 4787 §4.1), learned from the server-reflexive mappings of one
 * socket at two or more STUN servers. */
enum tallow_nat_mapping {
    TALLOW_NAT_UNKNOWN = 0, /* not learned (one server, or no answer) */
    TALLOW_NAT_EIM = 1,     /* endpoint-independent: one mapping for every destination */
    TALLOW_NAT_EDM = 2,     /* endpoint-dependent: a new mapping (port) per destination */
};

/* The session's bounds on all strategies together; the negotiator enforces them. */
#define TALLOW_PUNCH_MAX_PACKETS 2000
#define TALLOW_PUNCH_MAX_MS 5000
#define TALLOW_PUNCH_MAX_SOCKETS 256

typedef struct tallow_punch tallow_punch;

/* One strategy instance's view and services, owned by the negotiator (valid from open until
 * close). The view members are refreshed before every call into the strategy. Appended to only;
 * read a member only when struct_size covers it. */
struct tallow_punch {
    uint32_t struct_size;
    int controlling;               /* this side is the session's initiator (controlling agent) */
    uint32_t mine;                 /* enum tallow_nat_mapping: our NAT */
    uint32_t peer;                 /* enum tallow_nat_mapping: the peer's NAT, as its offers say */
    const tallow_candidate *local; /* our gathered candidates */
    size_t nlocal;
    const tallow_candidate *remote; /* the peer's offered candidates, in the order they came */
    size_t nremote;
    uint32_t max_packets, max_ms, max_sockets; /* the bounds (above) */
    uint32_t sent;                             /* checks sent by all strategies so far */
    uint32_t elapsed_ms; /* since the first check or socket of any strategy (0 before) */
    /* Opens one more UDP socket for this session (sockets are the negotiator's: it closes them,
     * but the one QUIC ends up running on). Returns its number (>= 1), or TALLOW_EPOLICY,
     * TALLOW_EAGAIN (a bound reached), or -errno. */
    int (*open_socket)(tallow_punch *p);
    /* Sends one connectivity check from socket sock (0: the session's own endpoint, whose
     * mapping the peer knows; else a number from open_socket) to `to`. Returns 0, or
     * TALLOW_EPOLICY (no_p2p), TALLOW_EINVAL (an address the peer did not offer, or one the
     * session may not try), TALLOW_EAGAIN (a bound reached: nothing more will go), -errno. */
    int (*send_check)(tallow_punch *p, int sock, const struct sockaddr *to, socklen_t len);
};

#define TALLOW_PUNCH_OPS_VERSION 1

typedef struct tallow_punch_ops {
    uint32_t version;
    uint32_t struct_size;
    const char *name; /* "birthday", ...: names the strategy in log lines */
    /* Required. A session's attempt begins: *inst is this session's state (the strategy's own
     * memory). Returns 0, or a negative error (TALLOW_ENOTSUP: not for this session), after
     * which the strategy gets no other call for it. Never sends from inside open. */
    int (*open)(void *plugin_state, tallow_punch *p, void **inst);
    /* Required. Every 10 ms while the attempt runs and the bounds are not reached: send what the
     * strategy wants now. Returns 1 while it is punching (the negotiator does not give up while
     * some strategy is), 0 when it has nothing to do (now or any more). */
    int (*tick)(void *inst, tallow_punch *p);
    /* Optional (default: nothing): the view changed (our mapping learned, a peer offer came). */
    void (*update)(void *inst, tallow_punch *p);
    /* Optional (default: nothing): the attempt is over; free inst. No call follows. */
    void (*close)(void *inst);
} tallow_punch_ops;

/* Calls fn for every registered strategy (its ops, as large as this header's, every optional
 * slot filled with the host's default). */
TALLOW_API void tallow_punch_foreach(tallow_ctx *ctx,
                                     void (*fn)(const tallow_punch_ops *ops, void *state, void *ud),
                                     void *ud);

#endif
