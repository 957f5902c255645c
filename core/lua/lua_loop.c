/* core/lua/lua_loop.c — `tallow.loop`: time, sleeping, coroutines, repeating timers, and reading
 * lines from a file descriptor without blocking the loop. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "lua_rt.h"
#include "progress.h"

/* ---- sleep */

typedef struct sleeper {
    tallow__waiter w;
} sleeper;

static void sleep_done(tallow_timer *t, void *ud)
{
    sleeper *s = ud;
    tallow__waiter w = s->w;
    free(s);
    tallow__lua_wake(&w, NULL, NULL);
}

static int l_sleep(lua_State *L)
{
    double secs = luaL_checknumber(L, 1);
    luaL_argcheck(L, secs >= 0, 1, "negative duration");
    tallow__lrt *rt = tallow__lrt_get(L);
    sleeper *s = calloc(1, sizeof(*s));
    if (!s) return luaL_error(L, "out of memory");
    if (!tallow_timer_start(tallow_ctx_loop(rt->ctx), (uint64_t)(secs * 1000.0), 0, sleep_done,
                            s)) {
        free(s);
        return luaL_error(L, "cannot arm timer");
    }
    return tallow__lua_wait(L, &s->w, NULL, 0);
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (double)tallow_now_ns() / 1e9);
    return 1;
}

/* ---- coroutines: tallow.spawn(fn, ...) -> task; task:join([timeout]) */

typedef struct ltask {
    int done;
    int waiting; /* a coroutine is in join() */
    tallow__waiter w;
    tallow_timer *timer;
} ltask;

static int push_joined(lua_State *co, void *ud)
{
    lua_pushboolean(co, ((ltask *)ud)->done);
    return 1;
}

static void task_wake(ltask *t)
{
    if (t->timer) tallow_timer_stop(t->timer);
    t->timer = NULL;
    if (!t->waiting) return;
    t->waiting = 0;
    tallow__lua_wake(&t->w, push_joined, t);
}

static void join_timeout(tallow_timer *tm, void *ud)
{
    ltask *t = ud;
    t->timer = NULL;
    task_wake(t);
}

/* The task's function returned (stack: task, its results): the joiner resumes after it ends. */
static int task_finish(lua_State *L, int status, lua_KContext kctx)
{
    ltask *t = lua_touserdata(L, 1);
    t->done = 1;
    task_wake(t);
    return lua_gettop(L) - 1;
}

/* The coroutine's body: task_body(task, fn, ...) calls fn(...), then marks the task done. */
static int task_body(lua_State *L)
{
    lua_callk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, task_finish);
    return task_finish(L, LUA_OK, 0);
}

/* tallow.spawn(fn, ...) -> task: runs fn(...) as a new coroutine now (until it first waits). */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 1;
    ltask *t = lua_newuserdatauv(L, sizeof(*t), 0);
    memset(t, 0, sizeof(*t));
    luaL_setmetatable(L, "tallow.task");
    lua_insert(L, 1);
    lua_pushcfunction(L, task_body);
    lua_insert(L, 2);
    lua_pushvalue(L, 1);
    lua_insert(L,
               3); /* task, task_body, task, fn, args...: the coroutine takes all but the first */
    tallow__lua_spawn(tallow__lrt_get(L), L, nargs + 2);
    lua_settop(L, 1);
    return 1;
}

/* task:join([timeout_seconds]) -> true once the task's function has returned (at once if it
 * has), false when the timeout passed first. Waits (yields) meanwhile. */
static int task_join(lua_State *L)
{
    ltask *t = luaL_checkudata(L, 1, "tallow.task");
    if (t->done) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (t->waiting) return luaL_error(L, "another coroutine is already joining this task");
    if (!lua_isnoneornil(L, 2)) {
        double secs = luaL_checknumber(L, 2);
        luaL_argcheck(L, secs >= 0, 2, "negative duration");
        t->timer = tallow_timer_start(tallow_ctx_loop(tallow__lrt_get(L)->ctx),
                                      (uint64_t)(secs * 1000.0), 0, join_timeout, t);
        if (!t->timer) return luaL_error(L, "cannot arm timer");
    }
    t->waiting = 1;
    return tallow__lua_wait(L, &t->w, NULL, 0);
}

