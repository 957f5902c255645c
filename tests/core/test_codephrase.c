/* tests/core/test_codephrase.c — code phrases: the word list, generation, normalization and the
 * room id (equal for equal "N-firstword", different otherwise, never the code in clear). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"

static void test_codephrase_wordlist_2048_unique(void **state)
{
    assert_int_equal(tallow__wordlist_count(), 2048);
    for (size_t i = 0; i < 2048; i++) {
        const char *w = tallow__wordlist_get(i);
        assert_non_null(w);
        size_t len = strlen(w);
        assert_true(len >= 3 && len <= 8);
        for (size_t j = 0; j < len; j++)
            assert_true(w[j] >= 'a' && w[j] <= 'z');
        /* Sorted strictly ascending: implies distinct, and find() relies on it. */
        if (i) assert_true(strcmp(tallow__wordlist_get(i - 1), w) < 0);
        assert_int_equal(tallow__wordlist_find(w), (int)i);
    }
    assert_null(tallow__wordlist_get(2048));
    assert_int_equal(tallow__wordlist_find("notaword"), -1);
    assert_int_equal(tallow__wordlist_find(""), -1);
}

/* Splits a normalized code and checks every word is in the list; returns the word count. */
static int parse_code(const char *code)
{
    char buf[TALLOW__CODE_MAX];
    snprintf(buf, sizeof buf, "%s", code);
    char *save = NULL;
    char *tok = strtok_r(buf, "-", &save);
    assert_non_null(tok);
    int n = 0;
    for (const char *p = tok; *p; p++) {
        assert_true(*p >= '0' && *p <= '9');
        n = n * 10 + (*p - '0');
    }
    assert_true(n >= 0 && n <= 999);
    assert_false(tok[0] == '0' && tok[1] != '\0'); /* no leading zero */
    int words = 0;
    while ((tok = strtok_r(NULL, "-", &save)) != NULL) {
        assert_true(tallow__wordlist_find(tok) >= 0);
        words++;
    }
    return words;
}

static void test_codephrase_generate_format(void **state)
{
    char code[TALLOW__CODE_MAX], norm[TALLOW__CODE_MAX]; /* 8 words of 7 letters need 67 bytes */
    int seen_big = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(tallow__code_generate(code, sizeof code, 3), 0);
        assert_int_equal(parse_code(code), 3);
        assert_int_equal(tallow__code_normalize(code, norm, sizeof norm), 0);
        assert_string_equal(norm, code); /* generated codes are already canonical */
        if (atoi(code) >= 100) seen_big++;
    }
    assert_true(seen_big > 0);
    for (unsigned n = 2; n <= 8; n++) {
        assert_int_equal(tallow__code_generate(code, sizeof code, n), 0);
        assert_int_equal(parse_code(code), (int)n);
    }
    assert_int_equal(tallow__code_generate(code, sizeof code, 0), TALLOW_EINVAL);
    assert_int_equal(tallow__code_generate(code, sizeof code, 1), TALLOW_EINVAL); /* too weak */
    assert_int_equal(tallow__code_generate(code, sizeof code, 9), TALLOW_EINVAL);
    assert_int_equal(tallow__code_generate(code, 4, 3), TALLOW_ETOOBIG);
}

static void test_codephrase_generate_random(void **state)
{
    char a[64], b[64];
    int same = 0;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(tallow__code_generate(a, sizeof a, 3), 0);
        assert_int_equal(tallow__code_generate(b, sizeof b, 3), 0);
        same += strcmp(a, b) == 0;
    }
    assert_true(same < 2);
}

static void test_codephrase_normalize(void **state)
{
    char out[TALLOW__CODE_MAX];
    assert_int_equal(tallow__code_normalize("  7-Crossword-apple-BANANA \n", out, sizeof out), 0);
    assert_string_equal(out, "7-crossword-apple-banana");
    assert_int_equal(tallow__code_normalize("007 crossword__apple  -- banana", out, sizeof out), 0);
    assert_string_equal(out, "7-crossword-apple-banana");
    assert_int_equal(tallow__code_normalize("0-x", out, sizeof out), 0);
    assert_string_equal(out, "0-x");
    assert_int_equal(tallow__code_normalize("--12---ab", out, sizeof out), 0);
    assert_string_equal(out, "12-ab");

    const char *bad[] = {"",
                         "   ",
                         "7",
                         "7-",
                         "crossword-apple",
                         "1000-apple",
                         "7a-apple",
                         "7-app1e",
                         "7-caf\xc3\xa9",
                         "-7x-apple",
                         "7.apple",
                         "7-apple!",
                         "7-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 33 letters */
                         "1-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a" /* 17 words */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tallow__code_normalize(bad[i], out, sizeof out), TALLOW_EINVAL);
        assert_string_equal(out, "");
    }
    assert_int_equal(tallow__code_normalize("7-apple", out, 7), TALLOW_ETOOBIG);
    assert_int_equal(tallow__code_normalize("7-apple", out, 8), 0);
}

static void test_codephrase_room_id(void **state)
{
    uint8_t r1[32], r2[32], r3[32], r4[32], r5[32];
    assert_int_equal(tallow__code_room_id("7-crossword-apple-banana", r1), 0);
    assert_int_equal(tallow__code_room_id(" 07 Crossword  pear-kiwi", r2), 0);
    assert_int_equal(tallow__code_room_id("7-crossword", r3), 0);
    assert_memory_equal(r1, r2, 32); /* same number, other words: they meet (and the PAKE fails) */
    assert_memory_equal(r1, r3, 32);
    assert_int_equal(tallow__code_room_id("7-crosswords-apple-banana", r4), 0);
    assert_memory_equal(r1, r4, 32); /* no word reaches the relay, not even the first */
    assert_int_equal(tallow__code_room_id("8-crossword-apple-banana", r5), 0);
    assert_memory_not_equal(r1, r5, 32);
    assert_int_equal(tallow__code_room_id("crossword-apple", r5), TALLOW_EINVAL);

    /* Salted: not a bare BLAKE2b of the visible part. */
    uint8_t plain[32];
    crypto_generichash(plain, 32, (const uint8_t *)"7", 1, NULL, 0);
    assert_memory_not_equal(r1, plain, 32);
    assert_int_equal(tallow__code_words("7-crossword-apple"), 2);
    assert_int_equal(tallow__code_words(" 7 crossword "), 1);
    assert_int_equal(tallow__code_words("crossword"), TALLOW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codephrase_wordlist_2048_unique),
        cmocka_unit_test(test_codephrase_generate_format),
        cmocka_unit_test(test_codephrase_generate_random),
        cmocka_unit_test(test_codephrase_normalize),
        cmocka_unit_test(test_codephrase_room_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
