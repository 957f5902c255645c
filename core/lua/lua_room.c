/* core/lua/lua_room.c — `tallow.room`: a room of several peers with keys per pair
 * (core/session/room.c).
 *
 *   local room = tallow.room.open{code=, relay=, password=, transport=, capacity=N}
 *   local s, peer = room:accept([timeout])   -- the next peer, as a ready tallow.session
 *   room:info() -> {peer_index=, peers=, capacity=, path=};  room:close()
 *
 * capacity: peers in all (this one included) when this side makes the room; 0 joins whatever
 * room the code names (a pair room if there is none yet). Each session is a normal
 * tallow.session (send/recv/send_files/receive_files); peers whose handshake fails are skipped. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lua_session.h"
#include "room.h"

typedef struct pend {
    struct pend *next;
    tallow__lsession *ls;
    uint32_t peer;
    int ref; /* anchors the session userdata until accept hands it out */
} pend;

typedef struct lroom {
    tallow__lrt *rt;
    tallow__room *r;
    char *code;
    int closed, status;
    int burned; /* a peer's handshake failed with TALLOW_ECODE */
    pend *head;
    tallow__waiter w;
    int waiting;
    int timed_out;
    tallow_timer *timer;
} lroom;

static lroom *check(lua_State *L)
{
    lroom *lr = luaL_checkudata(L, 1, "tallow.room");
    if (!lr->r) luaL_error(L, "room is closed");
    return lr;
}

static int push_nothing(lua_State *co, void *ud)
{
    (void)co;
    (void)ud;
    return 0;
}

static void wake(lroom *lr)
{
    if (!lr->waiting) return;
    lr->waiting = 0;
    tallow__lua_wake(&lr->w, push_nothing, lr);
}

static void stop_timer(lroom *lr)
{
    if (lr->timer) tallow_timer_stop(lr->timer);
    lr->timer = NULL;
    lr->timed_out = 0;
}

static void ls_event(tallow__lsession *ls, void *ud)
{
    lroom *lr = ud;
    if (ls->ready || ls->closed) wake(lr);
}

static void on_peer(tallow__room *r, tallow_channel *ch, uint32_t peer, int initiator, void *ud)
{
    lroom *lr = ud;
    lua_State *L = lr->rt->L;
    tallow__session_params p = {.code = lr->code, .initiator = initiator};
    tallow__lsession *ls;
    pend *e = calloc(1, sizeof(*e));
    int rc = e ? tallow__lsession_new_on(L, ch, &p, &ls) : TALLOW_ENOMEM;
    if (rc < 0) {
        tallow_ctx_log(lr->rt->ctx, TALLOW_LOG_WARN, "room: no session with peer %u: %s", peer,
                       tallow_strerror(rc));
        tallow_channel_close(ch);
        free(e);
        return;
    }
    e->ls = ls;
    e->peer = peer;
    e->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ls->on_event = ls_event;
    ls->event_ud = lr;
    pend **pp = &lr->head;
    while (*pp)
        pp = &(*pp)->next;
    *pp = e;
}

static void on_closed(tallow__room *r, int err, void *ud)
{
    lroom *lr = ud;
    lr->closed = 1;
    lr->status = err ? err : TALLOW_ECLOSED;
    wake(lr);
}

static const tallow__room_cbs room_cbs = {.on_peer = on_peer, .on_closed = on_closed};

static void drop_pending(lua_State *L, lroom *lr)
{
    while (lr->head) {
        pend *e = lr->head;
        lr->head = e->next;
        e->ls->on_event = NULL;
        e->ls->event_ud = NULL;
        luaL_unref(L, LUA_REGISTRYINDEX, e->ref);
        free(e);
    }
}

static int l_close(lua_State *L)
{
    lroom *lr = luaL_checkudata(L, 1, "tallow.room");
    wake(lr); /* an accept in another coroutine returns "closed" */
    drop_pending(L, lr);
    if (lr->r) tallow__room_close(lr->r);
    lr->r = NULL;
    stop_timer(lr);
    if (lr->code) {
        sodium_memzero(lr->code, strlen(lr->code));
        free(lr->code);
        lr->code = NULL;
    }
    return 0;
}

static int l_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    tallow__room_params p = {0};
    p.code = tallow__lua_opt_str(L, 1, "code");
    p.address = tallow__lua_opt_str(L, 1, "relay");
    p.failover = tallow__lua_opt_str(L, 1, "failover");
    p.password = tallow__lua_opt_str(L, 1, "password");
    p.transport = tallow__lua_opt_str(L, 1, "transport");
    lua_getfield(L, 1, "capacity");
    lua_Integer cap = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    if (!p.code) return luaL_argerror(L, 1, "code is required");
    if (!p.address) return luaL_argerror(L, 1, "relay is required");
    luaL_argcheck(L, cap >= 0 && cap <= 4096, 1, "capacity out of range");
    p.capacity = (uint32_t)cap;

    lroom *lr = lua_newuserdatauv(L, sizeof(*lr), 0);
    memset(lr, 0, sizeof(*lr));
    luaL_setmetatable(L, "tallow.room");
    lr->rt = tallow__lrt_get(L);
    lr->code = strdup(p.code);
    if (!lr->code) return luaL_error(L, "out of memory");
    tallow_ctx_set_error(lr->rt->ctx, "%s", "");
    int rc = tallow__room_open(lr->rt->ctx, &p, &room_cbs, lr, &lr->r);
    if (rc < 0) {
        const char *msg = tallow_ctx_last_error(lr->rt->ctx);
        free(lr->code);
        lr->code = NULL;
        lr->r = NULL;
        return tallow__lua_fail(L, rc, msg[0] ? msg : NULL);
    }
    return 1;
}

