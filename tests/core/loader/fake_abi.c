/* tests/core/loader/fake_abi.c — built against a future ABI (999): must be refused before init. */
#include <tallow/plugin.h>

#include "fake_log.h"

static int abi_init(const tallow_host *host, void **state_out)
{
    fake_log("init fake_abi");
    return 0;
}

static const tallow_plugin_desc abi_desc = {
    .abi = 999,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "fake_abi",
    .version = "1.0",
    .init = abi_init,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &abi_desc;
}
