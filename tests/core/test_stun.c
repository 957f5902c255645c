/* tests/core/test_stun.c — the STUN codec against the RFC 5769 test vectors (integrity and
 * fingerprint recomputed byte for byte), builder round trips, and strictness: every truncation,
 * every flipped byte, header and attribute violations, and random garbage. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <tallow/error.h>
#include <tallow/gather.h>
#include <tallow/stun.h>

static const char PASSWORD[] = "VOkJxbRl1RmTxUk/WvJxBt";
static const uint8_t TXID[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

/* RFC 5769 §2.1 sample request. */
static const uint8_t REQ[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* RFC 5769 §2.2 sample IPv4 response. */
static const uint8_t RESP4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 §2.3 sample IPv6 response. */
static const uint8_t RESP6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

static const struct {
    const char *name;
    const uint8_t *buf;
    size_t len;
} VECTORS[] = {
    {"request", REQ, sizeof(REQ)},
    {"ipv4 response", RESP4, sizeof(RESP4)},
    {"ipv6 response", RESP6, sizeof(RESP6)},
};
#define NVEC (sizeof(VECTORS) / sizeof(VECTORS[0]))

static const uint8_t *pw(void)
{
    return (const uint8_t *)PASSWORD;
}

static void test_stun_crc32_check_value(void **state)
{
    assert_int_equal(tallow_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(tallow_crc32(NULL, 0), 0);
}

static void test_stun_vectors_verify(void **state)
{
    for (size_t i = 0; i < NVEC; i++) {
        tallow_stun_msg m;
        assert_true(tallow_stun_is_stun(VECTORS[i].buf, VECTORS[i].len));
        assert_int_equal(tallow_stun_parse(VECTORS[i].buf, VECTORS[i].len, &m), 0);
        assert_int_equal(m.method, TALLOW_STUN_BINDING);
        assert_int_equal(m.cls, i == 0 ? TALLOW_STUN_REQUEST : TALLOW_STUN_SUCCESS);
        assert_memory_equal(m.txid, TXID, 12);
        assert_int_equal(m.fingerprint_off, VECTORS[i].len - 8);
        assert_int_equal(m.integrity_off, VECTORS[i].len - 32);
        if (tallow_stun_check_fingerprint(&m) != 0) fail_msg("%s: fingerprint", VECTORS[i].name);
        if (tallow_stun_check_integrity(&m, pw(), strlen(PASSWORD)) != 0)
            fail_msg("%s: integrity", VECTORS[i].name);
        assert_int_equal(
            tallow_stun_check_integrity(&m, (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBT", 22),
            TALLOW_ECRYPTO);
        assert_int_equal(tallow_stun_check_integrity(&m, NULL, 0), TALLOW_ECRYPTO);
    }
}

static void test_stun_vector_request_attrs(void **state)
{
    tallow_stun_msg m;
    tallow_bytes v;
    assert_int_equal(tallow_stun_parse(REQ, sizeof(REQ), &m), 0);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_SOFTWARE, &v), 0);
    assert_int_equal(v.len, 16);
    assert_memory_equal(v.ptr, "STUN test client", 16);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_USERNAME, &v), 0);
    assert_int_equal(v.len, 9);
    assert_memory_equal(v.ptr, "evtj:h6vY", 9);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_PRIORITY, &v), 0);
    assert_int_equal(v.len, 4);
    assert_int_equal((v.ptr[0] << 24 | v.ptr[1] << 16 | v.ptr[2] << 8 | v.ptr[3]), 0x6e0001ff);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_ICE_CONTROLLED, &v), 0);
    assert_int_equal(v.len, 8);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_REALM, &v), TALLOW_ENOTFOUND);
    struct sockaddr_storage ss;
    socklen_t sl;
    assert_int_equal(tallow_stun_mapped_address(&m, &ss, &sl), TALLOW_ENOTFOUND);
    /* The walk visits the six attributes in order. */
    static const uint16_t order[] = {
        TALLOW_STUN_ATTR_SOFTWARE,          TALLOW_STUN_ATTR_PRIORITY,
        TALLOW_STUN_ATTR_ICE_CONTROLLED,    TALLOW_STUN_ATTR_USERNAME,
        TALLOW_STUN_ATTR_MESSAGE_INTEGRITY, TALLOW_STUN_ATTR_FINGERPRINT};
    size_t pos = 0, n = 0;
    uint16_t t;
    while (tallow_stun_attr_next(&m, &pos, &t, &v)) {
        assert_true(n < 6);
        assert_int_equal(t, order[n++]);
    }
    assert_int_equal(n, 6);
}

