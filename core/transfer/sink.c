/* core/transfer/sink.c — the receiver's side of one file: a temporary name beside the final one,
 * sequential writes, resume from an aligned prefix (hashed when reopened, checked against the
 * sender's hash of the same prefix), and an atomic rename at the end. Also directory entries, the
 * sender's source opener and the BLAKE2b-256 wrappers. Every name is opened relative to an
 * O_NOFOLLOW-walked directory fd, never by path. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium/utils.h>

#include "fsutil.h"

#define PART_SUFFIX ".tallow-part"
#define HASH_CHUNK (256u * 1024u)  /* buffer for hashing a resumed prefix back from disk */
#define WRITEBACK_STEP (16u << 20) /* start writing a big file back every this many bytes */

/* ---- hashing */

static crypto_generichash_state *hstate(tallow__hash *h)
{
    uintptr_t p = ((uintptr_t)h->raw + 63u) & ~(uintptr_t)63u;
    return (crypto_generichash_state *)(void *)p;
}

void tallow__hash_init(tallow__hash *h)
{
    crypto_generichash_init(hstate(h), NULL, 0, TALLOW__HASH_LEN);
}

void tallow__hash_update(tallow__hash *h, const void *data, size_t len)
{
    crypto_generichash_update(hstate(h), data, len);
}

void tallow__hash_final(tallow__hash *h, uint8_t out[TALLOW__HASH_LEN])
{
    crypto_generichash_final(hstate(h), out, TALLOW__HASH_LEN);
}

/* ---- helpers */

static struct timespec ns_to_ts(int64_t ns)
{
    const int64_t g = 1000000000;
    int64_t sec = ns / g, rem = ns % g;
    if (rem < 0) rem += g, sec--;
    return (struct timespec){.tv_sec = (time_t)sec, .tv_nsec = (long)rem};
}

/* The receiver's umask, read once: modes from the sender never grant more than it allows. */
static mode_t recv_umask(void)
{
    static int have;
    static mode_t m;
    if (!have) {
        m = umask(077);
        umask(m);
        have = 1;
    }
    return m;
}

static mode_t safe_mode(uint32_t mode)
{
    return (mode_t)(mode & 0777u) & ~recv_umask();
}

static int set_mode_mtime(int fd, uint32_t mode, int64_t mtime_ns)
{
    struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT}, ns_to_ts(mtime_ns)};
    if (fchmod(fd, safe_mode(mode)) < 0) return -errno;
    if (futimens(fd, ts) < 0) return -errno;
    return 0;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ".<basename>.<16 hex of id>.tallow-part", id = first 8 bytes of BLAKE2b-128(path, size, mtime).
 * The basename is cut (at a character boundary) so that the whole name fits in NAME_MAX. */
static void part_name(char out[TALLOW__NAME_MAX + 1], const char *base, const tallow__entry *e)
{
    static const char tag[] = "tallow-part-v1";
    uint8_t id[crypto_generichash_BYTES_MIN], num[16]; /* 16: BLAKE2b's shortest output */
    char hex[2 * 8 + 1];
    size_t plen = strlen(e->path);
    crypto_generichash_state *st;
    tallow__hash h;
    st = hstate(&h);
    crypto_generichash_init(st, NULL, 0, sizeof id);
    crypto_generichash_update(st, (const uint8_t *)tag, sizeof tag);
    put_le64(num, plen);
    crypto_generichash_update(st, num, 8);
    crypto_generichash_update(st, (const uint8_t *)e->path, plen);
    put_le64(num, e->size);
    put_le64(num + 8, (uint64_t)e->mtime_ns);
    crypto_generichash_update(st, num, 16);
    crypto_generichash_final(st, id, sizeof id);
    sodium_bin2hex(hex, sizeof hex, id, 8);
    size_t room = TALLOW__NAME_MAX - 2 - (sizeof hex - 1) - (sizeof PART_SUFFIX - 1);
    size_t keep = strlen(base);
    if (keep > room) {
        keep = room;
        while (keep > 0 && ((unsigned char)base[keep] & 0xC0) == 0x80)
            keep--;
    }
    snprintf(out, TALLOW__NAME_MAX + 1, ".%.*s.%s%s", (int)keep, base, hex, PART_SUFFIX);
}

