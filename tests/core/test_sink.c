/* tests/core/test_sink.c — the receiver's file sink (bytes, mode, mtime, resumed-prefix hash check,
 * no overwrite without consent, resume from an aligned prefix, empty files, planted symlinks),
 * directory entries, and the sender's source opener. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <sodium/crypto_generichash.h>
#include <sys/mount.h>

#include "fstest.h"
#include "fsutil.h"

#define MiB (1024u * 1024u)

typedef struct {
    char *dest, *outside;
    int destfd;
    uint8_t *data; /* 3 MiB + 123 pseudo-random bytes */
    size_t len;
    uint8_t hash[32];
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dest = fst_mkdtemp("sink");
    f->outside = fst_mkdtemp("sink-outside");
    f->destfd = f->dest ? open(f->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    f->len = 3 * MiB + 123;
    f->data = malloc(f->len);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < f->len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        f->data[i] = (uint8_t)x;
    }
    crypto_generichash(f->hash, 32, f->data, f->len, NULL, 0);
    *state = f;
    return f->destfd < 0 || !f->outside ? -1 : 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    close(f->destfd);
    fst_rm_rf(f->dest);
    fst_rm_rf(f->outside);
    free(f->dest);
    free(f->outside);
    free(f->data);
    free(f);
    return 0;
}

static tallow__entry file_entry(const char *path, uint64_t size, uint32_t mode, int64_t mtime)
{
    return (tallow__entry){(char *)path, size, mode, mtime, TALLOW__ENT_FILE, NULL};
}

/* Writes data[from..to) in 64 KiB pieces. */
static void write_range(tallow__sink *s, const uint8_t *data, size_t from, size_t to)
{
    for (size_t off = from; off < to;) {
        size_t n = to - off < 65536 ? to - off : 65536;
        assert_int_equal(tallow__sink_write(s, off, data + off, n), 0);
        off += n;
    }
}

static void assert_file(fx *f, const char *rel, const uint8_t *data, size_t len)
{
    size_t got_len;
    uint8_t *got = fst_read(f->destfd, rel, &got_len);
    assert_non_null(got);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);
}

