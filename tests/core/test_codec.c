/* tests/core/test_codec.c — the message registry and the generic codec, driven by the registry
 * itself: every registered type is filled, round-tripped, truncated at every length and
 * corrupted at every byte; then hand-made frames for each rule the decoder enforces, the pinned
 * core ids, plugin registration, and varint edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include <tallow/error.h>
#include <tallow/messages.h>

/* Decode target large enough and aligned for any type, core or test plugin. */
typedef union msgbuf {
    tallow_msg_any any;
    uint64_t align;
    uint8_t raw[1024];
} msgbuf;

/* ---- a plugin type using every kind, registered at the plugin base */
typedef struct plug_msg {
    uint64_t a;
    int64_t b;
    uint8_t c;
    uint32_t d;
    tallow_bytes e;
    tallow_bytes f;
} plug_msg;

static const tallow_field plug_fields[] = {
    {.tag = 1, .name = "a", .kind = TALLOW_F_U64, .offset = offsetof(plug_msg, a)},
    {.tag = 2, .name = "b", .kind = TALLOW_F_I64, .offset = offsetof(plug_msg, b)},
    {.tag = 3, .name = "c", .kind = TALLOW_F_BOOL, .offset = offsetof(plug_msg, c)},
    {.tag = 4, .name = "d", .kind = TALLOW_F_U32, .offset = offsetof(plug_msg, d)},
    {.tag = 5, .name = "e", .kind = TALLOW_F_BYTES, .offset = offsetof(plug_msg, e)},
    /* a tag above 15 makes the field key a two-byte varint */
    {.tag = 300, .name = "f", .kind = TALLOW_F_STR, .offset = offsetof(plug_msg, f)},
};
static const tallow_msg_type plug_type = {.id = TALLOW_MSG_PLUGIN_BASE,
                                          .name = "TestPluginMsg",
                                          .struct_size = sizeof(plug_msg),
                                          .nfields = 6,
                                          .fields = plug_fields};

static int setup_registry(void **state)
{
    tallow_registry *reg = tallow_registry_new();
    if (!reg) return -1;
    if (tallow_registry_add(reg, &plug_type) != 0) return -1;
    *state = reg;
    return 0;
}

static int teardown_registry(void **state)
{
    tallow_registry_free(*state);
    return 0;
}

/* ---- building a sample of any type from its field table */

#define NVARIANTS 3
static uint8_t pool[64][256]; /* backing bytes for BYTES/STR fields, one row per field */

static const char *const sample_strs[NVARIANTS] = {
    "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9d\x84\x9e \xe4\xb8\xad\xe6\x96\x87 "
    "a longer UTF-8 text so that its length needs a two-byte varint: "
    "\xc3\xa5\xc3\xa4\xc3\xb6 \xc3\xa5\xc3\xa4\xc3\xb6 \xc3\xa5\xc3\xa4\xc3\xb6 0123456789 "
    "0123456789",
    "\xc3\xa9",
    "\xef\xbf\xbd\xf4\x8f\xbf\xbf plain",
};

static void fill_sample(const tallow_msg_type *t, int variant, void *msg)
{
    memset(msg, 0, t->struct_size);
    uint8_t *m = msg;
    srand(1234 + variant * 77 + (int)t->id);
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        uint8_t *p = m + f->offset;
        uint64_t u64 = variant == 0 ? UINT64_MAX : variant == 1 ? 300 : (1ull << 63) + f->tag;
        int64_t i64 = variant == 0 ? INT64_MIN : variant == 1 ? -1 : -300 - (int64_t)f->tag;
        uint32_t u32 = variant == 0 ? UINT32_MAX : variant == 1 ? 1 : 128 + f->tag;
        uint8_t one = 1;
        tallow_bytes b;
        switch (f->kind) {
        case TALLOW_F_U64:
            memcpy(p, &u64, 8);
            break;
        case TALLOW_F_I64:
            memcpy(p, &i64, 8);
            break;
        case TALLOW_F_U32:
            memcpy(p, &u32, 4);
            break;
        case TALLOW_F_BOOL:
            memcpy(p, &one, 1);
            break;
        case TALLOW_F_BYTES:
            assert_true(i < 64);
            b.len = variant == 0 ? 200 : variant == 1 ? 1 : 3 + f->tag;
            for (size_t k = 0; k < b.len; k++)
                pool[i][k] = (uint8_t)rand();
            pool[i][0] = 0; /* BYTES may hold NUL */
            b.ptr = pool[i];
            memcpy(p, &b, sizeof(b));
            break;
        case TALLOW_F_STR:
            b.ptr = (const uint8_t *)sample_strs[variant];
            b.len = strlen(sample_strs[variant]);
            memcpy(p, &b, sizeof(b));
            break;
        default:
            fail_msg("%s: field %s has unknown kind %u", t->name, f->name, f->kind);
        }
    }
}