int tallow__hash_prefix(int fd, uint64_t n, uint8_t out[TALLOW__HASH_LEN])
{
    tallow__hash h;
    tallow__hash_init(&h);
    uint8_t *buf = n ? malloc(HASH_CHUNK) : NULL;
    if (n && !buf) return TALLOW_ENOMEM;
    uint64_t off = 0;
    int rc = 0;
    while (off < n) {
        size_t want = n - off < HASH_CHUNK ? (size_t)(n - off) : HASH_CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            break;
        }
        tallow__hash_update(&h, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    if (rc == 0) tallow__hash_final(&h, out);
    return rc;
}

static int is_nospace(int err)
{
    return err == ENOSPC || err == EDQUOT;
}

/* ---- sink */

void tallow__sink_abort(tallow__sink *s, int keep_partial)
{
    if (s->fd >= 0) close(s->fd);
    if (!keep_partial && s->dirfd >= 0 && s->part[0]) unlinkat(s->dirfd, s->part, 0);
    if (s->dirfd >= 0) close(s->dirfd);
    s->fd = s->dirfd = -1;
}

/* Opens the temporary file and brings it to the kept prefix. */
static int open_part(tallow__sink *s, uint64_t align, uint64_t *resume_off)
{
    /* a new part is ours alone (O_EXCL, 0600); an existing one (kept from an interrupted run)
     * must be a plain file of ours that no one else may write */
    const int flags = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    s->fd = openat(s->dirfd, s->part, flags | O_CREAT | O_EXCL, 0600);
    if (s->fd < 0 && errno == EEXIST) s->fd = openat(s->dirfd, s->part, flags);
    if (s->fd < 0) return errno == ELOOP ? TALLOW_EUNSAFEPATH : -errno;
    struct stat st;
    if (fstat(s->fd, &st) < 0) return -errno;
    /* something planted under our temporary name: not ours to write into */
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid() || (st.st_mode & 022))
        return TALLOW_EUNSAFEPATH;
    uint64_t have = (uint64_t)st.st_size, keep = 0;
    if (align) {
        keep = have < s->size ? have : s->size;
        keep -= keep % align;
    }
    if (have != keep && ftruncate(s->fd, (off_t)keep) < 0) return -errno;
    /* the kept prefix was written in an earlier session: the sender proves at the end that it
     * equals the same prefix of its file (bytes sent now are the session AEAD's job); hashed
     * then, by tallow__sink_sync (off the loop), not here: nothing writes it meanwhile */
    s->prefix = keep;
    posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    /* reserve the rest now, so a full disk shows at the start rather than at 99% */
    if (s->size > keep &&
        fallocate(s->fd, FALLOC_FL_KEEP_SIZE, (off_t)keep, (off_t)(s->size - keep)) < 0) {
        if (is_nospace(errno)) return TALLOW_ENOSPACE;
        if (errno == EFBIG) return -EFBIG; /* larger than the filesystem allows: say so now */
    }
    s->written = s->flushed = keep;
    *resume_off = keep;
    return 0;
}