static void test_stun_vector_mapped_addresses(void **state)
{
    tallow_stun_msg m;
    struct sockaddr_storage ss;
    socklen_t sl;
    char s[80];
    assert_int_equal(tallow_stun_parse(RESP4, sizeof(RESP4), &m), 0);
    assert_int_equal(tallow_stun_mapped_address(&m, &ss, &sl), 0);
    assert_int_equal(sl, sizeof(struct sockaddr_in));
    assert_string_equal(tallow_sockaddr_str((struct sockaddr *)&ss, s, sizeof(s)),
                        "192.0.2.1:32853");
    assert_int_equal(tallow_stun_parse(RESP6, sizeof(RESP6), &m), 0);
    assert_int_equal(tallow_stun_mapped_address(&m, &ss, &sl), 0);
    assert_int_equal(sl, sizeof(struct sockaddr_in6));
    assert_string_equal(tallow_sockaddr_str((struct sockaddr *)&ss, s, sizeof(s)),
                        "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

/* Rebuilds each vector with the builder (patching the vectors' space padding by hand) and
 * expects the exact bytes: this checks the generated MESSAGE-INTEGRITY and FINGERPRINT. */
static void test_stun_builder_reproduces_vectors(void **state)
{
    uint8_t buf[256];
    tallow_stun_builder b;
    static const uint8_t prio[4] = {0x6e, 0x00, 0x01, 0xff};
    static const uint8_t tie[8] = {0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36};

    assert_int_equal(tallow_stun_build_begin(&b, buf, sizeof(buf), TALLOW_STUN_BINDING,
                                             TALLOW_STUN_REQUEST, TXID),
                     0);
    assert_int_equal(tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_SOFTWARE, "STUN test client", 16),
                     0);
    assert_int_equal(tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_PRIORITY, prio, 4), 0);
    assert_int_equal(tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_ICE_CONTROLLED, tie, 8), 0);
    assert_int_equal(tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_USERNAME, "evtj:h6vY", 9), 0);
    memset(buf + b.len - 3, 0x20, 3);
    assert_int_equal(tallow_stun_build_integrity(&b, pw(), strlen(PASSWORD)), 0);
    assert_int_equal(tallow_stun_build_fingerprint(&b), 0);
    assert_int_equal(tallow_stun_build_finish(&b), sizeof(REQ));
    assert_memory_equal(buf, REQ, sizeof(REQ));

    for (int v6 = 0; v6 < 2; v6++) {
        const uint8_t *want = v6 ? RESP6 : RESP4;
        size_t wlen = v6 ? sizeof(RESP6) : sizeof(RESP4);
        tallow_stun_msg m;
        struct sockaddr_storage ss;
        socklen_t sl;
        assert_int_equal(tallow_stun_parse(want, wlen, &m), 0);
        assert_int_equal(tallow_stun_mapped_address(&m, &ss, &sl), 0);
        tallow_stun_build_begin(&b, buf, sizeof(buf), TALLOW_STUN_BINDING, TALLOW_STUN_SUCCESS,
                                TXID);
        tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_SOFTWARE, "test vector", 11);
        buf[b.len - 1] = 0x20;
        tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_XOR_MAPPED_ADDRESS, 1, (struct sockaddr *)&ss,
                               sl);
        tallow_stun_build_integrity(&b, pw(), strlen(PASSWORD));
        tallow_stun_build_fingerprint(&b);
        assert_int_equal(tallow_stun_build_finish(&b), wlen);
        assert_memory_equal(buf, want, wlen);
    }
}

