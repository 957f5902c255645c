/* plugins/wormhole/wh_lua.c — the plugin's Lua face, tallow.plugins.module("wormhole"):
 *   local w = wh.open{relay=, code=, words=, transit=, no_p2p=, progress=}
 *   w:code()  w:pair() -> verifier   w:send_text(s)  w:send(path)
 *   w:offer() -> {kind=, name=, size=, files=}   w:accept{dest=, overwrite=}   w:reject(why)
 * Each call blocks in poll() with its own deadline (the script waits between calls: the accept
 * question is asked by the script). Failures return nil, message, code name. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/error.h>

#include "wh.h"

#define META "tallow.wormhole"
#define PAIR_WAIT_MS (3600LL * 1000) /* the other person may take a while to type the code */
#define OFFER_WAIT_MS (120LL * 1000)

typedef struct lwh {
    wh_session s;
    int open;
} lwh;

static lwh *check(lua_State *L)
{
    lwh *w = luaL_checkudata(L, 1, META);
    if (!w->open) luaL_error(L, "wormhole: already closed");
    return w;
}

static int lfail(lua_State *L, int rc, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg && *msg ? msg : tallow_strerror(rc));
    lua_pushstring(L, tallow_err_name(rc));
    return 3;
}

static const char *opt_str(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    const char *s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the options table keeps it alive */
    return s;
}

static int opt_bool(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    int b = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return b;
}

static int progress_mode(const char *p)
{
    if (!p) return 0;
    return strcmp(p, "bar") == 0 ? 1 : strcmp(p, "json") == 0 ? 2 : 0;
}

static int l_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *relay = opt_str(L, 1, "relay");
    const char *code = opt_str(L, 1, "code");
    const char *transit = opt_str(L, 1, "transit");
    lua_getfield(L, 1, "words");
    int words = (int)luaL_optinteger(L, -1, 2);
    lua_pop(L, 1);
    if (words < 1 || words > 16) return luaL_error(L, "wormhole.open: words must be 1..16");
    lwh *w = lua_newuserdatauv(L, sizeof(*w), 0);
    memset(w, 0, sizeof(*w));
    w->s.c.ws.fd = -1;
    luaL_setmetatable(L, META);
    w->open = 1;
    w->s.no_p2p = opt_bool(L, 1, "no_p2p");
    w->s.progress = progress_mode(opt_str(L, 1, "progress"));
    w->s.transit_relay = strdup(transit ? transit : WH_DEFAULT_TRANSIT);
    w->s.notices = json_array();
    int64_t deadline = wh_now_ms() + 30000;
    int rc = wh_conn_open(&w->s.c, relay ? relay : WH_DEFAULT_RELAY, deadline);
    if (!rc)
        rc = code ? wh_conn_set_code(&w->s.c, code) : wh_conn_allocate(&w->s.c, words, deadline);
    if (rc) {
        char msg[WH_ERRLEN];
        snprintf(msg, sizeof(msg), "%s", w->s.c.err);
        wh_session_free(&w->s);
        w->open = 0;
        return lfail(L, rc, msg);
    }
    return 1;
}

static int l_code(lua_State *L)
{
    lua_pushstring(L, check(L)->s.c.code);
    return 1;
}

static int l_pair(lua_State *L)
{
    lwh *w = check(L);
    lua_Number secs = luaL_optnumber(L, 2, (lua_Number)PAIR_WAIT_MS / 1000);
    int rc = wh_conn_pair(&w->s.c, wh_now_ms() + (int64_t)(secs * 1000));
    if (rc) return lfail(L, rc, w->s.c.err);
    char v[65];
    wh_conn_verifier(&w->s.c, v);
    lua_pushstring(L, v);
    return 1;
}

