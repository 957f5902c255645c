/* core/lua/lua_transfer.c — file transfers on a Lua session: s:send_files(), s:receive_files(offer)
 * and tallow.session.manifest() to show an offer before accepting it. The bytes move in C; the
 * script waits (yields) until the transfer ends and gets a summary table. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "lua_fs.h"
#include "lua_session.h"
#include "progress.h"
#include "transfer.h"

typedef struct lxfer {
    tallow__lsession *ls;
    tallow__xfer *x;
    tallow__waiter w;
    int waiting;
    int status;
    int mode;
    int destfd;
    const char *verb;
    int notices_ref;           /* table of refusal messages */
    struct lxfer *next_active; /* the transfers running now (tallow.session.cancel_all) */
    int cancelled;
} lxfer;

static lxfer *active;

static void active_remove(lxfer *lx)
{
    for (lxfer **p = &active; *p; p = &(*p)->next_active) {
        if (*p == lx) {
            *p = lx->next_active;
            return;
        }
    }
}

/* tallow.session.cancel_all() -> count: every running transfer tells its peer that this side
 * cancelled (Ctrl-C, SIGTERM) and ends with TALLOW_ECANCELED. */
int tallow__lua_cancel_all(lua_State *L)
{
    int n = 0;
    /* cancelling can end the transfer, wake its script and free it (and others): start over
     * from the head after each, skipping those already done */
    for (;;) {
        lxfer *lx = active;
        while (lx && lx->cancelled)
            lx = lx->next_active;
        if (!lx) break;
        lx->cancelled = 1;
        n++;
        tallow__xfer_cancel(lx->x);
    }
    lua_pushinteger(L, n);
    return 1;
}

static int mode_of(lua_State *L, int opts)
{
    if (!lua_istable(L, opts)) return TALLOW__PROGRESS_NONE;
    lua_getfield(L, opts, "progress");
    const char *m = lua_tostring(L, -1);
    int r = !m                    ? TALLOW__PROGRESS_NONE
            : !strcmp(m, "json")  ? TALLOW__PROGRESS_JSON
            : !strcmp(m, "bar")   ? TALLOW__PROGRESS_BAR
            : !strcmp(m, "lines") ? TALLOW__PROGRESS_LINES
                                  : TALLOW__PROGRESS_NONE;
    lua_pop(L, 1);
    return r;
}

static void x_progress(tallow__xfer *x, void *ud)
{
    lxfer *lx = ud;
    if (lx->mode == TALLOW__PROGRESS_NONE) return;
    tallow__xfer_stats st;
    tallow__xfer_get_stats(x, &st);
    char path[16];
    tallow__xfer_path(x, path, sizeof(path));
    tallow__progress_show(lx->mode, lx->verb, &st, path, st.finished_ns != 0);
}

static void x_notice(tallow__xfer *x, const char *msg, void *ud)
{
    lxfer *lx = ud;
    lua_State *L = lx->ls->rt->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lx->notices_ref);
    lua_pushstring(L, msg);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

static int push_result(lua_State *co, void *ud)
{
    lxfer *lx = ud;
    tallow__xfer_stats st;
    tallow__xfer_get_stats(lx->x, &st);
    lua_createtable(co, 0, 12);
#define F(name, v)                                                                                 \
    lua_pushinteger(co, (lua_Integer)(v));                                                         \
    lua_setfield(co, -2, name);
    F("bytes", st.bytes_done);
    F("total", st.bytes_total);
    F("files", st.files_done);
    F("files_total", st.files_total);
    F("skipped", st.files_skipped);
    F("resumed", st.bytes_resumed);
    F("wire_bytes", st.bytes_wire);
    F("refused", st.refused);
#undef F
    lua_pushnumber(co, (double)(st.finished_ns - st.started_ns) / 1e9);
    lua_setfield(co, -2, "seconds");
    char path[16];
    tallow__xfer_path(lx->x, path, sizeof(path));
    lua_pushstring(co, path);
    lua_setfield(co, -2, "path");
    size_t tlen;
    const char *text = tallow__xfer_text(lx->x, &tlen);
    if (text) {
        lua_pushlstring(co, text, tlen);
        lua_setfield(co, -2, "text");
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, lx->notices_ref);
    lua_setfield(co, -2, "notices");
    if (lx->status == 0) return 1;
    const char *msg = tallow_ctx_last_error(lx->ls->rt->ctx);
    lua_pushnil(co);
    lua_insert(co, -2);
    lua_pushstring(co, msg && msg[0] ? msg : tallow_strerror(lx->status));
    lua_insert(co, -2);
    lua_pushstring(co, tallow_err_name(lx->status));
    lua_insert(co, -2);
    return 4; /* nil, message, code, summary */
}

