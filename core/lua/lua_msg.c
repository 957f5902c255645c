/* core/lua/lua_msg.c — `tallow.msg`: the registry from Lua. Encode a message by name from a table,
 * decode a frame into (name, table), list types. Field names and kinds come from the same
 * descriptors the C codec uses, so Lua and C can never disagree. */
#include <stdlib.h>
#include <string.h>

#include "lua_rt.h"

static const tallow_registry *reg_of(lua_State *L)
{
    return tallow_ctx_registry(tallow__lrt_get(L)->ctx);
}

const tallow_msg_type *tallow__lua_check_type(lua_State *L, int idx)
{
    const tallow_registry *reg = reg_of(L);
    const tallow_msg_type *t;
    if (lua_type(L, idx) == LUA_TNUMBER)
        t = tallow_registry_find(reg, (uint32_t)luaL_checkinteger(L, idx));
    else
        t = tallow_registry_find_name(reg, luaL_checkstring(L, idx));
    if (!t) luaL_argerror(L, idx, "unknown message type");
    return t;
}

/* Fills msg (zeroed, t->struct_size bytes) from the table at idx. Strings stay on L's stack
 * (anchored by the table) while msg is used. Unknown keys raise: a typo should not vanish. */
void tallow__lua_to_msg(lua_State *L, int idx, const tallow_msg_type *t, void *msg)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: field names must be strings", t->name);
        const char *key = lua_tostring(L, -2);
        const tallow_field *f = NULL;
        for (uint32_t i = 0; i < t->nfields; i++)
            if (strcmp(t->fields[i].name, key) == 0) f = &t->fields[i];
        if (!f) luaL_error(L, "%s has no field '%s'", t->name, key);
        uint8_t *p = (uint8_t *)msg + f->offset;
        switch (f->kind) {
        case TALLOW_F_U64:
        case TALLOW_F_I64: {
            if (!lua_isinteger(L, -1)) luaL_error(L, "%s.%s must be an integer", t->name, key);
            lua_Integer v = lua_tointeger(L, -1);
            memcpy(p, &v, 8);
            break;
        }
        case TALLOW_F_U32: {
            lua_Integer v = lua_tointeger(L, -1);
            if (!lua_isinteger(L, -1) || v < 0 || v > UINT32_MAX)
                luaL_error(L, "%s.%s must be an integer 0..2^32-1", t->name, key);
            uint32_t u = (uint32_t)v;
            memcpy(p, &u, 4);
            break;
        }
        case TALLOW_F_BOOL:
            *p = (uint8_t)lua_toboolean(L, -1);
            break;
        default: {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "%s.%s must be a string", t->name, key);
            tallow_bytes *b = (tallow_bytes *)p;
            b->ptr = (const uint8_t *)lua_tolstring(L, -1, &b->len);
            break;
        }
        }
        lua_pop(L, 1);
    }
}

void tallow__lua_push_msg(lua_State *L, const tallow_msg_type *t, const void *msg)
{
    lua_createtable(L, 0, (int)t->nfields);
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        const uint8_t *p = (const uint8_t *)msg + f->offset;
        switch (f->kind) {
        case TALLOW_F_U64:
        case TALLOW_F_I64: {
            lua_Integer v;
            memcpy(&v, p, 8);
            lua_pushinteger(L, v);
            break;
        }
        case TALLOW_F_U32: {
            uint32_t v;
            memcpy(&v, p, 4);
            lua_pushinteger(L, v);
            break;
        }
        case TALLOW_F_BOOL:
            lua_pushboolean(L, *p);
            break;
        default: {
            const tallow_bytes *b = (const tallow_bytes *)p;
            lua_pushlstring(L, b->len ? (const char *)b->ptr : "", b->len);
            break;
        }
        }
        lua_setfield(L, -2, f->name);
    }
}

/* tallow.msg.encode(name_or_id, table) -> string */
static int l_encode(lua_State *L)
{
    const tallow_msg_type *t = tallow__lua_check_type(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    void *msg = lua_newuserdatauv(L, t->struct_size, 0); /* freed by the GC, even on a raise */
    memset(msg, 0, t->struct_size);
    tallow__lua_to_msg(L, 2, t, msg);
    size_t n = tallow_msg_encoded_size(t, msg);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, n);
    int rc = tallow_msg_encode(t, msg, out, n);
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    luaL_pushresultsize(&b, (size_t)rc);
    return 1;
}

/* tallow.msg.decode(string) -> name, table   |  nil, message, code */
static int l_decode(lua_State *L)
{
    size_t len;
    const uint8_t *buf = (const uint8_t *)luaL_checklstring(L, 1, &len);
    uint32_t id;
    int rc = tallow_msg_peek_type(buf, len, &id);
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    const tallow_msg_type *t = tallow_registry_find(reg_of(L), id);
    if (!t) return tallow__lua_fail(L, TALLOW_EUNKTYPE, NULL);
    void *msg = calloc(1, t->struct_size);
    if (!msg) return luaL_error(L, "out of memory");
    rc = tallow_msg_decode(reg_of(L), buf, len, &t, msg, t->struct_size);
    if (rc < 0) {
        free(msg);
        return tallow__lua_fail(L, rc, NULL);
    }
    lua_pushstring(L, t->name);
    tallow__lua_push_msg(L, t, msg);
    free(msg);
    return 2;
}

/* tallow.msg.id(name) -> integer */
static int l_id(lua_State *L)
{
    lua_pushinteger(L, tallow__lua_check_type(L, 1)->id);
    return 1;
}

static void add_type(const tallow_msg_type *t, void *ud)
{
    lua_State *L = ud;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, t->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "name");
    lua_createtable(L, (int)t->nfields, 0);
    for (uint32_t i = 0; i < t->nfields; i++) {
        lua_pushstring(L, t->fields[i].name);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "fields");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* tallow.msg.types() -> { {id=, name=, fields={...}}, ... } in id order */
static int l_types(lua_State *L)
{
    lua_newtable(L);
    tallow_registry_foreach(reg_of(L), add_type, L);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"encode", l_encode}, {"decode", l_decode}, {"id", l_id}, {"types", l_types}, {NULL, NULL},
};

int luaopen_tallow_msg(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
