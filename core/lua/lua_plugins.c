/* core/lua/lua_plugins.c — `tallow.plugins`: load a plugin by name or path, load all on the search
 * path, list what is loaded. */
#include <stdio.h>

#include "lua_rt.h"

static int l_load(lua_State *L)
{
    tallow_ctx *ctx = tallow__lrt_get(L)->ctx;
    int rc = tallow_plugin_load(ctx, luaL_checkstring(L, 1));
    if (rc < 0) return tallow__lua_fail(L, rc, tallow_ctx_last_error(ctx));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_load_all(lua_State *L)
{
    lua_pushinteger(L, tallow_plugin_load_all(tallow__lrt_get(L)->ctx));
    return 1;
}

static void add(const tallow_plugin_desc *d, const char *path, void *ud)
{
    lua_State *L = ud;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, d->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, d->version ? d->version : "");
    lua_setfield(L, -2, "version");
    lua_pushstring(L, d->summary ? d->summary : "");
    lua_setfield(L, -2, "summary");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int l_list(lua_State *L)
{
    lua_newtable(L);
    tallow_plugin_foreach(tallow__lrt_get(L)->ctx, add, L);
    return 1;
}

static int l_has_transport(lua_State *L)
{
    lua_pushboolean(L,
                    tallow_transport_find(tallow__lrt_get(L)->ctx, luaL_checkstring(L, 1)) != NULL);
    return 1;
}

/* module(name): the Lua face a loaded plugin registered, opened once per state. */
static int l_module(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "tallow.plugin_modules");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "tallow.plugin_modules");
    }
    if (lua_getfield(L, -1, name) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    void *state = NULL;
    const tallow_lua_module_ops *ops =
        tallow_lua_module_find(tallow__lrt_get(L)->ctx, name, &state);
    if (!ops) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no plugin registered a Lua module named '%s' (is it loaded?)",
                 name);
        return tallow__lua_fail(L, TALLOW_ENOTFOUND, msg);
    }
    if (ops->open(state, L) != 1) return luaL_error(L, "plugin module '%s' failed to open", name);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"load", l_load},     {"load_all", l_load_all},
    {"list", l_list},     {"has_transport", l_has_transport},
    {"module", l_module}, {NULL, NULL},
};

int luaopen_tallow_plugins(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
