/* tests/core/test_manifest.c — building a manifest from a real tree (symlinks, special files and
 * unsafe names skipped), the wire round trip, and the strict decoder against truncation,
 * corruption, duplicates, case duplicates, entries under files and unsafe names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <tallow/msg.h>

#include "fstest.h"
#include "fsutil.h"

#define NIHON "\xe6\x97\xa5\xe6\x9c\xac"
#define CAFE "caf\xc3\xa9.txt"

typedef struct {
    char *root;
    int rootfd;
    int warnings;
    char last_warn[512];
} fx;

static void on_warn(void *ud, const char *path, const char *why)
{
    fx *f = ud;
    f->warnings++;
    snprintf(f->last_warn, sizeof f->last_warn, "%s: %s", path, why);
}

static void set_mtime(int dirfd, const char *rel, time_t sec, long nsec)
{
    struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
    assert_int_equal(utimensat(dirfd, rel, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->root = fst_mkdtemp("manifest");
    f->rootfd = f->root ? open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    *state = f;
    return f->rootfd < 0 ? -1 : 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    close(f->rootfd);
    fst_rm_rf(f->root);
    free(f->root);
    free(f);
    return 0;
}

/* root/top/{a.txt, empty/, nested/deep/f.bin, 日本/café.txt, link, fifo, bad\name} + root/single */
static void make_tree(fx *f)
{
    static unsigned char big[100];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    int d = f->rootfd;
    assert_int_equal(mkdirat(d, "top", 0755), 0);
    assert_int_equal(fst_write(d, "top/a.txt", "hello", 5), 0);
    assert_int_equal(fchmodat(d, "top/a.txt", 0640, 0), 0);
    assert_int_equal(mkdirat(d, "top/empty", 0750), 0);
    assert_int_equal(mkdirat(d, "top/nested", 0755), 0);
    assert_int_equal(mkdirat(d, "top/nested/deep", 0755), 0);
    assert_int_equal(fst_write(d, "top/nested/deep/f.bin", big, sizeof big), 0);
    assert_int_equal(fchmodat(d, "top/nested/deep/f.bin", 04755, 0), 0); /* setuid dropped */
    assert_int_equal(mkdirat(d, "top/" NIHON, 0700), 0);
    assert_int_equal(fst_write(d, "top/" NIHON "/" CAFE, "", 0), 0);
    assert_int_equal(symlinkat("/etc/passwd", d, "top/link"), 0);
    assert_int_equal(mkfifoat(d, "top/fifo", 0600), 0);
    assert_int_equal(fst_write(d, "top/bad\\name", "x", 1), 0);
    assert_int_equal(fst_write(d, "single", "12345678", 8), 0);
    set_mtime(d, "top/a.txt", 1600000000, 123456789);
    set_mtime(d, "top/nested/deep/f.bin", 1000, 1);
    set_mtime(d, "top/empty", 1700000000, 5);
    set_mtime(d, "single", 42, 0);
}

static tallow__manifest build_tree(fx *f)
{
    char top[600], single[600];
    snprintf(top, sizeof top, "%s/top/", f->root); /* trailing slash: still "top" */
    snprintf(single, sizeof single, "%s/single", f->root);
    const char *args[] = {top, single};
    tallow__manifest m;
    assert_int_equal(tallow__manifest_build_ex(args, 2, on_warn, f, &m), 0);
    return m;
}

static void test_manifest_build_tree(void **state)
{
    fx *f = *state;
    make_tree(f);
    tallow__manifest m = build_tree(f);
    const char *want[] = {
        "top",        "top/a.txt",           "top/empty",
        "top/nested", "top/nested/deep",     "top/nested/deep/f.bin",
        "top/" NIHON, "top/" NIHON "/" CAFE, "single",
    };
    assert_int_equal(m.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < m.n; i++)
        assert_string_equal(m.e[i].path, want[i]);
    assert_int_equal(f->warnings, 3); /* link, fifo, bad\name */
    assert_int_equal(m.nfiles, 4);
    assert_int_equal(m.total_size, 5 + 100 + 0 + 8);
    assert_int_equal(m.e[0].type, TALLOW__ENT_DIR);
    assert_int_equal(m.e[1].type, TALLOW__ENT_FILE);
    assert_int_equal(m.e[1].size, 5);
    assert_int_equal(m.e[1].mode, 0640);
    assert_int_equal(m.e[1].mtime_ns, 1600000000123456789LL);
    assert_int_equal(m.e[2].type, TALLOW__ENT_DIR);
    assert_int_equal(m.e[2].mode, 0750);
    assert_int_equal(m.e[2].mtime_ns, 1700000000000000005LL);
    assert_int_equal(m.e[5].mode, 0755);
    assert_int_equal(m.e[5].mtime_ns, 1000000000001LL);
    assert_int_equal(m.e[6].mode, 0700);
    assert_int_equal(m.e[8].mtime_ns, 42000000000LL);
    assert_non_null(strstr(m.e[5].src, "/top/nested/deep/f.bin"));
    tallow__manifest_free(&m);
    assert_null(m.e);
    assert_int_equal(m.n, 0);
}

