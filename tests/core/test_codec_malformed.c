/* tests/core/test_codec_malformed.c — what the generic codec's decoder refuses, cleanly (an
 * error, the output zeroed, no overread): every registered type's sample (codec_samples.h)
 * truncated at every length and corrupted at every byte; then hand-made frames for each rule the
 * decoder enforces (unknown types and fields, trailing bytes, UTF-8 text, ranges, keys,
 * non-minimal varints, frame limits). Round trips are test_codec.c's. */
#include "codec_samples.h"

static int is_clean_decode_error(int rc)
{
    return rc == TALLOW_ETRUNC || rc == TALLOW_EBADMSG || rc == TALLOW_EUNKTYPE;
}

static void assert_zeroed(const msgbuf *m)
{
    for (size_t i = 0; i < sizeof(m->raw); i++)
        if (m->raw[i]) fail_msg("decode output not zeroed after an error (byte %zu)", i);
}

static void truncate_one(const tallow_msg_type *t, void *ud)
{
    walk *w = ud;
    msgbuf in, out;
    for (int v = 0; v < NVARIANTS; v++) {
        uint8_t frame[4096];
        int n = encode_sample(t, v, &in, frame, sizeof(frame));
        for (int cut = 0; cut < n; cut++) {
            /* a copy of exactly cut bytes on the heap, so an overread shows under ASan */
            uint8_t *part = malloc(cut ? (size_t)cut : 1);
            assert_non_null(part);
            memcpy(part, frame, (size_t)cut);
            memset(&out, 0x5A, sizeof(out));
            int rc = tallow_msg_decode(w->reg, part, (size_t)cut, NULL, &out, sizeof(out));
            free(part);
            if (rc != TALLOW_ETRUNC && rc != TALLOW_EBADMSG)
                fail_msg("%s variant %d cut at %d of %d: got %s", t->name, v, cut, n,
                         tallow_err_name(rc));
            assert_zeroed(&out);
            w->frames++;
        }
    }
}

static void test_codec_every_truncation_fails(void **state)
{
    walk w = {.reg = *state};
    tallow_registry_foreach(w.reg, truncate_one, &w);
    assert_true(w.frames > 1000);
}

static void flip_one(const tallow_msg_type *t, void *ud)
{
    walk *w = ud;
    msgbuf in, out;
    for (int v = 0; v < NVARIANTS; v++) {
        uint8_t frame[4096];
        int n = encode_sample(t, v, &in, frame, sizeof(frame));
        uint8_t *copy = malloc((size_t)n);
        assert_non_null(copy);
        for (int pos = 0; pos < n; pos++) {
            /* every single-bit flip, and the whole byte inverted */
            for (int k = 0; k <= 8; k++) {
                memcpy(copy, frame, (size_t)n);
                copy[pos] ^= k < 8 ? (uint8_t)(1u << k) : 0xFF;
                const tallow_msg_type *got = NULL;
                int rc = tallow_msg_decode(w->reg, copy, (size_t)n, &got, &out, sizeof(out));
                if (rc == 0) {
                    assert_non_null(got);
                    /* whatever decoded must itself encode again */
                    uint8_t again[4096];
                    assert_true(tallow_msg_encode(got, &out, again, sizeof(again)) > 0);
                } else if (!is_clean_decode_error(rc)) {
                    fail_msg("%s variant %d, byte %d flip %d: got %s", t->name, v, pos, k,
                             tallow_err_name(rc));
                } else {
                    assert_zeroed(&out);
                }
                w->frames++;
            }
        }
        free(copy);
    }
}

static void test_codec_every_flipped_byte_is_safe(void **state)
{
    walk w = {.reg = *state};
    tallow_registry_foreach(w.reg, flip_one, &w);
    assert_true(w.frames > 10000);
}

/* ---- hand-made frames */

static size_t put_frame(uint8_t *out, uint64_t id, const uint8_t *body, size_t blen)
{
    size_t n = tallow_varint_put(out, id);
    n += tallow_varint_put(out + n, blen);
    if (blen) memcpy(out + n, body, blen);
    return n + blen;
}

static int decode_body(const tallow_registry *reg, uint64_t id, const uint8_t *body, size_t blen,
                       msgbuf *out)
{
    static uint8_t frame[512]; /* decoded fields borrow from it after the call */
    size_t n = put_frame(frame, id, body, blen);
    return tallow_msg_decode(reg, frame, n, NULL, out, sizeof(*out));
}

