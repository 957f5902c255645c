/* core/lua/lua_session.c — `tallow.session`: open an encrypted session with the peer who holds the
 * same code, then send and receive registry messages as Lua tables. Opening, receiving and
 * sending under backpressure wait (yield) without blocking the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lua_rt.h"
#include "lua_session.h"
#include "negotiate.h"
#include "transfer.h"

typedef struct qmsg {
    struct qmsg *next;
    uint32_t type;
    size_t len;
    /* a FileOffer joined from parts (may exceed a frame, so it is kept decoded): its header and
     * its manifest (owned; len bytes); data is unused then */
    uint8_t *joined;
    tallow_msg_FileOffer head;
    uint8_t data[];
} qmsg;

/* Messages the script has not read yet: at most this many, and this many bytes (one message is
 * always taken, whatever its size: a FileOffer joined from parts may be larger). Beyond, the
 * next ones are dropped with a warning: a peer that talks faster than the script reads (or a
 * script busy with a transfer) costs bounded memory. */
#define QUEUE_MAX 4096
#define QUEUE_MAX_BYTES (16u * 1024u * 1024u)

static void qmsg_free(qmsg *q)
{
    sodium_memzero(q->data, q->joined ? 0 : q->len); /* decrypted: not left in freed memory */
    if (q->joined) sodium_memzero(q->joined, q->len);
    free(q->joined);
    free(q);
}

static tallow__lsession *check(lua_State *L)
{
    tallow__lsession *ls = luaL_checkudata(L, 1, "tallow.session");
    if (!ls->s) luaL_error(L, "session is closed");
    return ls;
}

static int push_status(lua_State *co, void *ud)
{
    tallow__lsession *ls = ud;
    if (ls->status == 0) {
        lua_pushboolean(co, 1);
        return 1;
    }
    const char *msg = tallow_ctx_last_error(ls->rt->ctx);
    lua_pushnil(co);
    lua_pushstring(co, msg && msg[0] ? msg : tallow_strerror(ls->status));
    lua_pushstring(co, tallow_err_name(ls->status));
    return 3;
}

static void path_wake(tallow__lsession *ls);

static void wake_all(tallow__lsession *ls)
{
    path_wake(ls);
    if (ls->open_waiting) {
        ls->open_waiting = 0;
        tallow__lua_wake(&ls->open_w, push_status, ls);
    }
    if (ls->recv_waiting) {
        ls->recv_waiting = 0;
        if (ls->recv_timer) tallow_timer_stop(ls->recv_timer);
        ls->recv_timer = NULL;
        tallow__lua_wake(&ls->recv_w, push_status, ls);
    }
    if (ls->send_waiting) {
        ls->send_waiting = 0;
        tallow__lua_wake(&ls->send_w, push_status, ls);
    }
    if (ls->on_event) ls->on_event(ls, ls->event_ud);
}

static void s_ready(tallow__session *s, int status, void *ud)
{
    tallow__lsession *ls = ud;
    ls->status = status;
    if (status == 0)
        ls->ready = 1;
    else
        ls->closed = 1;
    wake_all(ls);
}

static int push_msg(lua_State *co, void *ud)
{
    tallow__lsession *ls = ud;
    qmsg *q = ls->head;
    ls->head = q->next;
    if (!ls->head) ls->tail = NULL;
    ls->queued--;
    ls->queued_bytes -= q->len;
    if (ls->dropped) {
        tallow_ctx_log(ls->rt->ctx, TALLOW_LOG_WARN,
                       "%zu message(s) from the peer were dropped while the script was not reading",
                       ls->dropped);
        ls->dropped = 0;
    }
    if (q->joined) {
        q->head.manifest = (tallow_bytes){q->joined, q->len};
        lua_pushstring(co, tallow_msgtype_FileOffer.name);
        tallow__lua_push_msg(co, &tallow_msgtype_FileOffer, &q->head);
        qmsg_free(q);
        return 2;
    }
    tallow_msg_any tmp;
    const tallow_msg_type *t;
    const tallow_registry *reg = tallow_ctx_registry(ls->rt->ctx);
    const tallow_msg_type *pt = tallow_registry_find(reg, q->type);
    void *buf = pt && pt->struct_size > sizeof(tmp) ? calloc(1, pt->struct_size) : &tmp;
    size_t bufsz = pt && pt->struct_size > sizeof(tmp) ? pt->struct_size : sizeof(tmp);
    if (buf && tallow_msg_decode(reg, q->data, q->len, &t, buf, bufsz) == 0) {
        lua_pushstring(co, t->name);
        tallow__lua_push_msg(co, t, buf);
    } else {
        lua_pushnil(co);
        lua_pushstring(co, "undecodable message");
    }
    if (buf != &tmp) free(buf);
    qmsg_free(q);
    return 2;
}

