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

#endif