static void test_stun_vectors_every_truncation_fails(void **state)
{
    for (size_t i = 0; i < NVEC; i++) {
        for (size_t cut = 0; cut < VECTORS[i].len; cut++) {
            tallow_stun_msg m;
            int rc = tallow_stun_parse(VECTORS[i].buf, cut, &m);
            if (rc != TALLOW_ETRUNC && rc != TALLOW_EBADMSG)
                fail_msg("%s cut at %zu: %d", VECTORS[i].name, cut, rc);
            assert_false(tallow_stun_is_stun(VECTORS[i].buf, cut));
            assert_null(m.buf);
        }
    }
}

static void test_stun_vectors_every_flip_detected(void **state)
{
    uint8_t buf[256];
    for (size_t i = 0; i < NVEC; i++) {
        for (size_t at = 0; at < VECTORS[i].len; at++) {
            for (int bit = 0; bit < 8; bit++) {
                tallow_stun_msg m;
                memcpy(buf, VECTORS[i].buf, VECTORS[i].len);
                buf[at] ^= (uint8_t)(1u << bit);
                int ok = tallow_stun_parse(buf, VECTORS[i].len, &m) == 0 &&
                         tallow_stun_check_fingerprint(&m) == 0 &&
                         tallow_stun_check_integrity(&m, pw(), strlen(PASSWORD)) == 0;
                if (ok) fail_msg("%s: flip at %zu bit %d accepted", VECTORS[i].name, at, bit);
            }
        }
    }
}

static void test_stun_header_checks(void **state)
{
    uint8_t buf[256];
    tallow_stun_msg m;
    size_t n = sizeof(RESP4);
    memcpy(buf, RESP4, n);
    buf[0] |= 0x40; /* top bits */
    assert_false(tallow_stun_is_stun(buf, n));
    assert_int_equal(tallow_stun_parse(buf, n, &m), TALLOW_EBADMSG);
    memcpy(buf, RESP4, n);
    buf[0] |= 0x80;
    assert_int_equal(tallow_stun_parse(buf, n, &m), TALLOW_EBADMSG);
    memcpy(buf, RESP4, n);
    buf[7] ^= 1; /* magic cookie */
    assert_false(tallow_stun_is_stun(buf, n));
    assert_int_equal(tallow_stun_parse(buf, n, &m), TALLOW_EBADMSG);
    memcpy(buf, RESP4, n);
    buf[3] = 0x3d; /* not a multiple of 4 */
    assert_false(tallow_stun_is_stun(buf, n));
    assert_int_equal(tallow_stun_parse(buf, n, &m), TALLOW_EBADMSG);
    memcpy(buf, RESP4, n);
    buf[n] = buf[n + 1] = buf[n + 2] = buf[n + 3] = 0; /* trailing bytes */
    assert_false(tallow_stun_is_stun(buf, n + 4));
    assert_int_equal(tallow_stun_parse(buf, n + 4, &m), TALLOW_EBADMSG);
    assert_int_equal(tallow_stun_parse(NULL, 20, &m), TALLOW_ETRUNC);
    assert_int_equal(tallow_stun_parse(buf, n, NULL), TALLOW_EINVAL);
    assert_false(tallow_stun_is_stun(NULL, 0));
    /* A bare header is a valid (empty) message. */
    assert_int_equal(tallow_stun_binding_request(buf, sizeof(buf), TXID), 28);
    buf[3] = 0;
    assert_true(tallow_stun_is_stun(buf, 20));
    assert_int_equal(tallow_stun_parse(buf, 20, &m), 0);
    assert_int_equal(tallow_stun_check_fingerprint(&m), TALLOW_ENOTFOUND);
    assert_int_equal(tallow_stun_check_integrity(&m, pw(), 3), TALLOW_ENOTFOUND);
    /* QUIC long and short header first bytes never classify as STUN. */
    buf[0] = 0xc0;
    assert_false(tallow_stun_is_stun(buf, 20));
    buf[0] = 0x40;
    assert_false(tallow_stun_is_stun(buf, 20));
}

/* Hand-made messages: header + raw attribute bytes. */
static size_t mk(uint8_t *buf, const uint8_t *attrs, size_t alen)
{
    buf[0] = 0x01;
    buf[1] = 0x01;
    buf[2] = (uint8_t)(alen >> 8);
    buf[3] = (uint8_t)alen;
    buf[4] = 0x21;
    buf[5] = 0x12;
    buf[6] = 0xa4;
    buf[7] = 0x42;
    memcpy(buf + 8, TXID, 12);
    memcpy(buf + 20, attrs, alen);
    return 20 + alen;
}