/* 1 if a message of len bytes would go over the queue's bounds (len 0: is the queue full?). */
static int too_much(const tallow__lsession *ls, size_t len)
{
    return ls->queued >= QUEUE_MAX || (ls->queued && ls->queued_bytes + len > QUEUE_MAX_BYTES);
}

/* One warning per run of drops (until the script reads again), not one per message. */
static void drop(tallow__lsession *ls, const tallow_msg_type *t)
{
    if (ls->dropped++ == 0)
        tallow_ctx_log(ls->rt->ctx, TALLOW_LOG_WARN,
                       "script is not reading messages; dropping %s and what follows (%zu "
                       "messages, %zu bytes waiting)",
                       t->name, ls->queued, ls->queued_bytes);
}

static void s_message(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    tallow__lsession *ls = ud;
    if (too_much(ls, 0)) {
        drop(ls, t);
        return;
    }
    qmsg *q;
    if (t->id == TALLOW_MSG_FileOffer) {
        /* an offer whose manifest came in parts reaches the script whole, as one FileOffer */
        tallow_msg_FileOffer whole;
        char why[200];
        int rc = tallow__offer_parts_add(&ls->parts, msg, tallow__session_rx_key(s), &whole, why,
                                         sizeof(why));
        if (rc == 0) return;
        if (rc < 0) {
            uint64_t tid = ((const tallow_msg_FileOffer *)msg)->transfer_id;
            tallow_ctx_set_error(ls->rt->ctx, "refused an offer: %s", why);
            tallow_ctx_log(ls->rt->ctx, TALLOW_LOG_ERROR, "refused an offer: %s", why);
            tallow__xfer_reject(s, tid, why);
            return;
        }
        if (whole.manifest.ptr && whole.manifest.ptr == ls->parts.buf) {
            if (too_much(ls, whole.manifest.len)) {
                tallow__offer_parts_reset(&ls->parts);
                drop(ls, t);
                return;
            }
            if (!(q = calloc(1, sizeof(*q)))) return;
            q->type = t->id;
            q->head = whole;
            q->joined = ls->parts.buf; /* taken over */
            q->len = whole.manifest.len;
            ls->parts.buf = NULL;
            tallow__offer_parts_reset(&ls->parts);
            goto queue;
        }
    }
    size_t n = tallow_msg_encoded_size(t, msg);
    if (too_much(ls, n)) {
        drop(ls, t);
        return;
    }
    q = malloc(sizeof(*q) + n);
    if (!q) return;
    q->next = NULL;
    q->type = t->id;
    q->len = n;
    q->joined = NULL;
    tallow_msg_encode(t, msg, q->data, n);
queue:
    if (ls->tail)
        ls->tail->next = q;
    else
        ls->head = q;
    ls->tail = q;
    ls->queued++;
    ls->queued_bytes += q->len;
    if (ls->recv_waiting) {
        ls->recv_waiting = 0;
        if (ls->recv_timer) tallow_timer_stop(ls->recv_timer);
        ls->recv_timer = NULL;
        tallow__lua_wake(&ls->recv_w, push_msg, ls);
    }
}

static void s_writable(tallow__session *s, void *ud)
{
    tallow__lsession *ls = ud;
    if (ls->send_waiting) {
        ls->send_waiting = 0;
        tallow__lua_wake(&ls->send_w, push_status, ls);
    }
    if (ls->on_event) ls->on_event(ls, ls->event_ud);
}

static void s_closed(tallow__session *s, int err, void *ud)
{
    tallow__lsession *ls = ud;
    ls->closed = 1;
    ls->status = err ? err : TALLOW_ECLOSED;
    wake_all(ls);
}

static const char *path_name(tallow__lsession *ls)
{
    int st = ls->s ? tallow__neg_state(tallow__neg_of(ls->s)) : -1;
    return st == 0 ? "pending" : st == 1 ? "direct" : "relay";
}