static void lx_release(lxfer *lx)
{
    lua_State *L = lx->ls->rt->L;
    active_remove(lx);
    lx->ls->on_event = NULL;
    tallow__xfer_free(lx->x);
    if (lx->destfd >= 0) close(lx->destfd);
    luaL_unref(L, LUA_REGISTRYINDEX, lx->notices_ref);
    free(lx);
}

static int push_and_release(lua_State *co, void *ud)
{
    int n = push_result(co, ud);
    lx_release(ud);
    return n;
}

static void x_done(tallow__xfer *x, int status, void *ud)
{
    lxfer *lx = ud;
    lx->status = status;
    if (lx->waiting) {
        lx->waiting = 0;
        tallow__lua_wake(&lx->w, push_and_release, lx);
    }
}

static const tallow__xfer_cbs xcbs = {
    .on_progress = x_progress,
    .on_notice = x_notice,
    .on_done = x_done,
};

/* session events while a transfer runs: writable pumps the sender; a closed session ends it */
static void on_session_event(tallow__lsession *ls, void *ud)
{
    lxfer *lx = ud;
    if (ls->closed) {
        if (!tallow_ctx_last_error(ls->rt->ctx)[0])
            tallow_ctx_set_error(ls->rt->ctx, "connection to the peer lost");
        x_done(lx->x, ls->status ? ls->status : TALLOW_ECLOSED, lx);
        return;
    }
    tallow__xfer_writable(lx->x);
}

static lxfer *lx_new(lua_State *L, tallow__lsession *ls, int opts, const char *verb)
{
    lxfer *lx = calloc(1, sizeof(*lx));
    if (!lx) luaL_error(L, "out of memory");
    lx->ls = ls;
    lx->destfd = -1;
    lx->mode = mode_of(L, opts);
    lx->verb = verb;
    lua_newtable(L);
    lx->notices_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return lx;
}

static int wait_for(lua_State *L, tallow__lsession *ls, lxfer *lx)
{
    ls->on_event = on_session_event;
    ls->event_ud = lx;
    lx->waiting = 1;
    lx->next_active = active;
    active = lx;
    return tallow__lua_wait(L, &lx->w, NULL, 0);
}

/* {base=DIR, only={relpath...}}: DIR's contents named relative to DIR (see lua_fs.h) */
static int build_from_base(lua_State *L, const char *base, tallow__manifest *m)
{
    lua_getfield(L, 3, "only");
    const char **only = NULL;
    size_t n = 0;
    if (lua_istable(L, -1)) {
        n = lua_rawlen(L, -1);
        only = calloc(n ? n : 1, sizeof(*only));
        if (!only) return TALLOW_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            only[i] = lua_tostring(L, -1); /* anchored by the only table */
            lua_pop(L, 1);
            if (!only[i]) only[i] = "";
        }
    }
    int rc = tallow__fs_manifest(base, lua_istable(L, -1) ? only : NULL, n, NULL, NULL, m);
    lua_pop(L, 1);
    free(only);
    return rc;
}

/* s:send_files(paths | nil, {text=, base=, only=, progress="bar"|"json"|"none"})
 * -> summary | nil, msg, code */
