/* plugins/wormhole/wh_plugin.c — the plugin descriptor: registers the Lua face (wh_lua.c). */
#include <sodium.h>
#include <tallow/lua.h>
#include <tallow/tallow.h>

#include "wh.h"

static const tallow_lua_module_ops wh_lua_ops = {
    .version = TALLOW_LUA_MODULE_OPS_VERSION,
    .struct_size = sizeof(tallow_lua_module_ops),
    .name = "wormhole",
    .summary = "talk to magic-wormhole users (mailbox, SPAKE2, transit)",
    .open = wh_lua_open,
};

static int wh_init(const tallow_host *host, void **state)
{
    if (sodium_init() < 0) return TALLOW_EPLUGINIT;
    if (host->struct_size < offsetof(tallow_host, register_lua_module) + sizeof(void *) ||
        !host->register_lua_module)
        return TALLOW_EPLUGABI;
    *state = (void *)host;
    return host->register_lua_module(host->ctx, &wh_lua_ops, (void *)host);
}

static void wh_fini(void *state)
{
    (void)state;
}

static const tallow_plugin_desc wh_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "wormhole",
    .version = TALLOW_VERSION,
    .summary = "send to and receive from magic-wormhole / wormhole-william users",
    .init = wh_init,
    .fini = wh_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &wh_desc;
}
