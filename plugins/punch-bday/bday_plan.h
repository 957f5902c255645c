/* plugins/punch-bday/bday_plan.h — the birthday strategy's plan, no I/O: which side we play from
 * both NATs' mapping behaviour, the hard peer's address and the ports it showed, and the easy
 * side's next port to probe (predicted ones first when the peer's ports look sequential, then
 * random ones). */
#ifndef BDAY_PLAN_H
#define BDAY_PLAN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <tallow/tallow.h>

#define BDAY_SOCKS 256         /* hard side: sockets opened towards the easy side */
#define BDAY_SOCKS_PER_TICK 32 /* ... per 10 ms tick: all open after 80 ms */
#define BDAY_PER_TICK 8        /* easy side: probes per 10 ms tick, 800 per second */
#define BDAY_SEQ_NEAR 64       /* sequential allocation: the first ports predicted ... */
#define BDAY_SEQ_PASSES 8      /* ... swept this often, then the next BDAY_SOCKS + 64 once */
#define BDAY_SEQ_SPAN 16       /* ports further apart than this: not sequential */

enum { BDAY_NONE = 0, BDAY_HARD = 1, BDAY_EASY = 2 };

typedef struct bday_plan {
    int role;                  /* BDAY_* */
    struct sockaddr_in target; /* hard: the peer's srflx; easy: its address (any port) */
    int have_target;
    uint16_t peer_lo, peer_hi; /* the hard peer's srflx ports seen */
    uint32_t seq_next;         /* peer_hi + predicted ports probed (sequential), 0 none */
    size_t seen;               /* remote candidates looked at */
} bday_plan;

/* Looks at the peer's candidates not seen yet (remote[b->seen..n)): the first IPv4 srflx one is
 * the target, the others of its address widen the span of its ports. While probing (easy side),
 * a wider span (re)starts the prediction, or stops it when the ports are too far apart. Returns
 * 1 when a prediction (re)started, -1 when it stopped, 0 otherwise. */
int bday_plan_remote(bday_plan *b, const tallow_candidate *remote, size_t n);
/* Picks our side once both behaviours (enum tallow_nat_mapping) are known and call for one:
 * ours per destination and the peer's not: hard; the other way round: easy (predicting when its
 * ports look sequential). Returns the role taken now, BDAY_NONE when nothing (yet, or again). */
int bday_plan_start(bday_plan *b, uint32_t mine, uint32_t peer);
/* The easy side's next port: predicted ones while the prediction lasts, then random ones in
 * 1024..65535 from rnd (uniform below its argument). */
uint16_t bday_plan_next_port(bday_plan *b, uint32_t (*rnd)(uint32_t upper));

#endif
