/* tests/core/loader/fake_smallops.c — registers a transport whose ops claim a struct_size smaller
 * than the oldest version's required part (as a plugin built against a broken or foreign header
 * would): the registrar must refuse it, and the load fail with a message naming the plugin, the
 * interface and the size. */
#include <tallow/error.h>
#include <tallow/plugin.h>
#include <tallow/transport.h>

#include "fake_log.h"

static int smallops_open(tallow_channel *ch, const tallow_channel_params *p)
{
    return 0;
}

static int smallops_send(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len)
{
    return 0;
}

static const tallow_transport_ops smallops_transport = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = 24, /* version, struct_size, name, instance_size: no open, no send */
    .name = "fake-smallops",
    .instance_size = sizeof(tallow_channel),
    .open = smallops_open,
    .send = smallops_send,
};

static int smallops_init(const tallow_host *host, void **state_out)
{
    int rc = host->register_transport(host->ctx, &smallops_transport, NULL);
    fake_log(rc == TALLOW_EINVAL ? "init fake_smallops refused" : "init fake_smallops taken");
    return rc;
}

static const tallow_plugin_desc smallops_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "fake_smallops",
    .version = "1.0",
    .init = smallops_init,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &smallops_desc;
}