static int task_tostring(lua_State *L)
{
    ltask *t = luaL_checkudata(L, 1, "tallow.task");
    lua_pushstring(L, t->done ? "tallow.task (done)" : "tallow.task (running)");
    return 1;
}

/* ---- repeating timers: tallow.loop.every(secs, fn) -> handle with :stop() */

typedef struct ltimer {
    tallow__lrt *rt;
    tallow_timer *t;
    int fn_ref;
} ltimer;

static void every_fire(tallow_timer *t, void *ud)
{
    ltimer *lt = ud;
    lua_State *L = lt->rt->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lt->fn_ref);
    tallow__lua_spawn(lt->rt, L, 0);
}

static int every_stop(lua_State *L)
{
    ltimer *lt = luaL_checkudata(L, 1, "tallow.timer");
    if (lt->t) {
        tallow_timer_stop(lt->t);
        lt->t = NULL;
        luaL_unref(L, LUA_REGISTRYINDEX, lt->fn_ref);
    }
    return 0;
}

static int l_every(lua_State *L)
{
    double secs = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, secs > 0, 1, "interval must be positive");
    ltimer *lt = lua_newuserdatauv(L, sizeof(*lt), 0);
    memset(lt, 0, sizeof(*lt));
    luaL_setmetatable(L, "tallow.timer");
    lt->rt = tallow__lrt_get(L);
    lua_pushvalue(L, 2);
    lt->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    uint64_t ms = (uint64_t)(secs * 1000.0);
    lt->t = tallow_timer_start(tallow_ctx_loop(lt->rt->ctx), ms, ms ? ms : 1, every_fire, lt);
    if (!lt->t) return luaL_error(L, "cannot arm timer");
    return 1;
}

/* ---- line reader over an fd: tallow.loop.reader(fd) -> r; r:line() waits; nil at EOF */

typedef struct lreader {
    tallow__lrt *rt;
    int fd;
    tallow_io *io;
    char *buf;
    size_t len, cap;
    int eof;
    tallow__waiter w;
    int waiting;
    int want_bytes; /* r:bytes(): wake on any input, not on a whole line */
} lreader;

static int take_bytes(lreader *r, lua_State *co)
{
    if (r->len == 0) {
        if (!r->eof) return 0;
        lua_pushnil(co);
        return 1;
    }
    lua_pushlstring(co, r->buf, r->len);
    r->len = 0;
    return 1;
}

static int take_line(lreader *r, lua_State *co)
{
    char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL; /* buf is NULL until the first read */
    if (!nl && !r->eof) return 0;
    if (!nl && r->len == 0) {
        lua_pushnil(co);
        return 1;
    }
    size_t n = nl ? (size_t)(nl - r->buf) : r->len;
    size_t linelen = n;
    if (linelen > 0 && r->buf[linelen - 1] == '\r') linelen--;
    lua_pushlstring(co, r->buf, linelen);
    size_t used = nl ? n + 1 : n;
    memmove(r->buf, r->buf + used, r->len - used);
    r->len -= used;
    return 1;
}

static int push_line(lua_State *co, void *ud)
{
    lreader *r = ud;
    return r->want_bytes ? take_bytes(r, co) : take_line(r, co);
}

static void reader_ready(tallow_io *io, int fd, unsigned ev, void *ud)
{
    lreader *r = ud;
    if (r->cap - r->len < 4096) {
        size_t cap = r->cap ? r->cap * 2 : 8192;
        if (cap > (16u << 20)) cap = r->cap; /* a line longer than 16 MiB is cut */
        char *b = realloc(r->buf, cap);
        if (b) {
            r->buf = b;
            r->cap = cap;
        }
    }
    ssize_t n = r->cap > r->len ? read(fd, r->buf + r->len, r->cap - r->len) : 0;
    if (n > 0)
        r->len += (size_t)n;
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        r->eof = 1;
    if (r->cap == r->len) r->eof = r->eof || !memchr(r->buf, '\n', r->len);
    if (r->eof || (r->want_bytes ? r->len > 0 : memchr(r->buf, '\n', r->len) != NULL)) {
        tallow_io_stop(r->io);
        r->io = NULL;
        if (r->waiting) {
            r->waiting = 0;
            tallow__lua_wake(&r->w, push_line, r);
        }
    }
}

