/* core/lua/lua_watch.c — tallow.fs.watch: a folder tree watched with inotify (folders created or
 * moved in are watched too, moves within the tree are paired), its events handed to a Lua
 * coroutine that waits on w:next([timeout]). Part of `tallow.fs` (core/lua/lua_fs.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua_fs.h"
#include "lua_rt.h"

#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE |            \
     IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

typedef struct wdir {
    int wd;
    char *rel; /* "" for the root */
} wdir;

typedef struct wevent {
    char *path;
    const char *kind;
    int dir;
} wevent;

typedef struct lwatch {
    tallow__lrt *rt;
    int fd;
    char *root;
    wdir *dirs;
    size_t ndirs, capdirs;
    wevent *ev;
    size_t nev, capev;
    tallow_io *io;
    tallow_timer *timer;
    tallow__waiter w;
    int waiting;
    char *moved_rel;       /* a folder moved away, waiting to see if it was moved within */
    uint32_t moved_cookie; /* its IN_MOVED_FROM cookie */
} lwatch;

static char *join_rel(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    if (la) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    } else {
        memcpy(s, b, lb + 1);
    }
    return s;
}

static wdir *find_wd(lwatch *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd) return &w->dirs[i];
    return NULL;
}

static void add_event(lwatch *w, char *path, const char *kind, int dir)
{
    if (!path) return;
    if (w->nev == w->capev) {
        size_t cap = w->capev ? w->capev * 2 : 64;
        wevent *e = realloc(w->ev, cap * sizeof *e);
        if (!e) {
            free(path);
            return;
        }
        w->ev = e;
        w->capev = cap;
    }
    w->ev[w->nev++] = (wevent){path, kind, dir};
}

/* Watches rel (relative to the root) and every folder below it. */
static int add_tree(lwatch *w, const char *rel, int depth)
{
    char *full = join_rel(w->root, rel);
    if (!full) return TALLOW_ENOMEM;
    int wd = inotify_add_watch(w->fd, full, WATCH_MASK);
    if (wd < 0) {
        int err = -errno;
        free(full);
        return err == -ENOENT || err == -ENOTDIR ? 0 : err; /* gone again, or a symlink */
    }
    wdir *d = find_wd(w, wd);
    if (d) {
        char *r = strdup(rel);
        if (r) {
            free(d->rel);
            d->rel = r;
        }
    } else {
        if (w->ndirs == w->capdirs) {
            size_t cap = w->capdirs ? w->capdirs * 2 : 32;
            wdir *nd = realloc(w->dirs, cap * sizeof *nd);
            if (!nd) {
                free(full);
                return TALLOW_ENOMEM;
            }
            w->dirs = nd;
            w->capdirs = cap;
        }
        w->dirs[w->ndirs].wd = wd;
        w->dirs[w->ndirs].rel = strdup(rel);
        w->ndirs++;
    }
    int rc = 0;
    int fd = open(full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    free(full);
    DIR *dd = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dd) {
        if (fd >= 0) close(fd);
        return 0;
    }
    struct dirent *de;
    while (!rc && depth < 256 && (de = readdir(dd))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) continue;
        char *crel = join_rel(rel, de->d_name);
        if (!crel)
            rc = TALLOW_ENOMEM;
        else
            rc = add_tree(w, crel, depth + 1);
        free(crel);
    }
    closedir(dd);
    return rc;
}

/* Forgets the watches of rel and below (a folder moved away: its watches would report under
 * a stale name). */
static void drop_tree(lwatch *w, const char *rel)
{
    size_t len = strlen(rel);
    for (size_t i = 0; i < w->ndirs;) {
        const char *r = w->dirs[i].rel;
        if (!strcmp(r, rel) || (!strncmp(r, rel, len) && r[len] == '/')) {
            inotify_rm_watch(w->fd, w->dirs[i].wd);
            free(w->dirs[i].rel);
            w->dirs[i] = w->dirs[--w->ndirs];
        } else {
            i++;
        }
    }
}

/* Renames the watches of folder from (and below) to to: a folder moved within the tree keeps
 * its watches, and events already queued under them must carry the new name. */
