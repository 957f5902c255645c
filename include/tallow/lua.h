/* tallow/lua.h — the embedded Lua 5.4 runtime. Scripts `require "tallow"` (and its submodules)
 * and run as coroutines on the context's loop: calls that wait yield to the loop. */
#ifndef TALLOW_LUA_H
#define TALLOW_LUA_H

#include "common.h"

/* Runs the script at path with args (args[0] is the script name as the script sees it) until it
 * and every coroutine it spawned finish. Returns the process exit status: 0, the value of
 * os.exit / tallow.exit, or 1 after an uncaught error (printed with a traceback). */
TALLOW_API int tallow_lua_run_file(tallow_ctx *ctx, const char *path, int argc, char **argv);
/* Directory holding the Lua library and lua/commands (borrowed, static). */
TALLOW_API const char *tallow_lua_dir(void);

/* A plugin's Lua face. open() runs in the script's state and pushes one value (usually a table
 * of functions); tallow.plugins.module(name) returns it, opened once per state. The plugin links
 * Lua 5.4 itself (the same shared liblua5.4 as the core). */
#define TALLOW_LUA_MODULE_OPS_VERSION 1
struct lua_State;
typedef struct tallow_lua_module_ops {
    uint32_t version;
    uint32_t struct_size;
    const char *name;
    const char *summary;
    int (*open)(void *plugin_state, struct lua_State *L); /* returns 1 (values pushed) */
} tallow_lua_module_ops;

/* The Lua module a plugin registered under name, or NULL. */
TALLOW_API const tallow_lua_module_ops *tallow_lua_module_find(tallow_ctx *ctx, const char *name,
                                                               void **plugin_state);

#endif
