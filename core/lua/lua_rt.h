/* core/lua/lua_rt.h — the Lua runtime's shared insides: the coroutine bridge (yield from C, resume
 * from the loop) and the per-state runtime record. Used by every core/lua_*.c module. */
#ifndef TALLOW_LUA_RT_H
#define TALLOW_LUA_RT_H

#include <lauxlib.h>
#include <lua.h>
#include <tallow/lua.h>
#include <tallow/tallow.h>

typedef struct tallow__lrt {
    tallow_ctx *ctx;
    lua_State *L; /* main state */
    int live;     /* coroutines started and not finished */
    int exit_code;
    int failed;
    int exiting;
} tallow__lrt;

/* A suspended coroutine waiting for a C event. Owned by whoever will wake it. */
typedef struct tallow__waiter {
    tallow__lrt *rt;
    lua_State *co;
    int ref; /* anchors co in the registry while it waits */
} tallow__waiter;

tallow__lrt *tallow__lrt_get(lua_State *L);
/* Suspends the running coroutine. Call as `return tallow__lua_wait(L, w, k, kctx)`; w is filled.
 * k (may be NULL) runs on resume with the values pushed by the waker. Raises if L is the main
 * thread (not yieldable). */
int tallow__lua_wait(lua_State *L, tallow__waiter *w, lua_KFunction k, lua_KContext kctx);
/* Wakes w later (on the next loop round) with the values push(co, ud) pushes (returns count).
 * push may be NULL (no values). The waiter is consumed. */
void tallow__lua_wake(tallow__waiter *w, int (*push)(lua_State *co, void *ud), void *ud);
/* Starts fn (at the top of L's stack, followed by nargs args) as a new coroutine now. */
int tallow__lua_spawn(tallow__lrt *rt, lua_State *L, int nargs);
/* The string field `key` of the options table at idx, or NULL when absent; raises if it is not
 * a string. Borrowed: the table keeps it alive. */
const char *tallow__lua_opt_str(lua_State *L, int idx, const char *key);
/* Pushes nil, message, code (the expected-failure convention) and returns 3. */
int tallow__lua_fail(lua_State *L, int err, const char *msg);

/* Message <-> Lua table, by the registry's field descriptors (lua_msg.c). to_msg borrows
 * strings from the table at idx: keep it alive while msg is used. */
void tallow__lua_to_msg(lua_State *L, int idx, const tallow_msg_type *t, void *msg);
void tallow__lua_push_msg(lua_State *L, const tallow_msg_type *t, const void *msg);
/* The type named (or numbered) at idx; raises if unknown. */
const tallow_msg_type *tallow__lua_check_type(lua_State *L, int idx);

int luaopen_tallow(lua_State *L);
int luaopen_tallow_msg(lua_State *L);
int luaopen_tallow_loop(lua_State *L);
int luaopen_tallow_policy(lua_State *L);
int luaopen_tallow_plugins(lua_State *L);
int luaopen_tallow_service(lua_State *L);
int luaopen_tallow_dns(lua_State *L);
int luaopen_tallow_session(lua_State *L);
int luaopen_tallow_code(lua_State *L);
int luaopen_tallow_room(lua_State *L);
int luaopen_tallow_fs(lua_State *L);

#endif
