/* core/lua/lua_rt.c — the Lua runtime: builds the state, preloads the tallow modules, runs a script
 * as the main coroutine on the loop, and bridges waiting C calls (yield now, resume from the
 * loop on a later round, never from inside another resume). */
#include <errno.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tallow/lua.h>

#include "lua_rt.h"

static const char RT_KEY = 'r';
static const char THREADS_KEY = 't';

tallow__lrt *tallow__lrt_get(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &RT_KEY);
    tallow__lrt *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return rt;
}

const char *tallow__lua_opt_str(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    const char *v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the string stays alive: the options table holds it */
    return v;
}

int tallow__lua_fail(lua_State *L, int err, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg ? msg : tallow_strerror(err));
    lua_pushstring(L, tallow_err_name(err));
    return 3;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

TALLOW_API const char *tallow_lua_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("TALLOW_LUA_DIR");
    if (env && *env) return env;
    if (dir[0]) return dir;
    /* Running from the build tree: use the source's Lua files; installed: the share dir. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    if (strncmp(exe, TALLOW_BUILD_PLUGIN_DIR,
                strlen(TALLOW_BUILD_PLUGIN_DIR) - strlen("plugins")) == 0 &&
        is_dir(TALLOW_SOURCE_LUA_DIR))
        snprintf(dir, sizeof(dir), "%s", TALLOW_SOURCE_LUA_DIR);
    else if (is_dir(TALLOW_INSTALL_LUA_DIR))
        snprintf(dir, sizeof(dir), "%s", TALLOW_INSTALL_LUA_DIR);
    else
        snprintf(dir, sizeof(dir), "%s", TALLOW_SOURCE_LUA_DIR);
    return dir;
}

/* ---- coroutine bridge */

static void finish_thread(tallow__lrt *rt, lua_State *co)
{
    lua_rawgetp(rt->L, LUA_REGISTRYINDEX, &THREADS_KEY);
    lua_pushthread(co);
    lua_xmove(co, rt->L, 1);
    lua_rawget(rt->L, -2);
    int is_main = lua_toboolean(rt->L, -1) && lua_type(rt->L, -1) == LUA_TNUMBER;
    lua_pop(rt->L, 1);
    lua_pushthread(co);
    lua_xmove(co, rt->L, 1);
    lua_pushnil(rt->L);
    lua_rawset(rt->L, -3);
    lua_pop(rt->L, 1);
    rt->live--;
    if (is_main) rt->exiting = 1;
}

static void resume(tallow__lrt *rt, lua_State *co, int nargs)
{
    int nres = 0;
    int st = lua_resume(co, rt->L, nargs, &nres);
    if (st == LUA_YIELD) {
        lua_pop(co, nres); /* a waiting C call: its waker pushes the results */
        return;
    }
    if (st != LUA_OK) {
        const char *msg = lua_tostring(co, -1);
        luaL_traceback(rt->L, co, msg ? msg : "(error object is not a string)", 0);
        fprintf(stderr, "tallow: script error: %s\n", lua_tostring(rt->L, -1));
        lua_pop(rt->L, 1);
        rt->failed = 1;
        rt->exit_code = 1;
        rt->exiting = 1;
        tallow_loop_stop(tallow_ctx_loop(rt->ctx));
    } else if (nres > 0 && lua_isinteger(co, -nres)) {
        /* `return N` from the main chunk sets the exit status */
        lua_rawgetp(rt->L, LUA_REGISTRYINDEX, &THREADS_KEY);
        lua_pushthread(co);
        lua_xmove(co, rt->L, 1);
        lua_rawget(rt->L, -2);
        if (lua_type(rt->L, -1) == LUA_TNUMBER) rt->exit_code = (int)lua_tointeger(co, -nres);
        lua_pop(rt->L, 2);
    }
    finish_thread(rt, co);
    if (rt->exiting) tallow_loop_stop(tallow_ctx_loop(rt->ctx));
}

typedef struct pending_resume {
    tallow__lrt *rt;
    lua_State *co;
    int nargs;
} pending_resume;

