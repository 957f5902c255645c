/* tests/core/test_negotiate_pairs.c — the negotiator's pairing and nomination
 * (core/session/negotiate.c) on a negotiator built by hand around a real UDP endpoint on loopback
 * (no session, no peer): offers become pairs once (an offer names what a check taught us), families
 * the endpoint does not carry and the pair limit are refused; checks go out highest remote priority
 * first, one per tick, a pair waiting NEG_RTO_MS before its next try; an authenticated answer makes
 * its pair valid (a reflected check, a forged MAC or an unknown transaction does not); the
 * controlling side nominates the valid pair of highest pair priority, at once when nothing
 * better can still turn up, else after NEG_SETTLE_MS; the nominating check goes before any other.
 * negotiate.c and negotiate_path.c are compiled into this file for their internals. */
#include "../../core/session/negotiate.c"
#include "../../core/session/negotiate_path.c"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static tallow_ctx *ctx;
static tallow__neg *n;
/* Stands for a QUIC channel already open (tallow__neg_open_quic then does nothing): the tests
 * build no session and load no transport. Never dereferenced. */
static int quic_open_mark;
#define QUIC_OPEN ((tallow_channel *)(void *)&quic_open_mark)

static socklen_t v4(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return sizeof *a;
}

static int setup(void **state)
{
    (void)state;
    ctx = tallow_ctx_new();
    assert_non_null(ctx);
    tallow_ctx_set_log_level(ctx, TALLOW_LOG_ERROR);
    n = calloc(1, sizeof *n);
    assert_non_null(n);
    n->ctx = ctx;
    n->loop = tallow_ctx_loop(ctx);
    n->state = TALLOW__NEG_PENDING;
    n->controlling = 1;
    n->allow_loopback = 1;
    n->nominated = -1;
    for (int i = 0; i < 32; i++)
        n->check_key[i] = (uint8_t)(i * 3 + 1);
    assert_int_equal(tallow_udp_open(ctx, NULL, 0, &n->udp), 0);
    n->v4 = 1; /* the pairs below are IPv4 */
    n->v6 = 0;
    /* our host candidate */
    tallow_candidate *c = &n->local[n->nlocal++];
    memset(c, 0, sizeof *c);
    c->kind = TALLOW_CAND_HOST;
    c->priority = tallow_candidate_priority(TALLOW_CAND_HOST, 65535);
    c->addr_len = v4("127.0.0.1", 40000, &c->addr);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tallow__neg_stop_timer(&n->settle);
    tallow_udp_close(n->udp);
    free(n);
    tallow_ctx_free(ctx);
    return 0;
}

static neg_pair *offer(const char *ip, uint16_t port, uint32_t kind, uint32_t pref)
{
    struct sockaddr_storage a;
    socklen_t len = v4(ip, port, &a);
    return pair_add(n, (struct sockaddr *)&a, len, kind, tallow_candidate_priority(kind, pref),
                    n->udp);
}

/* Which pair the next tick checks (NULL: none), by the try it added. */
static neg_pair *tick(void)
{
    int before[NEG_MAX_PAIRS];
    for (size_t i = 0; i < n->npairs; i++)
        before[i] = n->pairs[i].tries;
    tallow__neg_tick(NULL, n);
    neg_pair *sent = NULL;
    for (size_t i = 0; i < n->npairs; i++)
        if (n->pairs[i].tries != before[i]) {
            assert_null(sent); /* one check per tick */
            sent = &n->pairs[i];
        }
    return sent;
}

/* An answer from the pair's address to its outstanding check, as the peer (controlled) sends. */
static void answer_tx(neg_pair *p, uint8_t flags, const uint8_t *key, const uint8_t *txid)
{
    tallow__check c = {.type = TALLOW__CHECK_RESP, .flags = flags};
    memcpy(c.txid, txid, sizeof c.txid);
    socklen_t ml = v4("127.0.0.1", 40000, &c.mapped); /* it saw our host candidate */
    c.mapped_len = ml;
    uint8_t buf[TALLOW__CHECK_LEN];
    assert_int_equal(tallow__check_encode(key, &c, buf), TALLOW__CHECK_LEN);
    on_check(n->udp, (struct sockaddr *)&p->addr, p->len, buf, sizeof buf, n);
}

static void answer(neg_pair *p, uint8_t flags, const uint8_t *key)
{
    answer_tx(p, flags, key, p->txid);
}