static void test_stun_attribute_checks(void **state)
{
    uint8_t buf[128];
    tallow_stun_msg m;
    static const struct {
        const char *name;
        uint8_t attrs[32];
        size_t len;
        int want;
    } rows[] = {
        {"attr past end", {0x80, 0x22, 0x00, 0x08, 1, 2, 3, 4}, 8, TALLOW_ETRUNC},
        {"padding past end", {0x80, 0x22, 0x00, 0x05, 1, 2, 3, 4}, 8, TALLOW_ETRUNC},
        {"exact fit", {0x80, 0x22, 0x00, 0x04, 1, 2, 3, 4}, 8, 0},
        {"empty attr", {0x80, 0x22, 0x00, 0x00}, 4, 0},
        {"fingerprint not last",
         {0x80, 0x28, 0, 4, 1, 2, 3, 4, 0x80, 0x22, 0, 0},
         12,
         TALLOW_EBADMSG},
        {"fingerprint short", {0x80, 0x28, 0, 0}, 4, TALLOW_EBADMSG},
        {"fingerprint long", {0x80, 0x28, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}, 12, TALLOW_EBADMSG},
        {"integrity short", {0x00, 0x08, 0, 4, 1, 2, 3, 4}, 8, TALLOW_EBADMSG},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t n = mk(buf, rows[i].attrs, rows[i].len);
        int rc = tallow_stun_parse(buf, n, &m);
        if (rc != rows[i].want) fail_msg("%s: got %d want %d", rows[i].name, rc, rows[i].want);
    }
}

static void test_stun_attrs_after_integrity_ignored(void **state)
{
    uint8_t buf[128];
    tallow_stun_builder b;
    tallow_stun_msg m;
    tallow_bytes v;
    tallow_stun_build_begin(&b, buf, sizeof(buf), TALLOW_STUN_BINDING, TALLOW_STUN_REQUEST, TXID);
    tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_USERNAME, "a:b", 3);
    tallow_stun_build_integrity(&b, (const uint8_t *)"k", 1);
    tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_SOFTWARE, "evil", 4);
    tallow_stun_build_fingerprint(&b);
    int n = tallow_stun_build_finish(&b);
    assert_true(n > 0);
    assert_int_equal(tallow_stun_parse(buf, (size_t)n, &m), 0);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_USERNAME, &v), 0);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_SOFTWARE, &v), TALLOW_ENOTFOUND);
    assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_FINGERPRINT, &v), 0);
    assert_int_equal(tallow_stun_check_fingerprint(&m), 0);
    assert_int_equal(tallow_stun_check_integrity(&m, (const uint8_t *)"k", 1), 0);
}

