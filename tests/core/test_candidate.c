/* tests/core/test_candidate.c — ICE priorities, candidate address validation and the address
 * wire form, table-driven over IPv4 and IPv6 (round trips, every truncation, bad families). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <tallow/error.h>
#include <tallow/gather.h>

#include "addr_util.h"

static void test_candidate_priority_formula(void **state)
{
    static const struct {
        uint32_t kind, local;
        uint32_t want;
    } rows[] = {
        {TALLOW_CAND_HOST, 65535, (126u << 24) + (65535u << 8) + 255},
        {TALLOW_CAND_HOST, 0, (126u << 24) + 255},
        {TALLOW_CAND_PRFLX, 65535, (110u << 24) + (65535u << 8) + 255},
        {TALLOW_CAND_SRFLX, 65535, (100u << 24) + (65535u << 8) + 255},
        {TALLOW_CAND_SRFLX, 1000, (100u << 24) + (1000u << 8) + 255},
        {TALLOW_CAND_RELAYED, 65535, (65535u << 8) + 255},
        {TALLOW_CAND_RELAYED, 0, 255},
        {TALLOW_CAND_HOST, 70000, (126u << 24) + (65535u << 8) + 255}, /* clamped */
        {99, 10, (10u << 8) + 255},                                    /* unknown kind */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(tallow_candidate_priority(rows[i].kind, rows[i].local), rows[i].want);
    /* The type preference dominates any local preference. */
    assert_true(tallow_candidate_priority(TALLOW_CAND_HOST, 0) >
                tallow_candidate_priority(TALLOW_CAND_PRFLX, 65535));
    assert_true(tallow_candidate_priority(TALLOW_CAND_PRFLX, 0) >
                tallow_candidate_priority(TALLOW_CAND_SRFLX, 65535));
    assert_true(tallow_candidate_priority(TALLOW_CAND_SRFLX, 0) >
                tallow_candidate_priority(TALLOW_CAND_RELAYED, 65535));
}

