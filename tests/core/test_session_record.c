/* tests/core/test_session_record.c — the session's record layer (core/session/session_record.c)
 * between two READY sessions joined by an in-memory fake transport (session_pair.h): sealed
 * records open on the other side under the right key; a replayed, reordered, truncated or
 * re-addressed record is refused and ends the session; a new epoch (the service a path owner
 * uses after losing its path) is followed by the peer, frames of the old one are dropped, and the
 * session messages lost with the path are sent again; the handler table hands each message to
 * the handler of its id, then to the catch-all entry, then to the user. The direct path's records
 * are test_session_direct.c's. */
#include "session_pair.h"

/* Sealed under the session key and two transfer keys, each opens under its own key. */
static void test_seal_open(void **state)
{
    (void)state;
    ping(&A, TALLOW__SESSION_KEY, 1);
    ping(&A, 5, 2);
    ping(&A, 300, 3);
    ping(&A, 5, 4);
    assert_int_equal(B.nq, 4);
    assert_int_equal(B.q[0].p[0], KIND_SEALED);
    assert_int_equal(B.q[1].p[0], KIND_TRANSFER);
    /* the plaintext is not on the wire */
    tallow_msg_Ping p = {1, 0};
    uint8_t enc[32];
    int n = tallow_msg_encode(&tallow_msgtype_Ping, &p, enc, sizeof enc);
    assert_true(n > 0);
    for (size_t i = 0; i + (size_t)n <= B.q[0].len; i++)
        assert_false(memcmp(B.q[0].p + i, enc, (size_t)n) == 0);
    deliver_all(&B);
    assert_false(B.closed);
    assert_int_equal(B.got, 4);
    uint64_t want_seq[] = {1, 2, 3, 4}, want_tid[] = {TALLOW__SESSION_KEY, 5, 300, 5};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(B.pings[i], want_seq[i]);
        assert_int_equal(B.tids[i], want_tid[i]);
    }
    /* and the other way */
    ping(&B, TALLOW__SESSION_KEY, 9);
    deliver_all(&A);
    assert_int_equal(A.got, 1);
    assert_int_equal(A.pings[0], 9);
}

/* The same record twice: the second fails to open (its number is used) and ends the session. */
static void test_replay_refused(void **state)
{
    (void)state;
    ping(&A, TALLOW__SESSION_KEY, 1);
    feed(&B, 0);
    assert_int_equal(B.got, 1);
    feed(&B, 0);
    assert_int_equal(B.got, 1);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
}

/* Two records of one key in the wrong order: the first to arrive does not open. */
static void test_reorder_refused(void **state)
{
    (void)state;
    ping(&A, 42, 1);
    ping(&A, 42, 2);
    feed(&B, 1);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);
}

/* A transfer's record presented as another transfer's (its id rewritten in the clear header)
 * or cut short does not open. */
static void test_readdressed_and_truncated_refused(void **state)
{
    (void)state;
    ping(&A, 5, 1);
    assert_int_equal(B.q[0].p[0], KIND_TRANSFER);
    B.q[0].p[2] = 6; /* kind, epoch 0, id 5 -> 6 */
    feed(&B, 0);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
    assert_int_equal(B.closed_err, TALLOW_ECRYPTO);

    teardown(NULL);
    setup(NULL);
    ping(&A, TALLOW__SESSION_KEY, 1);
    B.q[0].len -= 1;
    feed(&B, 0);
    assert_int_equal(B.got, 0);
    assert_true(B.closed);
}

/* A new epoch after a lost path: the peer follows on the first frame that opens under it, frames
 * of the old epoch still on their way are dropped (not an error), and the session messages lost
 * with the path (never acknowledged) arrive again, once each, in order. */