static void test_manifest_round_trip(void **state)
{
    fx *f = *state;
    make_tree(f);
    tallow__manifest m = build_tree(f), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(tallow__manifest_encode(&m, &buf, &len), 0);
    assert_int_equal(tallow__manifest_decode(buf, len, 0, &d), 0);
    assert_int_equal(d.n, m.n);
    assert_int_equal(d.total_size, m.total_size);
    assert_int_equal(d.nfiles, m.nfiles);
    for (size_t i = 0; i < m.n; i++) {
        assert_string_equal(d.e[i].path, m.e[i].path);
        assert_int_equal(d.e[i].size, m.e[i].size);
        assert_int_equal(d.e[i].mode, m.e[i].mode);
        assert_int_equal(d.e[i].mtime_ns, m.e[i].mtime_ns);
        assert_int_equal(d.e[i].type, m.e[i].type);
        assert_null(d.e[i].src);
    }
    tallow__manifest_free(&d);

    /* every truncation fails, and so does a trailing byte */
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_not_equal(tallow__manifest_decode(buf, cut, 0, &d), 0);
        assert_null(d.e);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_int_equal(tallow__manifest_decode(longer, len + 1, 0, &d), TALLOW_EBADMSG);
    /* flipped bytes: never a crash, and anything accepted is still safe */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(longer, buf, len);
            longer[i] ^= (uint8_t)(1u << bit);
            if (tallow__manifest_decode(longer, len, 0, &d) == 0) {
                for (size_t k = 0; k < d.n; k++)
                    assert_int_equal(tallow__path_check(d.e[k].path, strlen(d.e[k].path), 0, 0), 0);
                tallow__manifest_free(&d);
            }
        }
    }
    /* the entry bound */
    assert_int_equal(tallow__manifest_decode(buf, len, m.n - 1, &d), TALLOW_ETOOBIG);
    assert_int_equal(tallow__manifest_decode(buf, len, m.n, &d), 0);
    tallow__manifest_free(&d);
    free(longer);
    free(buf);
    tallow__manifest_free(&m);
}

/* Encodes entries given as (type, path, size, mode) and decodes them. */
typedef struct {
    uint8_t type;
    const char *path;
    uint64_t size;
    uint32_t mode;
} spec;

static int decode_specs(const spec *s, size_t n, tallow__manifest *out)
{
    tallow__entry e[8];
    tallow__manifest m = {e, n, 0, 0};
    for (size_t i = 0; i < n; i++)
        e[i] = (tallow__entry){(char *)s[i].path, s[i].size, s[i].mode, 7, s[i].type, NULL};
    uint8_t *buf;
    size_t len;
    assert_int_equal(tallow__manifest_encode(&m, &buf, &len), 0);
    int rc = tallow__manifest_decode(buf, len, 0, out);
    free(buf);
    return rc;
}