static void push_notices(lua_State *L, wh_session *s)
{
    lua_createtable(L, (int)json_array_size(s->notices), 0);
    size_t i;
    json_t *n;
    json_array_foreach(s->notices, i, n)
    {
        lua_pushstring(L, json_string_value(n));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static void push_summary(lua_State *L, wh_session *s)
{
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, (lua_Integer)s->files);
    lua_setfield(L, -2, "files");
    lua_pushinteger(L, (lua_Integer)s->bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, (lua_Integer)s->wire);
    lua_setfield(L, -2, "wire_bytes");
    lua_pushnumber(L, s->seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushstring(L, s->path ? s->path : "mailbox");
    lua_setfield(L, -2, "path");
    push_notices(L, s);
    lua_setfield(L, -2, "notices");
}

static int result(lua_State *L, lwh *w, int rc)
{
    if (!rc) {
        push_summary(L, &w->s);
        return 1;
    }
    lfail(L, rc, w->s.err);
    push_summary(L, &w->s);
    return 4;
}

static int l_send_text(lua_State *L)
{
    lwh *w = check(L);
    size_t len;
    const char *t = luaL_checklstring(L, 2, &len);
    return result(L, w, wh_send_text(&w->s, t, len));
}

static int l_send(lua_State *L)
{
    lwh *w = check(L);
    return result(L, w, wh_send_path(&w->s, luaL_checkstring(L, 2)));
}

static int l_offer(lua_State *L)
{
    lwh *w = check(L);
    lua_Number secs = luaL_optnumber(L, 2, (lua_Number)OFFER_WAIT_MS / 1000);
    int64_t deadline = secs > 0 ? wh_now_ms() + (int64_t)(secs * 1000) : wh_now_ms() + 86400000LL;
    int rc = wh_get_offer(&w->s, deadline);
    if (rc) return lfail(L, rc, w->s.err);
    json_t *o = w->s.offer, *f;
    lua_createtable(L, 0, 6);
    if (json_is_string(json_object_get(o, "message"))) {
        lua_pushstring(L, "text");
        lua_setfield(L, -2, "kind");
        lua_pushinteger(L, (lua_Integer)json_string_length(json_object_get(o, "message")));
        lua_setfield(L, -2, "size");
    } else if ((f = json_object_get(o, "file"))) {
        lua_pushstring(L, "file");
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, json_string_value(json_object_get(f, "filename")));
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, (lua_Integer)json_integer_value(json_object_get(f, "filesize")));
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, 1);
        lua_setfield(L, -2, "files");
    } else if ((f = json_object_get(o, "directory"))) {
        lua_pushstring(L, "directory");
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, json_string_value(json_object_get(f, "dirname")));
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, (lua_Integer)json_integer_value(json_object_get(f, "numbytes")));
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, (lua_Integer)json_integer_value(json_object_get(f, "zipsize")));
        lua_setfield(L, -2, "zipsize");
        lua_pushinteger(L, (lua_Integer)json_integer_value(json_object_get(f, "numfiles")));
        lua_setfield(L, -2, "files");
    } else {
        lua_pushstring(L, "unknown");
        lua_setfield(L, -2, "kind");
    }
    return 1;
}

static int l_accept(lua_State *L)
{
    lwh *w = check(L);
    const char *dest = ".";
    int overwrite = 0;
    if (lua_istable(L, 2)) {
        const char *d = opt_str(L, 2, "dest");
        if (d) dest = d;
        overwrite = opt_bool(L, 2, "overwrite");
    }
    if (!w->s.offer) return luaL_error(L, "wormhole: accept() before offer()");
    char *text = NULL;
    size_t tl = 0;
    int rc = wh_accept(&w->s, dest, overwrite, &text, &tl);
    int n = result(L, w, rc);
    if (!rc && text) {
        lua_pushlstring(L, text, tl);
        lua_setfield(L, -2, "text");
    }
    free(text);
    return n;
}

static int l_reject(lua_State *L)
{
    lwh *w = check(L);
    wh_reject(&w->s, luaL_optstring(L, 2, "transfer rejected"));
    return 0;
}

static int l_close(lua_State *L)
{
    lwh *w = luaL_checkudata(L, 1, META);
    if (w->open) {
        wh_conn_close(&w->s.c, luaL_optstring(L, 2, "lonely"));
        wh_session_free(&w->s);
    }
    w->open = 0;
    return 0;
}

static const luaL_Reg methods[] = {
    {"code", l_code},     {"pair", l_pair},   {"send_text", l_send_text},
    {"send", l_send},     {"offer", l_offer}, {"accept", l_accept},
    {"reject", l_reject}, {"close", l_close}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {{"open", l_open}, {NULL, NULL}};

int wh_lua_open(void *plugin_state, lua_State *L)
{
    (void)plugin_state;
    if (luaL_newmetatable(L, META)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushstring(L, WH_DEFAULT_RELAY);
    lua_setfield(L, -2, "default_relay");
    lua_pushstring(L, WH_DEFAULT_TRANSIT);
    lua_setfield(L, -2, "default_transit");
    return 1;
}