static int push_path(lua_State *co, void *ud)
{
    lua_pushstring(co, path_name(ud));
    return 1;
}

static void path_wake(tallow__lsession *ls)
{
    if (!ls->path_waiting) return;
    ls->path_waiting = 0;
    if (ls->path_timer) tallow_timer_stop(ls->path_timer);
    ls->path_timer = NULL;
    tallow__lua_wake(&ls->path_w, push_path, ls);
}

static void s_path(tallow__session *s, int direct, void *ud)
{
    tallow__lsession *ls = ud;
    path_wake(ls);
    if (ls->on_event) ls->on_event(ls, ls->event_ud); /* a running transfer reports the path */
}

static const tallow__session_cbs cbs = {
    .on_ready = s_ready,
    .on_message = s_message,
    .on_writable = s_writable,
    .on_closed = s_closed,
    .on_path = s_path,
};

/* tallow.session.open{code=, relay=, initiator=, password=, transport=, capacity=,
 *                     p2p=true, stun="host:port" | {"host:port", ...}, p2p_timeout=seconds,
 *                     failover="host:port,..."}
 * p2p (default true, pairs only) attempts the direct path after the handshake unless policy
 * forbids it; sends move to it by themselves when it comes up (see s:direct()). */
static int l_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    tallow__session_params p = {.path_owner = &tallow__neg_owner};
    p.code = tallow__lua_opt_str(L, 1, "code");
    p.address = tallow__lua_opt_str(L, 1, "relay");
    p.password = tallow__lua_opt_str(L, 1, "password");
    p.transport = tallow__lua_opt_str(L, 1, "transport");
    p.failover = tallow__lua_opt_str(L, 1, "failover");
    lua_getfield(L, 1, "initiator");
    p.initiator = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "capacity");
    p.capacity = (uint32_t)luaL_optinteger(L, -1, 2);
    lua_pop(L, 1);
    lua_getfield(L, 1, "p2p");
    p.p2p = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "p2p_timeout");
    p.p2p_timeout_ms = (uint32_t)(luaL_optnumber(L, -1, 0) * 1000);
    lua_pop(L, 1);
    char stun[512] = ""; /* session_open copies it */
    lua_getfield(L, 1, "stun");
    if (lua_istable(L, -1)) {
        for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
            lua_rawgeti(L, -1, i);
            const char *v = luaL_checkstring(L, -1);
            size_t used = strlen(stun);
            snprintf(stun + used, sizeof(stun) - used, "%s%s", used ? "," : "", v);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        snprintf(stun, sizeof(stun), "%s", luaL_checkstring(L, -1));
    }
    lua_pop(L, 1);
    p.stun = stun[0] ? stun : NULL;
    if (!p.code) return luaL_argerror(L, 1, "code is required");
    if (!p.address) return luaL_argerror(L, 1, "relay is required");

    tallow__lsession *ls = lua_newuserdatauv(L, sizeof(*ls), 1);
    memset(ls, 0, sizeof(*ls));
    luaL_setmetatable(L, "tallow.session");
    ls->rt = tallow__lrt_get(L);
    tallow_ctx_set_error(ls->rt->ctx, "%s", "");
    int rc = tallow__session_open(ls->rt->ctx, &p, &cbs, ls, &ls->s);
    if (rc < 0) {
        const char *msg = tallow_ctx_last_error(ls->rt->ctx);
        return tallow__lua_fail(L, rc, msg[0] ? msg : NULL);
    }
    /* keep the userdata on the stack while waiting; the continuation returns it */
    ls->open_waiting = 1;
    return tallow__lua_wait(L, &ls->open_w, tallow__lsession_open_k, 0);
}

int tallow__lsession_open_k(lua_State *L, int status, lua_KContext kctx)
{
    /* stack: opts, session, then what push_status pushed */
    if (lua_toboolean(L, 3)) {
        lua_settop(L, 2);
        return 1;
    }
    tallow__lsession *ls = luaL_checkudata(L, 2, "tallow.session");
    if (ls->s) tallow__session_close(ls->s);
    ls->s = NULL;
    return 3;
}