static void test_new_epoch_resends_lost(void **state)
{
    (void)state;
    ping(&A, TALLOW__SESSION_KEY, 1);
    deliver_all(&B);
    ping(&A, TALLOW__SESSION_KEY, 2);
    ping(&A, TALLOW__SESSION_KEY, 3);
    frame late = {malloc(B.q[0].len), B.q[0].len}; /* #2 arrives after all, but late */
    memcpy(late.p, B.q[0].p, late.len);
    drop_all(&B); /* lost with the path */
    uint64_t e = A.s->tx_epoch;
    tallow__session_new_epoch(A.s);
    assert_int_equal(A.s->tx_epoch, e + 1);
    ping(&A, TALLOW__SESSION_KEY, 4);
    deliver_all(&B);
    assert_false(B.closed);
    assert_int_equal(B.s->rx_epoch, e + 1);
    ch_frame(&B.ch, 0, late.p, late.len, B.s); /* old epoch: dropped */
    free(late.p);
    assert_false(B.closed);
    assert_int_equal(B.got, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(B.pings[i], (uint64_t)i + 1);
}

/* Messages B had delivered already are sent again too (the ack had not come back): the receiver
 * drops those it had and delivers each message once. */
static void test_new_epoch_no_duplicates(void **state)
{
    (void)state;
    for (uint64_t i = 1; i <= 5; i++)
        ping(&A, TALLOW__SESSION_KEY, i);
    deliver_all(&B); /* delivered, but fewer than ACK_EVERY: A still keeps them */
    assert_true(A.s->retx_n >= 5);
    tallow__session_new_epoch(A.s);
    ping(&A, TALLOW__SESSION_KEY, 6);
    deliver_all(&B);
    assert_false(B.closed);
    assert_int_equal(B.got, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(B.pings[i], (uint64_t)i + 1);
}

static int h_calls, any_calls;
static uint32_t h_last;
static int h_consume(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    (void)s;
    (void)msg;
    assert_ptr_equal(ud, &h_calls);
    h_calls++;
    h_last = t->id;
    return 1;
}
static int h_pass(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    (void)s;
    (void)t;
    (void)msg;
    (void)ud;
    any_calls++;
    return 0; /* not consumed: on to the user */
}

/* The handler of a message's id first, then the catch-all entry, then on_message. */
static void test_handler_table(void **state)
{
    (void)state;
    h_calls = any_calls = 0;
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, h_consume, &h_calls), 0);
    tallow__session_set_filter(B.s, h_pass, NULL);
    ping(&A, TALLOW__SESSION_KEY, 1);
    deliver_all(&B);
    assert_int_equal(h_calls, 1);
    assert_int_equal(h_last, TALLOW_MSG_Ping);
    assert_int_equal(any_calls, 0); /* consumed by its id's handler */
    assert_int_equal(B.got, 0);
    /* without the id's entry: the catch-all sees it, passes it on, the user gets it */
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, NULL, NULL), 0);
    ping(&A, TALLOW__SESSION_KEY, 2);
    deliver_all(&B);
    assert_int_equal(h_calls, 1);
    assert_int_equal(any_calls, 1);
    assert_int_equal(B.got, 1);
    /* a second entry for one id replaces the first; removing the catch-all leaves the user */
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, h_pass, NULL), 0);
    assert_int_equal(tallow__session_on(B.s, TALLOW_MSG_Ping, h_consume, &h_calls), 0);
    assert_int_equal(B.s->nhandlers, 2);
    tallow__session_set_filter(B.s, NULL, NULL);
    assert_int_equal(B.s->nhandlers, 1);
    ping(&A, TALLOW__SESSION_KEY, 3);
    deliver_all(&B);
    assert_int_equal(h_calls, 2);
    assert_int_equal(any_calls, 1);
    assert_int_equal(B.got, 1);
}

/* Sends go where the path owner says, and back to the first channel on NULL. */
static int other_sent;
static int other_send(tallow_channel *ch, uint32_t to, const uint8_t *f, size_t len)
{
    (void)ch;
    (void)to;
    (void)f;
    (void)len;
    other_sent++;
    return 0;
}
static const tallow_transport_ops other_ops = {.name = "other", .send = other_send};

static void test_use_channel(void **state)
{
    (void)state;
    tallow_channel other = {.ops = &other_ops};
    other_sent = 0;
    tallow__session_use_channel(B.s, &other);
    assert_false(tallow__session_on_first(B.s));
    ping(&B, TALLOW__SESSION_KEY, 1);
    assert_int_equal(other_sent, 1);
    assert_int_equal(A.nq, 0);
    tallow__session_use_channel(B.s, NULL);
    assert_true(tallow__session_on_first(B.s));
    ping(&B, TALLOW__SESSION_KEY, 2);
    assert_int_equal(other_sent, 1);
    assert_int_equal(A.nq, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seal_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reorder_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readdressed_and_truncated_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_epoch_resends_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_epoch_no_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_use_channel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
