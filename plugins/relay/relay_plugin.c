/* plugins/relay/relay_plugin.c — the relay plugin's entry point: registers the relay service
 * (relay_service.c) and the relay client transport (relay_client.c). */
#include <stdlib.h>

#include "relay.h"

static int relay_init(const tallow_host *host, void **state_out)
{
    relay_plugin *pl = calloc(1, sizeof *pl);
    if (!pl) return TALLOW_ENOMEM;
    pl->host = host;
    int rc = host->register_service(host->ctx, &relay_service_ops, pl);
    if (rc == 0) rc = host->register_transport(host->ctx, &relay_transport_ops, pl);
    if (rc < 0) {
        free(pl);
        return rc;
    }
    *state_out = pl;
    return 0;
}

static void relay_fini(void *state)
{
    free(state);
}

static const tallow_plugin_desc relay_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "relay",
    .version = "0.1.0",
    .summary = "relay transport (TCP, SOCKS5) and relay service with a STUN responder",
    .init = relay_init,
    .fini = relay_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &relay_desc;
}
