/* core/transfer/manifest_build.c — the sender's manifest, built from command-line paths without
 * reading any file content (hashes are computed while streaming). Symlinks are never followed and
 * special files never sent; names the receiver would refuse are skipped here, with a warning, so
 * that the transfer does not fail half-way. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

typedef struct builder {
    tallow__manifest *m;
    size_t cap;
    tallow__manifest_warn_fn warn;
    void *ud;
} builder;

static void warn(builder *b, const char *path, const char *why)
{
    if (b->warn) b->warn(b->ud, path, why);
}

static int64_t mtime_ns(const struct stat *st)
{
    const int64_t g = 1000000000;
    if (st->st_mtim.tv_sec > INT64_MAX / g - 1) return INT64_MAX;
    if (st->st_mtim.tv_sec < INT64_MIN / g + 1) return INT64_MIN;
    return (int64_t)st->st_mtim.tv_sec * g + st->st_mtim.tv_nsec;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

/* Appends an entry; takes ownership of path and src (freed on error). */
static int push(builder *b, char *path, char *src, const struct stat *st, uint8_t type)
{
    tallow__manifest *m = b->m;
    if (m->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        tallow__entry *e = realloc(m->e, cap * sizeof *e);
        if (!e) {
            free(path);
            free(src);
            return TALLOW_ENOMEM;
        }
        m->e = e;
        b->cap = cap;
    }
    tallow__entry *e = &m->e[m->n++];
    e->path = path;
    e->src = src;
    e->type = type;
    e->mode = (uint32_t)st->st_mode & 0777u;
    e->mtime_ns = mtime_ns(st);
    e->size = type == TALLOW__ENT_FILE ? (uint64_t)st->st_size : 0;
    if (type == TALLOW__ENT_FILE) {
        m->total_size += e->size;
        m->nfiles++;
    }
    return 0;
}

static int cmp_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Reads the names in directory src (sorted) into *names; the directory is closed before the
 * caller recurses, so depth never costs file descriptors. */
static int list_dir(const char *src, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    int fd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int err = -errno;
        close(fd);
        return err;
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            char **n = realloc(*names, cap * sizeof *n);
            if (!n) {
                rc = TALLOW_ENOMEM;
                break;
            }
            *names = n;
        }
        if (!((*names)[*count] = strdup(de->d_name))) {
            rc = TALLOW_ENOMEM;
            break;
        }
        (*count)++;
    }
    closedir(d);
    if (!rc && *count) qsort(*names, *count, sizeof **names, cmp_names);
    return rc;
}

static int walk_dir(builder *b, const char *src, const char *rel);

/* Adds one child (src, rel) of a walked directory; st is its lstat. */
static int add_child(builder *b, const char *src, const char *rel, const struct stat *st)
{
    uint8_t type;
    if (S_ISREG(st->st_mode)) {
        type = TALLOW__ENT_FILE;
    } else if (S_ISDIR(st->st_mode)) {
        type = TALLOW__ENT_DIR;
    } else {
        warn(b, src,
             S_ISLNK(st->st_mode) ? "symlink skipped (not followed)" : "special file skipped");
        return 0;
    }
    char *p = strdup(rel), *s = strdup(src);
    if (!p || !s) {
        free(p);
        free(s);
        return TALLOW_ENOMEM;
    }
    int rc = push(b, p, s, st, type);
    if (rc || type != TALLOW__ENT_DIR) return rc;
    return walk_dir(b, src, rel);
}

static int walk_dir(builder *b, const char *src, const char *rel)
{
    char **names;
    size_t count;
    int rc = list_dir(src, &names, &count);
    if (rc == TALLOW_ENOMEM) goto out;
    if (rc) {
        warn(b, src, "directory not readable: sent empty");
        rc = 0;
        goto out;
    }
    for (size_t i = 0; i < count && !rc; i++) {
        char *csrc = join(src, names[i]), *crel = join(rel, names[i]);
        char why[64];
        struct stat st;
        if (!csrc || !crel) {
            rc = TALLOW_ENOMEM;
        } else if (tallow__path_check(crel, strlen(crel), why, sizeof why)) {
            char msg[128];
            snprintf(msg, sizeof msg, "skipped, the receiver would refuse it: %s", why);
            warn(b, csrc, msg);
        } else if (lstat(csrc, &st) < 0) {
            warn(b, csrc, "skipped: cannot stat");
        } else {
            rc = add_child(b, csrc, crel, &st);
        }
        free(csrc);
        free(crel);
    }
out:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* The name a command-line argument contributes: its last component, or for "." / ".." the
 * last component of its real path. Returns a malloc'd name or NULL (no basename, or ENOMEM). */
static char *top_name(const char *arg)
{
    size_t len = strlen(arg);
    while (len > 1 && arg[len - 1] == '/')
        len--;
    const char *start = arg + len;
    while (start > arg && start[-1] != '/')
        start--;
    size_t n = (size_t)(arg + len - start);
    if (n == 0 || (n == 1 && start[0] == '/')) return NULL;
    if ((n == 1 && start[0] == '.') || (n == 2 && start[0] == '.' && start[1] == '.')) {
        char *real = realpath(arg, NULL);
        char *slash = real ? strrchr(real, '/') : NULL;
        char *name = (slash && slash[1]) ? strdup(slash + 1) : NULL;
        free(real);
        return name;
    }
    return strndup(start, n);
}

static int add_top(builder *b, const char *arg)
{
    struct stat st;
    if (lstat(arg, &st) < 0) return -errno;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        warn(b, arg, S_ISLNK(st.st_mode) ? "is a symlink: not followed" : "not a regular file");
        return TALLOW_EINVAL;
    }
    char *name = top_name(arg);
    if (!name) {
        warn(b, arg, "has no name to send it under");
        return TALLOW_EINVAL;
    }
    char why[64];
    if (tallow__path_check(name, strlen(name), why, sizeof why)) {
        warn(b, arg, why);
        free(name);
        return TALLOW_EUNSAFEPATH;
    }
    size_t alen = strlen(arg);
    while (alen > 1 && arg[alen - 1] == '/')
        alen--; /* "dir/" walks as "dir/x", not "dir//x" */
    char *src = strndup(arg, alen);
    if (!src) {
        free(name);
        return TALLOW_ENOMEM;
    }
    int rc = push(b, name, src, &st, S_ISDIR(st.st_mode) ? TALLOW__ENT_DIR : TALLOW__ENT_FILE);
    if (rc || !S_ISDIR(st.st_mode)) return rc;
    /* walk with the name as pushed: push took ownership of both strings */
    const tallow__entry *e = &b->m->e[b->m->n - 1];
    return walk_dir(b, e->src, e->path);
}

int tallow__manifest_build_ex(const char *const *paths, size_t n, tallow__manifest_warn_fn warnfn,
                              void *ud, tallow__manifest *out)
{
    memset(out, 0, sizeof *out);
    builder b = {out, 0, warnfn, ud};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = add_top(&b, paths[i]);
    size_t bad = 0;
    if (!rc) {
        rc = tallow__manifest_check_collisions(out, &bad);
        if (rc == TALLOW_EUNSAFEPATH)
            warn(&b, out->e[bad].src,
                 "collides with another entry (same name, or same but for case)");
    }
    if (rc) tallow__manifest_free(out);
    return rc;
}

int tallow__manifest_build(const char *const *paths, size_t n, tallow__manifest *out)
{
    return tallow__manifest_build_ex(paths, n, NULL, NULL, out);
}
