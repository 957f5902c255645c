/* core/lua/lua_policy.c — `tallow.policy`: read the user's policy; tighten it; loosening fails once
 * the runner has locked what the user chose. */
#include "lua_rt.h"

static tallow_policy *pol(lua_State *L)
{
    return tallow_ctx_policy(tallow__lrt_get(L)->ctx);
}

static int l_no_p2p(lua_State *L)
{
    lua_pushboolean(L, tallow_policy_no_p2p(pol(L)));
    return 1;
}

static int l_forbid_p2p(lua_State *L)
{
    tallow_policy_forbid_p2p(pol(L));
    lua_pushboolean(L, 1);
    return 1;
}

static int result(lua_State *L, int rc)
{
    if (rc < 0) return tallow__lua_fail(L, rc, "policy can only be tightened from a script");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_allow_p2p(lua_State *L)
{
    return result(L, tallow_policy_allow_p2p(pol(L)));
}

static int l_proxy(lua_State *L)
{
    const char *p = tallow_policy_proxy(pol(L));
    if (p)
        lua_pushstring(L, p);
    else
        lua_pushnil(L);
    return 1;
}

static int l_set_proxy(lua_State *L)
{
    return result(L, tallow_policy_set_proxy(pol(L), luaL_checkstring(L, 1)));
}

static int l_allow_loopback(lua_State *L)
{
    if (lua_gettop(L) == 0) {
        lua_pushboolean(L, tallow_policy_allow_loopback(pol(L)));
        return 1;
    }
    return result(L, tallow_policy_set_allow_loopback(pol(L), lua_toboolean(L, 1)));
}

static const luaL_Reg funcs[] = {
    {"no_p2p", l_no_p2p}, {"forbid_p2p", l_forbid_p2p}, {"allow_p2p", l_allow_p2p},
    {"proxy", l_proxy},   {"set_proxy", l_set_proxy},   {"allow_loopback", l_allow_loopback},
    {NULL, NULL},
};

int luaopen_tallow_policy(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
