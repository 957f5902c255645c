/* tests/core/fstest.h — small helpers shared by the filesystem tests (temp trees, whole-file
 * read/write, recursive removal). Header-only: every test_*.c is its own executable. */
#ifndef TALLOW_TEST_FSTEST_H
#define TALLOW_TEST_FSTEST_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path or NULL. */
static inline char *fst_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof buf, "%s/tallow-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    return mkdtemp(buf) ? strdup(buf) : NULL;
}

static inline int fst_unlock_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)f;
    if (flag == FTW_D || flag == FTW_DNR) chmod(p, (st->st_mode & 0777) | 0700);
    return 0;
}

static inline int fst_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* rm -rf without following symlinks; makes read-only directories writable first. */
static inline void fst_rm_rf(const char *path)
{
    if (!path) return;
    nftw(path, fst_unlock_one, 32, FTW_PHYS);
    nftw(path, fst_rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* Writes len bytes to dirfd/rel (created or truncated, mode 0644). 0 or -1. */
static inline int fst_write(int dirfd, const char *rel, const void *data, size_t len)
{
    int fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    ssize_t w = len ? write(fd, data, len) : 0;
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

/* Reads dirfd/rel entirely into a malloc'd buffer (*len bytes); NULL on error. */
static inline unsigned char *fst_read(int dirfd, const char *rel, size_t *len)
{
    int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0) close(fd);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    ssize_t r = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (r != st.st_size) {
        free(buf);
        return NULL;
    }
    *len = (size_t)r;
    return buf;
}

/* Number of entries in a directory other than . and .. ; -1 on error. */
static inline int fst_count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d) return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

#endif