static void test_sink_write_finish(void **state)
{
    fx *f = *state;
    tallow__entry e = file_entry("sub/\xe6\x97\xa5/file.bin", f->len, 04751, 1600000000123456789LL);
    tallow__sink s;
    uint64_t off = 99;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    assert_int_equal(off, 0);
    /* the temporary name sits beside the final one, hidden, and says what it is */
    assert_int_equal(s.part[0], '.');
    assert_non_null(strstr(s.part, "file.bin."));
    assert_non_null(strstr(s.part, ".tallow-part"));
    write_range(&s, f->data, 0, f->len);
    assert_int_equal(s.prefix, 0);
    assert_int_equal(tallow__sink_finish(&s, NULL), 0);
    assert_file(f, "sub/\xe6\x97\xa5/file.bin", f->data, f->len);
    struct stat st;
    assert_int_equal(fstatat(f->destfd, "sub/\xe6\x97\xa5/file.bin", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0751); /* setuid dropped */
    assert_int_equal(st.st_mtim.tv_sec, 1600000000);
    assert_int_equal(st.st_mtim.tv_nsec, 123456789);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/sub/\xe6\x97\xa5", f->dest);
    assert_int_equal(fst_count(dir), 1); /* no temporary left behind */
    tallow__sink_abort(&s, 0);           /* idempotent after finish */
}

static void test_sink_out_of_sequence(void **state)
{
    fx *f = *state;
    tallow__entry e = file_entry("seq", 100, 0644, 0);
    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    assert_int_equal(tallow__sink_write(&s, 10, f->data, 10), TALLOW_EPROTO);
    assert_int_equal(tallow__sink_write(&s, 0, f->data, 101), TALLOW_EPROTO);
    assert_int_equal(tallow__sink_write(&s, 0, f->data, 60), 0);
    assert_int_equal(tallow__sink_write(&s, 0, f->data, 10), TALLOW_EPROTO);
    /* finishing short is a protocol error; the partial stays for a resume */
    assert_int_equal(tallow__sink_finish(&s, NULL), TALLOW_EPROTO);
    assert_int_equal(fst_count(f->dest), 1);
    assert_int_equal(faccessat(f->destfd, "seq", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    assert_int_equal(tallow__sink_write(&s, 60, f->data, 1), TALLOW_EINVAL); /* closed */
}

/* A fresh file takes no hash (a protocol error, the partial is kept); a resumed one needs the
 * hash of its kept prefix, and a wrong one removes the partial. */
static void test_sink_wrong_hash(void **state)
{
    fx *f = *state;
    tallow__entry e = file_entry("bad.bin", 1000, 0644, 0);
    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    write_range(&s, f->data, 0, 1000);
    assert_int_equal(tallow__sink_finish(&s, f->hash), TALLOW_EPROTO);
    assert_int_equal(fst_count(f->dest), 1); /* the partial only */
    assert_int_equal(faccessat(f->destfd, "bad.bin", F_OK, AT_SYMLINK_NOFOLLOW), -1);

    tallow__entry e2 = file_entry("bad2.bin", 2 * MiB + 7, 0644, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e2, 0, MiB, &off), 0);
    write_range(&s, f->data, 0, MiB + 10);
    tallow__sink_abort(&s, 1);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e2, 0, MiB, &off), 0);
    assert_int_equal(off, MiB);
    write_range(&s, f->data, MiB, 2 * MiB + 7);
    assert_int_equal(tallow__sink_finish(&s, NULL), TALLOW_EPROTO); /* hash missing: kept */
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e2, 0, MiB, &off), 0);
    assert_int_equal(off, 2 * MiB); /* all of it was written */
    write_range(&s, f->data, 2 * MiB, 2 * MiB + 7);
    uint8_t h[32];
    crypto_generichash(h, 32, f->data + 1, 2 * MiB, NULL, 0); /* not the kept bytes */
    assert_int_equal(tallow__sink_finish(&s, h), TALLOW_EHASH);
    assert_int_equal(fst_count(f->dest), 1); /* bad.bin's partial; neither final nor bad2's */
    assert_int_equal(faccessat(f->destfd, "bad2.bin", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

static void test_sink_existing_final(void **state)
{
    fx *f = *state;
    uint8_t h[32];
    crypto_generichash(h, 32, f->data, 10, NULL, 0);
    assert_int_equal(fst_write(f->destfd, "exists", "old", 3), 0);
    tallow__entry e = file_entry("exists", 10, 0600, 0);
    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), TALLOW_EEXIST);
    tallow__sink_abort(&s, 0); /* no-op after a failed open */
    assert_file(f, "exists", (const uint8_t *)"old", 3);
    assert_int_equal(fst_count(f->dest), 1);
    /* with consent it is replaced */
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 1, MiB, &off), 0);
    write_range(&s, f->data, 0, 10);
    assert_int_equal(tallow__sink_finish(&s, NULL), 0);
    assert_file(f, "exists", f->data, 10);
    /* a name that appears while we write is not clobbered either */
    tallow__entry e2 = file_entry("race", 10, 0600, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e2, 0, MiB, &off), 0);
    write_range(&s, f->data, 0, 10);
    assert_int_equal(fst_write(f->destfd, "race", "theirs", 6), 0);
    assert_int_equal(tallow__sink_finish(&s, NULL), TALLOW_EEXIST);
    assert_file(f, "race", (const uint8_t *)"theirs", 6);
    /* a directory or a symlink under the final name: refused even with overwrite */
    assert_int_equal(mkdirat(f->destfd, "adir", 0755), 0);
    assert_int_equal(symlinkat(f->outside, f->destfd, "alink"), 0);
    tallow__entry ed = file_entry("adir", 10, 0600, 0), el = file_entry("alink", 10, 0600, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &ed, 1, MiB, &off), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &el, 1, MiB, &off), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &el, 0, MiB, &off), TALLOW_EEXIST);
    assert_int_equal(fst_count(f->outside), 0);
}