static void test_codec_unknown_type_rejected(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf out;
    const uint64_t ids[] = {TALLOW_MSG_CORE_COUNT,    100,       0x7FFF, 0x8001, UINT32_MAX,
                            (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        assert_int_equal(decode_body(reg, ids[i], NULL, 0, &out), TALLOW_EUNKTYPE);
    /* and a known one with the same empty body decodes */
    assert_int_equal(decode_body(reg, TALLOW_MSG_Ping, NULL, 0, &out), 0);
    assert_int_equal(decode_body(reg, TALLOW_MSG_PLUGIN_BASE, NULL, 0, &out), 0);
}

static void test_codec_unknown_field_skipped(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf out;
    /* ChatText{seq=7, text="hi"} with unknown tag 99 as bytes, then as a varint, in between */
    const uint8_t body[] = {
        0x08, 0x07,                        /* tag 1 (seq) = 7 */
        0x9a, 0x06, 0x03, 'x',  'y',  'z', /* tag 99, wire 2, 3 bytes */
        0x98, 0x06, 0xff, 0xff, 0x03,      /* tag 99, wire 0, 65535 */
        0x12, 0x02, 'h',  'i',             /* tag 2 (text) = "hi" */
    };
    assert_int_equal(decode_body(reg, TALLOW_MSG_ChatText, body, sizeof(body), &out), 0);
    assert_int_equal(out.any.ChatText.seq, 7);
    assert_int_equal(out.any.ChatText.text.len, 2);
    assert_memory_equal(out.any.ChatText.text.ptr, "hi", 2);
    assert_int_equal(out.any.ChatText.from, 0);
    /* an unknown field whose length runs past the body is still a truncation */
    const uint8_t bad[] = {0x08, 0x07, 0x9a, 0x06, 0x05, 'x', 'y'};
    assert_int_equal(decode_body(reg, TALLOW_MSG_ChatText, bad, sizeof(bad), &out), TALLOW_ETRUNC);
}

static void test_codec_trailing_bytes_rejected(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf in, out;
    uint8_t frame[4096];
    int n = encode_sample(&tallow_msgtype_Ping, 0, &in, frame, sizeof(frame) - 1);
    assert_int_equal(tallow_msg_decode(reg, frame, (size_t)n, NULL, &out, sizeof(out)), 0);
    frame[n] = 0x00;
    assert_int_equal(tallow_msg_decode(reg, frame, (size_t)n + 1, NULL, &out, sizeof(out)),
                     TALLOW_EBADMSG);
    assert_zeroed(&out);
    /* two frames back to back are not one frame */
    memcpy(frame + n, frame, (size_t)n);
    assert_int_equal(tallow_msg_decode(reg, frame, (size_t)n * 2, NULL, &out, sizeof(out)),
                     TALLOW_EBADMSG);
}

static int decode_text(const tallow_registry *reg, const char *s, size_t len, msgbuf *out)
{
    uint8_t body[64];
    body[0] = 0x12; /* tag 2 (text), wire 2 */
    body[1] = (uint8_t)len;
    memcpy(body + 2, s, len);
    return decode_body(reg, TALLOW_MSG_ChatText, body, len + 2, out);
}

static void test_codec_str_must_be_utf8_without_nul(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf out;
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } cases[] = {
        {"plain", 5, 1},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, 1}, /* é € 😀 */
        {"\xf4\x8f\xbf\xbf", 4, 1},                     /* U+10FFFF, the last one */
        {"a\0b", 3, 0},                                 /* NUL */
        {"\0", 1, 0},
        {"\x80", 1, 0},                 /* lone continuation byte */
        {"\xc3", 1, 0},                 /* cut multi-byte sequence */
        {"\xe2\x82", 2, 0},             /* cut three-byte sequence */
        {"\xc3\x28", 2, 0},             /* bad continuation */
        {"\xc0\xaf", 2, 0},             /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},         /* overlong, three bytes */
        {"\xf0\x80\x80\xaf", 4, 0},     /* overlong, four bytes */
        {"\xed\xa0\x80", 3, 0},         /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 4, 0},     /* above U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 5, 0}, /* five-byte form */
        {"\xff", 1, 0},
        {"ok\xfe", 3, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = decode_text(reg, cases[i].s, cases[i].len, &out);
        if (cases[i].ok && rc != 0)
            fail_msg("case %zu: valid text refused: %s", i, tallow_err_name(rc));
        if (!cases[i].ok && rc != TALLOW_EBADMSG)
            fail_msg("case %zu: invalid text gave %s", i, tallow_err_name(rc));
    }
    /* the same bytes are fine in a BYTES field (Chunk.data, tag 4) */
    const uint8_t body[] = {0x22, 0x03, 'a', 0x00, 0xff};
    assert_int_equal(decode_body(reg, TALLOW_MSG_Chunk, body, sizeof(body), &out), 0);
    assert_int_equal(out.any.Chunk.data.len, 3);
}