static void test_manifest_decode_rejects_collisions(void **state)
{
    tallow__manifest d;
    const spec ok[] = {{1, "a", 0, 0755}, {0, "a/b", 3, 0644}, {0, "A.txt", 1, 0600}};
    assert_int_equal(decode_specs(ok, 3, &d), 0);
    assert_int_equal(d.total_size, 4);
    tallow__manifest_free(&d);

    const spec dup[] = {{0, "x/y", 1, 0644}, {0, "x/y", 1, 0644}};
    assert_int_equal(decode_specs(dup, 2, &d), TALLOW_EUNSAFEPATH);
    const spec dirdup[] = {{1, "x", 0, 0755}, {0, "x", 1, 0644}};
    assert_int_equal(decode_specs(dirdup, 2, &d), TALLOW_EUNSAFEPATH);
    const spec casedup[] = {{0, "dir/ReadMe", 1, 0644}, {0, "dir/README", 1, 0644}};
    assert_int_equal(decode_specs(casedup, 2, &d), TALLOW_EUNSAFEPATH);
    const spec casedir[] = {{1, "Dir", 0, 0755}, {0, "dir", 1, 0644}};
    assert_int_equal(decode_specs(casedir, 2, &d), TALLOW_EUNSAFEPATH);
    const spec under_file[] = {{0, "f", 1, 0644}, {0, "f/g", 1, 0644}};
    assert_int_equal(decode_specs(under_file, 2, &d), TALLOW_EUNSAFEPATH);
    const spec under_file_deep[] = {{0, "a/b/c/x", 1, 0644}, {0, "a/b", 1, 0644}};
    assert_int_equal(decode_specs(under_file_deep, 2, &d), TALLOW_EUNSAFEPATH);
    const spec under_file_case[] = {{0, "F", 1, 0644}, {1, "f/g", 0, 0755}};
    assert_int_equal(decode_specs(under_file_case, 2, &d), TALLOW_EUNSAFEPATH);
    /* "é" precomposed (NFC) and decomposed (NFD) name the same file on macOS and Windows */
    const spec nfc_nfd[] = {{0, "caf\xc3\xa9.txt", 1, 0644}, {0, "cafe\xcc\x81.txt", 1, 0644}};
    assert_int_equal(decode_specs(nfc_nfd, 2, &d), TALLOW_EUNSAFEPATH);
    const spec nfd_dir[] = {{0, "E\xcc\x81t\xc3\xa9", 1, 0644},
                            {0, "\xc3\x89t\xc3\xa9/x", 1, 0644}};
    assert_int_equal(decode_specs(nfd_dir, 2, &d), TALLOW_EUNSAFEPATH);
    const spec distinct[] = {{0, "cafe.txt", 1, 0644},
                             {0, "caf\xc3\xa9.txt", 1, 0644},
                             {0, "caf\xc3\xa8.txt", 1, 0644},
                             {0, "caf\xc3\xa6.txt", 1, 0644}};
    assert_int_equal(decode_specs(distinct, 4, &d), 0);
    tallow__manifest_free(&d);
    const char *unsafe[] = {"../evil", "/etc/passwd", "a//b", "a/./b", "x\x1by", "CON", "a\\b"};
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
        const spec one[] = {{0, "fine", 1, 0644}, {0, unsafe[i], 1, 0644}};
        assert_int_equal(decode_specs(one, 2, &d), TALLOW_EUNSAFEPATH);
        assert_null(d.e);
    }
}

static void test_manifest_decode_rejects_malformed(void **state)
{
    tallow__manifest d;
    const spec dirsize[] = {{1, "d", 5, 0755}};
    assert_int_equal(decode_specs(dirsize, 1, &d), TALLOW_EBADMSG);
    const spec suid[] = {{0, "f", 1, 04755}};
    assert_int_equal(decode_specs(suid, 1, &d), 0); /* encode already drops the high bits */
    assert_int_equal(d.e[0].mode, 0755);
    tallow__manifest_free(&d);

    uint8_t b[64];
    size_t n;
    /* version 2 */
    n = tallow_varint_put(b, 2);
    n += tallow_varint_put(b + n, 0);
    assert_int_equal(tallow__manifest_decode(b, n, 0, &d), TALLOW_EBADMSG);
    /* empty manifest is fine */
    n = tallow_varint_put(b, 1);
    n += tallow_varint_put(b + n, 0);
    assert_int_equal(tallow__manifest_decode(b, n, 0, &d), 0);
    assert_int_equal(d.n, 0);
    /* a huge count in a tiny buffer fails before allocating anything */
    n = tallow_varint_put(b, 1);
    n += tallow_varint_put(b + n, (uint64_t)1 << 40);
    assert_int_equal(tallow__manifest_decode(b, n, (size_t)1 << 50, &d), TALLOW_EBADMSG);
    assert_int_equal(tallow__manifest_decode(b, n, 0, &d), TALLOW_ETOOBIG);
    /* type 2, mode beyond 07777, path length beyond the buffer, total size overflow */
    const uint64_t bad_type[] = {1, 1, 2, 1, 'x', 0, 0644, 0};
    const uint64_t bad_mode[] = {1, 1, 0, 1, 'x', 0, 010000, 0};
    const uint64_t bad_plen[] = {1, 1, 0, 200, 'x', 0, 0644, 0};
    const uint64_t huge[] = {1, 1, 0, 1, 'x', (uint64_t)INT64_MAX + 1, 0644, 0};
    const uint64_t overflow[] = {1,   3,         0,    1, 'x', INT64_MAX, 0644, 0,         0,    1,
                                 'y', INT64_MAX, 0644, 0, 0,   1,         'z',  INT64_MAX, 0644, 0};
    const struct {
        const uint64_t *v;
        size_t n;
    } raw[] = {{bad_type, 8}, {bad_mode, 8}, {bad_plen, 8}, {huge, 8}, {overflow, 20}};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        n = 0;
        for (size_t k = 0; k < raw[i].n; k++)
            n += tallow_varint_put(b + n, raw[i].v[k]);
        assert_int_equal(tallow__manifest_decode(b, n, 0, &d), TALLOW_EBADMSG);
        assert_null(d.e);
    }
}