static void accept_timeout(tallow_timer *t, void *ud)
{
    lroom *lr = ud;
    lr->timer = NULL;
    lr->timed_out = 1;
    wake(lr);
}

static int accept_k(lua_State *L, int status, lua_KContext kctx);

/* stack: room [, timeout] ; kctx 1 once the timeout may have fired */
static int accept_scan(lua_State *L, lroom *lr, int waited)
{
    for (pend **pp = &lr->head; *pp;) {
        pend *e = *pp;
        if (!e->ls->ready && !e->ls->closed) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        e->ls->on_event = NULL;
        e->ls->event_ud = NULL;
        lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);
        luaL_unref(L, LUA_REGISTRYINDEX, e->ref);
        if (e->ls->ready && !e->ls->closed) {
            stop_timer(lr);
            lua_pushinteger(L, e->peer);
            free(e);
            return 2;
        }
        tallow_ctx_log(lr->rt->ctx, TALLOW_LOG_WARN, "room: handshake with peer %u failed: %s",
                       e->peer, tallow_strerror(e->ls->status));
        lua_pop(L, 1); /* the session object closes when collected */
        if (e->ls->status == TALLOW_ECODE) lr->burned = 1;
        free(e);
    }
    if (lr->burned) { /* one guess per code: after a wrong one the room takes no one else */
        stop_timer(lr);
        return tallow__lua_fail(L, TALLOW_ECODE,
                                "a peer joined with a wrong code (code mismatch, or someone tried "
                                "to guess it); the room takes no one else");
    }
    if (lr->closed) {
        stop_timer(lr);
        const char *msg = tallow_ctx_last_error(lr->rt->ctx);
        return tallow__lua_fail(L, lr->status, msg && msg[0] ? msg : NULL);
    }
    if (lr->timed_out) {
        stop_timer(lr);
        return tallow__lua_fail(L, TALLOW_ETIMEOUT, NULL);
    }
    if (!waited && !lua_isnoneornil(L, 2)) {
        double secs = luaL_checknumber(L, 2);
        lr->timer = tallow_timer_start(tallow_ctx_loop(lr->rt->ctx), (uint64_t)(secs * 1000), 0,
                                       accept_timeout, lr);
    }
    lr->waiting = 1;
    return tallow__lua_wait(L, &lr->w, accept_k, 0);
}

static int accept_k(lua_State *L, int status, lua_KContext kctx)
{
    (void)status;
    (void)kctx;
    lroom *lr = luaL_checkudata(L, 1, "tallow.room");
    if (!lr->r) return tallow__lua_fail(L, TALLOW_ECLOSED, "room is closed");
    return accept_scan(L, lr, 1);
}

/* room:accept([timeout]) -> session, peer_index | nil, message, code */
static int l_accept(lua_State *L)
{
    lroom *lr = check(L);
    if (lr->waiting) return luaL_error(L, "another coroutine is already accepting");
    lua_settop(L, 2);
    stop_timer(lr);
    return accept_scan(L, lr, 0);
}

static int l_info(lua_State *L)
{
    lroom *lr = check(L);
    tallow_channel_info info;
    tallow__room_info(lr->r, &info);
    lua_newtable(L);
    lua_pushinteger(L, info.peer_index);
    lua_setfield(L, -2, "peer_index");
    lua_pushinteger(L, info.peers);
    lua_setfield(L, -2, "peers");
    lua_pushinteger(L, info.capacity);
    lua_setfield(L, -2, "capacity");
    lua_pushstring(L, info.path ? info.path : "");
    lua_setfield(L, -2, "path");
    return 1;
}

static int l_tostring(lua_State *L)
{
    lroom *lr = luaL_checkudata(L, 1, "tallow.room");
    lua_pushfstring(L, "tallow.room (%s)", lr->r ? (lr->closed ? "gone" : "open") : "closed");
    return 1;
}

static const luaL_Reg methods[] = {
    {"accept", l_accept},
    {"info", l_info},
    {"close", l_close},
    {NULL, NULL},
};

static const luaL_Reg funcs[] = {{"open", l_open}, {NULL, NULL}};

int luaopen_tallow_room(lua_State *L)
{
    /* sessions made here use the tallow.session metatable */
    luaL_requiref(L, "tallow.session", luaopen_tallow_session, 0);
    lua_pop(L, 1);
    if (luaL_newmetatable(L, "tallow.room")) {
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
