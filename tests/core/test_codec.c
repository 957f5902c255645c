/* tests/core/test_codec.c — the message registry and the generic codec, driven by the registry
 * itself: every registered type is filled and round-tripped (codec_samples.h); then the pinned
 * core ids, plugin registration and bad descriptors, varint edge cases and BYTES encoded in
 * place. What the decoder refuses (truncations, flipped bytes, hand-made malformed frames) is
 * test_codec_malformed.c's. */
#include "codec_samples.h"

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
    {39, "PathProbeDone"},
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
    assert_int_equal(npinned, 40);
    assert_int_equal(TALLOW_MSG_CORE_COUNT, 40);
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
    assert_int_equal(TALLOW_MSG_PathProbeDone, 39);
    size_t n = 0;
    tallow_registry_foreach(reg, count_type, &n);
    assert_int_equal(n, 40);
    assert_null(tallow_registry_find(reg, 40));
    assert_null(tallow_registry_find_name(reg, "NoSuchType"));
    /* fields appended later keep their tags too: the "more follows" of messages in parts, and
     * the acceptance said again after a resync */
    static const struct {
        const tallow_msg_type *t;
        uint32_t tag;
        const char *name;
    } appended[] = {{&tallow_msgtype_FileOffer, 6, "more"},
                    {&tallow_msgtype_FileAccept, 5, "again"},
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
    assert_int_equal(p - all, TALLOW_MSG_CORE_COUNT + 5);
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
        cmocka_unit_test(test_codec_core_ids_pinned),
        cmocka_unit_test(test_codec_plugin_registration),
        cmocka_unit_test(test_codec_bad_descriptor_rejected),
        cmocka_unit_test(test_codec_varint_edges),
        cmocka_unit_test(test_codec_bytes_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
