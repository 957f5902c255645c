/* tests/core/codec_samples.h — what test_codec.c and test_codec_malformed.c share: a test plugin
 * type using every field kind (registered at the plugin base by setup_registry), and samples of
 * any registered type built from its field table, in NVARIANTS variants, and encoded. */
#ifndef TALLOW_TEST_CODEC_SAMPLES_H
#define TALLOW_TEST_CODEC_SAMPLES_H

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

typedef struct walk {
    const tallow_registry *reg;
    size_t types;
    size_t frames;
} walk;

#endif
