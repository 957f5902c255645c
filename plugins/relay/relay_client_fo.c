/* plugins/relay/relay_client_fo.c — failover of a paired relay channel. The caller (tallow.relays)
 * passes the other relays of the room's order; both peers pass the same list. When the relay
 * dies after pairing (it refuses connections, no longer knows the room, closes for shutdown, or
 * stays unreachable for RELAY_FAILOVER_MS), each peer moves to the next relay of the list and
 * joins the same room id there anew; the first to arrive waits (holding its data: a relay drops
 * data sent before a peer is there), and when the other arrives both report the return as after
 * a reconnection (RoomJoined / PeerArrived after PeerDeparted{reconnecting}). The session above
 * then enters a new key epoch derived from its PAKE keys (no new code: whoever else joined that
 * room could not produce a frame that opens) and the transfer resynchronises from the
 * receiver's position.
 *
 * Group rooms (capacity > 2: `chat --capacity N`, `send --to-many N` and its receivers) fail over
 * too. A relay numbers a room's peers by join order, which differs from one relay to the next, so
 * the peer numbers the user sees (and the sessions are bound to) would change; instead each peer
 * joins the next relay with RoomJoin.slot = its index on the previous one (and the room's real
 * capacity), and the relay puts it in that slot: indexes mean the same peers on every relay, and
 * nothing needs mapping. A relay that predates the field numbers by arrival and does not echo the
 * slot in RoomJoined: the client sees that before any peer event and moves on to the next relay
 * of the room (or ends), so a room never runs on a mis-numbered relay. The relay is untrusted all
 * the same: one that lies about slots (or a stranger who took a slot first) can only make a
 * pair's session fail to open, since every pair re-authenticates on a new epoch of its own
 * PAKE-derived keys; it never makes one peer's data pass for another's. A peer's return is
 * reported per peer: RoomJoined on the failover relay is not passed up (the others are not there
 * yet); each one's PeerJoinedRoom there is its return (the session re-keys and resynchronises
 * with that peer only then, and frames sent to a peer not yet back are dropped by the relay, as
 * during a resume). The first to arrive holds its data until a second one is there (a relay
 * refuses data before); a receiver of `send --to-many` until the sender is. A peer that does not
 * come back within the reconnect deadline (it left for good, or lost its way) is reported gone
 * (PeerLeftRoom), so nobody waits for it forever. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_cl.h"

/* Takes the first relay off cl->failover into out. 0, or -1 when the list is empty. */
static int pop_next(relay_cl *cl, char *out, size_t cap)
{
    char *l = cl->failover;
    while (l && (*l == ',' || *l == ' '))
        l++;
    if (!l || !*l) return -1;
    size_t n = strcspn(l, ", ");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), l);
    memmove(cl->failover, l + n, strlen(l + n) + 1);
    return 0;
}

int relay_cl_fo_next(relay_cl *cl, const char *why)
{
    if (!cl->failover || !cl->paired || cl->state == CL_CLOSED) return 0;
    char next[300], host[256], port[16];
    for (;;) {
        if (pop_next(cl, next, sizeof next) < 0) return 0;
        int tls = 0;
        const char *addr = relay_cl_strip_scheme(next, &tls);
        if (relay_split_hostport(addr, host, sizeof host, port, sizeof port) < 0) continue;
        struct addrinfo *ai = NULL;
        if (!cl->proxy) { /* through a proxy the proxy resolves the name */
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
            if (getaddrinfo(host, port, &hints, &ai) != 0) {
                cl->host_pl->host->log(cl->host_pl->host, TALLOW_LOG_WARN,
                                       "relay %s: cannot resolve failover relay %s", cl->hostport,
                                       next);
                continue;
            }
            if (cl->ai) freeaddrinfo(cl->ai);
            cl->ai = ai;
        }
        cl->host_pl->host->log(cl->host_pl->host, TALLOW_LOG_INFO,
                               "relay %s: %s; moving to %s, the next relay of the room",
                               cl->hostport, why, next);
        cl->tls = tls;
        snprintf(cl->host, sizeof cl->host, "%s", host);
        snprintf(cl->port, sizeof cl->port, "%s", port);
        snprintf(cl->hostport, sizeof cl->hostport, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host,
                 port);
        snprintf(cl->path, sizeof cl->path, "relay %s%s%s", tls ? "tls://" : "", cl->hostport,
                 cl->proxy ? " via socks5 proxy" : "");
        break;
    }
    uint64_t now = tallow_loop_now(cl->loop);
    cl->fresh_join = 1;
    cl->fo_wait = 1; /* data waits until the peer is in the new room: a relay refuses it before */
    cl->token_len = 0;
    cl->lost_at = now;
    cl->resume_deadline = now + cl->reconnect_ms;
    /* every member of a group room is awaited on the new relay, for as long */
    memcpy(cl->fo_missing, cl->members, sizeof cl->fo_missing);
    cl->fo_nmissing = 0;
    for (size_t w = 0; w < RELAY_CL_PEER_WORDS; w++)
        cl->fo_nmissing += (uint32_t)__builtin_popcountll(cl->fo_missing[w]);
    cl->fo_until = cl->resume_deadline;
    return 1;
}

uint32_t relay_cl_fo_slot(const relay_cl *cl)
{
    return cl->paired && cl->fresh_join && cl->capacity > 2 ? cl->peer_index : 0;
}

void relay_cl_fo_member(relay_cl *cl, uint32_t peer, int in)
{
    if (peer == 0 || peer > RELAY_CL_MAX_PEERS || peer == cl->peer_index) return;
    uint64_t bit = 1ull << ((peer - 1) % 64);
    size_t w = (peer - 1) / 64;
    if (cl->fo_missing[w] & bit) { /* back on the failover relay, or gone: awaited no longer */
        cl->fo_missing[w] &= ~bit;
        cl->fo_nmissing--;
    }
    if (in)
        cl->members[w] |= bit;
    else
        cl->members[w] &= ~bit;
}

uint32_t relay_cl_fo_take_missing(relay_cl *cl)
{
    for (size_t w = 0; cl->fo_nmissing && w < RELAY_CL_PEER_WORDS; w++) {
        if (!cl->fo_missing[w]) continue;
        uint32_t peer = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(cl->fo_missing[w]) + 1);
        relay_cl_fo_member(cl, peer, 0);
        return peer;
    }
    return 0;
}
