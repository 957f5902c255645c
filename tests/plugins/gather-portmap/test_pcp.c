/* tests/plugins/gather-portmap/test_pcp.c — the PCP (RFC 6887) MAP codec: the exact request
 * bytes, responses decoded, NAT-PMP's version 0 answer recognised, malformed datagrams refused. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <tallow/error.h>

#include "pcp.h"

static pcp_map sample_req(void)
{
    pcp_map m;
    memset(&m, 0, sizeof(m));
    for (int i = 0; i < PCP_NONCE_LEN; i++)
        m.nonce[i] = (uint8_t)(0xA0 + i);
    m.protocol = PCP_PROTO_UDP;
    m.internal_port = 40000;
    m.external_port = 40001;
    m.lifetime = 3600;
    return m;
}

static void test_encode_request(void **st)
{
    (void)st;
    pcp_map m = sample_req();
    struct in_addr client;
    inet_pton(AF_INET, "10.1.0.2", &client);
    uint8_t out[PCP_MAP_LEN + 8];
    memset(out, 0xEE, sizeof(out));
    assert_int_equal(pcp_encode_map(&m, client, out, sizeof(out)), PCP_MAP_LEN);
    static const uint8_t want[PCP_MAP_LEN] = {
        2,    1,    0,    0,    0,    0,    0x0E, 0x10, /* v2, MAP, 3600 s */
        0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0xff, 0xff,
        10,   1,    0,    2, /* ::ffff:10.1.0.2 */
        0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, /* nonce */
        17,   0,    0,    0,    0x9C, 0x40, 0x9C, 0x41, /* UDP, 40000, 40001 */
        0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0xff, 0xff,
        0,    0,    0,    0, /* any IPv4 */
    };
    assert_memory_equal(out, want, PCP_MAP_LEN);
    assert_int_equal(out[PCP_MAP_LEN], 0xEE); /* nothing written past the message */
}

static void test_encode_refuses(void **st)
{
    (void)st;
    pcp_map m = sample_req();
    struct in_addr client = {0};
    uint8_t out[PCP_MAP_LEN];
    assert_int_equal(pcp_encode_map(&m, client, out, PCP_MAP_LEN - 1), TALLOW_EINVAL);
    m.internal_port = 0; /* "all ports" */
    assert_int_equal(pcp_encode_map(&m, client, out, sizeof(out)), TALLOW_EINVAL);
    m = sample_req();
    m.protocol = 0;
    assert_int_equal(pcp_encode_map(&m, client, out, sizeof(out)), TALLOW_EINVAL);
}

/* A response built from a request: R bit, result, lifetime, epoch, assigned port/address. */
static void make_response(const pcp_map *req, uint8_t result, uint16_t port, const char *ext,
                          uint8_t out[PCP_MAP_LEN])
{
    struct in_addr client = {0};
    assert_int_equal(pcp_encode_map(req, client, out, PCP_MAP_LEN), PCP_MAP_LEN);
    out[1] = 0x80 | PCP_OP_MAP;
    out[2] = 0;
    out[3] = result;
    out[4] = 0, out[5] = 0, out[6] = 0x02, out[7] = 0x58;   /* 600 s */
    out[8] = 0, out[9] = 0, out[10] = 0x30, out[11] = 0x39; /* epoch 12345 */
    memset(out + 12, 0, 12);
    out[42] = (uint8_t)(port >> 8);
    out[43] = (uint8_t)port;
    struct in_addr a;
    inet_pton(AF_INET, ext, &a);
    memcpy(out + 56, &a.s_addr, 4);
}

static void test_decode_success(void **st)
{
    (void)st;
    pcp_map req = sample_req();
    uint8_t buf[PCP_MAP_LEN];
    make_response(&req, PCP_SUCCESS, 51234, "198.51.100.2", buf);
    pcp_reply r;
    assert_int_equal(pcp_decode_map(buf, sizeof(buf), &r), 0);
    assert_int_equal(r.result, PCP_SUCCESS);
    assert_int_equal(r.map.lifetime, 600);
    assert_int_equal(r.epoch, 12345);
    assert_int_equal(r.map.external_port, 51234);
    assert_int_equal(r.map.internal_port, 40000);
    char s[32];
    inet_ntop(AF_INET, &r.map.external, s, sizeof(s));
    assert_string_equal(s, "198.51.100.2");
    assert_true(pcp_matches(&req, &r));
    /* another nonce, port or protocol is someone else's answer */
    pcp_map other = req;
    other.nonce[5] ^= 1;
    assert_false(pcp_matches(&other, &r));
    other = req;
    other.internal_port = 40002;
    assert_false(pcp_matches(&other, &r));
    other = req;
    other.protocol = 6;
    assert_false(pcp_matches(&other, &r));
    /* options after the body (a multiple of 4) are tolerated */
    uint8_t longer[PCP_MAP_LEN + 8] = {0};
    memcpy(longer, buf, sizeof(buf));
    assert_int_equal(pcp_decode_map(longer, sizeof(longer), &r), 0);
}