static int reader_line(lua_State *L)
{
    lreader *r = luaL_checkudata(L, 1, "tallow.reader");
    if (take_line(r, L)) return 1;
    if (r->waiting) return luaL_error(L, "another coroutine is already reading");
    r->io = tallow_io_start(tallow_ctx_loop(r->rt->ctx), r->fd, TALLOW_IO_READ, reader_ready, r);
    if (!r->io) return luaL_error(L, "cannot watch fd %d", r->fd);
    r->waiting = 1;
    return tallow__lua_wait(L, &r->w, NULL, 0);
}

/* r:bytes() -> whatever input is there (waits for some) | nil at end of input: for a line
 * editor on a terminal in non-canonical mode (tallow.loop.tty_raw). */
static int reader_bytes(lua_State *L)
{
    lreader *r = luaL_checkudata(L, 1, "tallow.reader");
    r->want_bytes = 1;
    if (take_bytes(r, L)) return 1;
    if (r->waiting) return luaL_error(L, "another coroutine is already reading");
    r->io = tallow_io_start(tallow_ctx_loop(r->rt->ctx), r->fd, TALLOW_IO_READ, reader_ready, r);
    if (!r->io) return luaL_error(L, "cannot watch fd %d", r->fd);
    r->waiting = 1;
    return tallow__lua_wait(L, &r->w, NULL, 0);
}

/* tallow.loop.tty_raw(on): the terminal on stdin without line editing and echo (signals still
 * work), so that a script can edit the line itself; false restores it. It is restored at exit in
 * any case. true | nil when stdin is not a terminal. */
static struct termios tty_saved;
static int tty_is_raw;
static void tty_restore(void)
{
    if (tty_is_raw) tcsetattr(0, TCSANOW, &tty_saved);
    tty_is_raw = 0;
}
static int l_tty_raw(lua_State *L)
{
    static int registered;
    if (!lua_toboolean(L, 1)) {
        tty_restore();
        lua_pushboolean(L, 1);
        return 1;
    }
    if (tty_is_raw) {
        lua_pushboolean(L, 1);
        return 1;
    }
    struct termios t;
    if (!isatty(0) || tcgetattr(0, &tty_saved) != 0) return 0;
    t = tty_saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(0, TCSANOW, &t) != 0) return 0;
    tty_is_raw = 1;
    if (!registered) atexit(tty_restore);
    registered = 1;
    lua_pushboolean(L, 1);
    return 1;
}

static int reader_gc(lua_State *L)
{
    lreader *r = luaL_checkudata(L, 1, "tallow.reader");
    if (r->io) tallow_io_stop(r->io);
    r->io = NULL;
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
    return 0;
}

static int l_reader(lua_State *L)
{
    int fd = (int)luaL_optinteger(L, 1, 0);
    lreader *r = lua_newuserdatauv(L, sizeof(*r), 0);
    memset(r, 0, sizeof(*r));
    r->rt = tallow__lrt_get(L);
    r->fd = fd;
    luaL_setmetatable(L, "tallow.reader");
    return 1;
}

static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
    return 1;
}

/* tallow.loop.probe(host, port [, timeout_s]) -> true | nil, reason, code: whether a TCP
 * connection to host:port opens within timeout_s (default 3), each resolved address in turn. It
 * blocks (a pre-flight before anything else runs); the connection is closed at once. The reason
 * is the last failure in words ("connection refused", "cannot resolve ...", "timed out"). */
static int l_probe(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    const char *port = luaL_checkstring(L, 2);
    int ms = (int)(luaL_optnumber(L, 3, 3) * 1000);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *a;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "cannot resolve %s: %s", host, gai_strerror(g));
        return tallow__lua_fail(L, TALLOW_ENOTFOUND, msg);
    }
    int err = ETIMEDOUT;
    for (a = ai; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            rc = poll(&p, 1, ms);
            if (rc == 0) {
                errno = ETIMEDOUT;
                rc = -1;
            } else if (rc > 0) {
                int so = 0;
                socklen_t sl = sizeof so;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl);
                errno = so;
                rc = so ? -1 : 0;
            }
        }
        if (rc < 0) err = errno;
        close(fd);
        if (rc == 0) {
            freeaddrinfo(ai);
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    freeaddrinfo(ai);
    char msg[200];
    snprintf(msg, sizeof msg, "%s", err == ETIMEDOUT ? "no answer (timed out)" : strerror(err));
    msg[0] = (char)(msg[0] >= 'A' && msg[0] <= 'Z' ? msg[0] + 32 : msg[0]);
    return tallow__lua_fail(L, -err, msg);
}