static void deferred_resume(void *ud)
{
    pending_resume *p = ud;
    tallow__lrt *rt = p->rt;
    lua_State *co = p->co;
    int nargs = p->nargs;
    free(p);
    if (rt->exiting) return;
    resume(rt, co, nargs);
}

int tallow__lua_wait(lua_State *L, tallow__waiter *w, lua_KFunction k, lua_KContext kctx)
{
    if (!lua_isyieldable(L))
        return luaL_error(L, "this call waits: run it inside a tallow coroutine");
    w->rt = tallow__lrt_get(L);
    w->co = L;
    w->ref = LUA_NOREF;
    return lua_yieldk(L, 0, kctx, k);
}

void tallow__lua_wake(tallow__waiter *w, int (*push)(lua_State *co, void *ud), void *ud)
{
    if (!w->co) return;
    lua_State *co = w->co;
    tallow__lrt *rt = w->rt; /* push may free the struct w lives in (a transfer's result) */
    w->co = NULL;
    int n = push ? push(co, ud) : 0;
    pending_resume *p = malloc(sizeof(*p));
    if (!p || tallow_defer(tallow_ctx_loop(rt->ctx), deferred_resume, p) < 0) {
        free(p);
        resume(rt, co, n); /* out of memory: resume now rather than lose the coroutine */
        return;
    }
    p->rt = rt;
    p->co = co;
    p->nargs = n;
}

int tallow__lua_spawn(tallow__lrt *rt, lua_State *L, int nargs)
{
    lua_State *co = lua_newthread(L);
    /* anchor: threads[co] = true until it finishes */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &THREADS_KEY);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 2); /* table, thread */
    lua_xmove(L, co, nargs + 1);
    rt->live++;
    resume(rt, co, nargs);
    return 0;
}

/* ---- package.preload and the state */

static const luaL_Reg preloads[] = {
    {"tallow", luaopen_tallow},
    {"tallow.msg", luaopen_tallow_msg},
    {"tallow.loop", luaopen_tallow_loop},
    {"tallow.policy", luaopen_tallow_policy},
    {"tallow.plugins", luaopen_tallow_plugins},
    {"tallow.service", luaopen_tallow_service},
    {"tallow.session", luaopen_tallow_session},
    {"tallow.code", luaopen_tallow_code},
    {"tallow.fs", luaopen_tallow_fs},
    {"tallow.room", luaopen_tallow_room},
    {"tallow.dns", luaopen_tallow_dns},
    {NULL, NULL},
};

static void set_paths(lua_State *L)
{
    const char *dir = tallow_lua_dir();
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath"); /* no C modules from the file system */
    lua_getfield(L, -1, "preload");
    for (const luaL_Reg *r = preloads; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    lua_pop(L, 2);
}

TALLOW_API int tallow_lua_run_file(tallow_ctx *ctx, const char *path, int argc, char **argv)
{
    tallow__lrt rt = {.ctx = ctx};
    lua_State *L = luaL_newstate();
    if (!L) return 1;
    rt.L = L;
    luaL_openlibs(L);
    lua_pushlightuserdata(L, &rt);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RT_KEY);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &THREADS_KEY);
    set_paths(L);

    /* arg table as the standalone interpreter builds it */
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");

    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        fprintf(stderr, "tallow: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    for (int i = 1; i < argc; i++)
        lua_pushstring(L, argv[i]);

    /* main coroutine: marked with a number so finish_thread knows the script is over */
    lua_State *co = lua_newthread(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &THREADS_KEY);
    lua_pushvalue(L, -2);
    lua_pushinteger(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    int nargs = argc > 1 ? argc - 1 : 0;
    lua_xmove(L, co, nargs + 1);
    rt.live++;
    resume(&rt, co, nargs);

    tallow_loop *loop = tallow_ctx_loop(ctx);
    while (!rt.exiting) {
        if (tallow_loop_run_once(loop, 1000) < 0) break;
    }
    fflush(stdout);
    int code = rt.exit_code;
    lua_close(L);
    /* closing the state closed its sessions and channels; let their deferred cleanups run
     * (pending Lua resumes see rt.exiting and do nothing) */
    for (int i = 0; i < 3; i++)
        tallow_loop_run_once(loop, 0);
    return code;
}