static void test_decode_error_result(void **st)
{
    (void)st;
    pcp_map req = sample_req();
    uint8_t buf[PCP_MAP_LEN];
    make_response(&req, PCP_NOT_AUTHORIZED, 0, "0.0.0.0", buf);
    pcp_reply r;
    assert_int_equal(pcp_decode_map(buf, sizeof(buf), &r), 0);
    assert_int_equal(r.result, PCP_NOT_AUTHORIZED);
    assert_string_equal(pcp_result_str(r.result), "NOT_AUTHORIZED");
    assert_string_equal(pcp_result_str(PCP_EXCESSIVE_REMOTE_PEERS), "EXCESSIVE_REMOTE_PEERS");
    assert_string_equal(pcp_result_str(200), "?");
}

static void test_decode_natpmp_answer(void **st)
{
    (void)st;
    /* RFC 6886: version 0, opcode 128 + op, result 1 (unsupported version) */
    const uint8_t natpmp[8] = {0, 0x80 + 1, 0, 1, 0, 0, 0, 7};
    pcp_reply r;
    assert_int_equal(pcp_decode_map(natpmp, sizeof(natpmp), &r), 1);
}

static void test_decode_malformed(void **st)
{
    (void)st;
    pcp_map req = sample_req();
    uint8_t good[PCP_MAP_LEN], b[PCP_MAP_LEN + 4];
    make_response(&req, PCP_SUCCESS, 51234, "198.51.100.2", good);
    pcp_reply r;
    assert_int_equal(pcp_decode_map(good, PCP_MAP_LEN - 4, &r), TALLOW_EBADMSG); /* short */
    memcpy(b, good, PCP_MAP_LEN);
    b[PCP_MAP_LEN] = 0;
    assert_int_equal(pcp_decode_map(b, PCP_MAP_LEN + 1, &r),
                     TALLOW_EBADMSG); /* not a multiple of 4 */
    memcpy(b, good, PCP_MAP_LEN);
    b[1] = PCP_OP_MAP; /* a request, not a response */
    assert_int_equal(pcp_decode_map(b, PCP_MAP_LEN, &r), TALLOW_EBADMSG);
    memcpy(b, good, PCP_MAP_LEN);
    b[1] = 0x80 | 2; /* PEER */
    assert_int_equal(pcp_decode_map(b, PCP_MAP_LEN, &r), TALLOW_EBADMSG);
    memcpy(b, good, PCP_MAP_LEN);
    b[0] = 3;
    assert_int_equal(pcp_decode_map(b, PCP_MAP_LEN, &r), TALLOW_EBADMSG);
    memcpy(b, good, PCP_MAP_LEN);
    b[44] = 0x20; /* an IPv6 address for our IPv4 mapping */
    assert_int_equal(pcp_decode_map(b, PCP_MAP_LEN, &r), TALLOW_EBADMSG);
    memcpy(b, good, PCP_MAP_LEN);
    b[42] = b[43] = 0; /* success with port 0 */
    assert_int_equal(pcp_decode_map(b, PCP_MAP_LEN, &r), TALLOW_EBADMSG);
    uint8_t huge[PCP_MAX_LEN + 4] = {0};
    memcpy(huge, good, PCP_MAP_LEN);
    assert_int_equal(pcp_decode_map(huge, sizeof(huge), &r), TALLOW_EBADMSG);
    assert_int_equal(pcp_decode_map(NULL, 60, &r), TALLOW_EBADMSG);
}

static void test_delete_request(void **st)
{
    (void)st;
    pcp_map m = sample_req();
    m.lifetime = 0;
    struct in_addr client;
    inet_pton(AF_INET, "10.1.0.2", &client);
    uint8_t out[PCP_MAP_LEN];
    assert_int_equal(pcp_encode_map(&m, client, out, sizeof(out)), PCP_MAP_LEN);
    assert_int_equal(out[4] | out[5] | out[6] | out[7], 0);
    assert_memory_equal(out + 24, m.nonce, PCP_NONCE_LEN); /* the same nonce names it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_request),       cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_decode_success),       cmocka_unit_test(test_decode_error_result),
        cmocka_unit_test(test_decode_natpmp_answer), cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_delete_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