static void assert_msgs_equal(const tallow_msg_type *t, const void *a, const void *b)
{
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        const uint8_t *pa = (const uint8_t *)a + f->offset, *pb = (const uint8_t *)b + f->offset;
        tallow_bytes ba, bb;
        switch (f->kind) {
        case TALLOW_F_U64:
        case TALLOW_F_I64:
            if (memcmp(pa, pb, 8)) fail_msg("%s.%s differs after round trip", t->name, f->name);
            break;
        case TALLOW_F_U32:
            if (memcmp(pa, pb, 4)) fail_msg("%s.%s differs after round trip", t->name, f->name);
            break;
        case TALLOW_F_BOOL:
            if (*pa != *pb) fail_msg("%s.%s differs after round trip", t->name, f->name);
            break;
        default:
            memcpy(&ba, pa, sizeof(ba));
            memcpy(&bb, pb, sizeof(bb));
            if (ba.len != bb.len || (ba.len && memcmp(ba.ptr, bb.ptr, ba.len)))
                fail_msg("%s.%s differs after round trip", t->name, f->name);
        }
    }
}

static int encode_sample(const tallow_msg_type *t, int variant, msgbuf *in, uint8_t *frame,
                         size_t cap)
{
    assert_true(t->struct_size <= sizeof(in->raw));
    fill_sample(t, variant, in);
    int n = tallow_msg_encode(t, in, frame, cap);
    if (n <= 0) fail_msg("%s: encode failed: %s", t->name, tallow_err_name(n));
    assert_int_equal((size_t)n, tallow_msg_encoded_size(t, in));
    return n;
}

static int is_clean_decode_error(int rc)
{
    return rc == TALLOW_ETRUNC || rc == TALLOW_EBADMSG || rc == TALLOW_EUNKTYPE;
}

static void assert_zeroed(const msgbuf *m)
{
    for (size_t i = 0; i < sizeof(m->raw); i++)
        if (m->raw[i]) fail_msg("decode output not zeroed after an error (byte %zu)", i);
}

typedef struct walk {
    const tallow_registry *reg;
    size_t types;
    size_t frames;
} walk;

