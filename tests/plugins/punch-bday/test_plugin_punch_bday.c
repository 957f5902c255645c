/* tests/plugins/punch-bday/test_plugin_punch_bday.c — the birthday strategy: its plan (who plays
 * which side, the hard peer's ports, sequential prediction then random ports), its ops driven
 * through a fake negotiator service (the hard side opens 256 sockets, 32 a tick, one check each
 * towards the easy side's mapping; the easy side probes 8 ports a tick from the session's
 * endpoint; nothing when neither; it stops asking when the service says the bounds are reached),
 * its registration (refused by a host without the slot), and the built plugin loaded for real. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <tallow/tallow.h>

#include "../../core/addr_util.h"
#include "bday_plan.h"

const tallow_plugin_desc *tallow_plugin_entry(void);

static uint32_t rnd(uint32_t upper)
{
    return randombytes_uniform(upper);
}

/* The peer's offers so far, and a plan fed with them. */
typedef struct peer {
    tallow_candidate c[16];
    size_t n;
} peer;

static void offer(bday_plan *b, peer *p, const char *ip, uint16_t port)
{
    p->c[p->n++] = cand(TALLOW_CAND_SRFLX, ip, port);
    bday_plan_remote(b, p->c, p->n);
}

static void fresh(bday_plan *b, peer *p)
{
    memset(b, 0, sizeof(*b));
    memset(p, 0, sizeof(*p));
}

static void test_roles(void **st)
{
    (void)st;
    bday_plan b;
    peer p;
    /* hard us, easy peer: the hard side, towards its mapping */
    fresh(&b, &p);
    offer(&b, &p, "203.0.113.2", 7000);
    assert_int_equal(bday_plan_start(&b, TALLOW_NAT_EDM, TALLOW_NAT_EIM), BDAY_HARD);
    assert_int_equal(ntohs(b.target.sin_port), 7000);
    assert_int_equal(bday_plan_start(&b, TALLOW_NAT_EDM, TALLOW_NAT_EIM), BDAY_NONE); /* once */
    /* easy us, hard peer with random ports: the easy side, no prediction */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 4000);
    offer(&b, &p, "198.51.100.2", 51000);
    assert_int_equal(bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM), BDAY_EASY);
    assert_int_equal(b.seq_next, 0); /* 47000 apart: random allocation */
    /* both hard, both easy, or not known: nothing */
    uint32_t k[] = {TALLOW_NAT_UNKNOWN, TALLOW_NAT_EIM, TALLOW_NAT_EDM};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            if ((i == 2 && j == 1) || (i == 1 && j == 2)) continue;
            fresh(&b, &p);
            offer(&b, &p, "198.51.100.2", 4000);
            assert_int_equal(bday_plan_start(&b, k[i], k[j]), BDAY_NONE);
        }
    /* no srflx offer from the peer (host only, or IPv6): no target, no role */
    fresh(&b, &p);
    p.c[p.n++] = cand(TALLOW_CAND_HOST, "10.0.0.2", 4000);
    bday_plan_remote(&b, p.c, p.n);
    assert_int_equal(bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM), BDAY_NONE);
}

