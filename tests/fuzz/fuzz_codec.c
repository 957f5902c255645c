/* tests/fuzz/fuzz_codec.c — libFuzzer target for the message codec: any frame through a registry
 * holding every core type (0..38) and a plugin type with every field kind. A frame that decodes
 * must re-encode to at most its own length, decode again to the same values, re-encode to the
 * same bytes (the round trip is stable), and fail to decode when cut short by one byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/error.h>
#include <tallow/messages.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_codec: check failed: %s (line %d)\n", #c, __LINE__);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct plug_msg {
    uint64_t u64;
    int64_t i64;
    uint8_t flag;
    uint32_t u32;
    tallow_bytes blob;
    tallow_bytes text;
} plug_msg;

static const tallow_field plug_fields[] = {
    {1, "u64", TALLOW_F_U64, offsetof(plug_msg, u64)},
    {2, "i64", TALLOW_F_I64, offsetof(plug_msg, i64)},
    {3, "flag", TALLOW_F_BOOL, offsetof(plug_msg, flag)},
    {4, "u32", TALLOW_F_U32, offsetof(plug_msg, u32)},
    {5, "blob", TALLOW_F_BYTES, offsetof(plug_msg, blob)},
    {1000, "text", TALLOW_F_STR, offsetof(plug_msg, text)},
};
static const tallow_msg_type plug_type = {0x8000, "FuzzPlugin", sizeof(plug_msg), 6, plug_fields};

typedef union {
    tallow_msg_any core;
    plug_msg plug;
} any_msg;

static tallow_registry *reg;

static void same_values(const tallow_msg_type *t, const void *a, const void *b)
{
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        const uint8_t *pa = (const uint8_t *)a + f->offset, *pb = (const uint8_t *)b + f->offset;
        switch (f->kind) {
        case TALLOW_F_U64:
        case TALLOW_F_I64:
            CHECK(memcmp(pa, pb, 8) == 0);
            break;
        case TALLOW_F_U32:
            CHECK(memcmp(pa, pb, 4) == 0);
            break;
        case TALLOW_F_BOOL:
            CHECK(*pa == *pb && *pa <= 1);
            break;
        default: {
            const tallow_bytes *ba = (const tallow_bytes *)pa, *bb = (const tallow_bytes *)pb;
            CHECK(ba->len == bb->len);
            CHECK(ba->len == 0 || memcmp(ba->ptr, bb->ptr, ba->len) == 0);
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!reg) {
        reg = tallow_registry_new();
        CHECK(reg && tallow_registry_add(reg, &plug_type) == 0);
    }
    any_msg m, m2;
    const tallow_msg_type *t = NULL, *t2 = NULL;
    uint32_t id = 0;
    int peek = tallow_msg_peek_type(data, size, &id);
    int rc = tallow_msg_decode(reg, data, size, &t, &m, sizeof m);
    if (rc < 0) {
        CHECK(rc == TALLOW_ETRUNC || rc == TALLOW_EBADMSG || rc == TALLOW_EUNKTYPE ||
              rc == TALLOW_ETOOBIG);
        return 0;
    }
    CHECK(rc == 0 && t && peek == 0 && t->id == id && tallow_registry_find(reg, id) == t);

    size_t need = tallow_msg_encoded_size(t, &m);
    CHECK(need <= size); /* unknown, zero and repeated fields are dropped; encodings are minimal */
    uint8_t *out = malloc(need), *again = malloc(need);
    CHECK(out && again);
    if (need > 0) CHECK(tallow_msg_encode(t, &m, out, need - 1) == TALLOW_ETOOBIG);
    int n = tallow_msg_encode(t, &m, out, need);
    CHECK(n > 0 && (size_t)n == need);

    CHECK(tallow_msg_decode(reg, out, need, &t2, &m2, sizeof m2) == 0 && t2 == t);
    same_values(t, &m, &m2);
    CHECK(tallow_msg_encode(t, &m2, again, need) == n);
    CHECK(memcmp(out, again, need) == 0);
    CHECK(tallow_msg_decode(reg, out, need - 1, &t2, &m2, sizeof m2) < 0);

    /* a buffer too small for the type is refused, not overrun */
    if (t->struct_size > 1) {
        uint8_t *small = malloc(t->struct_size - 1);
        CHECK(small);
        CHECK(tallow_msg_decode(reg, data, size, &t2, small, t->struct_size - 1) == TALLOW_ETOOBIG);
        free(small);
    }
    free(out);
    free(again);
    return 0;
}