static void test_codec_u32_and_bool_ranges(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf out;
    uint8_t body[16];
    size_t n;
    /* ChatText.from (tag 3, U32) */
    body[0] = 0x18;
    n = 1 + tallow_varint_put(body + 1, UINT32_MAX);
    assert_int_equal(decode_body(reg, TALLOW_MSG_ChatText, body, n, &out), 0);
    assert_int_equal(out.any.ChatText.from, UINT32_MAX);
    n = 1 + tallow_varint_put(body + 1, (uint64_t)UINT32_MAX + 1);
    assert_int_equal(decode_body(reg, TALLOW_MSG_ChatText, body, n, &out), TALLOW_EBADMSG);
    n = 1 + tallow_varint_put(body + 1, UINT64_MAX);
    assert_int_equal(decode_body(reg, TALLOW_MSG_ChatText, body, n, &out), TALLOW_EBADMSG);
    /* TypingIndicator.typing (tag 1, BOOL) */
    const uint8_t b1[] = {0x08, 0x01}, b2[] = {0x08, 0x02}, b3[] = {0x08, 0x80, 0x02};
    assert_int_equal(decode_body(reg, TALLOW_MSG_TypingIndicator, b1, 2, &out), 0);
    assert_int_equal(out.any.TypingIndicator.typing, 1);
    assert_int_equal(decode_body(reg, TALLOW_MSG_TypingIndicator, b2, 2, &out), TALLOW_EBADMSG);
    assert_int_equal(decode_body(reg, TALLOW_MSG_TypingIndicator, b3, 3, &out), TALLOW_EBADMSG);
    /* I64 zigzag: 1 is -1, 2 is 1, UINT64_MAX is INT64_MIN (HandshakeFailed.code, tag 2) */
    const uint8_t z1[] = {0x10, 0x01};
    assert_int_equal(decode_body(reg, TALLOW_MSG_HandshakeFailed, z1, 2, &out), 0);
    assert_int_equal(out.any.HandshakeFailed.code, -1);
    body[0] = 0x10;
    n = 1 + tallow_varint_put(body + 1, UINT64_MAX);
    assert_int_equal(decode_body(reg, TALLOW_MSG_HandshakeFailed, body, n, &out), 0);
    assert_true(out.any.HandshakeFailed.code == INT64_MIN);
}