static void rename_tree(lwatch *w, const char *from, const char *to)
{
    size_t len = strlen(from);
    for (size_t i = 0; i < w->ndirs; i++) {
        const char *r = w->dirs[i].rel;
        if (strcmp(r, from) && !(!strncmp(r, from, len) && r[len] == '/')) continue;
        size_t tl = strlen(to), rest = strlen(r + len);
        char *n = malloc(tl + rest + 1);
        if (!n) continue;
        memcpy(n, to, tl);
        memcpy(n + tl, r + len, rest + 1);
        free(w->dirs[i].rel);
        w->dirs[i].rel = n;
    }
}

/* Settles a pending folder move: paired with this IN_MOVED_TO (ie), or moved out of the tree. */
static void settle_move(lwatch *w, const struct inotify_event *ie, const char *to)
{
    if (!w->moved_rel) return;
    if (ie && to && (ie->mask & IN_MOVED_TO) && ie->cookie == w->moved_cookie)
        rename_tree(w, w->moved_rel, to);
    else
        drop_tree(w, w->moved_rel);
    free(w->moved_rel);
    w->moved_rel = NULL;
}

static void forget_wd(lwatch *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd) {
            free(w->dirs[i].rel);
            w->dirs[i] = w->dirs[--w->ndirs];
            return;
        }
}

static void handle(lwatch *w, const struct inotify_event *ie)
{
    if (ie->mask & IN_Q_OVERFLOW) {
        add_event(w, strdup(""), "overflow", 0);
        return;
    }
    if (ie->mask & IN_IGNORED) {
        forget_wd(w, ie->wd);
        return;
    }
    if (w->moved_rel) {
        char *to = NULL;
        wdir *td = find_wd(w, ie->wd);
        if (td && ie->len && (ie->mask & IN_MOVED_TO) && ie->cookie == w->moved_cookie)
            to = join_rel(td->rel, ie->name);
        settle_move(w, ie, to);
        free(to);
    }
    wdir *d = find_wd(w, ie->wd);
    if (!d || !ie->len || !ie->name[0]) return;
    int isdir = (ie->mask & IN_ISDIR) != 0;
    char *rel = join_rel(d->rel, ie->name);
    if (!rel) return;
    if (ie->mask & IN_CREATE) {
        if (isdir) add_tree(w, rel, 0);
        /* a file created is reported once it is closed after writing (IN_CLOSE_WRITE) */
        add_event(w, rel, isdir ? "dir" : "create", isdir);
    } else if (ie->mask & (IN_CLOSE_WRITE | IN_ATTRIB)) {
        add_event(w, rel, "modify", isdir);
    } else if (ie->mask & IN_MOVED_FROM) {
        if (isdir) { /* settled by the next event: renamed within the tree, or gone */
            w->moved_rel = strdup(rel);
            w->moved_cookie = ie->cookie;
        }
        add_event(w, rel, "rename_from", isdir);
    } else if (ie->mask & IN_MOVED_TO) {
        if (isdir) add_tree(w, rel, 0);
        add_event(w, rel, "rename_to", isdir);
    } else if (ie->mask & IN_DELETE) {
        add_event(w, rel, "delete", isdir);
    } else {
        free(rel);
    }
}

static void drain(lwatch *w)
{
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ie = (const struct inotify_event *)p;
            handle(w, ie);
            p += sizeof *ie + ie->len;
        }
    }
}

static int push_events(lua_State *co, void *ud)
{
    lwatch *w = ud;
    lua_createtable(co, (int)w->nev, 0);
    for (size_t i = 0; i < w->nev; i++) {
        lua_createtable(co, 0, 3);
        lua_pushstring(co, w->ev[i].path);
        lua_setfield(co, -2, "path");
        lua_pushstring(co, w->ev[i].kind);
        lua_setfield(co, -2, "kind");
        lua_pushboolean(co, w->ev[i].dir);
        lua_setfield(co, -2, "dir");
        lua_rawseti(co, -2, (lua_Integer)i + 1);
        free(w->ev[i].path);
    }
    w->nev = 0;
    return 1;
}