int tallow__lsession_new_on(lua_State *L, tallow_channel *ch, const tallow__session_params *p,
                            tallow__lsession **out)
{
    tallow__lsession *ls = lua_newuserdatauv(L, sizeof(*ls), 1);
    memset(ls, 0, sizeof(*ls));
    luaL_setmetatable(L, "tallow.session");
    ls->rt = tallow__lrt_get(L);
    tallow__session_params q = *p;
    q.path_owner = &tallow__neg_owner; /* a room's session claims the direct-path messages too */
    int rc = tallow__session_open_on(ls->rt->ctx, ch, &q, &cbs, ls, &ls->s);
    if (rc < 0) {
        lua_pop(L, 1);
        return rc;
    }
    *out = ls;
    return 0;
}

/* s:send(name, table) -> true | nil, message, code. Waits while the path is backed up. */
static int l_send(lua_State *L)
{
    tallow__lsession *ls = check(L);
    const tallow_msg_type *t = tallow__lua_check_type(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (ls->closed) return push_status(L, ls);
    void *msg = lua_newuserdatauv(L, t->struct_size, 0); /* GC'd even if to_msg raises */
    memset(msg, 0, t->struct_size);
    tallow__lua_to_msg(L, 3, t, msg);
    int rc = tallow__session_send(ls->s, t, msg);
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    if (rc == 1 && !ls->send_waiting) {
        ls->send_waiting = 1;
        return tallow__lua_wait(L, &ls->send_w, NULL, 0);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* s:send_tx(transfer_id, name, table) | s:send_tx(transfer_id, bytes) -> true | nil, msg, code.
 * Sends one message under the key of transfer `transfer_id`, the way the transfer engine does:
 * for scripts that drive a transfer by hand (test peers). With a string instead of a name and
 * table, those bytes are sealed as they are (an encoded message, or anything at all). */
static int l_send_tx(lua_State *L)
{
    tallow__lsession *ls = check(L);
    uint64_t tid = (uint64_t)luaL_checkinteger(L, 2);
    if (ls->closed) return push_status(L, ls);
    int rc;
    if (lua_isstring(L, 3) && lua_isnoneornil(L, 4)) {
        size_t len;
        const char *raw = lua_tolstring(L, 3, &len);
        rc = tallow__session_send_raw_tx(ls->s, tid, (const uint8_t *)raw, len);
    } else {
        const tallow_msg_type *t = tallow__lua_check_type(L, 3);
        luaL_checktype(L, 4, LUA_TTABLE);
        void *msg = lua_newuserdatauv(L, t->struct_size, 0);
        memset(msg, 0, t->struct_size);
        tallow__lua_to_msg(L, 4, t, msg);
        rc = tallow__session_send_tx(ls->s, tid, t, msg);
    }
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    if (rc == 1 && !ls->send_waiting) {
        ls->send_waiting = 1;
        return tallow__lua_wait(L, &ls->send_w, NULL, 0);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int push_timeout(lua_State *co, void *ud)
{
    return tallow__lua_fail(co, TALLOW_ETIMEOUT, NULL);
}

static void recv_timeout(tallow_timer *t, void *ud)
{
    tallow__lsession *ls = ud;
    ls->recv_timer = NULL;
    if (!ls->recv_waiting) return;
    ls->recv_waiting = 0;
    tallow__lua_wake(&ls->recv_w, push_timeout, ls);
}

/* s:recv([timeout_seconds]) -> name, table | nil, message, code */
static int l_recv(lua_State *L)
{
    tallow__lsession *ls = check(L);
    if (ls->head) return push_msg(L, ls);
    if (ls->closed) return push_status(L, ls);
    if (ls->recv_waiting) return luaL_error(L, "another coroutine is already receiving");
    if (!lua_isnoneornil(L, 2)) {
        double secs = luaL_checknumber(L, 2);
        ls->recv_timer = tallow_timer_start(tallow_ctx_loop(ls->rt->ctx), (uint64_t)(secs * 1000),
                                            0, recv_timeout, ls);
    }
    ls->recv_waiting = 1;
    return tallow__lua_wait(L, &ls->recv_w, NULL, 0);
}

static void path_timeout(tallow_timer *t, void *ud)
{
    tallow__lsession *ls = ud;
    ls->path_timer = NULL;
    path_wake(ls);
}

/* s:direct([timeout_seconds]) -> "direct" | "relay" | "pending": waits until the direct-path
 * attempt has settled (or the timeout passed); "relay" at once when none is made. */
static int l_direct(lua_State *L)
{
    tallow__lsession *ls = check(L);
    if (tallow__neg_state(tallow__neg_of(ls->s)) != 0 || ls->closed) return push_path(L, ls);
    if (ls->path_waiting) return luaL_error(L, "another coroutine is already waiting");
    if (!lua_isnoneornil(L, 2)) {
        double secs = luaL_checknumber(L, 2);
        ls->path_timer = tallow_timer_start(tallow_ctx_loop(ls->rt->ctx), (uint64_t)(secs * 1000),
                                            0, path_timeout, ls);
    }
    ls->path_waiting = 1;
    return tallow__lua_wait(L, &ls->path_w, NULL, 0);
}

/* s:info() -> {path=, direct=, verify=, rtt_ms=, bytes_sent=, bytes_recv=, peers=, stats=,
 *              direct_failed= (why the direct path failed) | candidates= ("ours-theirs" kinds of
 *              the direct pair), direct_ms= (its negotiation time)} */
static int l_info(lua_State *L)
{
    tallow__lsession *ls = check(L);
    tallow_channel_info info;
    tallow__session_info(ls->s, &info);
    lua_newtable(L);
    lua_pushstring(L, info.path ? info.path : "");
    lua_setfield(L, -2, "path");
    lua_pushboolean(L, info.direct);
    lua_setfield(L, -2, "direct");
    lua_pushnumber(L, (double)info.rtt_us / 1000.0);
    lua_setfield(L, -2, "rtt_ms");
    lua_pushinteger(L, (lua_Integer)info.bytes_sent);
    lua_setfield(L, -2, "bytes_sent");
    lua_pushinteger(L, (lua_Integer)info.bytes_recv);
    lua_setfield(L, -2, "bytes_recv");
    lua_pushinteger(L, info.peers);
    lua_setfield(L, -2, "peers");
    if (info.stats) {
        lua_pushstring(L, info.stats);
        lua_setfield(L, -2, "stats");
    }
    const tallow__neg *neg = tallow__neg_of(ls->s);
    const char *lk, *rk;
    double ms;
    if (tallow__neg_why(neg)[0]) {
        lua_pushstring(L, tallow__neg_why(neg));
        lua_setfield(L, -2, "direct_failed");
    } else if (tallow__neg_winner(neg, &lk, &rk, &ms) == 0) {
        lua_pushfstring(L, "%s-%s", lk, rk);
        lua_setfield(L, -2, "candidates");
        lua_pushinteger(L, (lua_Integer)ms);
        lua_setfield(L, -2, "direct_ms");
    }
    const tallow__keys *k = tallow__session_keys(ls->s);
    if (k) {
        lua_pushstring(L, k->verify);
        lua_setfield(L, -2, "verify");
    }
    return 1;
}

static int l_close(lua_State *L)
{
    tallow__lsession *ls = luaL_checkudata(L, 1, "tallow.session");
    if (ls->s) tallow__session_close(ls->s);
    ls->s = NULL;
    while (ls->head) {
        qmsg *q = ls->head;
        ls->head = q->next;
        qmsg_free(q);
    }
    tallow__offer_parts_reset(&ls->parts);
    ls->tail = NULL;
    if (ls->recv_timer) tallow_timer_stop(ls->recv_timer);
    ls->recv_timer = NULL;
    if (ls->path_timer) tallow_timer_stop(ls->path_timer);
    ls->path_timer = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    tallow__lsession *ls = luaL_checkudata(L, 1, "tallow.session");
    lua_pushfstring(L, "tallow.session (%s)", ls->s ? (ls->ready ? "ready" : "opening") : "closed");
    return 1;
}

static const luaL_Reg methods[] = {
    {"send", l_send},     {"send_tx", l_send_tx}, {"recv", l_recv}, {"info", l_info},
    {"direct", l_direct}, {"close", l_close},     {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"open", l_open},
    {"manifest", tallow__lua_manifest},
    {"conflicts", tallow__lua_offer_conflicts},
    {"cancel_all", tallow__lua_cancel_all},
    {NULL, NULL},
};

int luaopen_tallow_session(lua_State *L)
{
    if (luaL_newmetatable(L, "tallow.session")) {
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, methods);
        tallow__lsession_add_methods(L);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
