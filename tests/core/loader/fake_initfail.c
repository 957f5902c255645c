/* tests/core/loader/fake_initfail.c — registers a transport and a message type, then fails its
 * init: the host must unload it without calling fini and leave nothing of it registered. */
#include <tallow/error.h>
#include <tallow/plugin.h>
#include <tallow/transport.h>

#include "fake_log.h"

static int initfail_open(tallow_channel *ch, const tallow_channel_params *p)
{
    return 0;
}

static int initfail_send(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len)
{
    return 0;
}

static const tallow_transport_ops initfail_transport = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = sizeof(tallow_transport_ops),
    .name = "fake-initfail",
    .instance_size = sizeof(tallow_channel),
    .open = initfail_open,
    .send = initfail_send,
};

typedef struct initfail_msg {
    uint64_t n;
} initfail_msg;

static const tallow_field initfail_fields[] = {
    {.tag = 1, .name = "n", .kind = TALLOW_F_U64, .offset = 0},
};

static const tallow_msg_type initfail_type = {.id = 0x8002,
                                              .name = "FakeInitFailMsg",
                                              .struct_size = sizeof(initfail_msg),
                                              .nfields = 1,
                                              .fields = initfail_fields};

static int initfail_init(const tallow_host *host, void **state_out)
{
    fake_log("init fake_initfail");
    if (host->register_transport(host->ctx, &initfail_transport, NULL) < 0) return TALLOW_EINVAL;
    if (host->register_msg(host->ctx, &initfail_type) < 0) return TALLOW_EINVAL;
    return TALLOW_EPROTO;
}

static void initfail_fini(void *state)
{
    fake_log("fini fake_initfail");
}

static const tallow_plugin_desc initfail_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "fake_initfail",
    .version = "1.0",
    .init = initfail_init,
    .fini = initfail_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &initfail_desc;
}
