/* tests/core/loader/fake_dup.c — a second file claiming the name "fake_good": refused as a
 * duplicate before its init runs. */
#include <tallow/plugin.h>

#include "fake_log.h"

static int dup_init(const tallow_host *host, void **state_out)
{
    fake_log("init fake_dup");
    return 0;
}

static const tallow_plugin_desc dup_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "fake_good",
    .version = "2.0",
    .init = dup_init,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &dup_desc;
}