static void roundtrip_one(const tallow_msg_type *t, void *ud)
{
    walk *w = ud;
    static uint8_t frame[4096];
    msgbuf in, out;
    for (int v = 0; v < NVARIANTS; v++) {
        int n = encode_sample(t, v, &in, frame, sizeof(frame));
        const tallow_msg_type *got = NULL;
        uint32_t peeked = 0;
        assert_int_equal(tallow_msg_peek_type(frame, (size_t)n, &peeked), 0);
        assert_int_equal(peeked, t->id);
        int rc = tallow_msg_decode(w->reg, frame, (size_t)n, &got, &out, sizeof(out));
        if (rc != 0) fail_msg("%s variant %d: decode failed: %s", t->name, v, tallow_err_name(rc));
        assert_ptr_equal(got, t);
        assert_msgs_equal(t, &in, &out);
        /* decoded BYTES/STR borrow from the frame, never copy */
        for (uint32_t i = 0; i < t->nfields; i++) {
            const tallow_field *f = &t->fields[i];
            if (f->kind != TALLOW_F_BYTES && f->kind != TALLOW_F_STR) continue;
            tallow_bytes b;
            memcpy(&b, out.raw + f->offset, sizeof(b));
            assert_true(b.ptr >= frame && b.ptr + b.len <= frame + n);
        }
        /* a buffer one byte short is refused, not overrun */
        assert_int_equal(tallow_msg_encode(t, &in, frame, (size_t)n - 1), TALLOW_ETOOBIG);
        w->frames++;
    }
    /* the empty message: every field absent decodes to zero */
    memset(&in, 0, sizeof(in));
    int n = tallow_msg_encode(t, &in, frame, sizeof(frame));
    assert_true(n > 0 && (size_t)n == tallow_varint_size(t->id) + 1);
    memset(&out, 0xAB, sizeof(out));
    assert_int_equal(tallow_msg_decode(w->reg, frame, (size_t)n, NULL, &out, sizeof(out)), 0);
    for (uint32_t i = 0; i < t->struct_size; i++)
        assert_int_equal(out.raw[i], 0);
    w->types++;
}