/* ---- tallow.loop.on_signal(fn): fn(signo) runs as a new coroutine on each SIGINT or SIGTERM.
 * The handler only writes the signal number into a pipe the loop watches, so fn runs in the loop
 * like any other event, never inside a signal handler. (Not a signalfd: that needs the signals
 * blocked, and child processes - clip's xclip - would inherit them blocked.) One handler per
 * process; a later call replaces the function. */
static struct {
    tallow__lrt *rt;
    int fds[2], fn_ref;
    tallow_io *io;
} sig = {NULL, {-1, -1}, LUA_NOREF, NULL};

static void sig_handler(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(sig.fds[1], &b, 1);
    (void)n; /* a full pipe already holds a pending signal */
    errno = saved;
}

static void sig_ready(tallow_io *io, int fd, unsigned ev, void *ud)
{
    (void)io;
    (void)ev;
    (void)ud;
    unsigned char b;
    while (read(fd, &b, 1) == 1) {
        if (sig.fn_ref == LUA_NOREF) continue;
        lua_State *L = sig.rt->L;
        lua_rawgeti(L, LUA_REGISTRYINDEX, sig.fn_ref);
        lua_pushinteger(L, (lua_Integer)b);
        tallow__lua_spawn(sig.rt, L, 1);
    }
}

static int l_on_signal(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    tallow__lrt *rt = tallow__lrt_get(L);
    if (sig.fds[0] < 0) {
        if (pipe2(sig.fds, O_NONBLOCK | O_CLOEXEC) < 0) return tallow__lua_fail(L, -errno, NULL);
        sig.io =
            tallow_io_start(tallow_ctx_loop(rt->ctx), sig.fds[0], TALLOW_IO_READ, sig_ready, NULL);
        /* also when the shell started us with SIGINT ignored (a background job) */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sig_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    sig.rt = rt;
    if (sig.fn_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, sig.fn_ref);
    lua_pushvalue(L, 1);
    sig.fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

/* tallow.loop.fresh_line(): ends the line of a progress bar drawn on stderr, if one is open, so
 * that what is written next starts on a fresh line. */
static int l_fresh_line(lua_State *L)
{
    (void)L;
    tallow__progress_break();
    return 0;
}

/* tallow.loop.columns([fd]) -> the width of the terminal on fd (default 2), or nil */
static int l_columns(lua_State *L)
{
    struct winsize ws;
    if (ioctl((int)luaL_optinteger(L, 1, 2), TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 0;
    lua_pushinteger(L, ws.ws_col);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"fresh_line", l_fresh_line}, {"columns", l_columns}, {"on_signal", l_on_signal},
    {"tty_raw", l_tty_raw},       {"sleep", l_sleep},     {"now", l_now},
    {"spawn", l_spawn},           {"every", l_every},     {"reader", l_reader},
    {"isatty", l_isatty},         {"probe", l_probe},     {NULL, NULL},
};

int luaopen_tallow_loop(lua_State *L)
{
    if (luaL_newmetatable(L, "tallow.task")) {
        lua_pushcfunction(L, task_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_pushcfunction(L, task_join);
        lua_setfield(L, -2, "join");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, "tallow.timer")) {
        lua_pushcfunction(L, every_stop);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, every_stop);
        lua_setfield(L, -2, "__close");
        lua_newtable(L);
        lua_pushcfunction(L, every_stop);
        lua_setfield(L, -2, "stop");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, "tallow.reader")) {
        lua_pushcfunction(L, reader_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, reader_gc);
        lua_setfield(L, -2, "__close");
        lua_newtable(L);
        lua_pushcfunction(L, reader_line);
        lua_setfield(L, -2, "line");
        lua_pushcfunction(L, reader_bytes);
        lua_setfield(L, -2, "bytes");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
