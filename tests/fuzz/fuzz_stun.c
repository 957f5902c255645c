/* tests/fuzz/fuzz_stun.c — libFuzzer target for the STUN codec: the parser, every attribute
 * reader on what it accepts, the integrity and fingerprint checks, and the relay's Binding
 * responder (whose answers must parse, carry a good FINGERPRINT and report the sender). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/error.h>
#include <tallow/stun.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_stun: check failed: %s (line %d)\n", #c, __LINE__);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int inside(const tallow_stun_msg *m, tallow_bytes v)
{
    return v.len == 0 || (v.ptr >= m->buf && v.ptr + v.len <= m->buf + m->len);
}

static void check_answer(const uint8_t *data, size_t size, const struct sockaddr *from,
                         socklen_t fl)
{
    uint8_t out[256];
    int n = tallow_stun_answer_binding(data, size, from, fl, "tallow-fuzz", out, sizeof out);
    if (n < 0) {
        CHECK(n == TALLOW_EBADMSG || n == TALLOW_ETRUNC);
        return;
    }
    tallow_stun_msg r, q;
    CHECK(tallow_stun_parse(out, (size_t)n, &r) == 0);
    CHECK(tallow_stun_parse(data, size, &q) == 0);
    CHECK(r.method == TALLOW_STUN_BINDING && r.cls == TALLOW_STUN_SUCCESS);
    CHECK(memcmp(r.txid, q.txid, TALLOW_STUN_TXID_LEN) == 0);
    CHECK(tallow_stun_check_fingerprint(&r) == 0);
    struct sockaddr_storage got;
    socklen_t gl = 0;
    CHECK(tallow_stun_mapped_address(&r, &got, &gl) == 0 && gl == fl);
    CHECK(memcmp(&got, from, fl) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tallow_stun_msg m;
    int is = tallow_stun_is_stun(data, size);
    int rc = tallow_stun_parse(data, size, &m);
    if (rc < 0) {
        CHECK(rc == TALLOW_ETRUNC || rc == TALLOW_EBADMSG);
    } else {
        CHECK(is == 1 && m.buf == data && m.len == size);
        size_t pos = 0;
        uint16_t type;
        tallow_bytes v;
        int count = 0;
        while (tallow_stun_attr_next(&m, &pos, &type, &v)) {
            CHECK(inside(&m, v) && ++count <= (int)(size / 4));
            struct sockaddr_storage ss;
            socklen_t sl;
            for (int x = 0; x < 2; x++)
                if (tallow_stun_addr_decode(&m, v, x, &ss, &sl) == 0)
                    CHECK(sl == sizeof(struct sockaddr_in) || sl == sizeof(struct sockaddr_in6));
            tallow_bytes f;
            CHECK(tallow_stun_attr_find(&m, type, &f) == 0 && inside(&m, f));
        }
        struct sockaddr_storage ss;
        socklen_t sl;
        rc = tallow_stun_mapped_address(&m, &ss, &sl);
        CHECK(rc == 0 || rc == TALLOW_ENOTFOUND || rc == TALLOW_EBADMSG);
        rc = tallow_stun_check_fingerprint(&m);
        CHECK(rc == 0 || rc == TALLOW_ENOTFOUND || rc == TALLOW_EBADMSG);
        rc = tallow_stun_check_integrity(&m, (const uint8_t *)"pass", 4);
        CHECK(rc == 0 || rc == TALLOW_ENOTFOUND || rc == TALLOW_ECRYPTO);
    }
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(4433)};
    v4.sin_addr.s_addr = htonl(0xC0000201);
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(50000)};
    v6.sin6_addr.s6_addr[0] = 0x20;
    v6.sin6_addr.s6_addr[15] = 7;
    check_answer(data, size, (struct sockaddr *)&v4, sizeof v4);
    check_answer(data, size, (struct sockaddr *)&v6, sizeof v6);
    (void)tallow_crc32(data, size);
    return 0;
}