int tallow__sink_open(tallow__sink *s, int destfd, const tallow__entry *e, int overwrite,
                      uint64_t align, uint64_t *resume_off)
{
    memset(s, 0, sizeof(*s));
    s->fd = s->dirfd = -1;
    *resume_off = 0;
    if (!e || !e->path || e->type != TALLOW__ENT_FILE) return TALLOW_EINVAL;
    if (e->size > (uint64_t)INT64_MAX) return TALLOW_ETOOBIG;
    size_t plen = strlen(e->path);
    if (tallow__path_check(e->path, plen, NULL, 0)) return TALLOW_EUNSAFEPATH;
    const char *slash = strrchr(e->path, '/');
    const char *base = slash ? slash + 1 : e->path;
    char dir[TALLOW__PATH_MAX + 1];
    size_t dlen = slash ? (size_t)(slash - e->path) : 0;
    memcpy(dir, e->path, dlen);
    dir[dlen] = '\0';
    int rc = tallow__safe_open_dir(destfd, dir, 1);
    if (rc < 0) return rc;
    s->dirfd = rc;
    rc = 0;
    snprintf(s->name, sizeof s->name, "%s", base);
    s->overwrite = overwrite;
    s->mode = e->mode & 0777u;
    s->mtime_ns = e->mtime_ns;
    s->size = e->size;

    struct stat st;
    if (fstatat(s->dirfd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        rc = !overwrite ? TALLOW_EEXIST : !S_ISREG(st.st_mode) ? TALLOW_EUNSAFEPATH : 0;
    } else if (errno != ENOENT) {
        rc = -errno;
    }
    if (!rc) {
        part_name(s->part, s->name, e);
        rc = open_part(s, align, resume_off);
    }
    if (rc) {
        *resume_off = 0;
        tallow__sink_abort(s, 1);
    }
    return rc;
}

int tallow__sink_write(tallow__sink *s, uint64_t off, const uint8_t *data, size_t len)
{
    if (s->fd < 0) return TALLOW_EINVAL;
    if (off != s->written || len > s->size - s->written) return TALLOW_EPROTO;
    while (len) {
        ssize_t w = pwrite(s->fd, data, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w == 0 ? -EIO : is_nospace(errno) ? TALLOW_ENOSPACE : -errno;
        s->written += (uint64_t)w;
        off += (uint64_t)w;
        data += w;
        len -= (size_t)w;
    }
    if (s->written - s->flushed >= WRITEBACK_STEP) {
        /* Start writing this range back now, so the fsync before the rename finds little left
         * (durability is unchanged: that fsync, and the transfer's syncfs, still decide). No
         * wait here: waiting on earlier ranges made the receiver (one thread) stall on the disk
         * while the network idled, 2-3x slower on this VM's disk; the kernel's own dirty-page
         * limits bound the memory. Errors show at the fsync. */
        (void)sync_file_range(s->fd, (off_t)s->flushed, (off_t)(s->written - s->flushed),
                              SYNC_FILE_RANGE_WRITE);
        s->flushed = s->written;
    }
    return 0;
}

/* rename without replacing; falls back to link+unlink where RENAME_NOREPLACE is unsupported */
static int rename_noreplace(int dirfd, const char *from, const char *to)
{
    if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -errno;
    if (linkat(dirfd, from, dirfd, to, 0) < 0) return -errno;
    unlinkat(dirfd, from, 0);
    return 0;
}

int tallow__sink_seal(tallow__sink *s, const uint8_t *prefix_hash)
{
    if (s->fd < 0) return TALLOW_EINVAL;
    if (s->written != s->size || !s->prefix != !prefix_hash) {
        tallow__sink_abort(s, 1);
        return TALLOW_EPROTO;
    }
    if (s->prefix) memcpy(s->prefix_hash, prefix_hash, TALLOW__HASH_LEN); /* checked by sync */
    /* mode and times on the fd, before the name is visible: no path to race on */
    int rc = set_mode_mtime(s->fd, s->mode, s->mtime_ns);
    if (rc) tallow__sink_abort(s, 1);
    return rc;
}

int tallow__sink_needs_sync(const tallow__sink *s)
{
    return s->fd >= 0 && (s->prefix || s->size >= TALLOW__SYNC_EACH);
}

int tallow__sink_sync(const tallow__sink *s)
{
    if (s->prefix) {
        uint8_t h[TALLOW__HASH_LEN];
        int rc = tallow__hash_prefix(s->fd, s->prefix, h);
        if (rc) return rc;
        if (sodium_memcmp(h, s->prefix_hash, TALLOW__HASH_LEN) != 0) return TALLOW_EHASH;
    }
    /* Large files are flushed here, so a full disk shows on this file; small ones are flushed
     * together by the transfer's syncfs() before it reports success (one fsync per small file
     * made 10,000 files take 50 s instead of 1). */
    if (s->size >= TALLOW__SYNC_EACH && fsync(s->fd) < 0)
        return is_nospace(errno) ? TALLOW_ENOSPACE : -errno;
    return 0;
}

int tallow__sink_publish(tallow__sink *s, int sync_rc)
{
    if (s->fd < 0) return TALLOW_EINVAL;
    if (sync_rc == TALLOW_EHASH) {
        tallow__sink_abort(s, 0); /* the kept prefix is not the sender's: useless for a retry */
        return sync_rc;
    }
    int rc = sync_rc;
    if (!rc) {
        if (s->overwrite)
            rc = renameat(s->dirfd, s->part, s->dirfd, s->name) < 0 ? -errno : 0;
        else
            rc = rename_noreplace(s->dirfd, s->part, s->name);
        if (rc == -EEXIST) rc = TALLOW_EEXIST;
        if (rc == -EISDIR || rc == -ENOTEMPTY) rc = TALLOW_EUNSAFEPATH;
    }
    tallow__sink_abort(s, 1);
    return rc;
}

int tallow__sink_finish(tallow__sink *s, const uint8_t *prefix_hash)
{
    int rc = tallow__sink_seal(s, prefix_hash);
    return rc ? rc : tallow__sink_publish(s, tallow__sink_sync(s));
}

/* ---- directories */

int tallow__dir_apply(int destfd, const tallow__entry *e)
{
    if (!e || !e->path || e->type != TALLOW__ENT_DIR) return TALLOW_EINVAL;
    int fd = tallow__safe_open_dir(destfd, e->path, 1);
    if (fd < 0) return fd;
    /* writable by us until tallow__dir_finish applies the final mode */
    int rc = fchmod(fd, safe_mode(e->mode) | 0700u) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int tallow__dir_finish(int destfd, const tallow__entry *e)
{
    if (!e || !e->path || e->type != TALLOW__ENT_DIR) return TALLOW_EINVAL;
    int fd = tallow__safe_open_dir(destfd, e->path, 0);
    if (fd < 0) return fd;
    int rc = set_mode_mtime(fd, e->mode, e->mtime_ns);
    close(fd);
    return rc;
}

/* ---- sender */

int tallow__source_open(const tallow__entry *e, int *fd)
{
    *fd = -1;
    if (!e || !e->src || e->type != TALLOW__ENT_FILE) return TALLOW_EINVAL;
    int f = open(e->src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f < 0) return -errno;
    struct stat st;
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
        close(f);
        return -ESTALE;
    }
    posix_fadvise(f, 0, 0, POSIX_FADV_SEQUENTIAL);
    *fd = f;
    return 0;
}

int tallow__sink_probe(int destfd, const tallow__entry *e, int overwrite, uint64_t align,
                       uint64_t *off)
{
    *off = 0;
    if (!e || !e->path || e->type != TALLOW__ENT_FILE) return TALLOW_EINVAL;
    if (tallow__path_check(e->path, strlen(e->path), NULL, 0)) return TALLOW_EUNSAFEPATH;
    const char *slash = strrchr(e->path, '/');
    const char *base = slash ? slash + 1 : e->path;
    char dir[TALLOW__PATH_MAX + 1];
    size_t dlen = slash ? (size_t)(slash - e->path) : 0;
    memcpy(dir, e->path, dlen);
    dir[dlen] = '\0';
    int dfd = tallow__safe_open_dir(destfd, dir, 0);
    if (dfd == -ENOENT) return 0; /* nothing there yet: created when the data comes */
    if (dfd < 0) return dfd;
    int rc = 0;
    struct stat st;
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size == e->size && mt == e->mtime_ns)
            rc = 1; /* arrived whole in an earlier run */
        else if (!S_ISREG(st.st_mode))
            rc = TALLOW_EUNSAFEPATH;
        else if (!overwrite)
            rc = TALLOW_EEXIST;
    } else if (errno != ENOENT) {
        rc = -errno;
    }
    if (rc == 0) {
        char part[TALLOW__NAME_MAX + 1];
        part_name(part, base, e);
        if (fstatat(dfd, part, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && align) {
            uint64_t keep = (uint64_t)st.st_size < e->size ? (uint64_t)st.st_size : e->size;
            *off = keep - keep % align;
        }
    }
    close(dfd);
    return rc;
}