static void test_pairs_once_and_refusals(void **state)
{
    (void)state;
    neg_pair *p = offer("127.0.0.2", 5000, TALLOW_CAND_PRFLX, 65535); /* learned from its check */
    assert_non_null(p);
    assert_int_equal(p->state, P_WAITING);
    assert_int_equal(p->local_prio, n->local[0].priority); /* paired with our host candidate */
    neg_pair *q = offer("127.0.0.2", 5000, TALLOW_CAND_HOST, 100);
    assert_ptr_equal(q, p); /* the same pair: the offer names it */
    assert_int_equal(n->npairs, 1);
    assert_int_equal(p->kind, TALLOW_CAND_HOST);
    assert_int_equal(p->remote_prio, tallow_candidate_priority(TALLOW_CAND_HOST, 100));
    /* a family the endpoint does not carry */
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
    a6.sin6_addr.s6_addr[15] = 1;
    assert_null(pair_add(n, (struct sockaddr *)&a6, sizeof a6, TALLOW_CAND_HOST, 1, n->udp));
    /* port 0 is no candidate */
    assert_null(offer("127.0.0.3", 0, TALLOW_CAND_HOST, 1));
    /* at most NEG_MAX_PAIRS */
    for (int i = 0; n->npairs < NEG_MAX_PAIRS; i++)
        assert_non_null(offer("127.0.0.4", (uint16_t)(6000 + i), TALLOW_CAND_HOST, 1));
    assert_null(offer("127.0.0.5", 7000, TALLOW_CAND_HOST, 1));
    assert_int_equal(n->npairs, NEG_MAX_PAIRS);
}

static void test_check_order(void **state)
{
    (void)state;
    neg_pair *relayed = offer("127.0.0.2", 5001, TALLOW_CAND_RELAYED, 65535);
    neg_pair *host = offer("127.0.0.2", 5002, TALLOW_CAND_HOST, 65535);
    neg_pair *srflx = offer("127.0.0.2", 5003, TALLOW_CAND_SRFLX, 65535);
    neg_pair *host2 = offer("127.0.0.2", 5004, TALLOW_CAND_HOST, 100);
    uint64_t t0 = now_ms();
    assert_ptr_equal(tick(), host);
    assert_ptr_equal(tick(), host2);
    assert_ptr_equal(tick(), srflx);
    assert_ptr_equal(tick(), relayed);
    /* every pair waits NEG_RTO_MS for its answer before its next try */
    for (size_t i = 0; i < n->npairs; i++)
        assert_true(n->pairs[i].next_due >= t0 + NEG_RTO_MS);
    assert_int_equal(host->state, P_INPROGRESS);
    /* the check carries our role and a transaction the answer must repeat */
    static const uint8_t zero[TALLOW__CHECK_TXID];
    assert_memory_not_equal(host->txid, zero, sizeof zero);
    /* a retry repeats the transaction */
    uint8_t txid[TALLOW__CHECK_TXID];
    memcpy(txid, host->txid, sizeof txid);
    host->next_due = 0;
    assert_ptr_equal(tick(), host);
    assert_memory_equal(host->txid, txid, sizeof txid);
    /* after NEG_MAX_TRIES the pair failed */
    for (int i = 0; i < NEG_MAX_TRIES; i++) {
        host->next_due = 0;
        tick();
    }
    assert_int_equal(host->state, P_FAILED);
}

static void test_answers_make_pairs_valid(void **state)
{
    (void)state;
    neg_pair *p = offer("127.0.0.2", 5002, TALLOW_CAND_HOST, 65535);
    assert_ptr_equal(tick(), p);
    uint8_t wrong[32] = {9};
    answer(p, 0, wrong); /* forged: not under the check key */
    assert_int_equal(p->state, P_INPROGRESS);
    answer(p, TALLOW__CHECK_CONTROLLING, n->check_key); /* our own role: reflected */
    assert_int_equal(p->state, P_INPROGRESS);
    uint8_t other[TALLOW__CHECK_TXID];
    memcpy(other, p->txid, sizeof other);
    other[0] ^= 1; /* a transaction we never sent */
    answer_tx(p, 0, n->check_key, other);
    assert_int_equal(p->state, P_INPROGRESS);
    answer(p, 0, n->check_key);
    assert_int_equal(p->state, P_SUCCEEDED);
    assert_int_equal(p->local_kind, TALLOW_CAND_HOST); /* the address it saw is our host one */
    assert_true(n->heard_peer);
    /* more may come (the peer has not said it is done): nomination waits NEG_SETTLE_MS */
    assert_non_null(n->settle);
    assert_false(p->nominate);
}

static void test_nominates_best_valid(void **state)
{
    (void)state;
    neg_pair *srflx = offer("127.0.0.2", 5003, TALLOW_CAND_SRFLX, 65535);
    neg_pair *host = offer("127.0.0.2", 5002, TALLOW_CAND_HOST, 65535);
    neg_pair *host2 = offer("127.0.0.2", 5004, TALLOW_CAND_HOST, 100);
    /* the best pair failed; of the two valid ones the host pair outranks the srflx one */
    host->state = P_FAILED;
    srflx->state = host2->state = P_SUCCEEDED;
    n->quic = QUIC_OPEN; /* no QUIC transport here: the nomination opens none */
    on_settle(NULL, n);
    assert_true(host2->nominate);
    assert_false(srflx->nominate);
    assert_int_equal(host2->tries, 1); /* the nominating check went at once */
    /* and it goes before any other check that is due */
    srflx->state = P_WAITING;
    srflx->next_due = 0;
    host2->next_due = 0;
    assert_ptr_equal(tick(), host2);
}

/* Every candidate of the peer known and nothing better unanswered: no waiting, the answered pair
 * is nominated on its answer. */
