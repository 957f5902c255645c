/* tallow/gather.h — candidates and the candidate-gatherer interface. Each gatherer plugin is one
 * strategy (host interfaces, server-reflexive, ...). Address checks and the wire form of an
 * address live here too, so every strategy and the negotiator agree on them. */
#ifndef TALLOW_GATHER_H
#define TALLOW_GATHER_H

#include "common.h"
#include "nat.h"
#include <sys/socket.h>

enum tallow_cand_kind {
    TALLOW_CAND_HOST = 0,
    TALLOW_CAND_SRFLX = 1,
    TALLOW_CAND_PRFLX = 2,
    TALLOW_CAND_RELAYED = 3,
    TALLOW_CAND_MAPPED = 4, /* a port the gateway maps to us on request (PCP, NAT-PMP, UPnP) */
};

typedef struct tallow_candidate {
    uint32_t kind;     /* enum tallow_cand_kind */
    uint32_t priority; /* RFC 8445 §5.1.2 */
    struct sockaddr_storage addr;
    socklen_t addr_len;
} tallow_candidate;

/* RFC 8445 priority for a component-1 candidate: 2^24*type_pref + 2^8*local_pref + 255. */
TALLOW_API uint32_t tallow_candidate_priority(uint32_t kind, uint32_t local_pref);
/* RFC 8445 pair priority from the controlling (g) and controlled (d) candidate priorities. */
TALLOW_API uint64_t tallow_pair_priority(uint32_t g, uint32_t d);
/* 0 if the address may be offered or tried; TALLOW_EINVAL for unspecified, port 0, link-local,
 * broadcast, multicast, and loopback unless allow_loopback. */
TALLOW_API int tallow_validate_candidate_addr(const struct sockaddr *sa, socklen_t len,
                                              int allow_loopback);
/* Wire form: family byte (4 or 6), 2-byte port, 4 or 16 address bytes. Returns the length
 * written (7 or 19) or TALLOW_ETOOBIG. */
TALLOW_API int tallow_sockaddr_encode(const struct sockaddr *sa, socklen_t len, uint8_t *out,
                                      size_t cap);
/* Returns 0 or TALLOW_EBADMSG. */
TALLOW_API int tallow_sockaddr_decode(const uint8_t *buf, size_t len, struct sockaddr_storage *out,
                                      socklen_t *out_len);
/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) in *ss rewritten in place as plain IPv4, so one
 * peer has one form wherever it comes from (a dual-stack socket, an offer). Returns the new
 * length (sizeof(struct sockaddr_in)), or len unchanged for any other address. */
TALLOW_API socklen_t tallow_sockaddr_unmap(struct sockaddr_storage *ss, socklen_t len);
/* "1.2.3.4:5" / "[::1]:5" into buf; returns buf. */
TALLOW_API const char *tallow_sockaddr_str(const struct sockaddr *sa, char *buf, size_t cap);

typedef struct tallow_gather_params {
    uint32_t struct_size;
    tallow_udp *udp;                     /* the session's endpoint */
    const struct sockaddr_storage *stun; /* STUN servers to ask (srflx) */
    size_t nstun;
    int allow_loopback;
    uint32_t timeout_ms;
} tallow_gather_params;

/* tallow_gather_params p = TALLOW_GATHER_PARAMS_INIT(.udp = u, .timeout_ms = 2000); every member
 * not named is zero. New members are appended; a gatherer reads one only when struct_size covers
 * it. */
#define TALLOW_GATHER_PARAMS_INIT(...)                                                             \
    {                                                                                              \
        .struct_size = sizeof(tallow_gather_params), __VA_ARGS__                                   \
    }

/* Called once with every candidate found (borrowed), or status < 0 and none. */
typedef void (*tallow_gather_cb)(int status, const tallow_candidate *c, size_t n, void *ud);

#define TALLOW_GATHERER_OPS_VERSION 1

typedef struct tallow_gatherer_ops {
    uint32_t version;
    uint32_t struct_size;
    const char *name; /* "gather-host", "gather-srflx", ... */
    /* Starts gathering; cb follows, never from inside this call. 0 or a negative error. */
    int (*gather)(void *plugin_state, const tallow_gather_params *p, tallow_gather_cb cb, void *ud);
    /* Optional (default: nothing): the endpoint's user is done with udp; undo what gathering
     * set up for it (a port mapping on the gateway). A gathering still running on udp may answer
     * (TALLOW_ECANCELED) from inside this call. The endpoint is still open during the call. */
    void (*release)(void *plugin_state, tallow_udp *udp);
} tallow_gatherer_ops;

/* Calls fn for every registered gatherer (its ops, as large as this header's, every optional slot
 * filled with the host's default where the plugin left it NULL or lacks it). */
TALLOW_API void tallow_gatherer_foreach(
    tallow_ctx *ctx, void (*fn)(const tallow_gatherer_ops *ops, void *state, void *ud), void *ud);

#endif
