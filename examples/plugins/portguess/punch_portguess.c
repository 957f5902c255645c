/* examples/plugins/portguess/punch_portguess.c — an example punching strategy
 * (include/tallow/punch.h, docs/writing-a-punching-strategy.md), built only against the public
 * headers. Many NATs that map per destination still keep the socket's own port when it is free
 * ("port preservation"). The peer's NAT then maps its socket towards us to its public IP and the
 * port of its host candidate, which nobody offered. So when the peer's NAT maps per destination,
 * this strategy sends a few checks to (the peer's srflx IP, each of its host candidates' ports),
 * 200 ms apart, 8 times. The negotiator builds and authenticates the checks, refuses any address
 * the peer did not offer the IP of, and enforces the session's bounds.
 *
 *   tallow send --plugin ./portguess.so FILE      (or put it on TALLOW_PLUGIN_PATH) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/tallow.h>

#define PG_MAX_TARGETS 4
#define PG_TRIES 8
#define PG_EVERY_TICKS 20 /* ticks are 10 ms: a round every 200 ms */

typedef struct pg_inst {
    const tallow_host *host;
    struct sockaddr_in target[PG_MAX_TARGETS];
    int ntarget;
    int ticks, tries;
} pg_inst;

static int pg_open(void *plugin_state, tallow_punch *p, void **inst)
{
    (void)p;
    pg_inst *g = calloc(1, sizeof(*g));
    if (!g) return TALLOW_ENOMEM;
    g->host = plugin_state;
    *inst = g;
    return 0;
}

static void pg_add(pg_inst *g, const struct sockaddr_in *srflx, uint16_t port_be)
{
    for (int i = 0; i < g->ntarget; i++)
        if (g->target[i].sin_port == port_be) return;
    if (g->ntarget == PG_MAX_TARGETS || srflx->sin_port == port_be) return; /* offered already */
    g->target[g->ntarget] = *srflx;
    g->target[g->ntarget].sin_port = port_be;
    g->ntarget++;
}

static void pg_update(void *inst, tallow_punch *p)
{
    pg_inst *g = inst;
    if (p->peer != TALLOW_NAT_EDM) return;
    const struct sockaddr_in *srflx = NULL;
    for (size_t i = 0; i < p->nremote && !srflx; i++)
        if (p->remote[i].kind == TALLOW_CAND_SRFLX && p->remote[i].addr.ss_family == AF_INET)
            srflx = (const struct sockaddr_in *)&p->remote[i].addr;
    if (!srflx) return;
    int before = g->ntarget;
    for (size_t i = 0; i < p->nremote; i++)
        if (p->remote[i].kind == TALLOW_CAND_HOST && p->remote[i].addr.ss_family == AF_INET)
            pg_add(g, srflx, ((const struct sockaddr_in *)&p->remote[i].addr)->sin_port);
    if (g->ntarget > before)
        g->host->log(g->host, TALLOW_LOG_INFO, "p2p: port-preserve: %d guessed ports of the peer",
                     g->ntarget);
}

static int pg_tick(void *inst, tallow_punch *p)
{
    pg_inst *g = inst;
    if (!g->ntarget || g->tries >= PG_TRIES) return 0;
    if (g->ticks++ % PG_EVERY_TICKS) return 1;
    g->tries++;
    for (int i = 0; i < g->ntarget; i++)
        if (p->send_check(p, 0, (const struct sockaddr *)&g->target[i], sizeof(g->target[i])) ==
            TALLOW_EAGAIN)
            return 0;
    return 1;
}

static void pg_close(void *inst)
{
    free(inst);
}

static const tallow_punch_ops pg_ops = {
    .version = TALLOW_PUNCH_OPS_VERSION,
    .struct_size = sizeof(tallow_punch_ops),
    .name = "port-preserve",
    .open = pg_open,
    .tick = pg_tick,
    .update = pg_update,
    .close = pg_close,
};

static int pg_init(const tallow_host *host, void **state_out)
{
    if (host->struct_size < offsetof(tallow_host, register_punch) + sizeof(host->register_punch))
        return TALLOW_ENOTSUP; /* a tallow without punching strategies */
    *state_out = NULL;
    return host->register_punch(host->ctx, &pg_ops, (void *)host);
}

static const tallow_plugin_desc pg_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "punch-portguess",
    .version = "0.1.0",
    .summary = "example punching strategy: guesses that the peer's NAT preserved its port",
    .init = pg_init,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &pg_desc;
}