static void test_ports(void **st)
{
    (void)st;
    bday_plan b;
    peer p;
    /* a sequential allocator: the peer's two mappings 2 apart */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 30000);
    offer(&b, &p, "198.51.100.2", 30002);
    assert_int_equal(bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM), BDAY_EASY);
    /* the nearest predicted ports swept BDAY_SEQ_PASSES times, then the whole window the hard
     * side's sockets may take (the next 320 ports) once */
    for (int pass = 0; pass < BDAY_SEQ_PASSES; pass++)
        for (uint32_t i = 1; i <= BDAY_SEQ_NEAR; i++)
            assert_int_equal(bday_plan_next_port(&b, rnd), 30002 + i);
    for (uint32_t i = 1; i <= BDAY_SOCKS + 64; i++)
        assert_int_equal(bday_plan_next_port(&b, rnd), 30002 + i);
    /* then random ones, never below 1024 */
    int differ = 0;
    uint16_t prev = 0;
    for (int i = 0; i < 5000; i++) {
        uint16_t port = bday_plan_next_port(&b, rnd);
        assert_true(port >= 1024);
        differ += port != prev;
        prev = port;
    }
    assert_true(differ > 4900);
    assert_int_equal(b.seq_next, 0); /* the prediction is over */
    /* the prediction stops at 65535 */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 65530);
    offer(&b, &p, "198.51.100.2", 65533);
    bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM);
    for (int pass = 0; pass < BDAY_SEQ_PASSES + 1; pass++) {
        assert_int_equal(bday_plan_next_port(&b, rnd), 65534);
        assert_int_equal(bday_plan_next_port(&b, rnd), 65535);
    }
    assert_true(bday_plan_next_port(&b, rnd) >= 1024);
    assert_int_equal(b.seq_next, 0);
    /* the highest port seen is 65535: nothing above it to predict */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 65530);
    offer(&b, &p, "198.51.100.2", 65535);
    bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM);
    assert_true(bday_plan_next_port(&b, rnd) >= 1024);
    assert_int_equal(b.seq_next, 0);
    /* ports 17 apart: too far for a sequential allocator, random probing from the start */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 40000);
    offer(&b, &p, "198.51.100.2", 40017);
    assert_int_equal(bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM), BDAY_EASY);
    assert_int_equal(b.seq_next, 0);
    /* offered high port first: the window still starts after the highest */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 40001);
    offer(&b, &p, "198.51.100.2", 40000);
    bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM);
    assert_int_equal(bday_plan_next_port(&b, rnd), 40002);
    assert_int_equal(bday_plan_next_port(&b, rnd), 40003);
    /* probing started on the first offer (random ports); the second shows the sequence: the
     * prediction starts then, after the highest port */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 40000);
    bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM);
    assert_int_equal(b.role, BDAY_EASY);
    assert_int_equal(b.seq_next, 0);
    offer(&b, &p, "198.51.100.2", 40001);
    assert_int_equal(bday_plan_next_port(&b, rnd), 40002);
    offer(&b, &p, "198.51.100.2", 40003); /* a third server: from the new highest */
    assert_int_equal(bday_plan_next_port(&b, rnd), 40004);
    offer(&b, &p, "198.51.100.2", 40002); /* not higher: the prediction goes on */
    assert_int_equal(bday_plan_next_port(&b, rnd), 40005);
    offer(&b, &p, "198.51.100.2", 60000); /* now far apart: random allocation */
    assert_int_equal(b.seq_next, 0);
    assert_true(bday_plan_next_port(&b, rnd) >= 1024);
    /* the lower port offered second: predicted from the first (the highest) */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 40001);
    bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EDM);
    assert_int_equal(b.seq_next, 0);
    offer(&b, &p, "198.51.100.2", 40000);
    assert_int_equal(bday_plan_next_port(&b, rnd), 40002);
    assert_int_equal(bday_plan_next_port(&b, rnd), 40003);
    offer(&b, &p, "198.51.100.2", 40001); /* seen before: the prediction goes on */
    assert_int_equal(bday_plan_next_port(&b, rnd), 40004);
    /* another address of the peer's does not count */
    offer(&b, &p, "203.0.113.9", 50000);
    assert_int_equal(bday_plan_next_port(&b, rnd), 40005);
    /* a peer that is not hard: no probing, no prediction */
    fresh(&b, &p);
    offer(&b, &p, "198.51.100.2", 40000);
    offer(&b, &p, "198.51.100.2", 40001);
    assert_int_equal(bday_plan_start(&b, TALLOW_NAT_EIM, TALLOW_NAT_EIM), BDAY_NONE);
    assert_int_equal(b.seq_next, 0);
}

/* ---- the ops through a fake negotiator service --------------------------------------------- */

typedef struct svc {
    tallow_punch p; /* first */
    int socks, sends, refuse_after;
    int last_sock;
    struct sockaddr_in to[4096];
    int from[4096];
} svc;

static int s_open_socket(tallow_punch *p)
{
    svc *s = (svc *)p;
    return ++s->socks;
}

