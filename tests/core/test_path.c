/* tests/core/test_path.c — untrusted path checks, display escaping, and the symlink-proof
 * directory walkers (a planted symlink must never let anything land outside the destination). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "fstest.h"
#include "fsutil.h"

typedef struct {
    const char *s;
    size_t len; /* 0 = strlen */
} name_case;

static void test_path_hostile_refused(void **state)
{
    static char overlong_comp[300], overlong_path[5000];
    memset(overlong_comp, 'a', 256);
    for (size_t i = 0; i < 4200; i += 2)
        overlong_path[i] = 'b', overlong_path[i + 1] = '/';
    overlong_path[4199] = 'b';
    const name_case bad[] = {
        {"../evil", 0},
        {"/tmp/evil", 0},
        {"a/../../b", 0},
        {"a/./b", 0},
        {".", 0},
        {"..", 0},
        {"a/..", 0},
        {"a//b", 0},
        {"a/", 0},
        {"", 0},
        {"x\x1b[2Jy", 0},
        {"x\ry", 0},
        {"x\ny", 0},
        {"x\x7fy", 0},
        {"a\0b", 3},
        {"CON", 0},
        {"con", 0},
        {"nul.txt", 0},
        {"dir/Aux.tar.gz", 0},
        {"COM1", 0},
        {"lpt9.log", 0},
        {"CON .txt", 0},
        {"COM\xc2\xb9", 0},
        {overlong_comp, 0},
        {overlong_path, 0},
        {"bad\xff", 0},
        {"bad\xc3", 0},             /* truncated sequence */
        {"bad\xc0\xaf", 0},         /* overlong '/' */
        {"bad\xed\xa0\x80", 0},     /* surrogate */
        {"bad\xf4\x90\x80\x80", 0}, /* > U+10FFFF */
        {"c1\xc2\x85", 0},          /* NEL */
        {"c1\xc2\x9b", 0},          /* CSI */
        {"a\\b", 0},
        {"..\\..\\evil", 0},
        {"trailingdot.", 0},
        {"trailing space ", 0},
        {"dir./x", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].s);
        char why[64] = "unset";
        int rc = tallow__path_check(bad[i].s, len, why, sizeof why);
        if (rc != TALLOW_EUNSAFEPATH) fail_msg("accepted hostile name #%zu", i);
        assert_true(why[0] != '\0' && strcmp(why, "unset") != 0);
    }
    assert_int_equal(tallow__path_check(NULL, 0, NULL, 0), TALLOW_EUNSAFEPATH);
}

static void test_path_good_accepted(void **state)
{
    static char long_ok[4096 + 1], comp255[256];
    memset(comp255, 'c', 255);
    for (size_t i = 0; i < 4096; i++)
        long_ok[i] = (i % 200 == 199) ? '/' : 'd';
    const char *good[] = {
        "file.txt",
        "a/b/c",
        "caf\xc3\xa9.txt",            /* café */
        "\xe6\x97\xa5\xe6\x9c\xac/x", /* 日本/x */
        "emoji \xf0\x9f\x98\x80.png",
        ".hidden",
        "..dots_in_front",
        "a.b.c",
        "CONFIG",
        "console.log",
        "COM10",
        "LPT",
        "spaces inside ok",
        "x:y",
        comp255,
        long_ok,
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[64];
        int rc = tallow__path_check(good[i], strlen(good[i]), why, sizeof why);
        if (rc != 0) fail_msg("refused good name #%zu: %s", i, why);
    }
}

static void test_path_printable_escapes(void **state)
{
    char out[128];
    assert_string_equal(tallow__printable("a\x1b[2Jb", 6, out, sizeof out), "a\\x1b[2Jb");
    assert_string_equal(tallow__printable("x\ry\n", 4, out, sizeof out), "x\\x0dy\\x0a");
    assert_string_equal(tallow__printable("n\0l", 3, out, sizeof out), "n\\x00l");
    assert_string_equal(tallow__printable("bad\xff", 4, out, sizeof out), "bad\\xff");
    assert_string_equal(tallow__printable("c1\xc2\x9b", 4, out, sizeof out), "c1\\xc2\\x9b");
    assert_string_equal(tallow__printable("a\\b", 3, out, sizeof out), "a\\\\b");
    assert_string_equal(tallow__printable("caf\xc3\xa9", 5, out, sizeof out), "caf\xc3\xa9");
    /* right-to-left override hides what a name really is */
    assert_string_equal(tallow__printable("x\xe2\x80\xaey", 5, out, sizeof out),
                        "x\\xe2\\x80\\xaey");
    /* never a raw ESC, whatever the input */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char big[2048];
    tallow__printable((const char *)all, sizeof all, big, sizeof big);
    for (size_t i = 0; big[i]; i++)
        assert_true((unsigned char)big[i] >= 0x20 && big[i] != 0x7f);
}

