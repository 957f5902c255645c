/* tests/core/test_negotiate_bday.c — hard-NAT punching's pure parts: a NAT's mapping behaviour
 * from one socket's srflx candidates, the peer's from its offers' foundations, who plays which
 * side, and the easy side's port choice (sequential prediction first: the nearest ports again and
 * again, then a wider window; then random, in range). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <tallow/ctx.h>
#include <tallow/gather.h>

#include "negotiate.h"

static tallow_ctx *g_ctx; /* for the module's log lines */

static tallow_candidate cand(uint32_t kind, const char *ip, uint16_t port)
{
    tallow_candidate c;
    memset(&c, 0, sizeof(c));
    struct sockaddr_in *a = (struct sockaddr_in *)&c.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    c.addr_len = sizeof(*a);
    c.kind = kind;
    return c;
}

static void test_classify(void **st)
{
    (void)st;
    tallow_candidate one[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000)};
    tallow_candidate two[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000),
                              cand(TALLOW_CAND_SRFLX, "198.51.100.2", 51000)};
    tallow_candidate twoip[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000),
                                cand(TALLOW_CAND_SRFLX, "203.0.113.9", 5000)};
    tallow_candidate host[] = {cand(TALLOW_CAND_HOST, "10.1.0.2", 4000),
                               cand(TALLOW_CAND_HOST, "10.1.0.3", 4001)};
    /* one mapping seen by two servers: endpoint-independent */
    assert_int_equal(tallow__bday_classify(one, 1, 2), TALLOW__NAT_EIM);
    /* by one server only: nothing learned */
    assert_int_equal(tallow__bday_classify(one, 1, 1), TALLOW__NAT_UNKNOWN);
    /* two ports for one address: endpoint-dependent, whatever the server count */
    assert_int_equal(tallow__bday_classify(two, 2, 2), TALLOW__NAT_EDM);
    assert_int_equal(tallow__bday_classify(two, 2, 1), TALLOW__NAT_EDM);
    /* two addresses (two NATs, or a multihomed host): no conclusion */
    assert_int_equal(tallow__bday_classify(twoip, 2, 2), TALLOW__NAT_UNKNOWN);
    /* host candidates say nothing about mapping */
    assert_int_equal(tallow__bday_classify(host, 2, 2), TALLOW__NAT_UNKNOWN);
    assert_int_equal(tallow__bday_classify(NULL, 0, 2), TALLOW__NAT_UNKNOWN);
}

static void offer(tallow__bday *b, const char *ip, uint16_t port, const char *f)
{
    tallow_candidate c = cand(TALLOW_CAND_SRFLX, ip, port);
    tallow__bday_remote(b, (struct sockaddr *)&c.addr, c.addr_len, (const uint8_t *)f, strlen(f));
}

static void test_roles(void **st)
{
    (void)st;
    uint8_t key[32] = {0};
    tallow__bday b;
    tallow_candidate two[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000),
                              cand(TALLOW_CAND_SRFLX, "198.51.100.2", 51000)};
    tallow_candidate one[] = {cand(TALLOW_CAND_SRFLX, "203.0.113.2", 7000)};

    /* hard us, easy peer: the hard side; our foundation says so */
    tallow__bday_init(&b, g_ctx, NULL, key, 1, NULL, NULL);
    assert_string_equal(tallow__bday_foundation(&b), "srflx");
    tallow__bday_local(&b, two, 2, 2);
    assert_string_equal(tallow__bday_foundation(&b), "srflx/edm");
    offer(&b, "203.0.113.2", 7000, "srflx/eim");
    tallow__bday_maybe_start(&b);
    assert_int_equal(b.role, 1);
    assert_true(tallow__bday_running(&b));
    assert_true(tallow__bday_is_probe(&b, b.txid));
    uint8_t other[TALLOW__CHECK_TXID];
    memcpy(other, b.txid, sizeof(other));
    other[0] ^= 1;
    assert_false(tallow__bday_is_probe(&b, other));
    tallow__bday_stop(&b, NULL);
    assert_false(tallow__bday_running(&b));

    /* easy us, hard peer: the easy side, probing the peer's address */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    assert_string_equal(tallow__bday_foundation(&b), "srflx/eim");
    offer(&b, "198.51.100.2", 4000, "srflx/edm");
    offer(&b, "198.51.100.2", 51000, "srflx/edm");
    tallow__bday_maybe_start(&b);
    assert_int_equal(b.role, 2);
    assert_int_equal(b.seq_next, 0); /* 47000 apart: random allocation, no prediction */

    /* both hard, both easy, or a peer that did not say: nothing */
    const char *peer_f[] = {"srflx/edm", "srflx/eim", "srflx", "srflx/xyz"};
    for (int mine = 0; mine < 2; mine++)
        for (int i = 0; i < 4; i++) {
            if ((mine == 0 && i == 1) || (mine == 1 && i == 0)) continue; /* the cases above */
            tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
            tallow__bday_local(&b, mine == 0 ? two : one, mine == 0 ? 2 : 1, 2);
            offer(&b, "198.51.100.2", 4000, peer_f[i]);
            tallow__bday_maybe_start(&b);
            assert_int_equal(b.role, 0);
            assert_false(tallow__bday_running(&b));
            assert_false(tallow__bday_is_probe(&b, b.txid));
        }
}