static void test_stun_binding_round_trip(void **state)
{
    static const char *addrs[] = {"203.0.113.7", "127.0.0.1", "2001:db8::42", "::ffff:10.0.0.1"};
    uint8_t buf[128];
    tallow_stun_msg m;
    int n = tallow_stun_binding_request(buf, sizeof(buf), TXID);
    assert_int_equal(n, 28);
    assert_int_equal(tallow_stun_parse(buf, (size_t)n, &m), 0);
    assert_int_equal(m.type, 0x0001);
    assert_int_equal(m.cls, TALLOW_STUN_REQUEST);
    assert_int_equal(tallow_stun_check_fingerprint(&m), 0);
    for (size_t i = 0; i < 4; i++) {
        struct sockaddr_storage ss, got;
        socklen_t sl, gl;
        memset(&ss, 0, sizeof(ss));
        if (inet_pton(AF_INET, addrs[i], &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
            ss.ss_family = AF_INET;
            ((struct sockaddr_in *)&ss)->sin_port = htons(40000 + (uint16_t)i);
            sl = sizeof(struct sockaddr_in);
        } else {
            assert_int_equal(
                inet_pton(AF_INET6, addrs[i], &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
            ss.ss_family = AF_INET6;
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(1);
            sl = sizeof(struct sockaddr_in6);
        }
        n = tallow_stun_binding_response(buf, sizeof(buf), TXID, (struct sockaddr *)&ss, sl,
                                         "tallow");
        assert_true(n > 0);
        assert_true(tallow_stun_is_stun(buf, (size_t)n));
        assert_int_equal(tallow_stun_parse(buf, (size_t)n, &m), 0);
        assert_int_equal(m.type, 0x0101);
        assert_int_equal(tallow_stun_check_fingerprint(&m), 0);
        assert_int_equal(tallow_stun_mapped_address(&m, &got, &gl), 0);
        assert_int_equal(gl, sl);
        assert_memory_equal(&got, &ss, sl);
        tallow_bytes v;
        assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_MAPPED_ADDRESS, &v), 0);
        assert_int_equal(tallow_stun_addr_decode(&m, v, 0, &got, &gl), 0);
        assert_memory_equal(&got, &ss, sl);
        assert_int_equal(tallow_stun_attr_find(&m, TALLOW_STUN_ATTR_SOFTWARE, &v), 0);
        assert_int_equal(v.len, 6);
        /* Every output buffer too small fails without writing past it. */
        for (size_t cap = 0; cap < (size_t)n; cap++) {
            uint8_t small[128];
            memset(small, 0xAA, sizeof(small));
            assert_int_equal(tallow_stun_binding_response(small, cap, TXID, (struct sockaddr *)&ss,
                                                          sl, "tallow"),
                             TALLOW_ETOOBIG);
            for (size_t k = cap; k < sizeof(small); k++)
                assert_int_equal(small[k], 0xAA);
        }
    }
    struct sockaddr_storage bad = {.ss_family = AF_UNIX};
    assert_int_equal(tallow_stun_binding_response(buf, sizeof(buf), TXID, (struct sockaddr *)&bad,
                                                  sizeof(bad), NULL),
                     TALLOW_EINVAL);
}

static void test_stun_mapped_prefers_xor(void **state)
{
    uint8_t buf[128];
    tallow_stun_builder b;
    tallow_stun_msg m;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1111)};
    struct sockaddr_in x = {.sin_family = AF_INET, .sin_port = htons(2222)};
    struct sockaddr_storage got;
    socklen_t gl;
    inet_pton(AF_INET, "198.51.100.1", &a.sin_addr);
    inet_pton(AF_INET, "198.51.100.2", &x.sin_addr);
    tallow_stun_build_begin(&b, buf, sizeof(buf), TALLOW_STUN_BINDING, TALLOW_STUN_SUCCESS, TXID);
    tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_MAPPED_ADDRESS, 0, (struct sockaddr *)&a,
                           sizeof(a));
    tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_XOR_MAPPED_ADDRESS, 1, (struct sockaddr *)&x,
                           sizeof(x));
    int n = tallow_stun_build_finish(&b);
    assert_int_equal(tallow_stun_parse(buf, (size_t)n, &m), 0);
    assert_int_equal(tallow_stun_mapped_address(&m, &got, &gl), 0);
    assert_memory_equal(&got, &x, sizeof(x));
    /* Only MAPPED-ADDRESS (an RFC 3489 server). */
    tallow_stun_build_begin(&b, buf, sizeof(buf), TALLOW_STUN_BINDING, TALLOW_STUN_SUCCESS, TXID);
    tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_MAPPED_ADDRESS, 0, (struct sockaddr *)&a,
                           sizeof(a));
    n = tallow_stun_build_finish(&b);
    assert_int_equal(tallow_stun_parse(buf, (size_t)n, &m), 0);
    assert_int_equal(tallow_stun_mapped_address(&m, &got, &gl), 0);
    assert_memory_equal(&got, &a, sizeof(a));
}

