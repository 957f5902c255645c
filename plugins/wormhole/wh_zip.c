/* plugins/wormhole/wh_zip.c — folders as magic-wormhole sends them: a zip (libzip) whose entries
 * carry Unix modes in the external attributes (the Python receiver chmods to exactly those bits,
 * so 0 would mean mode 000), with entries for empty folders only. Unpacking applies `tallow
 * receive`'s rules to every name (tallow_path_check: no absolute names, no "..", no controls...),
 * never writes through a symlink (tallow_safe_open_dir), refuses symlink entries and duplicates,
 * keeps existing files unless --overwrite, and stops a zip that unpacks to more than the sender
 * announced (a bomb) with a message. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <tallow/error.h>
#include <tallow/safefs.h>

#include "wh.h"

#define MAX_ENTRIES 4194304u
#define MAX_DEPTH 256

typedef struct zw {
    zip_t *za;
    uint64_t files, bytes;
    char *err;
    size_t errlen;
} zw;

static int is_empty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

static int add_tree(zw *z, const char *abs, const char *rel, int depth)
{
    if (depth > MAX_DEPTH) {
        snprintf(z->err, z->errlen, "%s: folders nested too deep", abs);
        return TALLOW_ETOOBIG;
    }
    DIR *d = opendir(abs);
    if (!d) {
        snprintf(z->err, z->errlen, "%s: %s", abs, strerror(errno));
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t al = strlen(abs) + strlen(e->d_name) + 2, rl = strlen(rel) + strlen(e->d_name) + 2;
        char *a = malloc(al), *r = malloc(rl);
        if (!a || !r) {
            free(a);
            free(r);
            rc = TALLOW_ENOMEM;
            break;
        }
        snprintf(a, al, "%s/%s", abs, e->d_name);
        snprintf(r, rl, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        struct stat st;
        if (lstat(a, &st) != 0) {
            /* vanished meanwhile: skip */
        } else if (S_ISDIR(st.st_mode)) {
            /* only empty folders get an entry of their own: wormhole-william's receiver makes a
             * file of every entry, so a folder entry before its files would break it */
            char *dn = is_empty_dir(a) ? malloc(rl + 1) : NULL;
            if (dn) {
                snprintf(dn, rl + 1, "%s/", r);
                zip_int64_t idx = zip_dir_add(z->za, dn, ZIP_FL_ENC_UTF_8);
                if (idx >= 0)
                    zip_file_set_external_attributes(z->za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                                     (zip_uint32_t)(S_IFDIR | (st.st_mode & 07777))
                                                         << 16);
                free(dn);
            }
            rc = add_tree(z, a, r, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            zip_source_t *src = zip_source_file(z->za, a, 0, -1);
            zip_int64_t idx = src ? zip_file_add(z->za, r, src, ZIP_FL_ENC_UTF_8) : -1;
            if (idx < 0) {
                if (src) zip_source_free(src);
                snprintf(z->err, z->errlen, "%s: %s", a, zip_strerror(z->za));
                rc = TALLOW_EINVAL;
            } else {
                zip_file_set_external_attributes(z->za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                                 (zip_uint32_t)(S_IFREG | (st.st_mode & 0777))
                                                     << 16);
                zip_set_file_compression(z->za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 1);
                z->files++;
                z->bytes += (uint64_t)st.st_size;
            }
        } /* symlinks, sockets, devices: not sent (as tallow send) */
        free(a);
        free(r);
    }
    closedir(d);
    return rc;
}

int wh_zip_dir(const char *dir, const char *zippath, uint64_t *numfiles, uint64_t *numbytes,
               char *err, size_t errlen)
{
    int ze = 0;
    zw z = {.err = err, .errlen = errlen};
    z.za = zip_open(zippath, ZIP_CREATE | ZIP_TRUNCATE, &ze);
    if (!z.za) {
        snprintf(err, errlen, "cannot create the zip for %s", dir);
        return TALLOW_EINVAL;
    }
    int rc = add_tree(&z, dir, "", 0);
    if (rc) {
        zip_discard(z.za);
        return rc;
    }
    if (zip_close(z.za) != 0) {
        snprintf(err, errlen, "cannot write the zip for %s: %s", dir, zip_strerror(z.za));
        zip_discard(z.za);
        return TALLOW_EINVAL;
    }
    *numfiles = z.files;
    *numbytes = z.bytes;
    return 0;
}

/* ---- unpacking */

static void notice(json_t *notices, const char *name, const char *why)
{
    char pr[300], line[400];
    tallow_printable(name, strlen(name), pr, sizeof(pr));
    snprintf(line, sizeof(line), "refused %s: %s", pr, why);
    if (notices) json_array_append_new(notices, json_string(line));
}

