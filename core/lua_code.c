/* core/lua_code.c — `tallow.code`: generate and normalise code phrases. The room id and the
 * PAKE are derived in C from the code; scripts never need to hash it themselves. */
#include "crypto.h"
#include "lua_rt.h"

/* tallow.code.generate([nwords]) -> "7-word-word-word" */
static int l_generate(lua_State *L)
{
    lua_Integer n = luaL_optinteger(L, 1, 3);
    luaL_argcheck(L, n >= 1 && n <= 8, 1, "between 1 and 8 words");
    char code[TALLOW__CODE_MAX];
    int rc = tallow__code_generate(code, sizeof(code), (unsigned)n);
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    lua_pushstring(L, code);
    return 1;
}

/* tallow.code.normalize(s) -> canonical code | nil, message, code */
static int l_normalize(lua_State *L)
{
    char code[TALLOW__CODE_MAX];
    int rc = tallow__code_normalize(luaL_checkstring(L, 1), code, sizeof(code));
    if (rc < 0)
        return tallow__lua_fail(L, rc, "malformed code phrase (expected NUMBER-word-word-...)");
    lua_pushstring(L, code);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"generate", l_generate}, {"normalize", l_normalize}, {NULL, NULL},
};

int luaopen_tallow_code(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