static void test_sink_resume(void **state)
{
    fx *f = *state;
    tallow__entry e = file_entry("big/resume.bin", f->len, 0640, 1234567890LL);
    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    write_range(&s, f->data, 0, 2 * MiB + MiB / 2);
    tallow__sink_abort(&s, 1); /* connection lost */
    char part[TALLOW__NAME_MAX + 1];
    snprintf(part, sizeof part, "%s", s.part);

    /* the same file resumes at the aligned offset */
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    assert_int_equal(off, 2 * MiB);
    assert_string_equal(s.part, part);
    assert_int_equal(tallow__sink_write(&s, 2 * MiB + 1, f->data, 1), TALLOW_EPROTO);
    write_range(&s, f->data, 2 * MiB, f->len);
    uint8_t ph[32];
    crypto_generichash(ph, 32, f->data, 2 * MiB, NULL, 0); /* the sender's hash of the prefix */
    assert_int_equal(s.prefix, 2 * MiB);
    assert_int_equal(tallow__sink_finish(&s, ph), 0);
    assert_file(f, "big/resume.bin", f->data, f->len);

    /* a different file of the same name (other mtime) never resumes from it */
    tallow__entry e2 = file_entry("big/other.bin", f->len, 0640, 1);
    tallow__entry e3 = file_entry("big/other.bin", f->len, 0640, 2);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e2, 0, MiB, &off), 0);
    write_range(&s, f->data, 0, 2 * MiB);
    tallow__sink_abort(&s, 1);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e3, 0, MiB, &off), 0);
    assert_int_equal(off, 0);
    assert_string_not_equal(s.part, part);
    tallow__sink_abort(&s, 0);

    /* a corrupted prefix on disk is caught by the prefix check */
    char ppath[300];
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e2, 0, MiB, &off), 0);
    assert_int_equal(off, 2 * MiB);
    snprintf(ppath, sizeof ppath, "big/%s", s.part);
    tallow__sink_abort(&s, 1);
    int fd = openat(f->destfd, ppath, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 12345), 1);
    close(fd);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e2, 0, MiB, &off), 0);
    assert_int_equal(off, 2 * MiB);
    write_range(&s, f->data, 2 * MiB, f->len);
    assert_int_equal(tallow__sink_finish(&s, ph), TALLOW_EHASH);
    assert_int_equal(faccessat(f->destfd, "big/other.bin", F_OK, 0), -1);
    assert_int_equal(faccessat(f->destfd, ppath, F_OK, 0), -1);

    /* align 0: never resume, start over */
    tallow__entry e4 = file_entry("big/noalign", 100, 0640, 1);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e4, 0, 0, &off), 0);
    write_range(&s, f->data, 0, 50);
    tallow__sink_abort(&s, 1);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e4, 0, 0, &off), 0);
    assert_int_equal(off, 0);
    tallow__sink_abort(&s, 0);
}

static void test_sink_empty_file(void **state)
{
    fx *f = *state;
    uint8_t h[32];
    crypto_generichash(h, 32, NULL, 0, NULL, 0);
    tallow__entry e = file_entry("empty", 0, 0604, -1500000000LL); /* before the epoch */
    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(tallow__sink_write(&s, 0, f->data, 1), TALLOW_EPROTO);
    assert_int_equal(tallow__sink_finish(&s, NULL), 0);
    struct stat st;
    assert_int_equal(fstatat(f->destfd, "empty", &st, 0), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 07777, 0604);
    assert_int_equal(st.st_mtim.tv_sec, -2);
    assert_int_equal(st.st_mtim.tv_nsec, 500000000);
}

static void test_sink_planted_symlinks(void **state)
{
    fx *f = *state;
    tallow__sink s;
    uint64_t off;
    assert_int_equal(symlinkat(f->outside, f->destfd, "link"), 0);
    tallow__entry e = file_entry("link/x", 10, 0644, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 1, MiB, &off), TALLOW_EUNSAFEPATH);
    tallow__entry huge = file_entry("huge", (uint64_t)INT64_MAX + 1, 0644, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &huge, 1, MiB, &off), TALLOW_ETOOBIG);
    tallow__entry bad = file_entry("../escape", 10, 0644, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &bad, 1, MiB, &off), TALLOW_EUNSAFEPATH);
    /* a symlink planted under the temporary name is not written through */
    tallow__entry t = file_entry("target", 10, 0644, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &t, 0, MiB, &off), 0);
    char part[TALLOW__NAME_MAX + 1], victim[600];
    snprintf(part, sizeof part, "%s", s.part);
    tallow__sink_abort(&s, 0);
    snprintf(victim, sizeof victim, "%s/victim", f->outside);
    assert_int_equal(symlinkat(victim, f->destfd, part), 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &t, 0, MiB, &off), TALLOW_EUNSAFEPATH);
    /* nor a hard link */
    assert_int_equal(unlinkat(f->destfd, part, 0), 0);
    assert_int_equal(fst_write(f->destfd, "other", "zz", 2), 0);
    assert_int_equal(linkat(f->destfd, "other", f->destfd, part, 0), 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &t, 0, MiB, &off), TALLOW_EUNSAFEPATH);
    assert_file(f, "other", (const uint8_t *)"zz", 2);
    assert_int_equal(fst_count(f->outside), 0);
}