static int l_send_files(lua_State *L)
{
    tallow__lsession *ls = luaL_checkudata(L, 1, "tallow.session");
    if (!ls->s || !ls->ready || ls->closed) return tallow__lua_fail(L, TALLOW_ECLOSED, NULL);
    const char *text = NULL;
    size_t textlen = 0;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "text");
        text = lua_tolstring(L, -1, &textlen); /* anchored by the options table */
        lua_pop(L, 1);
    }
    tallow__manifest m = {0};
    const char *base = NULL;
    if (!text && lua_istable(L, 3)) {
        lua_getfield(L, 3, "base");
        base = lua_tostring(L, -1); /* anchored by the options table */
        lua_pop(L, 1);
    }
    if (base) {
        int rc = build_from_base(L, base, &m);
        if (rc < 0) {
            char msg[600];
            snprintf(msg, sizeof(msg), "cannot read %s: %s", base, tallow_strerror(rc));
            return tallow__lua_fail(L, rc, msg);
        }
    } else if (!text) {
        luaL_checktype(L, 2, LUA_TTABLE);
        size_t n = lua_rawlen(L, 2);
        if (n == 0) return luaL_argerror(L, 2, "nothing to send");
        const char **paths = calloc(n, sizeof(*paths));
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 2, (lua_Integer)i + 1);
            paths[i] = luaL_checkstring(L, -1);
            lua_pop(L, 1); /* strings stay referenced by the paths table */
        }
        int rc = tallow__manifest_build(paths, n, &m);
        free(paths);
        if (rc < 0) {
            char msg[300];
            snprintf(msg, sizeof(msg), "cannot read what to send: %s", tallow_strerror(rc));
            return tallow__lua_fail(L, rc, msg);
        }
    }
    lxfer *lx = lx_new(L, ls, 3, "sending  ");
    tallow_ctx_set_error(ls->rt->ctx, "%s", ""); /* a refusal below says why (too many entries) */
    int rc = tallow__xfer_send(ls->s, &m, text, textlen, &xcbs, lx, &lx->x);
    tallow__manifest_free(&m);
    if (rc < 0) {
        const char *why = tallow_ctx_last_error(ls->rt->ctx);
        lx_release(lx);
        return tallow__lua_fail(L, rc, why[0] ? why : NULL);
    }
    return wait_for(L, ls, lx);
}

/* s:receive_files(offer, {dest=, overwrite=, progress=}) -> summary | nil, msg, code, summary */
static int l_receive_files(lua_State *L)
{
    tallow__lsession *ls = luaL_checkudata(L, 1, "tallow.session");
    if (!ls->s || !ls->ready || ls->closed) return tallow__lua_fail(L, TALLOW_ECLOSED, NULL);
    luaL_checktype(L, 2, LUA_TTABLE);
    tallow_msg_FileOffer offer;
    memset(&offer, 0, sizeof(offer));
    tallow__lua_to_msg(L, 2, &tallow_msgtype_FileOffer, &offer);
    const char *dest = ".";
    int overwrite = 0;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "dest");
        if (lua_isstring(L, -1)) dest = lua_tostring(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 3, "overwrite");
        overwrite = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lxfer *lx = lx_new(L, ls, 3, "receiving");
    if (offer.kind == 0) {
        mkdir(dest, 0755);
        lx->destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lx->destfd < 0) {
            int err = -errno;
            lx_release(lx);
            char msg[600];
            snprintf(msg, sizeof(msg), "cannot open destination %s: %s", dest,
                     tallow_strerror(err));
            tallow__xfer_reject(ls->s, offer.transfer_id, "receiver cannot write there");
            return tallow__lua_fail(L, err, msg);
        }
    }
    int rc = tallow__xfer_recv(ls->s, &offer, lx->destfd, overwrite, &xcbs, lx, &lx->x);
    if (rc < 0) {
        const char *m = tallow_ctx_last_error(ls->rt->ctx);
        lx_release(lx);
        return tallow__lua_fail(L, rc, m[0] ? m : NULL);
    }
    return wait_for(L, ls, lx);
}