static void test_path_printable_truncates(void **state)
{
    char out[10];
    assert_string_equal(tallow__printable("abcdefghijklmn", 14, out, sizeof out), "abcdef...");
    /* an escape is never cut in half */
    assert_string_equal(tallow__printable("abcde\x1b\x1b", 7, out, sizeof out), "abcde...");
    assert_string_equal(tallow__printable("abcdefghi", 9, out, sizeof out), "abcdefghi");
    char tiny[3];
    assert_string_equal(tallow__printable("abcdef", 6, tiny, sizeof tiny), "..");
    char one[1];
    assert_string_equal(tallow__printable("abc", 3, one, sizeof one), "");
}

typedef struct {
    char *dest, *outside;
    int destfd;
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dest = fst_mkdtemp("dest");
    f->outside = fst_mkdtemp("outside");
    if (!f->dest || !f->outside) return -1;
    f->destfd = open(f->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *state = f;
    return f->destfd < 0 ? -1 : 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    close(f->destfd);
    fst_rm_rf(f->dest);
    fst_rm_rf(f->outside);
    free(f->dest);
    free(f->outside);
    free(f);
    return 0;
}

static void test_path_symlink_planted(void **state)
{
    fx *f = *state;
    assert_int_equal(symlinkat(f->outside, f->destfd, "link"), 0);
    assert_int_equal(mkdirat(f->destfd, "real", 0755), 0);
    assert_int_equal(symlinkat(f->outside, f->destfd, "real/inner"), 0);

    assert_int_equal(tallow__safe_mkdirs(f->destfd, "link/x", 0755), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__safe_mkdirs(f->destfd, "link", 0755), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__safe_open_dir(f->destfd, "link/x", 1), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__safe_open_dir(f->destfd, "link", 0), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__safe_mkdirs(f->destfd, "real/inner/deep/er", 0755),
                     TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__safe_open_dir(f->destfd, "../x", 1), TALLOW_EUNSAFEPATH);
    assert_int_equal(fst_count(f->outside), 0);
}

static void test_path_file_in_the_way(void **state)
{
    fx *f = *state;
    assert_int_equal(fst_write(f->destfd, "file", "x", 1), 0);
    assert_int_equal(tallow__safe_mkdirs(f->destfd, "file/x", 0755), TALLOW_EUNSAFEPATH);
    assert_int_equal(tallow__safe_open_dir(f->destfd, "file", 0), TALLOW_EUNSAFEPATH);
}

static void test_path_mkdirs_and_open(void **state)
{
    fx *f = *state;
    struct stat st;
    assert_int_equal(tallow__safe_open_dir(f->destfd, "a/b", 0), -ENOENT);
    assert_int_equal(tallow__safe_mkdirs(f->destfd, "a/b/\xe6\x97\xa5\xe6\x9c\xac", 0755), 0);
    assert_int_equal(fstatat(f->destfd, "a/b/\xe6\x97\xa5\xe6\x9c\xac", &st, AT_SYMLINK_NOFOLLOW),
                     0);
    assert_true(S_ISDIR(st.st_mode));
    /* existing directories are fine */
    assert_int_equal(tallow__safe_mkdirs(f->destfd, "a/b", 0755), 0);
    int fd = tallow__safe_open_dir(f->destfd, "a/b", 0);
    assert_true(fd >= 0);
    assert_int_equal(fstatat(fd, "\xe6\x97\xa5\xe6\x9c\xac", &st, 0), 0);
    close(fd);
    fd = tallow__safe_open_dir(f->destfd, "new/dir", 1);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fstatat(f->destfd, "new/dir", &st, AT_SYMLINK_NOFOLLOW), 0);
    /* "" is the destination itself */
    fd = tallow__safe_open_dir(f->destfd, "", 0);
    assert_true(fd >= 0);
    assert_int_equal(fstatat(fd, "new", &st, 0), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_hostile_refused),
        cmocka_unit_test(test_path_good_accepted),
        cmocka_unit_test(test_path_printable_escapes),
        cmocka_unit_test(test_path_printable_truncates),
        cmocka_unit_test_setup_teardown(test_path_symlink_planted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_path_file_in_the_way, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_path_mkdirs_and_open, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