static void test_stun_addr_decode_rejects(void **state)
{
    tallow_stun_msg m;
    struct sockaddr_storage ss;
    socklen_t sl;
    assert_int_equal(tallow_stun_parse(RESP4, sizeof(RESP4), &m), 0);
    static const struct {
        uint8_t v[24];
        size_t len;
    } rows[] = {
        {{0, 1, 0, 80, 1, 2, 3}, 7},       /* v4 short */
        {{0, 1, 0, 80, 1, 2, 3, 4, 5}, 9}, /* v4 long */
        {{0, 2, 0, 80, 1, 2, 3, 4}, 8},    /* v6 short */
        {{0, 3, 0, 80, 1, 2, 3, 4}, 8},    /* unknown family */
        {{0, 0, 0, 80, 1, 2, 3, 4}, 8},    /* family 0 */
        {{0, 1, 0}, 3},                    /* no header */
        {{0}, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tallow_bytes v = {rows[i].v, rows[i].len};
        assert_int_equal(tallow_stun_addr_decode(&m, v, 1, &ss, &sl), TALLOW_EBADMSG);
        assert_int_equal(tallow_stun_addr_decode(&m, v, 0, &ss, &sl), TALLOW_EBADMSG);
        assert_int_equal(sl, 0);
    }
}

static void test_stun_type_bits(void **state)
{
    static const struct {
        uint16_t method;
        uint8_t cls;
        uint16_t type;
    } rows[] = {
        {0x001, TALLOW_STUN_REQUEST, 0x0001}, {0x001, TALLOW_STUN_INDICATION, 0x0011},
        {0x001, TALLOW_STUN_SUCCESS, 0x0101}, {0x001, TALLOW_STUN_ERROR, 0x0111},
        {0x003, TALLOW_STUN_REQUEST, 0x0003}, {0xFFF, TALLOW_STUN_ERROR, 0x3FFF},
        {0x080, TALLOW_STUN_REQUEST, 0x0200}, {0x010, TALLOW_STUN_REQUEST, 0x0020},
    };
    uint8_t buf[32];
    tallow_stun_builder b;
    tallow_stun_msg m;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tallow_stun_build_begin(&b, buf, sizeof(buf), rows[i].method, rows[i].cls, TXID);
        assert_int_equal(tallow_stun_build_finish(&b), 20);
        assert_int_equal(tallow_stun_parse(buf, 20, &m), 0);
        assert_int_equal(m.type, rows[i].type);
        assert_int_equal(m.method, rows[i].method);
        assert_int_equal(m.cls, rows[i].cls);
    }
    assert_int_equal(tallow_stun_build_begin(&b, buf, sizeof(buf), 0x1000, 0, TXID), TALLOW_EINVAL);
    assert_int_equal(tallow_stun_build_begin(&b, buf, sizeof(buf), 1, 4, TXID), TALLOW_EINVAL);
    assert_int_equal(tallow_stun_build_finish(&b), TALLOW_EINVAL);
    /* Nothing may follow FINGERPRINT. */
    tallow_stun_build_begin(&b, buf, sizeof(buf), 1, 0, TXID);
    tallow_stun_build_fingerprint(&b);
    assert_int_equal(tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_SOFTWARE, "x", 1), TALLOW_EINVAL);
    assert_int_equal(tallow_stun_build_finish(&b), TALLOW_EINVAL);
}