static int write_entry(zip_t *za, zip_uint64_t i, int dirfd, const char *base, mode_t mode,
                       uint64_t expect, uint64_t *total, uint64_t cap, char *err, size_t errlen)
{
    char part[300];
    int fd = wh_open_part(dirfd, base, part, sizeof(part));
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", base, strerror(-fd));
        return fd;
    }
    zip_file_t *zf = zip_fopen_index(za, i, 0);
    int rc = zf ? 0 : TALLOW_EPROTO;
    if (!zf)
        snprintf(err, errlen, "the zip entry for %s cannot be read: %s", base, zip_strerror(za));
    uint64_t got = 0;
    char buf[65536];
    while (!rc) {
        zip_int64_t n = zip_fread(zf, buf, sizeof(buf));
        if (n < 0) {
            snprintf(err, errlen, "the zip entry for %s is corrupt: %s", base,
                     zip_error_strerror(zip_file_get_error(zf)));
            rc = TALLOW_EPROTO;
            break;
        }
        if (n == 0) break;
        got += (uint64_t)n;
        *total += (uint64_t)n;
        if (got > expect || *total > cap) {
            snprintf(err, errlen,
                     "refused the folder: its zip unpacks to more than the %llu bytes the "
                     "sender announced (a zip bomb?)",
                     (unsigned long long)cap);
            rc = TALLOW_ETOOBIG;
            break;
        }
        if (write(fd, buf, (size_t)n) != n) {
            rc = errno == ENOSPC ? TALLOW_ENOSPACE : -errno;
            snprintf(err, errlen, "%s: %s", base, tallow_strerror(rc));
        }
    }
    if (zf) zip_fclose(zf);
    if (!rc && got != expect) {
        snprintf(err, errlen, "the zip entry for %s is shorter than its header says", base);
        rc = TALLOW_EPROTO;
    }
    if (!rc) fchmod(fd, mode);
    close(fd);
    if (!rc && renameat(dirfd, part, dirfd, base) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", base, strerror(errno));
    }
    if (rc) unlinkat(dirfd, part, 0);
    return rc;
}

int wh_unzip(int zipfd, int destfd, int overwrite, uint64_t max_bytes, json_t *notices,
             uint64_t *files, uint64_t *bytes, char *err, size_t errlen)
{
    int dupfd = dup(zipfd), ze = 0;
    if (dupfd < 0) return -errno;
    lseek(dupfd, 0, SEEK_SET);
    zip_t *za = zip_fdopen(dupfd, ZIP_RDONLY, &ze);
    if (!za) {
        close(dupfd);
        snprintf(err, errlen, "refused the folder: what arrived is not a readable zip");
        return TALLOW_EPROTO;
    }
    zip_int64_t n = zip_get_num_entries(za, 0);
    if (n < 0 || (uint64_t)n > MAX_ENTRIES) {
        zip_discard(za);
        snprintf(err, errlen, "refused the folder: more than %u entries", MAX_ENTRIES);
        return TALLOW_ETOOBIG;
    }
    /* the headers' sizes first: a bomb that says what it is stops before anything is written */
    uint64_t declared = 0;
    for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
        zip_stat_t st;
        if (zip_stat_index(za, i, 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE)) declared += st.size;
    }
    if (declared > max_bytes) {
        zip_discard(za);
        snprintf(err, errlen,
                 "refused the folder: its zip unpacks to %llu bytes, more than the %llu "
                 "the sender announced (a zip bomb?)",
                 (unsigned long long)declared, (unsigned long long)max_bytes);
        return TALLOW_ETOOBIG;
    }
    json_t *seen = json_object();
    uint64_t total = 0;
    int rc = 0;
    for (zip_uint64_t i = 0; !rc && i < (zip_uint64_t)n; i++) {
        zip_stat_t st;
        if (zip_stat_index(za, i, ZIP_FL_ENC_RAW, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
            !(st.valid & ZIP_STAT_SIZE)) {
            snprintf(err, errlen, "refused the folder: a zip entry without a name or size");
            rc = TALLOW_EPROTO;
            break;
        }
        char name[4200];
        size_t nl = strlen(st.name);
        if (nl >= sizeof(name)) {
            notice(notices, "(a long name)", "name too long");
            continue;
        }
        memcpy(name, st.name, nl + 1);
        int isdir = nl > 0 && name[nl - 1] == '/';
        if (isdir) name[--nl] = 0;
        zip_uint8_t os = 0;
        zip_uint32_t attr = 0;
        zip_file_get_external_attributes(za, i, 0, &os, &attr);
        mode_t umode = os == ZIP_OPSYS_UNIX ? (mode_t)(attr >> 16) : 0;
        if (os == ZIP_OPSYS_UNIX && umode && S_ISDIR(umode)) isdir = 1;
        char why[100];
        if (tallow_path_check(name, nl, why, sizeof(why)) != 0) {
            notice(notices, st.name, why);
            continue;
        }
        if (os == ZIP_OPSYS_UNIX && umode && !S_ISDIR(umode) && !S_ISREG(umode)) {
            notice(notices, name,
                   S_ISLNK(umode) ? "a symlink (not unpacked)" : "not a regular file");
            continue;
        }
        if (json_object_get(seen, name)) {
            notice(notices, name, "a second entry with the same name");
            continue;
        }
        json_object_set_new(seen, name, json_true());
        if (isdir) {
            int d = tallow_safe_open_dir(destfd, name, 1);
            if (d < 0)
                notice(notices, name, tallow_strerror(d));
            else
                close(d);
            continue;
        }
        char *slash = strrchr(name, '/');
        const char *base = slash ? slash + 1 : name;
        if (slash) *slash = 0;
        int dirfd = tallow_safe_open_dir(destfd, slash ? name : "", 1);
        if (slash) *slash = '/';
        if (dirfd < 0) {
            notice(notices, name, tallow_strerror(dirfd));
            continue;
        }
        struct stat ex;
        if (fstatat(dirfd, base, &ex, AT_SYMLINK_NOFOLLOW) == 0 &&
            (!overwrite || !S_ISREG(ex.st_mode))) {
            notice(notices, name,
                   overwrite ? "exists and is not a regular file" : tallow_strerror(TALLOW_EEXIST));
            close(dirfd);
            continue;
        }
        mode_t mode = umode ? (umode & 0777) : 0644;
        rc = write_entry(za, i, dirfd, base, mode, (uint64_t)st.size, &total, max_bytes, err,
                         errlen);
        close(dirfd);
        if (!rc) (*files)++;
    }
    *bytes = total;
    json_decref(seen);
    zip_discard(za);
    return rc;
}
