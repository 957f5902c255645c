/* plugins/punch-bday/punch_bday.c — hard-NAT punching as a strategy the negotiator runs
 * (include/tallow/punch.h): between a NAT that maps per destination (the hard side) and one that
 * does not (the easy side), the hard side opens BDAY_SOCKS sockets and sends one check from each
 * to the easy side's mapped address, so its NAT holds that many mappings towards it; the easy
 * side sends checks to ports of the hard side's address (predicted ones first when its NAT hands
 * ports out in sequence, then random ones), paced; a probe landing on one of those mappings
 * reaches the hard side, whose answer makes the pair (birthday paradox: 256 mappings, a few
 * hundred probes). The negotiator builds and authenticates every check, aims them only at the
 * peer's offered address and bounds them (2,000 packets, 5 s, no_p2p): this file only decides
 * which socket and which port. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <tallow/tallow.h>

#include "bday_plan.h"

typedef struct bd_inst {
    const tallow_host *host;
    bday_plan plan;
    int nsock; /* hard side: sockets opened */
} bd_inst;

static uint32_t bd_rand(uint32_t upper)
{
    return randombytes_uniform(upper);
}

static int bd_open(void *plugin_state, tallow_punch *p, void **inst)
{
    (void)p;
    bd_inst *b = calloc(1, sizeof(*b));
    if (!b) return TALLOW_ENOMEM;
    b->host = plugin_state;
    *inst = b;
    return 0;
}

static void bd_update(void *inst, tallow_punch *p)
{
    bd_inst *b = inst;
    const tallow_host *h = b->host;
    if (bday_plan_remote(&b->plan, p->remote, p->nremote) > 0)
        h->log(h, TALLOW_LOG_INFO, "p2p: birthday punching, easy side: sequential ports from %u",
               (unsigned)b->plan.peer_hi + 1);
    int role = bday_plan_start(&b->plan, p->mine, p->peer);
    if (!role) return;
    char s[64];
    tallow_sockaddr_str((const struct sockaddr *)&b->plan.target, s, sizeof(s));
    if (role == BDAY_HARD)
        h->log(h, TALLOW_LOG_INFO, "p2p: birthday punching, hard side: %d sockets towards %s",
               BDAY_SOCKS, s);
    else
        h->log(h, TALLOW_LOG_INFO, "p2p: birthday punching, easy side: probing ports of %s%s", s,
               b->plan.seq_next ? " (sequential ports first)" : "");
}

static int bd_tick(void *inst, tallow_punch *p)
{
    bd_inst *b = inst;
    if (b->plan.role == BDAY_HARD) {
        /* BDAY_SOCKS_PER_TICK sockets a tick, one check each towards the easy side's mapping */
        for (int i = 0; i < BDAY_SOCKS_PER_TICK && b->nsock < BDAY_SOCKS; i++) {
            int s = p->open_socket(p);
            if (s < 0) {
                b->nsock = BDAY_SOCKS; /* out of descriptors or bounds: what we have must do */
                break;
            }
            b->nsock++;
            p->send_check(p, s, (const struct sockaddr *)&b->plan.target, sizeof(b->plan.target));
        }
        return 1; /* the easy side's probes may still land: until the bounds end it */
    }
    if (b->plan.role == BDAY_EASY) {
        struct sockaddr_in to = b->plan.target;
        for (int i = 0; i < BDAY_PER_TICK; i++) {
            to.sin_port = htons(bday_plan_next_port(&b->plan, bd_rand));
            if (p->send_check(p, 0, (const struct sockaddr *)&to, sizeof(to)) == TALLOW_EAGAIN)
                break;
        }
        return 1;
    }
    return 0;
}

static void bd_close(void *inst)
{
    free(inst);
}

static const tallow_punch_ops bd_ops = {
    .version = TALLOW_PUNCH_OPS_VERSION,
    .struct_size = sizeof(tallow_punch_ops),
    .name = "birthday",
    .open = bd_open,
    .tick = bd_tick,
    .update = bd_update,
    .close = bd_close,
};

static int bd_init(const tallow_host *host, void **state_out)
{
    if (host->struct_size < offsetof(tallow_host, register_punch) + sizeof(host->register_punch))
        return TALLOW_ENOTSUP; /* a tallow without punching strategies */
    int rc = host->register_punch(host->ctx, &bd_ops, (void *)host);
    if (rc < 0) return rc;
    *state_out = NULL;
    return 0;
}

static const tallow_plugin_desc bd_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "punch-bday",
    .version = "0.1.0",
    .summary = "hard-NAT punching: birthday probing and sequential port prediction",
    .init = bd_init,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &bd_desc;
}
