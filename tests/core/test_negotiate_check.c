/* tests/core/test_negotiate_check.c — the negotiator's check datagram (round trips, the wrong
 * key, every flipped byte, every truncation, malformed fields) and RFC 8445 pair ranking from
 * both roles, table-driven. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <tallow/error.h>
#include <tallow/gather.h>

#include "addr_util.h"
#include "negotiate.h"

static const uint8_t key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static const struct row {
    uint8_t type, flags;
    uint32_t prio;
    const char *mapped; /* NULL: none */
    uint16_t port;
} rows[] = {
    {TALLOW__CHECK_REQ, 0, 0, NULL, 0},
    {TALLOW__CHECK_REQ, TALLOW__CHECK_CONTROLLING, 0x6EFFFFFF, NULL, 0},
    {TALLOW__CHECK_REQ, TALLOW__CHECK_CONTROLLING | TALLOW__CHECK_NOMINATE, 1, NULL, 0},
    {TALLOW__CHECK_RESP, 0, 0, "203.0.113.7", 40000},
    {TALLOW__CHECK_RESP, TALLOW__CHECK_NOMINATE, 0, "198.51.100.1", 1},
    {TALLOW__CHECK_RESP, TALLOW__CHECK_CONTROLLING, 0, "2001:db8::42", 65535},
    {TALLOW__CHECK_RESP, 0, 0, NULL, 0},
};

static size_t make(const struct row *r, uint8_t out[TALLOW__CHECK_LEN], tallow__check *c)
{
    memset(c, 0, sizeof(*c));
    c->type = r->type;
    c->flags = r->flags;
    c->priority = r->prio;
    for (int i = 0; i < TALLOW__CHECK_TXID; i++)
        c->txid[i] = (uint8_t)(0xA0 + i);
    if (r->mapped) c->mapped_len = mkaddr(r->mapped, r->port, &c->mapped);
    int n = tallow__check_encode(key, c, out);
    assert_int_equal(n, TALLOW__CHECK_LEN);
    return (size_t)n;
}

static void test_check_round_trip(void **state)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t buf[TALLOW__CHECK_LEN];
        tallow__check in, out;
        make(&rows[i], buf, &in);
        assert_true(buf[0] >= 20 && buf[0] <= 63); /* the endpoint's CHECK class */
        assert_int_equal(tallow__check_parse(key, buf, sizeof(buf), &out), 0);
        assert_int_equal(out.type, in.type);
        assert_int_equal(out.flags, in.flags);
        assert_int_equal(out.priority, in.priority);
        assert_memory_equal(out.txid, in.txid, TALLOW__CHECK_TXID);
        assert_int_equal(out.mapped_len, in.mapped_len);
        if (in.mapped_len) assert_memory_equal(&out.mapped, &in.mapped, in.mapped_len);
    }
}

static void test_check_wrong_key_refused(void **state)
{
    uint8_t other[32];
    memcpy(other, key, 32);
    other[31] ^= 1;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t buf[TALLOW__CHECK_LEN];
        tallow__check in, out;
        make(&rows[i], buf, &in);
        assert_int_equal(tallow__check_parse(other, buf, sizeof(buf), &out), TALLOW_ECRYPTO);
    }
}

static void test_check_every_flipped_bit_refused(void **state)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t buf[TALLOW__CHECK_LEN];
        tallow__check in, out;
        make(&rows[i], buf, &in);
        for (size_t b = 0; b < sizeof(buf) * 8; b++) {
            buf[b / 8] ^= (uint8_t)(1u << (b % 8));
            int rc = tallow__check_parse(key, buf, sizeof(buf), &out);
            assert_true(rc == TALLOW_ECRYPTO || rc == TALLOW_EBADMSG);
            buf[b / 8] ^= (uint8_t)(1u << (b % 8));
        }
    }
}

static void test_check_every_length_refused(void **state)
{
    uint8_t buf[TALLOW__CHECK_LEN + 8];
    tallow__check in, out;
    make(&rows[3], buf, &in);
    memset(buf + TALLOW__CHECK_LEN, 0, 8);
    for (size_t n = 0; n <= sizeof(buf); n++) {
        if (n == TALLOW__CHECK_LEN) continue;
        assert_int_equal(tallow__check_parse(key, buf, n, &out), TALLOW_EBADMSG);
        assert_int_equal(out.type, 0);
    }
    assert_int_equal(tallow__check_parse(key, NULL, TALLOW__CHECK_LEN, &out), TALLOW_EBADMSG);
}

/* Well-MAC'd datagrams with bad fields: a peer with the key still cannot send nonsense. */
static void test_check_malformed_fields_refused(void **state)
{
    static const struct {
        size_t off;
        uint8_t val;
    } bad[] = {
        {0, 0x2C},   /* unknown type */
        {0, 0x15},   /* another CHECK-class byte */
        {1, 0x04},   /* unknown flag */
        {2, 2},      /* version */
        {3, 1},      /* reserved */
        {20, 5},     /* address family */
        {20 + 7, 1}, /* bytes after an IPv4 address */
        {39, 1},     /* padding */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t buf[TALLOW__CHECK_LEN];
        tallow__check in, out;
        make(&rows[3], buf, &in);
        buf[bad[i].off] = bad[i].val;
        crypto_generichash(buf + 40, 16, buf, 40, key, 32); /* re-MAC: only the field is wrong */
        assert_int_equal(tallow__check_parse(key, buf, sizeof(buf), &out), TALLOW_EBADMSG);
    }
    /* a request must not carry an address */
    uint8_t buf[TALLOW__CHECK_LEN];
    tallow__check in, out;
    make(&rows[0], buf, &in);
    buf[20] = 4;
    buf[21] = 1;
    crypto_generichash(buf + 40, 16, buf, 40, key, 32);
    assert_int_equal(tallow__check_parse(key, buf, sizeof(buf), &out), TALLOW_EBADMSG);
}