static void stop_waiting(lwatch *w)
{
    if (w->io) tallow_io_stop(w->io);
    if (w->timer) tallow_timer_stop(w->timer);
    w->io = NULL;
    w->timer = NULL;
    if (w->waiting) {
        w->waiting = 0;
        tallow__lua_wake(&w->w, push_events, w);
    }
}

static void watch_ready(tallow_io *io, int fd, unsigned ev, void *ud)
{
    lwatch *w = ud;
    drain(w);
    if (w->nev) stop_waiting(w);
}

static void watch_timeout(tallow_timer *t, void *ud)
{
    lwatch *w = ud;
    w->timer = NULL;
    stop_waiting(w);
}

/* w:next([timeout_seconds]) -> list of {path=, kind=, dir=}; an empty list when the timeout
 * passed first. Waits (yields) until at least one event is there. */
static int watch_next(lua_State *L)
{
    lwatch *w = luaL_checkudata(L, 1, "tallow.fswatch");
    if (w->fd < 0) return luaL_error(L, "watcher is closed");
    if (w->waiting) return luaL_error(L, "another coroutine is already waiting on this watcher");
    double secs = luaL_optnumber(L, 2, -1);
    drain(w);
    if (w->nev || secs == 0) return push_events(L, w);
    tallow_loop *loop = tallow_ctx_loop(w->rt->ctx);
    w->io = tallow_io_start(loop, w->fd, TALLOW_IO_READ, watch_ready, w);
    if (!w->io) return luaL_error(L, "cannot watch the inotify fd");
    if (secs > 0)
        w->timer = tallow_timer_start(loop, (uint64_t)(secs * 1000.0), 0, watch_timeout, w);
    w->waiting = 1;
    return tallow__lua_wait(L, &w->w, NULL, 0);
}

static int watch_close(lua_State *L)
{
    lwatch *w = luaL_checkudata(L, 1, "tallow.fswatch");
    for (size_t i = 0; i < w->nev; i++)
        free(w->ev[i].path);
    w->nev = 0;
    stop_waiting(w); /* a coroutine still waiting gets an empty list */
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    for (size_t i = 0; i < w->ndirs; i++)
        free(w->dirs[i].rel);
    free(w->dirs);
    free(w->ev);
    free(w->root);
    free(w->moved_rel);
    w->moved_rel = NULL;
    w->dirs = NULL;
    w->ev = NULL;
    w->root = NULL;
    w->ndirs = w->nev = w->capdirs = w->capev = 0;
    return 0;
}

static int watch_tostring(lua_State *L)
{
    lwatch *w = luaL_checkudata(L, 1, "tallow.fswatch");
    lua_pushfstring(L, "tallow.fswatch(%s, %d folders)", w->root ? w->root : "closed",
                    (int)w->ndirs);
    return 1;
}

int tallow__lua_fs_watch(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(dir, &st) < 0) return tallow__lua_fail(L, -errno, NULL);
    if (!S_ISDIR(st.st_mode)) return tallow__lua_fail(L, TALLOW_EINVAL, "not a folder");
    lwatch *w = lua_newuserdatauv(L, sizeof *w, 0);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    luaL_setmetatable(L, "tallow.fswatch");
    w->rt = tallow__lrt_get(L);
    w->root = strdup(dir);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (!w->root || w->fd < 0) return tallow__lua_fail(L, w->root ? -errno : TALLOW_ENOMEM, NULL);
    int rc = add_tree(w, "", 0);
    if (rc < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "cannot watch %s: %s%s", dir, tallow_strerror(rc),
                 rc == -ENOSPC ? " (raise fs.inotify.max_user_watches)" : "");
        return tallow__lua_fail(L, rc, msg);
    }
    return 1;
}

void tallow__lua_watch_meta(lua_State *L)
{
    if (luaL_newmetatable(L, "tallow.fswatch")) {
        lua_pushcfunction(L, watch_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, watch_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, watch_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_pushcfunction(L, watch_next);
        lua_setfield(L, -2, "next");
        lua_pushcfunction(L, watch_close);
        lua_setfield(L, -2, "close");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