static void test_candidate_pair_priority(void **state)
{
    static const struct {
        uint32_t g, d;
        uint64_t want;
    } rows[] = {
        {1, 1, (1ull << 32) + 2},
        {2, 1, (1ull << 32) + 4 + 1},
        {1, 2, (1ull << 32) + 4},
        {0, 0, 0},
        {0xFFFFFFFFu, 0xFFFFFFFFu, (0xFFFFFFFFull << 32) + 2 * 0xFFFFFFFFull},
        {0xFFFFFFFFu, 0, 2 * 0xFFFFFFFFull + 1},
        {2130706431u, 1694498815u, (1694498815ull << 32) + 2 * 2130706431ull + 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_true(tallow_pair_priority(rows[i].g, rows[i].d) == rows[i].want);
    /* Both sides compute the same value when they agree on who controls. */
    assert_true(tallow_pair_priority(7, 9) != tallow_pair_priority(9, 7));
}

static void test_candidate_validate_table(void **state)
{
    static const struct {
        const char *ip;
        uint16_t port;
        int ok_strict;   /* expected with allow_loopback = 0 */
        int ok_loopback; /* expected with allow_loopback = 1 */
    } rows[] = {
        {"192.0.2.1", 5000, 1, 1},
        {"10.0.0.1", 1, 1, 1},
        {"172.16.5.4", 65535, 1, 1},
        {"192.168.1.20", 4242, 1, 1},
        {"8.8.8.8", 53, 1, 1},
        {"1.2.3.4", 0, 0, 0},            /* port 0 */
        {"0.0.0.0", 5000, 0, 0},         /* unspecified */
        {"0.1.2.3", 5000, 0, 0},         /* "this network" */
        {"127.0.0.1", 5000, 0, 1},       /* loopback */
        {"127.255.255.254", 5000, 0, 1}, /* all of 127/8 */
        {"169.254.0.1", 5000, 0, 0},     /* link-local */
        {"169.254.255.255", 5000, 0, 0},
        {"169.253.255.255", 5000, 1, 1}, /* just outside link-local */
        {"169.255.0.0", 5000, 1, 1},
        {"255.255.255.255", 5000, 0, 0}, /* broadcast */
        {"224.0.0.1", 5000, 0, 0},       /* multicast */
        {"239.255.255.250", 1900, 0, 0},
        {"223.255.255.255", 5000, 1, 1}, /* just below multicast */
        {"128.0.0.1", 5000, 1, 1},
        {"126.255.255.255", 5000, 1, 1},
        {"2001:db8::1", 5000, 1, 1},
        {"2001:db8::1", 0, 0, 0},
        {"fd00::1", 5000, 1, 1}, /* ULA is fine */
        {"::", 5000, 0, 0},
        {"::1", 5000, 0, 1},
        {"::2", 5000, 0, 0}, /* ::/96, IPv4-compatible */
        {"::192.0.2.1", 5000, 0, 0},
        {"::1:0:0:1", 5000, 1, 1}, /* outside ::/96 */
        {"240.0.0.1", 5000, 0, 0}, /* 240/4 reserved */
        {"254.255.255.255", 5000, 0, 0},
        {"64:ff9b::c000:201", 5000, 0, 0}, /* NAT64 well-known prefix */
        {"64:ff9b:1::1", 5000, 1, 1},      /* outside the /96 */
        {"2002:c000:201::1", 5000, 0, 0},  /* 6to4 */
        {"2003::1", 5000, 1, 1},
        {"100::1", 5000, 0, 0}, /* discard-only 100::/64 */
        {"100:0:0:1::1", 5000, 1, 1},
        {"fe80::1", 5000, 0, 0},
        {"febf:ffff::1", 5000, 0, 0}, /* still fe80::/10 */
        {"fec0::1", 5000, 0, 0},      /* fec0::/10 site-local (deprecated) */
        {"feff::1", 5000, 0, 0},
        {"fd00::2", 5000, 1, 1},
        {"ff02::1", 5000, 0, 0},
        {"ff0e::1", 5000, 0, 0},
        {"::ffff:192.0.2.1", 5000, 1, 1},
        {"::ffff:127.0.0.1", 5000, 0, 1},
        {"::ffff:0.0.0.0", 5000, 0, 0},
        {"::ffff:169.254.1.1", 5000, 0, 0},
        {"::ffff:255.255.255.255", 5000, 0, 0},
        {"::ffff:224.1.2.3", 5000, 0, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct sockaddr_storage ss;
        socklen_t len = mkaddr(rows[i].ip, rows[i].port, &ss);
        int r0 = tallow_validate_candidate_addr((struct sockaddr *)&ss, len, 0);
        int r1 = tallow_validate_candidate_addr((struct sockaddr *)&ss, len, 1);
        if (r0 != (rows[i].ok_strict ? 0 : TALLOW_EINVAL) ||
            r1 != (rows[i].ok_loopback ? 0 : TALLOW_EINVAL))
            fail_msg("row %zu (%s port %u): got %d/%d", i, rows[i].ip, rows[i].port, r0, r1);
    }
}

static void test_candidate_validate_bad_lengths(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = mkaddr("192.0.2.1", 80, &ss);
    const struct sockaddr *sa = (struct sockaddr *)&ss;
    assert_int_equal(tallow_validate_candidate_addr(sa, len, 0), 0);
    assert_int_equal(tallow_validate_candidate_addr(sa, sizeof(ss), 0), 0);
    assert_int_equal(tallow_validate_candidate_addr(sa, len - 1, 0), TALLOW_EINVAL);
    assert_int_equal(tallow_validate_candidate_addr(sa, 0, 0), TALLOW_EINVAL);
    assert_int_equal(tallow_validate_candidate_addr(sa, sizeof(ss) + 1, 0), TALLOW_EINVAL);
    assert_int_equal(tallow_validate_candidate_addr(NULL, len, 1), TALLOW_EINVAL);
    len = mkaddr("2001:db8::5", 80, &ss);
    assert_int_equal(tallow_validate_candidate_addr(sa, len, 0), 0);
    assert_int_equal(tallow_validate_candidate_addr(sa, sizeof(struct sockaddr_in), 0),
                     TALLOW_EINVAL);
    ss.ss_family = AF_UNIX;
    assert_int_equal(tallow_validate_candidate_addr(sa, sizeof(ss), 1), TALLOW_EINVAL);
}

static void test_candidate_encode_round_trip(void **state)
{
    static const struct {
        const char *ip;
        uint16_t port;
        const char *str;
    } rows[] = {
        {"192.0.2.1", 32853, "192.0.2.1:32853"},
        {"0.0.0.0", 0, "0.0.0.0:0"},
        {"255.255.255.255", 65535, "255.255.255.255:65535"},
        {"10.1.2.3", 1, "10.1.2.3:1"},
        {"2001:db8:1234:5678:11:2233:4455:6677", 32853,
         "[2001:db8:1234:5678:11:2233:4455:6677]:32853"},
        {"::1", 443, "[::1]:443"},
        {"::", 0, "[::]:0"},
        {"::ffff:1.2.3.4", 9, "[::ffff:1.2.3.4]:9"},
        {"fe80::abcd", 256, "[fe80::abcd]:256"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct sockaddr_storage ss, back;
        socklen_t len = mkaddr(rows[i].ip, rows[i].port, &ss), blen = 0;
        uint8_t wire[32];
        char s[80];
        int n = tallow_sockaddr_encode((struct sockaddr *)&ss, len, wire, sizeof(wire));
        assert_int_equal(n, ss.ss_family == AF_INET ? 7 : 19);
        assert_int_equal(wire[0], ss.ss_family == AF_INET ? 4 : 6);
        assert_int_equal((wire[1] << 8) | wire[2], rows[i].port);
        assert_int_equal(tallow_sockaddr_decode(wire, (size_t)n, &back, &blen), 0);
        assert_int_equal(blen, len);
        assert_memory_equal(&back, &ss, len);
        assert_string_equal(tallow_sockaddr_str((struct sockaddr *)&back, s, sizeof(s)),
                            rows[i].str);
        /* Every truncation and one byte too many fail. */
        for (int cut = 0; cut < n; cut++)
            assert_int_equal(tallow_sockaddr_decode(wire, (size_t)cut, &back, &blen),
                             TALLOW_EBADMSG);
        wire[n] = 0;
        assert_int_equal(tallow_sockaddr_decode(wire, (size_t)n + 1, &back, &blen), TALLOW_EBADMSG);
        /* An output buffer one byte short fails without writing past it. */
        uint8_t small[19];
        memset(small, 0xAA, sizeof(small));
        assert_int_equal(tallow_sockaddr_encode((struct sockaddr *)&ss, len, small, (size_t)n - 1),
                         TALLOW_ETOOBIG);
    }
}

static void test_candidate_decode_bad_family(void **state)
{
    uint8_t w7[7] = {6, 0, 80, 1, 2, 3, 4};
    uint8_t w19[19] = {4, 0, 80};
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(tallow_sockaddr_decode(w7, sizeof(w7), &ss, &len), TALLOW_EBADMSG);
    assert_int_equal(tallow_sockaddr_decode(w19, sizeof(w19), &ss, &len), TALLOW_EBADMSG);
    for (int fam = 0; fam < 256; fam++) {
        if (fam == 4) continue;
        w7[0] = (uint8_t)fam;
        assert_int_equal(tallow_sockaddr_decode(w7, sizeof(w7), &ss, &len), TALLOW_EBADMSG);
    }
    assert_int_equal(tallow_sockaddr_decode(NULL, 7, &ss, &len), TALLOW_EINVAL);
}

static void test_candidate_encode_bad_input(void **state)
{
    struct sockaddr_storage ss;
    uint8_t out[32];
    socklen_t len = mkaddr("1.2.3.4", 5, &ss);
    assert_int_equal(tallow_sockaddr_encode((struct sockaddr *)&ss, len - 1, out, sizeof(out)),
                     TALLOW_EINVAL);
    ss.ss_family = AF_UNIX;
    assert_int_equal(tallow_sockaddr_encode((struct sockaddr *)&ss, sizeof(ss), out, sizeof(out)),
                     TALLOW_EINVAL);
    char s[8];
    /* A short string buffer truncates, never overflows. */
    len = mkaddr("192.168.100.200", 65535, &ss);
    assert_string_equal(tallow_sockaddr_str((struct sockaddr *)&ss, s, sizeof(s)), "192.168");
}

/* ::ffff:a.b.c.d becomes a.b.c.d with its port; every other address (IPv6, IPv4, mapped-looking
 * but not mapped, too short) is left exactly as it was. */
static void test_candidate_unmap(void **state)
{
    (void)state;
    static const struct {
        const char *ip, *want; /* want NULL: unchanged */
    } rows[] = {
        {"::ffff:192.0.2.1", "192.0.2.1:4433"},
        {"::ffff:127.0.0.1", "127.0.0.1:4433"},
        {"::ffff:0.0.0.0", "0.0.0.0:4433"},
        {"2001:db8::1", NULL},
        {"::1", NULL},
        {"::192.0.2.1", NULL},        /* IPv4-compatible, not mapped */
        {"::fffe:192.0.2.1", NULL},   /* one bit off */
        {"64:ff9b::192.0.2.1", NULL}, /* NAT64: a real IPv6 destination */
        {"198.51.100.7", NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct sockaddr_storage ss, before;
        socklen_t len = mkaddr(rows[i].ip, 4433, &ss);
        before = ss;
        socklen_t n = tallow_sockaddr_unmap(&ss, len);
        if (!rows[i].want) {
            assert_int_equal(n, len);
            assert_memory_equal(&ss, &before, sizeof(ss));
            continue;
        }
        char s[64];
        assert_int_equal(n, sizeof(struct sockaddr_in));
        assert_int_equal(ss.ss_family, AF_INET);
        assert_string_equal(tallow_sockaddr_str((struct sockaddr *)&ss, s, sizeof(s)),
                            rows[i].want);
        /* and validated as the IPv4 address it is */
        char host[32];
        snprintf(host, sizeof(host), "%.*s", (int)(strrchr(rows[i].want, ':') - rows[i].want),
                 rows[i].want);
        struct sockaddr_storage v4;
        socklen_t v4len = mkaddr(host, 4433, &v4);
        assert_memory_equal(&ss, &v4, sizeof(ss));
        assert_int_equal(tallow_validate_candidate_addr((struct sockaddr *)&ss, n, 1),
                         tallow_validate_candidate_addr((struct sockaddr *)&v4, v4len, 1));
    }
    /* a mapped address cut short is not read past its length */
    struct sockaddr_storage ss;
    socklen_t len = mkaddr("::ffff:192.0.2.1", 1, &ss);
    assert_int_equal(tallow_sockaddr_unmap(&ss, len - 1), len - 1);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(tallow_sockaddr_unmap(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_candidate_priority_formula),
        cmocka_unit_test(test_candidate_pair_priority),
        cmocka_unit_test(test_candidate_validate_table),
        cmocka_unit_test(test_candidate_validate_bad_lengths),
        cmocka_unit_test(test_candidate_encode_round_trip),
        cmocka_unit_test(test_candidate_decode_bad_family),
        cmocka_unit_test(test_candidate_encode_bad_input),
        cmocka_unit_test(test_candidate_unmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
