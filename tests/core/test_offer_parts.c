/* tests/core/test_offer_parts.c — joining a FileOffer that came in parts
 * (core/transfer/offer_parts.c): one-piece offers pass through untouched, parts join in order
 * whatever their size, and a peer's lies (a count above the bound, more bytes than the bound, a
 * part of another offer or under another key or header) are refused without allocating what was
 * only claimed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fsutil.h"
#include "offer_parts.h"

static tallow_msg_FileOffer part(uint64_t tid, const void *data, size_t len, int more)
{
    tallow_msg_FileOffer m = {.transfer_id = tid, .kind = 0, .count = 3, .total_size = 10};
    m.manifest = (tallow_bytes){data, len};
    m.more = (uint8_t)more;
    return m;
}

static void test_offer_parts_whole_passes_through(void **state)
{
    (void)state;
    tallow__offer_parts p = {0};
    tallow_msg_FileOffer out, m = part(7, "abc", 3, 0);
    assert_int_equal(tallow__offer_parts_add(&p, &m, 7, &out, NULL, 0), 1);
    assert_ptr_equal(out.manifest.ptr, m.manifest.ptr);
    assert_null(p.buf);
    tallow__offer_parts_reset(&p);
}

static void test_offer_parts_join_in_order(void **state)
{
    (void)state;
    const char text[] = "the manifest, cut anywhere, even inside a varint";
    size_t len = sizeof text - 1;
    for (size_t step = 1; step <= len; step += 3) {
        tallow__offer_parts p = {0};
        tallow_msg_FileOffer out;
        int rc = 0;
        for (size_t at = 0; at < len; at += step) {
            size_t n = len - at < step ? len - at : step;
            tallow_msg_FileOffer m = part(9, text + at, n, at + n < len);
            rc = tallow__offer_parts_add(&p, &m, 9, &out, NULL, 0);
            assert_int_equal(rc, at + n < len ? 0 : 1);
        }
        if (step >= len) { /* one piece: passed through */
            assert_ptr_equal(out.manifest.ptr, text);
        } else {
            assert_int_equal(out.manifest.len, len);
            assert_memory_equal(out.manifest.ptr, text, len);
            assert_int_equal(out.transfer_id, 9);
            assert_int_equal(out.count, 3);
            assert_int_equal(out.more, 0);
        }
        /* a second offer in parts on the same state starts from nothing */
        tallow_msg_FileOffer a = part(10, "xy", 2, 1), b = part(10, "z", 1, 0);
        assert_int_equal(tallow__offer_parts_add(&p, &a, 10, &out, NULL, 0), 0);
        assert_int_equal(tallow__offer_parts_add(&p, &b, 10, &out, NULL, 0), 1);
        assert_int_equal(out.manifest.len, 3);
        assert_memory_equal(out.manifest.ptr, "xyz", 3);
        tallow__offer_parts_reset(&p);
    }
}

static void test_offer_parts_refuses_lies(void **state)
{
    (void)state;
    tallow__offer_parts p = {0};
    tallow_msg_FileOffer out, m;
    char why[200];

    /* a claimed count above the bound, at the first part, with nothing allocated */
    m = part(1, "a", 1, 1);
    m.count = (uint64_t)TALLOW__MANIFEST_MAX_ENTRIES + 1;
    assert_int_equal(tallow__offer_parts_add(&p, &m, 1, &out, why, sizeof why), TALLOW_ETOOBIG);
    assert_non_null(strstr(why, "more than 4194304"));
    assert_null(p.buf);
    m.count = TALLOW__MANIFEST_MAX_ENTRIES;
    assert_int_equal(tallow__offer_parts_add(&p, &m, 1, &out, why, sizeof why), 0);
    assert_true(p.cap <= 64u * 1024u); /* what arrived, not what was claimed */
    tallow__offer_parts_reset(&p);

    /* another offer before the last part; another key; another header */
    tallow_msg_FileOffer first = part(1, "ab", 2, 1);
    assert_int_equal(tallow__offer_parts_add(&p, &first, 1, &out, why, sizeof why), 0);
    m = part(2, "c", 1, 0);
    assert_int_equal(tallow__offer_parts_add(&p, &m, 2, &out, why, sizeof why), TALLOW_EPROTO);
    assert_non_null(strstr(why, "offer 1 came in parts and offer 2"));
    assert_int_equal(p.active, 0);
    assert_null(p.buf);
    assert_int_equal(tallow__offer_parts_add(&p, &first, 1, &out, why, sizeof why), 0);
    m = part(1, "c", 1, 0);
    assert_int_equal(tallow__offer_parts_add(&p, &m, UINT64_MAX, &out, why, sizeof why),
                     TALLOW_EPROTO);
    assert_non_null(strstr(why, "another key"));
    assert_int_equal(tallow__offer_parts_add(&p, &first, 1, &out, why, sizeof why), 0);
    m.total_size = 11;
    assert_int_equal(tallow__offer_parts_add(&p, &m, 1, &out, why, sizeof why), TALLOW_EPROTO);

    /* more bytes than the bound, one part at a time: refused at the part that crosses it */
    size_t step = TALLOW__MANIFEST_PART;
    uint8_t *blob = calloc(1, step);
    assert_non_null(blob);
    size_t fed = 0;
    int rc = 0;
    while (rc == 0) {
        m = part(3, blob, step, 1);
        rc = tallow__offer_parts_add(&p, &m, 3, &out, why, sizeof why);
        if (rc == 0) fed += step;
    }
    assert_int_equal(rc, TALLOW_ETOOBIG);
    assert_int_equal(fed, TALLOW__MANIFEST_MAX_BYTES);
    assert_non_null(strstr(why, "a manifest of more than"));
    assert_null(p.buf);
    free(blob);
    tallow__offer_parts_reset(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offer_parts_whole_passes_through),
        cmocka_unit_test(test_offer_parts_join_in_order),
        cmocka_unit_test(test_offer_parts_refuses_lies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