static void test_ports(void **st)
{
    (void)st;
    uint8_t key[32] = {0};
    tallow__bday b;
    tallow_candidate one[] = {cand(TALLOW_CAND_SRFLX, "203.0.113.2", 7000)};
    /* a sequential allocator: the peer's two mappings 2 apart */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 30000, "srflx/edm");
    offer(&b, "198.51.100.2", 30002, "srflx/edm");
    tallow__bday_maybe_start(&b);
    assert_int_equal(b.role, 2);
    /* the nearest predicted ports swept TALLOW__BDAY_SEQ_PASSES times, then the whole window
     * the hard side's sockets may take (the next 320 ports) once */
    for (int pass = 0; pass < TALLOW__BDAY_SEQ_PASSES; pass++)
        for (uint32_t i = 1; i <= TALLOW__BDAY_SEQ_NEAR; i++)
            assert_int_equal(tallow__bday_next_port(&b), 30002 + i);
    for (uint32_t i = 1; i <= TALLOW__BDAY_SOCKS + 64; i++)
        assert_int_equal(tallow__bday_next_port(&b), 30002 + i);
    /* then random ones, never below 1024 */
    int differ = 0;
    uint16_t prev = 0;
    for (int i = 0; i < 5000; i++) {
        uint16_t p = tallow__bday_next_port(&b);
        assert_true(p >= 1024);
        differ += p != prev;
        prev = p;
    }
    assert_true(differ > 4900);
    assert_int_equal(b.seq_next, 0); /* the prediction is over */
    /* the prediction stops at 65535 */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 65530, "srflx/edm");
    offer(&b, "198.51.100.2", 65533, "srflx/edm");
    tallow__bday_maybe_start(&b);
    for (int pass = 0; pass < TALLOW__BDAY_SEQ_PASSES + 1; pass++) {
        assert_int_equal(tallow__bday_next_port(&b), 65534);
        assert_int_equal(tallow__bday_next_port(&b), 65535);
    }
    assert_true(tallow__bday_next_port(&b) >= 1024);
    assert_int_equal(b.seq_next, 0);
    /* the highest port seen is 65535: nothing above it to predict */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 65530, "srflx/edm");
    offer(&b, "198.51.100.2", 65535, "srflx/edm");
    tallow__bday_maybe_start(&b);
    assert_true(tallow__bday_next_port(&b) >= 1024);
    assert_int_equal(b.seq_next, 0);
    /* ports 17 apart: too far for a sequential allocator, random probing from the start */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 40000, "srflx/edm");
    offer(&b, "198.51.100.2", 40017, "srflx/edm");
    tallow__bday_maybe_start(&b);
    assert_int_equal(b.role, 2);
    assert_int_equal(b.seq_next, 0);
    /* offered high port first: the window still starts after the highest */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 40001, "srflx/edm");
    offer(&b, "198.51.100.2", 40000, "srflx/edm");
    tallow__bday_maybe_start(&b);
    assert_int_equal(tallow__bday_next_port(&b), 40002);
    assert_int_equal(tallow__bday_next_port(&b), 40003);
    /* probing started on the first offer (random ports); the second shows the sequence: the
     * prediction starts then, after the highest port */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 40000, "srflx/edm");
    tallow__bday_maybe_start(&b);
    assert_int_equal(b.role, 2);
    assert_int_equal(b.seq_next, 0);
    offer(&b, "198.51.100.2", 40001, "srflx/edm");
    assert_int_equal(tallow__bday_next_port(&b), 40002);
    offer(&b, "198.51.100.2", 40003, "srflx/edm"); /* a third server: from the new highest */
    assert_int_equal(tallow__bday_next_port(&b), 40004);
    offer(&b, "198.51.100.2", 40002, "srflx/edm"); /* not higher: the prediction goes on */
    assert_int_equal(tallow__bday_next_port(&b), 40005);
    offer(&b, "198.51.100.2", 60000, "srflx/edm"); /* now far apart: random allocation */
    assert_int_equal(b.seq_next, 0);
    assert_true(tallow__bday_next_port(&b) >= 1024);
    /* the lower port offered second: predicted from the first (the highest) */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 40001, "srflx/edm");
    tallow__bday_maybe_start(&b);
    assert_int_equal(b.seq_next, 0);
    offer(&b, "198.51.100.2", 40000, "srflx/edm");
    assert_int_equal(tallow__bday_next_port(&b), 40002);
    assert_int_equal(tallow__bday_next_port(&b), 40003);
    offer(&b, "198.51.100.2", 40001, "srflx/edm"); /* seen before: the prediction goes on */
    assert_int_equal(tallow__bday_next_port(&b), 40004);
    /* a peer that is not hard: no probing, no prediction */
    tallow__bday_init(&b, g_ctx, NULL, key, 0, NULL, NULL);
    tallow__bday_local(&b, one, 1, 2);
    offer(&b, "198.51.100.2", 40000, "srflx/eim");
    offer(&b, "198.51.100.2", 40001, "srflx/eim");
    tallow__bday_maybe_start(&b);
    assert_int_equal(b.role, 0);
    assert_int_equal(b.seq_next, 0);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    g_ctx = tallow_ctx_new();
    if (!g_ctx) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_ports),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tallow_ctx_free(g_ctx);
    return rc;
}