/* Waiting for the peer to hang up (s:reject with a wait, s:wait_closed). */
typedef struct closewait {
    tallow__waiter w;
    tallow_timer *timer;
    tallow__lsession *ls;
    int heard; /* the session closed: the peer had our last word and left */
} closewait;

static int push_heard(lua_State *co, void *ud)
{
    closewait *cw = ud;
    lua_pushboolean(co, cw->heard);
    free(cw);
    return 1;
}

static void closewait_end(closewait *cw)
{
    if (cw->timer) tallow_timer_stop(cw->timer);
    cw->timer = NULL;
    if (cw->ls->event_ud == cw) cw->ls->on_event = NULL;
    tallow__lua_wake(&cw->w, push_heard, cw);
}

static void closewait_event(tallow__lsession *ls, void *ud)
{
    closewait *cw = ud;
    if (!ls->closed) return;
    cw->heard = 1;
    closewait_end(cw);
}

static void closewait_timeout(tallow_timer *t, void *ud)
{
    closewait *cw = ud;
    cw->timer = NULL;
    closewait_end(cw);
}

/* Yields until the session closes (-> true) or secs passed (-> false). */
static int wait_closed(lua_State *L, tallow__lsession *ls, double secs)
{
    if (!ls->s || ls->closed) {
        lua_pushboolean(L, ls->closed);
        return 1;
    }
    if (ls->on_event) return luaL_error(L, "a transfer is running on this session");
    closewait *cw = calloc(1, sizeof(*cw));
    if (!cw) return luaL_error(L, "out of memory");
    cw->ls = ls;
    cw->timer = tallow_timer_start(tallow_ctx_loop(ls->rt->ctx), (uint64_t)(secs * 1000.0), 0,
                                   closewait_timeout, cw);
    if (!cw->timer) {
        free(cw);
        return luaL_error(L, "cannot arm timer");
    }
    ls->on_event = closewait_event;
    ls->event_ud = cw;
    return tallow__lua_wait(L, &cw->w, NULL, 0);
}

/* s:reject(offer [, reason [, wait_seconds]]): refuses the offer (FileReject with the reason).
 * With wait_seconds, waits (yields) until the peer, told, hangs up -> true, or until the time
 * passed -> false: a receiver about to exit knows its refusal arrived instead of guessing. */
static int l_reject(lua_State *L)
{
    tallow__lsession *ls = luaL_checkudata(L, 1, "tallow.session");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "transfer_id");
    uint64_t tid = (uint64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    double secs = luaL_optnumber(L, 4, -1);
    if (ls->s) tallow__xfer_reject(ls->s, tid, luaL_optstring(L, 3, "declined"));
    if (lua_isnoneornil(L, 4)) return 0;
    luaL_argcheck(L, secs >= 0, 4, "negative duration");
    return wait_closed(L, ls, secs);
}

/* s:wait_closed(seconds) -> true once the peer hung up, false when the time passed first. The
 * session keeps working meanwhile (a relay that dies is failed over, and what we sent last is
 * said again on the next one): a receiver about to exit after its last word waits here until
 * the sender, which hangs up once it has that word, is gone. */
static int l_wait_closed(lua_State *L)
{
    tallow__lsession *ls = luaL_checkudata(L, 1, "tallow.session");
    double secs = luaL_checknumber(L, 2);
    luaL_argcheck(L, secs >= 0, 2, "negative duration");
    return wait_closed(L, ls, secs);
}

void tallow__lsession_add_methods(lua_State *L)
{
    static const luaL_Reg m[] = {
        {"send_files", l_send_files},
        {"receive_files", l_receive_files},
        {"reject", l_reject},
        {"wait_closed", l_wait_closed},
        {NULL, NULL},
    };
    luaL_setfuncs(L, m, 0);
}