static int s_send(tallow_punch *p, int sock, const struct sockaddr *to, socklen_t len)
{
    svc *s = (svc *)p;
    assert_int_equal(len, sizeof(struct sockaddr_in));
    if (s->refuse_after && s->sends >= s->refuse_after) return TALLOW_EAGAIN;
    if (s->sends < 4096) {
        memcpy(&s->to[s->sends], to, sizeof(struct sockaddr_in));
        s->from[s->sends] = sock;
    }
    s->sends++;
    return 0;
}

static const tallow_punch_ops *g_ops;
static void *g_state;
static int g_regs;

static int fake_register(tallow_ctx *ctx, const struct tallow_punch_ops *ops, void *st)
{
    (void)ctx;
    g_ops = ops;
    g_state = st;
    g_regs++;
    return 0;
}

static void fake_log(const tallow_host *h, int level, const char *fmt, ...)
{
    (void)h;
    (void)level;
    (void)fmt;
}

static tallow_host g_host;

static void svc_init(svc *s, uint32_t mine, uint32_t peer, const tallow_candidate *remote, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->p = (tallow_punch){.struct_size = sizeof(tallow_punch),
                          .mine = mine,
                          .peer = peer,
                          .remote = remote,
                          .nremote = n,
                          .max_packets = TALLOW_PUNCH_MAX_PACKETS,
                          .max_ms = TALLOW_PUNCH_MAX_MS,
                          .max_sockets = TALLOW_PUNCH_MAX_SOCKETS,
                          .open_socket = s_open_socket,
                          .send_check = s_send};
}

static void test_register(void **st)
{
    (void)st;
    const tallow_plugin_desc *d = tallow_plugin_entry();
    assert_int_equal(d->abi, TALLOW_PLUGIN_ABI);
    assert_string_equal(d->name, "punch-bday");
    /* a host without the slot (older tallow): refused, nothing registered */
    tallow_host old = g_host;
    old.struct_size = offsetof(tallow_host, register_punch);
    void *state = NULL;
    g_regs = 0;
    assert_int_equal(d->init(&old, &state), TALLOW_ENOTSUP);
    assert_int_equal(g_regs, 0);
    assert_int_equal(d->init(&g_host, &state), 0);
    assert_int_equal(g_regs, 1);
    assert_int_equal(g_ops->version, TALLOW_PUNCH_OPS_VERSION);
    assert_int_equal(g_ops->struct_size, sizeof(tallow_punch_ops));
    assert_string_equal(g_ops->name, "birthday");
    assert_non_null(g_ops->open);
    assert_non_null(g_ops->tick);
}

