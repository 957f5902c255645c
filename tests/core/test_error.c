/* tests/core/test_error.c — the error table: names, messages, errno passthrough. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <tallow/error.h>

static void test_error_strerror_table(void **state)
{
    assert_string_equal(tallow_strerror(TALLOW_ETRUNC), "message truncated");
    assert_string_equal(tallow_err_name(TALLOW_EPLUGABI), "TALLOW_EPLUGABI");
    assert_string_equal(tallow_strerror(TALLOW_ECODE), "code mismatch, or someone tried to guess it");
}

static void test_error_errno_passthrough(void **state)
{
    assert_string_equal(tallow_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(tallow_err_name(-ENOENT), "ENOENT");
    assert_string_equal(tallow_strerror(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_strerror_table),
        cmocka_unit_test(test_error_errno_passthrough),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