/* tallow.session.manifest(bytes [, max_listed]) -> {entries={{path=, size=, dir=}...}, files=,
 * bytes=, count=}, with every name escaped for display; only the first max_listed entries are
 * listed when given (count is all of them); nil, message, code for a manifest that would be
 * refused. */
int tallow__lua_manifest(lua_State *L)
{
    size_t len;
    const uint8_t *buf = (const uint8_t *)luaL_checklstring(L, 1, &len);
    lua_Integer max = luaL_optinteger(L, 2, -1);
    tallow__manifest m = {0};
    int rc = tallow__manifest_decode(buf, len, TALLOW__MANIFEST_MAX_ENTRIES, &m);
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    size_t listed = max >= 0 && (uint64_t)max < m.n ? (size_t)max : m.n;
    lua_createtable(L, 0, 4);
    lua_createtable(L, (int)(listed < 1000 ? listed : 1000), 0);
    for (size_t i = 0; i < listed; i++) {
        char shown[1200];
        lua_createtable(L, 0, 3);
        lua_pushstring(L,
                       tallow__printable(m.e[i].path, strlen(m.e[i].path), shown, sizeof(shown)));
        lua_setfield(L, -2, "path");
        lua_pushinteger(L, (lua_Integer)m.e[i].size);
        lua_setfield(L, -2, "size");
        lua_pushboolean(L, m.e[i].type == TALLOW__ENT_DIR);
        lua_setfield(L, -2, "dir");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "entries");
    lua_pushinteger(L, (lua_Integer)m.n);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, (lua_Integer)m.nfiles);
    lua_setfield(L, -2, "files");
    lua_pushinteger(L, (lua_Integer)m.total_size);
    lua_setfield(L, -2, "bytes");
    tallow__manifest_free(&m);
    return 1;
}

/* tallow.session.conflicts(manifest_bytes, dest [, max_listed]) -> {existing={name...},
 * existing_count=, present=} | nil, message, code. What accepting the offer into dest would run
 * into, asked before the receiver answers: entries that exist there and would be refused without
 * --overwrite (existing, escaped, the first max_listed of them, default 10), and files already
 * there whole from an earlier run (present: they are skipped, not refused). A dest that does not
 * exist yet has no conflicts. */
int tallow__lua_offer_conflicts(lua_State *L)
{
    size_t len;
    const uint8_t *buf = (const uint8_t *)luaL_checklstring(L, 1, &len);
    const char *dest = luaL_checkstring(L, 2);
    lua_Integer max = luaL_optinteger(L, 3, 10);
    tallow__manifest m = {0};
    int rc = tallow__manifest_decode(buf, len, TALLOW__MANIFEST_MAX_ENTRIES, &m);
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    int destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    lua_createtable(L, 0, 3);
    lua_newtable(L);
    lua_Integer count = 0, present = 0;
    for (size_t i = 0; destfd >= 0 && i < m.n; i++) {
        const tallow__entry *e = &m.e[i];
        uint64_t off = 0;
        int r;
        if (e->type == TALLOW__ENT_DIR) {
            struct stat st;
            /* a file where a folder goes; a symlink there is the engine's to refuse (unsafe) */
            r = fstatat(destfd, e->path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)
                    ? TALLOW_EEXIST
                    : 0;
        } else {
            r = tallow__sink_probe(destfd, e, 0, 0, &off);
        }
        if (r == 1) present++;
        if (r != TALLOW_EEXIST) continue; /* unsafe paths are refused, per entry, by the engine */
        if (++count <= max) {
            char shown[1200];
            lua_pushstring(L, tallow__printable(e->path, strlen(e->path), shown, sizeof(shown)));
            lua_rawseti(L, -2, count);
        }
    }
    if (destfd >= 0) close(destfd);
    lua_setfield(L, -2, "existing");
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "existing_count");
    lua_pushinteger(L, present);
    lua_setfield(L, -2, "present");
    tallow__manifest_free(&m);
    return 1;
}