static void test_codec_roundtrip_every_type(void **state)
{
    walk w = {.reg = *state};
    tallow_registry_foreach(w.reg, roundtrip_one, &w);
    assert_int_equal(w.types, TALLOW_MSG_CORE_COUNT + 1); /* + the plugin type */
    assert_int_equal(w.frames, (TALLOW_MSG_CORE_COUNT + 1) * NVARIANTS);
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

/* ---- pinned ids: these never change once shipped */

static const struct {
    uint32_t id;
    const char *name;
} pinned[] = {
    {0, "VersionRequest"},
    {1, "VersionResponse"},
    {2, "VersionReject"},
    {3, "RoomJoin"},
    {4, "RoomJoined"},
    {5, "RoomLeave"},
    {6, "PeerArrived"},
    {7, "PeerDeparted"},
    {8, "FileOffer"},
    {9, "FileAccept"},
    {10, "FileReject"},
    {11, "Chunk"},
    {12, "Ack"},
    {13, "TransferComplete"},
    {14, "TransferError"},
    {15, "ManifestExchange"},
    {16, "SyncDeleteList"},
    {17, "Ping"},
    {18, "Pong"},
    {19, "HandshakeInit"},
    {20, "HandshakeResponse"},
    {21, "HandshakeKem"},
    {22, "HandshakeComplete"},
    {23, "ResumeInfo"},
    {24, "HandshakeFailed"},
    {25, "ChatText"},
    {26, "TypingIndicator"},
    {27, "ReadReceipt"},
    {28, "ChatEnd"},
    {29, "RoomJoinMulti"},
    {30, "RoomJoinedMulti"},
    {31, "PeerJoinedRoom"},
    {32, "PeerLeftRoom"},
    {33, "Targeted"},
    {34, "RoomPeerCount"},
    {35, "CandidateOffer"},
    {36, "CandidatesDone"},
    {37, "DirectConnected"},
    {38, "DirectFailed"},
};

static void count_type(const tallow_msg_type *t, void *ud)
{
    (*(size_t *)ud)++;
}

static void test_codec_core_ids_pinned(void **state)
{
    tallow_registry *reg = tallow_registry_new();
    assert_non_null(reg);
    size_t npinned = sizeof(pinned) / sizeof(pinned[0]);
    assert_int_equal(npinned, 39);
    assert_int_equal(TALLOW_MSG_CORE_COUNT, 39);
    for (size_t i = 0; i < npinned; i++) {
        const tallow_msg_type *t = tallow_registry_find_name(reg, pinned[i].name);
        if (!t) fail_msg("core type %s is not registered", pinned[i].name);
        if (t->id != pinned[i].id)
            fail_msg("%s has id %u, pinned at %u", pinned[i].name, t->id, pinned[i].id);
        assert_ptr_equal(tallow_registry_find(reg, pinned[i].id), t);
    }
    /* the generated enum agrees with the table */
    assert_int_equal(TALLOW_MSG_VersionRequest, 0);
    assert_int_equal(TALLOW_MSG_ChatEnd, 28);
    assert_int_equal(TALLOW_MSG_RoomPeerCount, 34);
    assert_int_equal(TALLOW_MSG_CandidateOffer, 35);
    assert_int_equal(TALLOW_MSG_CandidatesDone, 36);
    assert_int_equal(TALLOW_MSG_DirectConnected, 37);
    assert_int_equal(TALLOW_MSG_DirectFailed, 38);
    size_t n = 0;
    tallow_registry_foreach(reg, count_type, &n);
    assert_int_equal(n, 39);
    assert_null(tallow_registry_find(reg, 39));
    assert_null(tallow_registry_find_name(reg, "NoSuchType"));
    /* fields appended later keep their tags too: the "more follows" of messages in parts */
    static const struct {
        const tallow_msg_type *t;
        uint32_t tag;
        const char *name;
    } appended[] = {{&tallow_msgtype_FileOffer, 6, "more"},
                    {&tallow_msgtype_FileAccept, 4, "more"},
                    {&tallow_msgtype_SyncDeleteList, 3, "more"}};
    for (size_t i = 0; i < sizeof(appended) / sizeof(appended[0]); i++) {
        const tallow_msg_type *t = appended[i].t;
        const tallow_field *f = &t->fields[t->nfields - 1];
        if (f->tag != appended[i].tag || strcmp(f->name, appended[i].name) != 0 ||
            f->kind != TALLOW_F_BOOL)
            fail_msg("%s: last field %s has tag %u", t->name, f->name, f->tag);
    }
    tallow_registry_free(reg);
}

/* ---- plugin registration */

static void collect_ids(const tallow_msg_type *t, void *ud)
{
    uint32_t **p = ud;
    *(*p)++ = t->id;
}

static void test_codec_plugin_registration(void **state)
{
    tallow_registry *reg = tallow_registry_new();
    assert_non_null(reg);
    assert_int_equal(tallow_registry_add(reg, &plug_type), 0);
    assert_ptr_equal(tallow_registry_find(reg, 0x8000), &plug_type);
    assert_ptr_equal(tallow_registry_find_name(reg, "TestPluginMsg"), &plug_type);

    /* duplicate id, duplicate name (plugin's or core's), a core id */
    tallow_msg_type dup_id = plug_type;
    dup_id.name = "Other";
    assert_int_equal(tallow_registry_add(reg, &dup_id), TALLOW_EDUPTYPE);
    tallow_msg_type dup_name = plug_type;
    dup_name.id = 0x8005;
    assert_int_equal(tallow_registry_add(reg, &dup_name), TALLOW_EDUPTYPE);
    dup_name.name = "Ping";
    assert_int_equal(tallow_registry_add(reg, &dup_name), TALLOW_EDUPTYPE);
    tallow_msg_type core_id = plug_type;
    core_id.id = 17;
    core_id.name = "NotPing";
    assert_int_equal(tallow_registry_add(reg, &core_id), TALLOW_EDUPTYPE);
    assert_ptr_equal(tallow_registry_find(reg, 17), &tallow_msgtype_Ping);

    /* more types out of order: foreach still walks in id order, lookups find each */
    static tallow_msg_type more[4];
    static const char *const names[4] = {"P9000", "P8100", "PFFFFFFFF", "P8001"};
    const uint32_t ids[4] = {0x9000, 0x8100, UINT32_MAX, 0x8001};
    for (int i = 0; i < 4; i++) {
        more[i] = plug_type;
        more[i].id = ids[i];
        more[i].name = names[i];
        assert_int_equal(tallow_registry_add(reg, &more[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(tallow_registry_find(reg, ids[i]), &more[i]);
    assert_null(tallow_registry_find(reg, 0x8002));
    uint32_t all[64], *p = all;
    tallow_registry_foreach(reg, collect_ids, &p);
    assert_int_equal(p - all, 39 + 5);
    for (uint32_t *q = all + 1; q < p; q++)
        assert_true(q[-1] < q[0]);

    /* a plugin frame decodes through the registry, a 3-byte id included */
    plug_msg m = {.a = 5, .b = -5, .c = 1, .d = 7, .f = {(const uint8_t *)"\xc3\xa9", 2}};
    uint8_t frame[64];
    msgbuf out;
    const tallow_msg_type *got;
    int n = tallow_msg_encode(&plug_type, &m, frame, sizeof(frame));
    assert_true(n > 0);
    assert_int_equal(frame[0], 0x80);
    assert_int_equal(tallow_msg_decode(reg, frame, (size_t)n, &got, &out, sizeof(out)), 0);
    assert_ptr_equal(got, &plug_type);
    tallow_registry_free(reg);
}

static void test_codec_bad_descriptor_rejected(void **state)
{
    tallow_registry *reg = tallow_registry_new();
    assert_non_null(reg);
    tallow_field f[2];
    tallow_msg_type t;
#define RESET()                                                                                    \
    do {                                                                                           \
        memcpy(f, plug_fields, sizeof(f));                                                         \
        t = (tallow_msg_type){.id = 0x8123,                                                        \
                              .name = "Bad",                                                       \
                              .struct_size = sizeof(plug_msg),                                     \
                              .nfields = 2,                                                        \
                              .fields = f};                                                        \
    } while (0)
#define EXPECT_EINVAL(what)                                                                        \
    do {                                                                                           \
        int rc_ = tallow_registry_add(reg, &t);                                                    \
        if (rc_ != TALLOW_EINVAL)                                                                  \
            fail_msg("%s: got %s, want TALLOW_EINVAL", what, tallow_err_name(rc_));                \
        RESET();                                                                                   \
    } while (0)
    RESET();
    assert_int_equal(tallow_registry_add(reg, NULL), TALLOW_EINVAL);
    t.name = NULL;
    EXPECT_EINVAL("no name");
    t.name = "";
    EXPECT_EINVAL("empty name");
    t.fields = NULL;
    EXPECT_EINVAL("fields missing");
    f[1].tag = 0;
    EXPECT_EINVAL("tag 0");
    f[1].tag = 1;
    EXPECT_EINVAL("duplicate tag");
    f[1].name = "a";
    EXPECT_EINVAL("duplicate field name");
    f[1].name = NULL;
    EXPECT_EINVAL("field without name");
    f[1].kind = 0;
    EXPECT_EINVAL("kind 0");
    f[1].kind = TALLOW_F_STR + 1;
    EXPECT_EINVAL("unknown kind");
    f[1].offset = sizeof(plug_msg);
    EXPECT_EINVAL("offset past the struct");
    f[0].offset = sizeof(plug_msg) - 4; /* a U64 that would run 4 bytes past the end */
    EXPECT_EINVAL("field overflowing the struct");
    f[1].kind = TALLOW_F_BYTES;
    f[1].offset = sizeof(plug_msg) - sizeof(tallow_bytes) + 1;
    EXPECT_EINVAL("bytes field overflowing the struct");
    /* nothing of the above got in, and the untouched descriptor does */
    assert_null(tallow_registry_find(reg, 0x8123));
    assert_int_equal(tallow_registry_add(reg, &t), 0);
    assert_ptr_equal(tallow_registry_find(reg, 0x8123), &t);
#undef EXPECT_EINVAL
#undef RESET
    tallow_registry_free(reg);
}

/* ---- varints */

static void test_codec_varint_edges(void **state)
{
    static const struct {
        uint64_t v;
        size_t len;
    } cases[] = {
        {0, 1},
        {1, 1},
        {127, 1},
        {128, 2},
        {300, 2},
        {16383, 2},
        {16384, 3},
        {UINT32_MAX, 5},
        {(1ull << 35) - 1, 5},
        {1ull << 35, 6},
        {(1ull << 63) - 1, 9},
        {1ull << 63, 10},
        {UINT64_MAX, 10},
    };
    uint8_t buf[16];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(buf, 0xEE, sizeof(buf));
        size_t n = tallow_varint_put(buf, cases[i].v);
        assert_int_equal(n, cases[i].len);
        assert_int_equal(tallow_varint_size(cases[i].v), n);
        assert_int_equal(buf[n], 0xEE); /* nothing written past the end */
        uint64_t back = 0;
        assert_int_equal(tallow_varint_get(buf, n, &back), (int)n);
        assert_true(back == cases[i].v);
        /* with extra bytes after it, only the varint is consumed */
        assert_int_equal(tallow_varint_get(buf, sizeof(buf), &back), (int)n);
        for (size_t cut = 0; cut < n; cut++)
            assert_int_equal(tallow_varint_get(buf, cut, &back), TALLOW_ETRUNC);
    }
    const uint8_t max[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    uint64_t v = 0;
    assert_int_equal(tallow_varint_get(max, sizeof(max), &v), 10);
    assert_true(v == UINT64_MAX);
    /* 65 bits and more */
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    assert_int_equal(tallow_varint_get(over, sizeof(over), &v), TALLOW_EBADMSG);
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00};
    assert_int_equal(tallow_varint_get(eleven, sizeof(eleven), &v), TALLOW_EBADMSG);
    /* non-minimal forms of 0 and 1 */
    const uint8_t nm0[] = {0x80, 0x00}, nm1[] = {0x81, 0x80, 0x00};
    const uint8_t nm10[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_int_equal(tallow_varint_get(nm0, sizeof(nm0), &v), TALLOW_EBADMSG);
    assert_int_equal(tallow_varint_get(nm1, sizeof(nm1), &v), TALLOW_EBADMSG);
    assert_int_equal(tallow_varint_get(nm10, sizeof(nm10), &v), TALLOW_EBADMSG);
    assert_int_equal(tallow_varint_get(NULL, 0, &v), TALLOW_ETRUNC);
}

/* msg.c (internal): where a BYTES field's bytes sit in msg's encoding */
size_t tallow__msg_bytes_offset(const tallow_msg_type *t, const void *msg,
                                const tallow_bytes *field);

/* A Chunk's data placed beforehand at the offset the codec reports is encoded in place, and the
 * result is byte for byte the ordinary encoding (the sender's zero-copy path). */
static void test_codec_bytes_in_place(void **state)
{
    static uint8_t data[300000], normal[300100], inplace[300100];
    static const uint8_t hash[32] = {1, 2, 3};
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    size_t lens[] = {1, 127, 128, 16383, 16384, sizeof data};
    for (int k = 0; k < 4; k++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            tallow_msg_Chunk c = {.transfer_id = k & 1 ? 0x7fffffffffffffffull : 5,
                                  .file_index = (uint64_t)k * 1000,
                                  .offset = (uint64_t)j << 20};
            c.data = (tallow_bytes){data, lens[j]};
            if (k & 2) c.last = 1, c.hash = (tallow_bytes){hash, sizeof hash};
            int n = tallow_msg_encode(&tallow_msgtype_Chunk, &c, normal, sizeof normal);
            assert_true(n > 0);
            size_t off = tallow__msg_bytes_offset(&tallow_msgtype_Chunk, &c, &c.data);
            assert_true(off < (size_t)n);
            assert_memory_equal(normal + off, data, lens[j]);
            memset(inplace, 0xee, sizeof inplace);
            memcpy(inplace + off, data, lens[j]);
            c.data.ptr = inplace + off;
            assert_int_equal(tallow_msg_encode(&tallow_msgtype_Chunk, &c, inplace, sizeof inplace),
                             n);
            assert_memory_equal(inplace, normal, (size_t)n);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_codec_roundtrip_every_type, setup_registry,
                                        teardown_registry),
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
        cmocka_unit_test(test_codec_core_ids_pinned),
        cmocka_unit_test(test_codec_plugin_registration),
        cmocka_unit_test(test_codec_bad_descriptor_rejected),
        cmocka_unit_test(test_codec_varint_edges),
        cmocka_unit_test(test_codec_bytes_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
