/* plugins/relay/relay_client_fo.c — failover of a paired relay channel. The caller (tallow.relays)
 * passes the other relays of the room's order; both peers pass the same list. When the relay
 * dies after pairing (it refuses connections, no longer knows the room, closes for shutdown, or
 * stays unreachable for RELAY_FAILOVER_MS), each peer moves to the next relay of the list and
 * joins the same room id there anew; the first to arrive waits (holding its data: a relay drops
 * data sent before a peer is there), and when the other arrives both report the return as after
 * a reconnection (RoomJoined / PeerArrived after PeerDeparted{reconnecting}). The session above
 * then enters a new key epoch derived from its PAKE keys (no new code: whoever else joined that
 * room could not produce a frame that opens) and the transfer resynchronises from the
 * receiver's position. Multi-peer rooms do not fail over. */
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
    if (!cl->failover || !cl->paired || cl->capacity > 2 || cl->state == CL_CLOSED) return 0;
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
    return 1;
}