static void test_check_encode_refuses_bad_input(void **state)
{
    uint8_t buf[TALLOW__CHECK_LEN];
    tallow__check c = {.type = 0x40};
    assert_int_equal(tallow__check_encode(key, &c, buf), TALLOW_EINVAL);
    c.type = TALLOW__CHECK_RESP;
    c.mapped_len = sizeof(struct sockaddr_in);
    c.mapped.ss_family = AF_UNIX;
    assert_int_equal(tallow__check_encode(key, &c, buf), TALLOW_EINVAL);
}

/* RFC 8445 candidate priorities (test_candidate checks tallow_candidate_priority against these) */
#define PRIO(type, lp) (((uint32_t)(type) << 24) + ((uint32_t)(lp) << 8) + 255u)
#define HOST(lp) PRIO(126, lp)
#define PRFLX(lp) PRIO(110, lp)
#define SRFLX(lp) PRIO(100, lp)

static void test_pair_priority_by_role(void **state)
{
    static const struct {
        uint32_t g, d;
    } rows2[] = {
        {1, 2}, {2, 1}, {7, 7}, {0xFFFFFFFFu, 0}, {0, 0xFFFFFFFFu},
    };
    for (size_t i = 0; i < sizeof(rows2) / sizeof(rows2[0]); i++) {
        uint64_t g = rows2[i].g, d = rows2[i].d;
        uint64_t want = ((g < d ? g : d) << 32) + 2 * (g > d ? g : d) + (g > d ? 1 : 0);
        /* the controlling side's candidate is G; both sides compute the same number */
        assert_true(tallow__neg_pair_priority(1, rows2[i].g, rows2[i].d) == want);
        assert_true(tallow__neg_pair_priority(0, rows2[i].d, rows2[i].g) == want);
    }
}

static void test_pair_ranking(void **state)
{
    static const struct {
        int controlling;
        tallow__neg_rank p[4];
        size_t n;
        int want;
    } rows2[] = {
        /* nothing valid */
        {1, {{HOST(65535), HOST(65535), 0}, {SRFLX(65535), SRFLX(65535), 0}}, 2, -1},
        {1, {{0}}, 0, -1},
        /* host/host beats srflx/srflx when both work */
        {1, {{SRFLX(65535), SRFLX(65535), 1}, {HOST(65535), HOST(65535), 1}}, 2, 1},
        {0, {{SRFLX(65535), SRFLX(65535), 1}, {HOST(65535), HOST(65535), 1}}, 2, 1},
        /* the better pair did not answer: the working one wins */
        {1, {{HOST(65535), HOST(65535), 0}, {SRFLX(65535), SRFLX(65535), 1}}, 2, 1},
        /* peer-reflexive (110) ranks above server-reflexive (100) */
        {1, {{SRFLX(65535), SRFLX(1), 1}, {PRFLX(65535), SRFLX(1), 1}}, 2, 1},
        /* the pair's weaker side decides: host+srflx loses to prflx+prflx */
        {1, {{HOST(65535), SRFLX(65535), 1}, {PRFLX(65535), PRFLX(65535), 1}}, 2, 1},
        /* equal pairs: the first */
        {0, {{HOST(100), HOST(100), 1}, {HOST(100), HOST(100), 1}}, 2, 0},
        /* local preference breaks type ties; the role picks which side is G */
        {1, {{HOST(10), HOST(20), 1}, {HOST(20), HOST(10), 1}}, 2, 1},
        {0, {{HOST(10), HOST(20), 1}, {HOST(20), HOST(10), 1}}, 2, 0},
    };
    assert_int_equal(HOST(7), tallow_candidate_priority(TALLOW_CAND_HOST, 7));
    assert_int_equal(SRFLX(7), tallow_candidate_priority(TALLOW_CAND_SRFLX, 7));
    assert_int_equal(PRFLX(7), tallow_candidate_priority(TALLOW_CAND_PRFLX, 7));
    for (size_t i = 0; i < sizeof(rows2) / sizeof(rows2[0]); i++)
        assert_int_equal(tallow__neg_best(rows2[i].controlling, rows2[i].p, rows2[i].n),
                         rows2[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_round_trip),
        cmocka_unit_test(test_check_wrong_key_refused),
        cmocka_unit_test(test_check_every_flipped_bit_refused),
        cmocka_unit_test(test_check_every_length_refused),
        cmocka_unit_test(test_check_malformed_fields_refused),
        cmocka_unit_test(test_check_encode_refuses_bad_input),
        cmocka_unit_test(test_pair_priority_by_role),
        cmocka_unit_test(test_pair_ranking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
