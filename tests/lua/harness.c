/* tests/lua/harness.c — runs one Lua test script through the real runtime (tallow_lua_run_file
 * on a fresh context with every plugin loaded); the script's exit status is the test result. */
#include <stdio.h>
#include <tallow/lua.h>
#include <tallow/tallow.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: lua_harness SCRIPT.lua [args]\n");
        return 2;
    }
    tallow_ctx *ctx = tallow_ctx_new();
    if (!ctx) return 1;
    tallow_plugin_load_all(ctx);
    int rc = tallow_lua_run_file(ctx, argv[1], argc - 1, argv + 1);
    tallow_ctx_free(ctx);
    return rc;
}
