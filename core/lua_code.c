/* core/lua_code.c — `tallow.code`: generate and normalise code phrases; the room id (hex) and a
 * keyed hash, for choosing a relay among several. The room id and the PAKE are derived in C from
 * the code; scripts never need to hash the code themselves. */
#include "crypto.h"
#include "lua_rt.h"

/* tallow.code.generate([nwords]) -> "7-word-word-word" */
static int l_generate(lua_State *L)
{
    lua_Integer n = luaL_optinteger(L, 1, 3);
    luaL_argcheck(L, n >= 2 && n <= 8, 1,
                  "between 2 and 8 words (one word is one guess in 2048: too easy)");
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

/* tallow.code.room_id(code) -> 64 hex digits: the room id the relay sees (salted hash of part of
 * the code, never the code) | nil, message, code. Used to pick a relay among several. */
static int l_room_id(lua_State *L)
{
    uint8_t room[32];
    char hex[2 * sizeof room + 1];
    int rc = tallow__code_room_id(luaL_checkstring(L, 1), room);
    if (rc < 0)
        return tallow__lua_fail(L, rc, "malformed code phrase (expected NUMBER-word-word-...)");
    lua_pushstring(L, sodium_bin2hex(hex, sizeof hex, room, sizeof room));
    return 1;
}

/* tallow.code.hash(data [, key]) -> 64 hex digits of BLAKE2b-256(data), keyed when key is given
 * (16 to 64 bytes). Rendezvous hashing of rooms over relays uses it. */
static int l_hash(lua_State *L)
{
    size_t n, klen = 0;
    const char *data = luaL_checklstring(L, 1, &n);
    const char *key = luaL_optlstring(L, 2, NULL, &klen);
    luaL_argcheck(L, !key || (klen >= crypto_generichash_KEYBYTES_MIN &&
                              klen <= crypto_generichash_KEYBYTES_MAX), 2, "16 to 64 bytes");
    uint8_t h[32];
    char hex[2 * sizeof h + 1];
    crypto_generichash(h, sizeof h, (const uint8_t *)data, n, (const uint8_t *)key, klen);
    lua_pushstring(L, sodium_bin2hex(hex, sizeof hex, h, sizeof h));
    return 1;
}

static const luaL_Reg funcs[] = {
    {"generate", l_generate}, {"normalize", l_normalize}, {"room_id", l_room_id},
    {"hash", l_hash},         {NULL, NULL},
};

int luaopen_tallow_code(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