static void test_manifest_build_errors(void **state)
{
    fx *f = *state;
    char a[600], b[600], l[600], none[600];
    assert_int_equal(mkdirat(f->rootfd, "one", 0755), 0);
    assert_int_equal(mkdirat(f->rootfd, "two", 0755), 0);
    assert_int_equal(fst_write(f->rootfd, "one/same", "1", 1), 0);
    assert_int_equal(fst_write(f->rootfd, "two/SAME", "2", 1), 0);
    assert_int_equal(symlinkat("/etc", f->rootfd, "lnk"), 0);
    snprintf(a, sizeof a, "%s/one/same", f->root);
    snprintf(b, sizeof b, "%s/two/SAME", f->root);
    snprintf(l, sizeof l, "%s/lnk", f->root);
    snprintf(none, sizeof none, "%s/missing", f->root);
    tallow__manifest m;
    const char *dup[] = {a, b};
    assert_int_equal(tallow__manifest_build_ex(dup, 2, on_warn, f, &m), TALLOW_EUNSAFEPATH);
    assert_non_null(strstr(f->last_warn, "collides"));
    assert_null(m.e);
    const char *lnk[] = {l};
    assert_int_equal(tallow__manifest_build(lnk, 1, &m), TALLOW_EINVAL);
    const char *missing[] = {none};
    assert_int_equal(tallow__manifest_build(missing, 1, &m), -ENOENT);
    const char *root[] = {"/"};
    assert_int_equal(tallow__manifest_build(root, 1, &m), TALLOW_EINVAL);
    const char *one[] = {a};
    assert_int_equal(tallow__manifest_build(one, 1, &m), 0);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.e[0].path, "same");
    tallow__manifest_free(&m);
}

/* more than TALLOW__MANIFEST_MAX_PATHS (128 MiB) of path bytes is refused while parsing, before the
 * collision pass */
static void test_manifest_decode_path_budget(void **state)
{
    char path[4096];
    for (size_t i = 0; i < sizeof path; i++)
        path[i] = (i % 200 == 199) ? '/' : 'p';
    const size_t n = TALLOW__MANIFEST_MAX_PATHS / sizeof path + 1;
    uint8_t *buf = malloc(n * (sizeof path + 16) + 32);
    assert_non_null(buf);
    size_t len = tallow_varint_put(buf, 1);
    len += tallow_varint_put(buf + len, n);
    for (size_t i = 0; i < n; i++) {
        len += tallow_varint_put(buf + len, TALLOW__ENT_FILE);
        len += tallow_varint_put(buf + len, sizeof path);
        memcpy(buf + len, path, sizeof path);
        len += sizeof path;
        len += tallow_varint_put(buf + len, 1);
        len += tallow_varint_put(buf + len, 0644);
        len += tallow_varint_put(buf + len, 0);
    }
    tallow__manifest d;
    assert_int_equal(tallow__path_check(path, sizeof path, NULL, 0), 0);
    assert_int_equal(tallow__manifest_decode(buf, len, 0, &d), TALLOW_ETOOBIG);
    assert_null(d.e);
    free(buf);
}

static int fchdirat_helper(int dirfd, const char *rel)
{
    int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 ? fchdir(fd) : -1;
    if (fd >= 0) close(fd);
    return rc;
}

/* "." and "dir/" are sent under the directory's own name */
static void test_manifest_build_dot(void **state)
{
    fx *f = *state;
    assert_int_equal(mkdirat(f->rootfd, "here", 0755), 0);
    assert_int_equal(fst_write(f->rootfd, "here/x", "1", 1), 0);
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(cwd >= 0);
    assert_int_equal(fchdirat_helper(f->rootfd, "here"), 0);
    const char *dot[] = {"."};
    tallow__manifest m;
    int rc = tallow__manifest_build(dot, 1, &m);
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
    assert_int_equal(rc, 0);
    assert_int_equal(m.n, 2);
    assert_string_equal(m.e[0].path, "here");
    assert_string_equal(m.e[1].path, "here/x");
    assert_string_equal(m.e[1].src, "./x");
    tallow__manifest_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_manifest_build_tree, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_manifest_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test(test_manifest_decode_rejects_collisions),
        cmocka_unit_test(test_manifest_decode_rejects_malformed),
        cmocka_unit_test(test_manifest_decode_path_budget),
        cmocka_unit_test_setup_teardown(test_manifest_build_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_manifest_build_dot, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
