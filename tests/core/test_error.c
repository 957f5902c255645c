/* tests/core/test_error.c — the error table: names, messages, errno passthrough; the codes that
 * name an OS error are that -errno; the wire keeps tallow 0.1's numbers both ways. */
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
    assert_string_equal(tallow_strerror(TALLOW_ECODE),
                        "code mismatch, or someone tried to guess it");
}

static void test_error_errno_passthrough(void **state)
{
    assert_string_equal(tallow_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(tallow_err_name(-ENOENT), "ENOENT");
    assert_string_equal(tallow_strerror(12345), "unknown error");
}

static void test_error_os_codes_are_errno(void **state)
{
    assert_int_equal(TALLOW_EINVAL, -EINVAL);
    assert_int_equal(TALLOW_ENOMEM, -ENOMEM);
    assert_int_equal(TALLOW_EBADMSG, -EBADMSG);
    assert_int_equal(TALLOW_EPROTO, -EPROTO);
    assert_int_equal(TALLOW_ETIMEOUT, -ETIMEDOUT);
    assert_int_equal(TALLOW_EEXIST, -EEXIST);
    assert_int_equal(TALLOW_EAGAIN, -EAGAIN);
    assert_int_equal(TALLOW_ENOSPACE, -ENOSPC);
    assert_int_equal(TALLOW_ECANCELED, -ECANCELED);
    assert_int_equal(TALLOW_ENOTSUP, -ENOTSUP);
    /* tallow's own stay below -1000 */
    assert_true(TALLOW_ETRUNC < -1000 && TALLOW_ECODE < -1000 && TALLOW_ECLOSED < -1000);
    /* one name and one message for the code and the errno alike */
    assert_string_equal(tallow_err_name(-ETIMEDOUT), "TALLOW_ETIMEOUT");
    assert_string_equal(tallow_strerror(TALLOW_ENOTSUP), "not supported");
}

static void test_error_wire_keeps_legacy_numbers(void **state)
{
    /* what goes out is what tallow 0.1 peers know */
    assert_int_equal(tallow_err_to_wire(TALLOW_EEXIST), -1022);
    assert_int_equal(tallow_err_to_wire(TALLOW_ECANCELED), -1030);
    assert_int_equal(tallow_err_to_wire(TALLOW_ENOSPACE), -1029);
    assert_int_equal(tallow_err_to_wire(TALLOW_EVERSION), -1027); /* never changed */
    assert_int_equal(tallow_err_to_wire(-ENOENT), -ENOENT);
    /* what comes in, from any version */
    assert_int_equal(tallow_err_from_wire(-1022), TALLOW_EEXIST);
    assert_int_equal(tallow_err_from_wire(-1030), TALLOW_ECANCELED);
    assert_int_equal(tallow_err_from_wire(-EEXIST), TALLOW_EEXIST);
    assert_int_equal(tallow_err_from_wire(-1015), TALLOW_ECODE);
    assert_int_equal(tallow_err_from_wire(5), TALLOW_EPROTO);
    assert_int_equal(tallow_err_from_wire(-5000), TALLOW_EPROTO);
    /* and every legacy number round-trips */
#define ROUND(name, num)                                                                           \
    assert_int_equal(tallow_err_from_wire(tallow_err_to_wire(TALLOW_##name)), TALLOW_##name);      \
    assert_string_equal(tallow_err_name(num), "TALLOW_" #name);
    TALLOW_ERRNO_LEGACY(ROUND)
#undef ROUND
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_strerror_table),
        cmocka_unit_test(test_error_errno_passthrough),
        cmocka_unit_test(test_error_os_codes_are_errno),
        cmocka_unit_test(test_error_wire_keeps_legacy_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