static void test_sink_long_name(void **state)
{
    fx *f = *state;
    char name[256];
    memset(name, 'n', 255);
    name[255] = '\0';
    tallow__entry e = file_entry(name, 5, 0644, 0);
    tallow__sink s;
    uint64_t off;
    uint8_t h[32];
    crypto_generichash(h, 32, f->data, 5, NULL, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    assert_true(strlen(s.part) <= 255);
    write_range(&s, f->data, 0, 5);
    assert_int_equal(tallow__sink_finish(&s, NULL), 0);
    assert_file(f, name, f->data, 5);
}

static void test_sink_dirs(void **state)
{
    fx *f = *state;
    tallow__entry d = {"ro", 0, 0555, 1500000000000000000LL, TALLOW__ENT_DIR, NULL};
    tallow__entry d2 = {"ro/sub", 0, 0750, 1400000000000000000LL, TALLOW__ENT_DIR, NULL};
    assert_int_equal(tallow__dir_apply(f->destfd, &d), 0);
    assert_int_equal(tallow__dir_apply(f->destfd, &d2), 0);
    assert_int_equal(tallow__dir_apply(f->destfd, &d), 0); /* existing is fine */
    /* contents can still be written into a directory that ends up read-only */
    tallow__entry e = file_entry("ro/sub/f", 3, 0644, 0);
    tallow__sink s;
    uint64_t off;
    uint8_t h[32];
    crypto_generichash(h, 32, f->data, 3, NULL, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    write_range(&s, f->data, 0, 3);
    assert_int_equal(tallow__sink_finish(&s, NULL), 0);
    assert_int_equal(tallow__dir_finish(f->destfd, &d2), 0);
    assert_int_equal(tallow__dir_finish(f->destfd, &d), 0);
    struct stat st;
    assert_int_equal(fstatat(f->destfd, "ro", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0555);
    assert_int_equal(st.st_mtim.tv_sec, 1500000000);
    assert_int_equal(fstatat(f->destfd, "ro/sub", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(st.st_mtim.tv_sec, 1400000000);
    /* through a symlink: refused, nothing outside */
    assert_int_equal(symlinkat(f->outside, f->destfd, "l"), 0);
    tallow__entry dl = {"l/x", 0, 0755, 0, TALLOW__ENT_DIR, NULL};
    assert_int_equal(tallow__dir_apply(f->destfd, &dl), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__dir_finish(f->destfd, &dl), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__dir_apply(f->destfd, &e), TALLOW_EINVAL);
    assert_int_equal(fst_count(f->outside), 0);
}

static void test_sink_source_open(void **state)
{
    fx *f = *state;
    char src[600], lnk[600];
    snprintf(src, sizeof src, "%s/src", f->outside);
    snprintf(lnk, sizeof lnk, "%s/lnk", f->outside);
    int dfd = open(f->outside, O_RDONLY | O_DIRECTORY);
    assert_int_equal(fst_write(dfd, "src", "abcdef", 6), 0);
    assert_int_equal(symlinkat("src", dfd, "lnk"), 0);
    tallow__entry e = {"src", 6, 0644, 0, TALLOW__ENT_FILE, src};
    int fd;
    assert_int_equal(tallow__source_open(&e, &fd), 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof buf), 6);
    assert_memory_equal(buf, "abcdef", 6);
    close(fd);
    e.size = 5; /* the file changed since the manifest */
    assert_int_equal(tallow__source_open(&e, &fd), -ESTALE);
    assert_int_equal(fd, -1);
    e.size = 6;
    e.src = lnk; /* replaced by a symlink: not followed */
    assert_int_equal(tallow__source_open(&e, &fd), -ELOOP);
    e.src = NULL;
    assert_int_equal(tallow__source_open(&e, &fd), TALLOW_EINVAL);
    close(dfd);
}

static void test_sink_hash_wrappers(void **state)
{
    fx *f = *state;
    tallow__hash h;
    uint8_t out[32];
    tallow__hash_init(&h);
    tallow__hash_update(&h, f->data, 1000);
    tallow__hash_update(&h, f->data + 1000, f->len - 1000);
    tallow__hash_final(&h, out);
    assert_memory_equal(out, f->hash, 32);
}

/* The temporary name is pinned: a later version must find an older version's partial file. */
static void test_sink_part_name(void **state)
{
    fx *f = *state;
    tallow__entry e = file_entry("d/name.bin", 4242, 0644, 1700000000000000001LL);
    uint8_t msg[15 + 8 + 10 + 16], id[16];
    size_t n = 0;
    memcpy(msg, "tallow-part-v1", 15), n = 15;
    uint64_t v[3] = {10, 4242, 1700000000000000001ULL};
    for (int i = 0; i < 8; i++)
        msg[n++] = (uint8_t)(v[0] >> (8 * i));
    memcpy(msg + n, "d/name.bin", 10), n += 10;
    for (int k = 1; k < 3; k++)
        for (int i = 0; i < 8; i++)
            msg[n++] = (uint8_t)(v[k] >> (8 * i));
    crypto_generichash(id, sizeof id, msg, n, NULL, 0);
    char want[64];
    n = (size_t)snprintf(want, sizeof want, ".name.bin.");
    for (int i = 0; i < 8; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, "%02x", id[i]);
    snprintf(want + n, sizeof want - n, ".tallow-part");

    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    assert_string_equal(s.part, want);
    tallow__sink_abort(&s, 0);
    e.size = 4243; /* any field changes the name */
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    assert_string_not_equal(s.part, want);
    tallow__sink_abort(&s, 0);
    assert_int_equal(fst_count(f->dest), 1); /* only "d" */
}

/* A full disk: needs a private mount namespace and a tiny tmpfs; skipped where not permitted. */
static void test_sink_no_space(void **state)
{
    fx *f = *state;
    char mnt[600];
    snprintf(mnt, sizeof mnt, "%s/mnt", f->dest);
    assert_int_equal(mkdir(mnt, 0755), 0);
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=256k") < 0) {
        skip();
    }
    int mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(fst_write(mfd, "filler", f->data, 200 * 1024), 0);
    tallow__entry e = file_entry("full.bin", 128 * 1024, 0644, 0);
    uint8_t h[32];
    crypto_generichash(h, 32, f->data, 128 * 1024, NULL, 0);
    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, mfd, &e, 0, 4096, &off), TALLOW_ENOSPACE);
    assert_int_equal(fst_count(mnt), 2); /* the (empty) partial is kept for later */
    assert_int_equal(unlinkat(mfd, "filler", 0), 0);
    assert_int_equal(tallow__sink_open(&s, mfd, &e, 0, 4096, &off), 0);
    write_range(&s, f->data, 0, 128 * 1024);
    assert_int_equal(tallow__sink_finish(&s, NULL), 0);
    assert_int_equal(fst_count(mnt), 1);
    close(mfd);
    umount2(mnt, MNT_DETACH);
}

/* Modes from the sender pass through the receiver's umask (022 here): a sender cannot make a
 * received file or folder group- or world-writable. A part planted by someone else, or one that
 * others may write, is not resumed into. */
static void test_sink_umask_and_foreign_parts(void **state)
{
    fx *f = *state;
    tallow__entry e = file_entry("open.txt", 3, 0777, 0);
    tallow__sink s;
    uint64_t off;
    assert_int_equal(tallow__sink_open(&s, f->destfd, &e, 0, MiB, &off), 0);
    write_range(&s, f->data, 0, 3);
    assert_int_equal(tallow__sink_finish(&s, NULL), 0);
    struct stat st;
    assert_int_equal(fstatat(f->destfd, "open.txt", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    tallow__entry d = {"opendir", 0, 0777, 0, TALLOW__ENT_DIR, NULL};
    assert_int_equal(tallow__dir_apply(f->destfd, &d), 0);
    assert_int_equal(tallow__dir_finish(f->destfd, &d), 0);
    assert_int_equal(fstatat(f->destfd, "opendir", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    /* a world-writable part under our temporary name */
    tallow__entry t = file_entry("t.bin", 10, 0644, 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &t, 0, MiB, &off), 0);
    char part[TALLOW__NAME_MAX + 1];
    snprintf(part, sizeof part, "%s", s.part);
    tallow__sink_abort(&s, 1); /* kept, as after an interruption */
    assert_int_equal(fchmodat(f->destfd, part, 0666, 0), 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &t, 0, MiB, &off), TALLOW_EUNSAFEPATH);
    assert_int_equal(fchmodat(f->destfd, part, 0600, 0), 0);
    assert_int_equal(tallow__sink_open(&s, f->destfd, &t, 0, MiB, &off), 0); /* ours again */
    tallow__sink_abort(&s, 1);
    if (geteuid() == 0) { /* owned by another user */
        assert_int_equal(fchownat(f->destfd, part, 4242, 4242, 0), 0);
        assert_int_equal(tallow__sink_open(&s, f->destfd, &t, 0, MiB, &off), TALLOW_EUNSAFEPATH);
    }
}

int main(void)
{
    umask(022); /* the tests expect modes as a usual umask leaves them */
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_sink_write_finish),
        T(test_sink_out_of_sequence),
        T(test_sink_wrong_hash),
        T(test_sink_existing_final),
        T(test_sink_resume),
        T(test_sink_empty_file),
        T(test_sink_planted_symlinks),
        T(test_sink_long_name),
        T(test_sink_dirs),
        T(test_sink_source_open),
        T(test_sink_hash_wrappers),
        T(test_sink_part_name),
        T(test_sink_no_space),
        T(test_sink_umask_and_foreign_parts),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
