/* core/lua/lua_tallow.c — `require "tallow"`: the top module. Submodules load on first use
 * (tallow.msg, tallow.policy, ...); the everyday waiting calls sit at the top too. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lua_rt.h"

static int index_submodule(lua_State *L)
{
    /* tallow.<name> -> require("tallow.<name>"), cached in the table */
    const char *k = luaL_checkstring(L, 2);
    lua_getglobal(L, "require");
    lua_pushfstring(L, "tallow.%s", k);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 0; /* nil for names that are no module */
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, k);
    return 1;
}

static int l_log(lua_State *L)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    int lvl = luaL_checkoption(L, 1, NULL, levels);
    tallow_ctx_log(tallow__lrt_get(L)->ctx, lvl, "%s", luaL_checkstring(L, 2));
    return 0;
}

/* tallow.set_log_level("error"|"warn"|"info"|"debug") — what tallow_ctx_log prints */
static int l_set_log_level(lua_State *L)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    tallow_ctx_set_log_level(tallow__lrt_get(L)->ctx, luaL_checkoption(L, 1, NULL, levels));
    return 0;
}

/* tallow.set_log_format("text"|"json") — plain lines, or one JSON object per line */
static int l_set_log_format(lua_State *L)
{
    static const char *const formats[] = {"text", "json", NULL};
    tallow_ctx_set_log_format(tallow__lrt_get(L)->ctx, luaL_checkoption(L, 1, NULL, formats));
    return 0;
}

static int l_strerror(lua_State *L)
{
    lua_pushstring(L, tallow_strerror((int)luaL_checkinteger(L, 1)));
    return 1;
}

static int l_lua_dir(lua_State *L)
{
    lua_pushstring(L, tallow_lua_dir());
    return 1;
}

static const luaL_Reg funcs[] = {
    {"log", l_log},
    {"set_log_level", l_set_log_level},
    {"set_log_format", l_set_log_format},
    {"strerror", l_strerror},
    {"lua_dir", l_lua_dir},
    {NULL, NULL},
};

int luaopen_tallow(lua_State *L)
{
    luaL_newlib(L, funcs);
    lua_pushstring(L, TALLOW_VERSION);
    lua_setfield(L, -2, "version");
    /* the waiting basics, also reachable as tallow.loop.* */
    luaL_requiref(L, "tallow.loop", luaopen_tallow_loop, 0);
    static const char *const lifted[] = {"sleep", "now", "spawn", "every", NULL};
    for (int i = 0; lifted[i]; i++) {
        lua_getfield(L, -1, lifted[i]);
        lua_setfield(L, -3, lifted[i]);
    }
    lua_setfield(L, -2, "loop");
    lua_newtable(L);
    lua_pushcfunction(L, index_submodule);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}
