/* core/lua/lua_service.c — `tallow.service`: start a plugin's long-running service (the relay) with
 * string options, read its counters, wait for SIGINT/SIGTERM, stop it. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lua_rt.h"

typedef struct lservice {
    const tallow_service_ops *ops;
    void *inst;
    tallow__waiter w;
    tallow_io *sigio;
    int sigfd;
    sigset_t old;
    tallow_timer *wt; /* wait(timeout) */
    int waiting;
    int pending; /* a signal that came while nobody waited */
} lservice;

static lservice *check(lua_State *L)
{
    return luaL_checkudata(L, 1, "tallow.service");
}

/* Reads the option table at index idx into kv (strings anchored in a table pushed on the
 * stack). Returns the count. */
static size_t read_opts(lua_State *L, int idx, tallow_kv kv[64])
{
    size_t n = 0;
    lua_newtable(L);
    int tmp = lua_gettop(L);
    if (lua_istable(L, idx)) {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) == LUA_TSTRING && n < 64) {
                luaL_tolstring(L, -1, NULL);
                lua_rawseti(L, tmp, (lua_Integer)(2 * n + 2));
                lua_pushvalue(L, -2);
                lua_rawseti(L, tmp, (lua_Integer)(2 * n + 1));
                n++;
            }
            lua_pop(L, 1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, tmp, (lua_Integer)(2 * i + 1));
        kv[i].key = lua_tostring(L, -1);
        lua_rawgeti(L, tmp, (lua_Integer)(2 * i + 2));
        kv[i].value = lua_tostring(L, -1);
        lua_pop(L, 2); /* still referenced by tmp */
    }
    return n;
}

static const tallow_service_ops *find(lua_State *L, tallow_ctx *ctx, const char *name, void **state)
{
    const tallow_service_ops *ops = tallow_service_find(ctx, name, state);
    if (!ops) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no service named '%s' (is its plugin loaded?)", name);
        tallow__lua_fail(L, TALLOW_ENOTFOUND, msg);
    }
    return ops;
}

static int l_start(lua_State *L)
{
    tallow_ctx *ctx = tallow__lrt_get(L)->ctx;
    const char *name = luaL_checkstring(L, 1);
    void *state = NULL;
    const tallow_service_ops *ops = find(L, ctx, name, &state);
    if (!ops) return 3;
    tallow_kv kv[64];
    size_t n = read_opts(L, 2, kv); /* its table anchors the option strings while start() runs */
    lservice *s = lua_newuserdatauv(L, sizeof(*s), 0);
    memset(s, 0, sizeof(*s));
    s->sigfd = -1;
    luaL_setmetatable(L, "tallow.service");
    s->ops = ops;
    int rc = ops->start(state, ctx, kv, n, &s->inst);
    if (rc < 0) {
        s->ops = NULL;
        return tallow__lua_fail(L, rc,
                                tallow_ctx_last_error(ctx)[0] ? tallow_ctx_last_error(ctx) : NULL);
    }
    return 1;
}