static void test_hard_side(void **st)
{
    (void)st;
    tallow_candidate r[] = {cand(TALLOW_CAND_HOST, "10.9.0.2", 5000),
                            cand(TALLOW_CAND_SRFLX, "203.0.113.2", 7000)};
    static svc s;
    svc_init(&s, TALLOW_NAT_EDM, TALLOW_NAT_EIM, r, 2);
    void *inst = NULL;
    assert_int_equal(g_ops->open(g_state, &s.p, &inst), 0);
    assert_int_equal(s.sends + s.socks, 0); /* open sends nothing */
    g_ops->update(inst, &s.p);
    assert_int_equal(g_ops->tick(inst, &s.p), 1);
    assert_int_equal(s.socks, BDAY_SOCKS_PER_TICK);
    assert_int_equal(s.sends, BDAY_SOCKS_PER_TICK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(g_ops->tick(inst, &s.p), 1); /* still punching: probes may land */
    assert_int_equal(s.socks, BDAY_SOCKS);
    assert_int_equal(s.sends, BDAY_SOCKS);
    for (int i = 0; i < BDAY_SOCKS; i++) {
        assert_int_equal(s.from[i], i + 1);              /* one check from each new socket ... */
        assert_int_equal(ntohs(s.to[i].sin_port), 7000); /* ... to the easy side's mapping */
        assert_int_equal(s.to[i].sin_addr.s_addr, inet_addr("203.0.113.2"));
    }
    g_ops->close(inst);
}

static void test_easy_side(void **st)
{
    (void)st;
    /* the hard peer with random ports: random probes of its address from our endpoint */
    tallow_candidate r[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 4000),
                            cand(TALLOW_CAND_SRFLX, "198.51.100.2", 51000)};
    static svc s;
    svc_init(&s, TALLOW_NAT_EIM, TALLOW_NAT_EDM, r, 2);
    void *inst = NULL;
    assert_int_equal(g_ops->open(g_state, &s.p, &inst), 0);
    g_ops->update(inst, &s.p);
    for (int i = 0; i < 100; i++)
        assert_int_equal(g_ops->tick(inst, &s.p), 1);
    assert_int_equal(s.socks, 0);
    assert_int_equal(s.sends, 100 * BDAY_PER_TICK);
    int seq = 0;
    for (int i = 0; i < s.sends; i++) {
        assert_int_equal(s.from[i], 0);
        assert_int_equal(s.to[i].sin_addr.s_addr, inet_addr("198.51.100.2"));
        assert_true(ntohs(s.to[i].sin_port) >= 1024);
        seq += i && ntohs(s.to[i].sin_port) == ntohs(s.to[i - 1].sin_port) + 1;
    }
    assert_true(seq < 10); /* random, not a sweep */
    g_ops->close(inst);

    /* the hard peer with sequential ports: the predicted ones first */
    tallow_candidate q[] = {cand(TALLOW_CAND_SRFLX, "198.51.100.2", 40000),
                            cand(TALLOW_CAND_SRFLX, "198.51.100.2", 40001)};
    svc_init(&s, TALLOW_NAT_EIM, TALLOW_NAT_EDM, q, 1);
    assert_int_equal(g_ops->open(g_state, &s.p, &inst), 0);
    g_ops->update(inst, &s.p);
    assert_int_equal(g_ops->tick(inst, &s.p), 1); /* one offer yet: random */
    s.p.nremote = 2;                              /* the second shows the sequence */
    g_ops->update(inst, &s.p);
    g_ops->tick(inst, &s.p);
    for (int i = 0; i < BDAY_PER_TICK; i++)
        assert_int_equal(ntohs(s.to[BDAY_PER_TICK + i].sin_port), 40002 + i);
    /* the service says the bounds are reached: it stops asking within the tick */
    s.refuse_after = s.sends;
    int before = s.sends;
    g_ops->tick(inst, &s.p);
    assert_int_equal(s.sends, before);
    g_ops->close(inst);

    /* neither side hard: nothing at all */
    svc_init(&s, TALLOW_NAT_EIM, TALLOW_NAT_EIM, q, 2);
    assert_int_equal(g_ops->open(g_state, &s.p, &inst), 0);
    g_ops->update(inst, &s.p);
    for (int i = 0; i < 10; i++)
        assert_int_equal(g_ops->tick(inst, &s.p), 0);
    assert_int_equal(s.sends + s.socks, 0);
    g_ops->close(inst);
}

/* The built plugin, loaded as the runner does: its strategy is registered in the context. */
static void count_strategy(const tallow_punch_ops *ops, void *state, void *ud)
{
    (void)state;
    if (strcmp(ops->name, "birthday") == 0) (*(int *)ud)++;
}

static void test_load(void **st)
{
    (void)st;
    tallow_ctx *ctx = tallow_ctx_new();
    int rc = tallow_plugin_load(ctx, TALLOW_TEST_BIN_DIR "/plugins/punch-bday.so");
    if (rc != 0) fail_msg("%s", tallow_ctx_last_error(ctx));
    int n = 0;
    tallow_punch_foreach(ctx, count_strategy, &n);
    assert_int_equal(n, 1);
    tallow_ctx_free(ctx);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    g_host = (tallow_host){.struct_size = sizeof(tallow_host),
                           .abi = TALLOW_PLUGIN_ABI,
                           .log = fake_log,
                           .register_punch = fake_register,
                           .name = "punch-bday"};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),     cmocka_unit_test(test_ports),
        cmocka_unit_test(test_register),  cmocka_unit_test(test_hard_side),
        cmocka_unit_test(test_easy_side), cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