static void test_codec_bad_keys_rejected(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf out;
    const uint8_t tag0[] = {0x00, 0x01};                    /* tag 0 */
    const uint8_t wire1[] = {0x09, 0, 0, 0, 0, 0, 0, 0, 0}; /* tag 1, wire 1 (fixed64) */
    const uint8_t wire5[] = {0x0d, 0, 0, 0, 0};             /* tag 1, wire 5 (fixed32) */
    const uint8_t mismatch[] = {0x0a, 0x01, 0x07};          /* Ping.seq (U64) sent as bytes */
    assert_int_equal(decode_body(reg, TALLOW_MSG_Ping, tag0, sizeof(tag0), &out), TALLOW_EBADMSG);
    assert_int_equal(decode_body(reg, TALLOW_MSG_Ping, wire1, sizeof(wire1), &out), TALLOW_EBADMSG);
    assert_int_equal(decode_body(reg, TALLOW_MSG_Ping, wire5, sizeof(wire5), &out), TALLOW_EBADMSG);
    assert_int_equal(decode_body(reg, TALLOW_MSG_Ping, mismatch, sizeof(mismatch), &out),
                     TALLOW_EBADMSG);
    const uint8_t asvarint[] = {0x20, 0x05}; /* Chunk.data (tag 4, BYTES) sent as a varint */
    assert_int_equal(decode_body(reg, TALLOW_MSG_Chunk, asvarint, sizeof(asvarint), &out),
                     TALLOW_EBADMSG);
    /* a length running past the body */
    const uint8_t longlen[] = {0x22, 0x05, 'a', 'b'};
    assert_int_equal(decode_body(reg, TALLOW_MSG_Chunk, longlen, sizeof(longlen), &out),
                     TALLOW_ETRUNC);
    const uint8_t hugelen[] = {0x22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(decode_body(reg, TALLOW_MSG_Chunk, hugelen, sizeof(hugelen), &out),
                     TALLOW_ETRUNC);
}

static void test_codec_non_minimal_varint_rejected(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf out;
    /* in the type id, the body length, a field key and a field value */
    const uint8_t id[] = {0x91, 0x00, 0x00};                    /* Ping (17) as 2 bytes */
    const uint8_t blen[] = {0x11, 0x82, 0x00, 0x08, 0x01};      /* body length 2 as 2 bytes */
    const uint8_t key[] = {0x11, 0x03, 0x88, 0x00, 0x01};       /* key 0x08 as 2 bytes */
    const uint8_t val[] = {0x11, 0x03, 0x08, 0x81, 0x00};       /* value 1 as 2 bytes */
    const uint8_t slen[] = {0x19, 0x04, 0x12, 0x82, 0x00, 'h'}; /* ChatText len as 2 bytes */
    const uint8_t good[] = {0x11, 0x02, 0x08, 0x01};
    assert_int_equal(tallow_msg_decode(reg, good, sizeof(good), NULL, &out, sizeof(out)), 0);
    assert_int_equal(out.any.Ping.seq, 1);
    assert_int_equal(tallow_msg_decode(reg, id, sizeof(id), NULL, &out, sizeof(out)),
                     TALLOW_EBADMSG);
    assert_int_equal(tallow_msg_decode(reg, blen, sizeof(blen), NULL, &out, sizeof(out)),
                     TALLOW_EBADMSG);
    assert_int_equal(tallow_msg_decode(reg, key, sizeof(key), NULL, &out, sizeof(out)),
                     TALLOW_EBADMSG);
    assert_int_equal(tallow_msg_decode(reg, val, sizeof(val), NULL, &out, sizeof(out)),
                     TALLOW_EBADMSG);
    assert_int_equal(tallow_msg_decode(reg, slen, sizeof(slen), NULL, &out, sizeof(out)),
                     TALLOW_EBADMSG);
}

static void test_codec_frame_limits(void **state)
{
    const tallow_registry *reg = *state;
    msgbuf in, out;
    uint8_t frame[4096];
    int n = encode_sample(&tallow_msgtype_Chunk, 0, &in, frame, sizeof(frame));
    /* an output buffer smaller than the type's struct is refused */
    uint64_t small[2];
    assert_int_equal(tallow_msg_decode(reg, frame, (size_t)n, NULL, small, sizeof(small)),
                     TALLOW_ETOOBIG);
    /* frames above the limit are refused before they are read */
    size_t big = TALLOW_MSG_MAX_FRAME + 1;
    uint8_t *huge = calloc(1, big);
    assert_non_null(huge);
    memcpy(huge, frame, (size_t)n);
    assert_int_equal(tallow_msg_decode(reg, huge, big, NULL, &out, sizeof(out)), TALLOW_ETOOBIG);
    /* and the encoder will not build one */
    tallow_msg_Chunk c = {.transfer_id = 1, .data = {.ptr = huge, .len = TALLOW_MSG_MAX_FRAME}};
    assert_int_equal(tallow_msg_encode(&tallow_msgtype_Chunk, &c, huge, big), TALLOW_ETOOBIG);
    free(huge);
    /* peek reads the id only */
    uint32_t id = 0;
    assert_int_equal(tallow_msg_peek_type(frame, 1, &id), 0);
    assert_int_equal(id, TALLOW_MSG_Chunk);
    assert_int_equal(tallow_msg_peek_type(frame, 0, &id), TALLOW_ETRUNC);
    const uint8_t wide[] = {0x80, 0x80, 0x80, 0x80, 0x10}; /* 2^32 */
    assert_int_equal(tallow_msg_peek_type(wide, sizeof(wide), &id), TALLOW_EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_codec_every_truncation_fails, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_every_flipped_byte_is_safe, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_unknown_type_rejected, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_unknown_field_skipped, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_trailing_bytes_rejected, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_str_must_be_utf8_without_nul, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_u32_and_bool_ranges, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_bad_keys_rejected, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_non_minimal_varint_rejected, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_codec_frame_limits, setup_registry, teardown_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