static void test_nominates_at_once_when_nothing_better(void **state)
{
    (void)state;
    neg_pair *host = offer("127.0.0.2", 5002, TALLOW_CAND_HOST, 65535);
    neg_pair *srflx = offer("127.0.0.2", 5003, TALLOW_CAND_SRFLX, 65535);
    n->remote_done = 1;
    assert_ptr_equal(tick(), host);
    n->quic = QUIC_OPEN;
    answer(host, 0, n->check_key);
    assert_null(n->settle);
    assert_true(host->nominate);
    assert_false(srflx->nominate);
    /* a lower pair answering first does not win while the best one is still unanswered */
    teardown(NULL);
    setup(NULL);
    host = offer("127.0.0.2", 5002, TALLOW_CAND_HOST, 65535);
    srflx = offer("127.0.0.2", 5003, TALLOW_CAND_SRFLX, 65535);
    n->remote_done = 1;
    assert_ptr_equal(tick(), host);
    assert_ptr_equal(tick(), srflx);
    /* QUIC opened on a nomination: only the nominating check is repeated, nothing else */
    n->quic = QUIC_OPEN;
    host->next_due = srflx->next_due = 0;
    assert_null(tick());
    srflx->nominate = 1;
    assert_ptr_equal(tick(), srflx);
    srflx->nominate = 0;
    n->quic = NULL;
    answer(srflx, 0, n->check_key);
    assert_false(srflx->nominate);
    assert_non_null(n->settle);
}

/* Gathered while the handshake runs (tallow__neg_prepare, the keys not there yet): candidates
 * are kept, a duplicate dropped, and nothing is offered (there is no session to offer on: a send
 * would crash here) nor CandidatesDone claimed.
 */
static void test_prepared_keeps_not_offers(void **state)
{
    (void)state;
    n->state = TALLOW__NEG_OFF;
    n->pending_gathers = 1;
    tallow_candidate c[2];
    memset(c, 0, sizeof c);
    c[0].kind = TALLOW_CAND_HOST; /* the one setup put there already */
    c[0].priority = tallow_candidate_priority(TALLOW_CAND_HOST, 65535);
    c[0].addr_len = v4("127.0.0.1", 40000, &c[0].addr);
    c[1].kind = TALLOW_CAND_SRFLX;
    c[1].priority = tallow_candidate_priority(TALLOW_CAND_SRFLX, 65535);
    c[1].addr_len = v4("198.51.100.9", 5000, &c[1].addr);
    on_gathered(0, c, 2, n);
    assert_int_equal(n->pending_gathers, 0);
    assert_int_equal(n->nlocal, 2);
    assert_int_equal(n->local[1].kind, TALLOW_CAND_SRFLX);
    assert_int_equal(n->offers_sent, 0);
    assert_int_equal(n->local_done, 0);
    assert_int_equal(n->state, TALLOW__NEG_OFF);
    assert_non_null(n->udp); /* kept for the attempt, not released */
}

/* A gateway mapping that keeps its port outbound too (miniupnpd's PCP/NAT-PMP add a postrouting
 * rule) gives STUN the mapped address: when the mapping arrives after the server-reflexive
 * candidate of the same address, that candidate becomes the mapping (kind and priority), once. */
static void test_mapping_names_its_srflx(void **state)
{
    (void)state;
    n->state = TALLOW__NEG_OFF;
    n->pending_gathers = 2;
    tallow_candidate c;
    memset(&c, 0, sizeof c);
    c.kind = TALLOW_CAND_SRFLX;
    c.priority = tallow_candidate_priority(TALLOW_CAND_SRFLX, 65535);
    c.addr_len = v4("198.51.100.2", 57542, &c.addr);
    on_gathered(0, &c, 1, n);
    c.kind = TALLOW_CAND_MAPPED;
    c.priority = tallow_candidate_priority(TALLOW_CAND_MAPPED, 65535);
    on_gathered(0, &c, 1, n);
    assert_int_equal(n->nlocal, 2);
    assert_int_equal(n->local[1].kind, TALLOW_CAND_MAPPED);
    assert_int_equal(n->local[1].priority, c.priority);
    assert_int_equal(n->offers_sent, 0);
    /* the peer's side: a pair offered as srflx, then as mapped, is the mapping; a later srflx
     * offer of it does not take that back */
    neg_pair *p = offer("203.0.113.2", 21231, TALLOW_CAND_SRFLX, 65535);
    assert_ptr_equal(offer("203.0.113.2", 21231, TALLOW_CAND_MAPPED, 65535), p);
    assert_int_equal(p->kind, TALLOW_CAND_MAPPED);
    assert_int_equal(p->remote_prio, tallow_candidate_priority(TALLOW_CAND_MAPPED, 65535));
    assert_ptr_equal(offer("203.0.113.2", 21231, TALLOW_CAND_SRFLX, 65535), p);
    assert_int_equal(p->kind, TALLOW_CAND_MAPPED);
    assert_int_equal(n->npairs, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pairs_once_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answers_make_pairs_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nominates_best_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nominates_at_once_when_nothing_better, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_prepared_keeps_not_offers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_names_its_srflx, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