static void test_stun_answer_binding(void **state)
{
    uint8_t req[64], out[128];
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(61000)};
    inet_pton(AF_INET, "198.51.100.77", &from.sin_addr);
    const struct sockaddr *sa = (const struct sockaddr *)&from;
    int n = tallow_stun_binding_request(req, sizeof(req), TXID);
    int r = tallow_stun_answer_binding(req, (size_t)n, sa, sizeof(from), "tallow-relay", out,
                                       sizeof(out));
    assert_true(r > 0);
    tallow_stun_msg m;
    struct sockaddr_storage got;
    socklen_t gl;
    assert_int_equal(tallow_stun_parse(out, (size_t)r, &m), 0);
    assert_int_equal(m.cls, TALLOW_STUN_SUCCESS);
    assert_memory_equal(m.txid, TXID, 12);
    assert_int_equal(tallow_stun_check_fingerprint(&m), 0);
    assert_int_equal(tallow_stun_mapped_address(&m, &got, &gl), 0);
    assert_memory_equal(&got, &from, sizeof(from));
    /* The RFC 5769 request (with attributes and integrity) is answered too. */
    assert_true(
        tallow_stun_answer_binding(REQ, sizeof(REQ), sa, sizeof(from), NULL, out, sizeof(out)) > 0);
    /* Responses, broken fingerprints, truncations and garbage are not answered. */
    assert_int_equal(
        tallow_stun_answer_binding(RESP4, sizeof(RESP4), sa, sizeof(from), NULL, out, sizeof(out)),
        TALLOW_EBADMSG);
    req[n - 1] ^= 1;
    assert_int_equal(
        tallow_stun_answer_binding(req, (size_t)n, sa, sizeof(from), NULL, out, sizeof(out)),
        TALLOW_EBADMSG);
    req[n - 1] ^= 1;
    for (int cut = 0; cut < n; cut++)
        assert_true(tallow_stun_answer_binding(req, (size_t)cut, sa, sizeof(from), NULL, out,
                                               sizeof(out)) < 0);
    tallow_stun_builder b;
    tallow_stun_build_begin(&b, req, sizeof(req), TALLOW_STUN_BINDING, TALLOW_STUN_INDICATION,
                            TXID);
    tallow_stun_build_fingerprint(&b);
    n = tallow_stun_build_finish(&b);
    assert_int_equal(
        tallow_stun_answer_binding(req, (size_t)n, sa, sizeof(from), NULL, out, sizeof(out)),
        TALLOW_EBADMSG);
    uint8_t quic[24];
    memset(quic, 0x40, sizeof(quic)); /* a QUIC short header */
    assert_int_equal(
        tallow_stun_answer_binding(quic, sizeof(quic), sa, sizeof(from), NULL, out, sizeof(out)),
        TALLOW_EBADMSG);
}

/* A small deterministic generator: the garbage is the same on every run. */
static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void test_stun_garbage_never_crashes(void **state)
{
    uint8_t buf[96];
    uint32_t seed = 0x5eed1234u;
    int parsed = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = xorshift(&seed) % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)xorshift(&seed);
        /* Half the time make the header plausible so the attribute walk is exercised. */
        if ((iter & 1) && len >= 20) {
            size_t alen = (len - 20) & ~(size_t)3;
            len = 20 + alen;
            buf[0] &= 0x3f;
            buf[2] = (uint8_t)(alen >> 8);
            buf[3] = (uint8_t)alen;
            memcpy(buf + 4, "\x21\x12\xa4\x42", 4);
            /* Small attribute lengths so that some messages parse. */
            for (size_t p = 20; p + 4 <= len; p += 4)
                if (xorshift(&seed) & 1) buf[p + 2] = 0, buf[p + 3] &= 0x0f;
        }
        tallow_stun_msg m;
        if (tallow_stun_parse(buf, len, &m) != 0) continue;
        parsed++;
        assert_true(tallow_stun_is_stun(buf, len));
        struct sockaddr_storage ss;
        socklen_t sl;
        tallow_stun_mapped_address(&m, &ss, &sl);
        tallow_stun_check_fingerprint(&m);
        tallow_stun_check_integrity(&m, pw(), 5);
        size_t pos = 0, count = 0;
        uint16_t t;
        tallow_bytes v;
        while (tallow_stun_attr_next(&m, &pos, &t, &v)) {
            assert_true(v.ptr >= buf + 24 && v.ptr + v.len <= buf + len);
            assert_true(++count <= len / 4);
        }
    }
    assert_true(parsed > 1000); /* the generator did reach the attribute walk */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stun_crc32_check_value),
        cmocka_unit_test(test_stun_vectors_verify),
        cmocka_unit_test(test_stun_vector_request_attrs),
        cmocka_unit_test(test_stun_vector_mapped_addresses),
        cmocka_unit_test(test_stun_builder_reproduces_vectors),
        cmocka_unit_test(test_stun_vectors_every_truncation_fails),
        cmocka_unit_test(test_stun_vectors_every_flip_detected),
        cmocka_unit_test(test_stun_header_checks),
        cmocka_unit_test(test_stun_attribute_checks),
        cmocka_unit_test(test_stun_attrs_after_integrity_ignored),
        cmocka_unit_test(test_stun_binding_round_trip),
        cmocka_unit_test(test_stun_mapped_prefers_xor),
        cmocka_unit_test(test_stun_addr_decode_rejects),
        cmocka_unit_test(test_stun_type_bits),
        cmocka_unit_test(test_stun_answer_binding),
        cmocka_unit_test(test_stun_garbage_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
