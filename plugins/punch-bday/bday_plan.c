/* plugins/punch-bday/bday_plan.c — the birthday strategy's plan (see bday_plan.h). */
#include <arpa/inet.h>
#include <string.h>

#include "bday_plan.h"

/* The hard peer's ports look handed out in sequence (two or more seen, at most BDAY_SEQ_SPAN
 * apart): predict the next ones, from the highest seen (again when a later offer raises it). */
static int predict(bday_plan *b)
{
    if (b->peer_hi - b->peer_lo == 0 || b->peer_hi - b->peer_lo > BDAY_SEQ_SPAN ||
        b->peer_hi == 65535)
        return 0;
    b->seq_next = b->peer_hi;
    return 1;
}

int bday_plan_remote(bday_plan *b, const tallow_candidate *remote, size_t n)
{
    int rc = 0;
    for (; b->seen < n; b->seen++) {
        const tallow_candidate *c = &remote[b->seen];
        if (c->kind != TALLOW_CAND_SRFLX || c->addr.ss_family != AF_INET) continue;
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c->addr;
        uint16_t port = ntohs(a->sin_port);
        if (!b->have_target) {
            b->target = *a;
            b->have_target = 1;
            b->peer_lo = b->peer_hi = port;
            continue;
        }
        if (a->sin_addr.s_addr != b->target.sin_addr.s_addr) continue;
        if (port >= b->peer_lo && port <= b->peer_hi) continue;
        if (port < b->peer_lo) b->peer_lo = port;
        if (port > b->peer_hi) b->peer_hi = port;
        /* already probing (the offers come in any order): predict from now on, or no more when
         * the ports are now too far apart */
        if (b->role == BDAY_EASY) {
            if (predict(b)) {
                rc = 1;
            } else {
                if (b->seq_next) rc = -1;
                b->seq_next = 0;
            }
        }
    }
    return rc;
}

int bday_plan_start(bday_plan *b, uint32_t mine, uint32_t peer)
{
    if (b->role || !b->have_target) return BDAY_NONE;
    if (mine == TALLOW_NAT_EDM && peer == TALLOW_NAT_EIM) {
        b->role = BDAY_HARD;
    } else if (mine == TALLOW_NAT_EIM && peer == TALLOW_NAT_EDM) {
        b->role = BDAY_EASY;
        predict(b); /* ports handed out in sequence: its new sockets follow the ones seen */
    }
    return b->role;
}

uint16_t bday_plan_next_port(bday_plan *b, uint32_t (*rnd)(uint32_t upper))
{
    if (b->seq_next) {
        /* ports handed out in sequence: the hard side's sockets take the ports after the highest
         * one seen (after a few more for its ordinary checks). We cannot know when it opens
         * them: probes that arrive before a socket sent are lost. So the first BDAY_SEQ_NEAR
         * ports are swept again and again (BDAY_SEQ_PASSES times: a sweep every 80 ms), which
         * finds the first sockets soon after they send; then the whole window the sockets may
         * take once (other hosts behind that NAT take ports too); then random ports. */
        uint32_t i = b->seq_next - b->peer_hi, room = 65535u - b->peer_hi;
        uint32_t near = BDAY_SEQ_NEAR < room ? BDAY_SEQ_NEAR : room;
        uint32_t wide = BDAY_SOCKS + 64 < room ? BDAY_SOCKS + 64 : room;
        uint32_t port = 0;
        if (i < near * BDAY_SEQ_PASSES)
            port = b->peer_hi + 1 + i % near;
        else if (i - near * BDAY_SEQ_PASSES < wide)
            port = b->peer_hi + 1 + (i - near * BDAY_SEQ_PASSES);
        if (port) {
            b->seq_next++;
            return (uint16_t)port;
        }
        b->seq_next = 0;
    }
    return (uint16_t)(1024 + rnd(65536 - 1024));
}