/* tallow.service.check(name, options) -> true | nil, message, code: validates without starting */
static int l_check(lua_State *L)
{
    tallow_ctx *ctx = tallow__lrt_get(L)->ctx;
    void *state = NULL;
    const tallow_service_ops *ops = find(L, ctx, luaL_checkstring(L, 1), &state);
    if (!ops) return 3;
    tallow_kv kv[64];
    size_t n = read_opts(L, 2, kv);
    tallow_ctx_set_error(ctx, "%s", "");
    int rc = ops->check(state, ctx, kv, n); /* the host's default: TALLOW_ENOTSUP */
    if (rc == TALLOW_ENOTSUP)
        return tallow__lua_fail(L, TALLOW_ENOTFOUND, "this service cannot check options");
    if (rc < 0)
        return tallow__lua_fail(L, rc,
                                tallow_ctx_last_error(ctx)[0] ? tallow_ctx_last_error(ctx) : NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static lservice *check(lua_State *L);

/* svc:reload(options) -> true | nil, message, code (the old configuration stays) */
static int l_reload(lua_State *L)
{
    lservice *s = check(L);
    tallow_ctx *ctx = tallow__lrt_get(L)->ctx;
    if (!s->ops || !s->inst) return tallow__lua_fail(L, TALLOW_ECLOSED, "service stopped");
    tallow_kv kv[64];
    size_t n = read_opts(L, 2, kv);
    tallow_ctx_set_error(ctx, "%s", "");
    int rc = s->ops->reload(s->inst, kv, n);
    if (rc == TALLOW_ENOTSUP)
        return tallow__lua_fail(L, TALLOW_ENOTFOUND, "this service cannot reload");
    if (rc < 0)
        return tallow__lua_fail(L, rc,
                                tallow_ctx_last_error(ctx)[0] ? tallow_ctx_last_error(ctx) : NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* svc:drain() -> how much still runs | nil, message, code */
static int l_drain(lua_State *L)
{
    lservice *s = check(L);
    if (!s->ops || !s->inst) return tallow__lua_fail(L, TALLOW_ECLOSED, "service stopped");
    int n = s->ops->drain(s->inst);
    if (n == TALLOW_ENOTSUP)
        return tallow__lua_fail(L, TALLOW_ENOTFOUND, "this service cannot drain");
    lua_pushinteger(L, n);
    return 1;
}

static void stop_signals(lservice *s)
{
    if (s->wt) tallow_timer_stop(s->wt);
    s->wt = NULL;
    s->waiting = 0;
    if (s->sigio) tallow_io_stop(s->sigio);
    s->sigio = NULL;
    if (s->sigfd >= 0) {
        close(s->sigfd);
        s->sigfd = -1;
        sigprocmask(SIG_SETMASK, &s->old, NULL);
    }
}

static int l_stop(lua_State *L)
{
    lservice *s = check(L);
    stop_signals(s);
    if (s->ops && s->inst) s->ops->stop(s->inst);
    s->ops = NULL;
    s->inst = NULL;
    return 0;
}

static void push_kv(const char *key, uint64_t value, void *ud)
{
    lua_State *L = ud;
    lua_pushinteger(L, (lua_Integer)value);
    lua_setfield(L, -2, key);
}

static int l_stats(lua_State *L)
{
    lservice *s = check(L);
    lua_newtable(L);
    if (s->ops) s->ops->stats(s->inst, push_kv, L);
    return 1;
}

static int push_signo(lua_State *co, void *ud)
{
    if (ud)
        lua_pushinteger(co, (lua_Integer)(intptr_t)ud);
    else
        lua_pushnil(co);
    return 1;
}

static void wake_with(lservice *s, int signo)
{
    if (!s->waiting) return;
    s->waiting = 0;
    if (s->wt) tallow_timer_stop(s->wt);
    s->wt = NULL;
    tallow__lua_wake(&s->w, push_signo, (void *)(intptr_t)signo);
}

static void on_signal(tallow_io *io, int fd, unsigned ev, void *ud)
{
    lservice *s = ud;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (s->waiting)
            wake_with(s, (int)si.ssi_signo);
        else if (!s->pending || si.ssi_signo != SIGHUP) /* a stop outranks a reload */
            s->pending = (int)si.ssi_signo;
    }
}

static void on_wait_timeout(tallow_timer *t, void *ud)
{
    lservice *s = ud;
    s->wt = NULL; /* one-shot: the loop frees it */
    wake_with(s, 0);
}

/* svc:wait([timeout_seconds]) — waits for SIGINT, SIGTERM or SIGHUP and returns its number, or
 * nil when the timeout passed first. From the first call on the three signals stay blocked and
 * are read from a signalfd, so one that comes between two waits is kept for the next. */
static int l_wait(lua_State *L)
{
    lservice *s = check(L);
    tallow_ctx *ctx = tallow__lrt_get(L)->ctx;
    double timeout = luaL_optnumber(L, 2, -1);
    if (s->sigfd < 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, &s->old);
        s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->sigfd < 0) return luaL_error(L, "signalfd failed");
        s->sigio = tallow_io_start(tallow_ctx_loop(ctx), s->sigfd, TALLOW_IO_READ, on_signal, s);
    }
    if (s->pending) {
        lua_pushinteger(L, s->pending);
        s->pending = 0;
        return 1;
    }
    if (s->waiting) return luaL_error(L, "svc:wait() is already waiting");
    s->waiting = 1;
    if (timeout >= 0)
        s->wt = tallow_timer_start(tallow_ctx_loop(ctx), (uint64_t)(timeout * 1000.0), 0,
                                   on_wait_timeout, s);
    return tallow__lua_wait(L, &s->w, NULL, 0);
}

static int l_options(lua_State *L)
{
    tallow_ctx *ctx = tallow__lrt_get(L)->ctx;
    const tallow_service_ops *ops = tallow_service_find(ctx, luaL_checkstring(L, 1), NULL);
    lua_newtable(L);
    if (ops)
        for (int i = 0; ops->options_help[i]; i++) {
            lua_pushstring(L, ops->options_help[i]);
            lua_rawseti(L, -2, i + 1);
        }
    return 1;
}

static const luaL_Reg funcs[] = {
    {"start", l_start},
    {"options", l_options},
    {"check", l_check},
    {NULL, NULL},
};

int luaopen_tallow_service(lua_State *L)
{
    if (luaL_newmetatable(L, "tallow.service")) {
        lua_pushcfunction(L, l_stop);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_stop);
        lua_setfield(L, -2, "__close");
        lua_newtable(L);
        lua_pushcfunction(L, l_stop);
        lua_setfield(L, -2, "stop");
        lua_pushcfunction(L, l_stats);
        lua_setfield(L, -2, "stats");
        lua_pushcfunction(L, l_wait);
        lua_setfield(L, -2, "wait");
        lua_pushcfunction(L, l_reload);
        lua_setfield(L, -2, "reload");
        lua_pushcfunction(L, l_drain);
        lua_setfield(L, -2, "drain");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
