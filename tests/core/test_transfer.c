/* tests/core/test_transfer.c — the transfer engine's sender without a network, against the fake
 * session of transfer_fake.h: offer, accept, refusal, streaming in order, resume from an offset
 * (with the hash of the kept prefix), a file the receiver already has, completion, malformed or
 * misplaced messages refused, and the stall clock. The receiver is test_transfer_recv.c's. */
#include "transfer_fake.h"

/* ================================================================ sender */

/* The chunks sent carry exactly f's bytes from `from`, in order, the last one marked. */
static void check_stream(const fx *f, uint64_t from, const uint8_t *hash)
{
    uint64_t off = from;
    size_t chunks = 0;
    for (size_t i = 0; i < fake.n; i++) {
        const sent *c = &fake.log[i];
        if (c->id != TALLOW_MSG_Chunk) continue;
        chunks++;
        assert_int_equal(c->a, 0);
        assert_int_equal(c->b, off);
        assert_true(c->len <= CHUNK);
        assert_memory_equal(c->bytes, f->data + off, c->len);
        off += c->len;
        assert_int_equal(c->last, off == f->len);
        if (c->last && hash) {
            assert_int_equal(c->len2, 32);
            assert_memory_equal(c->bytes2, hash, 32);
        } else {
            assert_int_equal(c->len2, 0); /* no hash but on a resumed file's last chunk */
        }
    }
    assert_int_equal(off, f->len);
    assert_int_equal(chunks, (f->len - from + CHUNK - 1) / CHUNK);
}

static void test_transfer_send_accept_stream_complete(void **state)
{
    fx *f = fx_new(600 * KiB + 7);
    uint64_t tid;
    tallow__xfer *x = start_sender(f, &tid);
    uint64_t zero = 0;
    assert_int_equal(accept_with(tid, &zero, 1), 1);
    check_stream(f, 0, NULL);
    const sent *tc = last_sent(TALLOW_MSG_TransferComplete);
    assert_non_null(tc); /* the whole file fits the window: the end follows at once */
    assert_int_equal(tc->a, 1);
    assert_int_equal(tc->b, f->len);
    assert_true(fake.log[fake.n - 1].id == TALLOW_MSG_TransferComplete);
    assert_int_equal(res.done, 0); /* not done until the receiver confirms */

    tallow_msg_Ack ack = {.transfer_id = tid, .bytes = f->len};
    assert_int_equal(deliver(tid, &tallow_msgtype_Ack, &ack), 1);
    tallow__xfer_stats st;
    tallow__xfer_get_stats(x, &st);
    assert_int_equal(st.bytes_done, f->len);
    assert_int_equal(st.bytes_wire, f->len);

    tallow_msg_TransferComplete rtc = {.transfer_id = tid, .files = 1, .bytes = f->len};
    assert_int_equal(deliver(tid, &tallow_msgtype_TransferComplete, &rtc), 1);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, 0);
    tallow__xfer_get_stats(x, &st);
    assert_int_equal(st.files_done, 1);
    assert_null(fake.filter); /* detached when done */
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0);
    /* the receiver's completion said again by a later resync is this transfer's, not the user's;
     * another transfer's is not claimed */
    assert_non_null(fake.on_complete);
    assert_int_equal(
        fake.on_complete(FAKE_SESSION, &tallow_msgtype_TransferComplete, &rtc, fake.on_complete_ud),
        1);
    tallow_msg_TransferComplete other = {.transfer_id = tid + 1, .files = 1, .bytes = 1};
    assert_int_equal(fake.on_complete(FAKE_SESSION, &tallow_msgtype_TransferComplete, &other,
                                      fake.on_complete_ud),
                     0);
    tallow__xfer_free(x);
    fx_free(f);
}

static void test_transfer_send_refused(void **state)
{
    fx *f = fx_new(1000);
    uint64_t tid;
    tallow__xfer *x = start_sender(f, &tid);
    const char why[] = "declined by the receiver";
    tallow_msg_FileReject r = {.transfer_id = tid, .reason = {(const uint8_t *)why, strlen(why)}};
    assert_int_equal(deliver(tid, &tallow_msgtype_FileReject, &r), 1);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, TALLOW_EREJECTED);
    assert_non_null(strstr(tallow_ctx_last_error(fake.ctx), why));
    assert_int_equal(count_sent(TALLOW_MSG_Chunk), 0);
    tallow__xfer_free(x);
    fx_free(f);
}

static void test_transfer_send_resume_offset(void **state)
{
    fx *f = fx_new(700 * KiB);
    uint64_t tid;
    tallow__xfer *x = start_sender(f, &tid);
    uint64_t from = 256 * KiB; /* the receiver kept this much from an earlier session */
    assert_int_equal(accept_with(tid, &from, 1), 1);
    /* the kept prefix is hashed off the loop: the last chunk, which carries it, waits */
    assert_null(last_sent(TALLOW_MSG_TransferComplete));
    settle_disk();
    uint8_t hash[32];
    crypto_generichash(hash, sizeof(hash), f->data, from, NULL, 0);
    check_stream(f, from, hash);
    tallow__xfer_stats st;
    tallow__xfer_get_stats(x, &st);
    assert_int_equal(st.bytes_resumed, from);
    assert_int_equal(st.bytes_wire, f->len - from);
    tallow__xfer_free(x);
    fx_free(f);
}

static void test_transfer_send_already_there(void **state)
{
    fx *f = fx_new(5000);
    uint64_t tid;
    tallow__xfer *x = start_sender(f, &tid);
    uint64_t skip = f->len + 1; /* "I have it whole" */
    assert_int_equal(accept_with(tid, &skip, 1), 1);
    assert_int_equal(count_sent(TALLOW_MSG_Chunk), 0);
    assert_non_null(last_sent(TALLOW_MSG_TransferComplete));
    tallow__xfer_stats st;
    tallow__xfer_get_stats(x, &st);
    assert_int_equal(st.files_skipped, 1);
    assert_int_equal(st.bytes_resumed, f->len);
    tallow__xfer_free(x);
    fx_free(f);
}

/* An acceptance in parts, said again from its first part after a resync (the relay died between
 * its parts): the sender drops what it had of it and takes the new one whole. Counted on top of
 * the first part it overran the manifest (EPROTO). A refusal told once is not told again. */
static void test_transfer_send_accept_parts_said_again(void **state)
{
    fx *f = fx_new(1000);
    int sfd = open(f->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(fst_write(sfd, "b.bin", f->data, 500), 0);
    close(sfd);
    char pb[700];
    snprintf(pb, sizeof(pb), "%s/b.bin", f->src);
    const char *paths[] = {f->path, pb};
    tallow__manifest m;
    assert_int_equal(tallow__manifest_build(paths, 2, &m), 0);
    tallow__xfer *x = NULL;
    assert_int_equal(tallow__xfer_send(FAKE_SESSION, &m, NULL, 0, &cbs, NULL, &x), 0);
    uint64_t tid = last_sent(TALLOW_MSG_FileOffer)->tid;
    /* part 1: a.bin from 0, and a.bin refused (1017: a wire error) */
    uint8_t zero[1] = {0}, skip[2], ref[4];
    size_t sl = tallow_varint_put(skip, 1000 + 1), rl = tallow_varint_put(ref, 0);
    rl += tallow_varint_put(ref + rl, 13);
    tallow_msg_FileAccept p1 = {
        .transfer_id = tid, .resume = {skip, sl}, .refused = {ref, rl}, .more = 1};
    assert_int_equal(deliver(tid, &tallow_msgtype_FileAccept, &p1), 1);
    assert_int_equal(res.notices, 1);
    assert_non_null(fake.resync);
    fake.resync(fake.resync_ud); /* the path is replaced: part 2 was lost */
    p1.again = 1;
    assert_int_equal(deliver(tid, &tallow_msgtype_FileAccept, &p1), 1);
    tallow_msg_FileAccept p2 = {.transfer_id = tid, .resume = {zero, 1}};
    assert_int_equal(deliver(tid, &tallow_msgtype_FileAccept, &p2), 1);
    assert_int_equal(res.done, 0);
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0);
    assert_int_equal(res.notices, 1); /* the refusal was told once */
    settle_disk();
    /* b.bin streams whole; a.bin (refused) not at all */
    assert_int_equal(count_sent(TALLOW_MSG_Chunk), 1);
    const sent *c = last_sent(TALLOW_MSG_Chunk);
    assert_int_equal(c->a, 1);
    assert_int_equal(c->len, 500);
    tallow__xfer_stats st;
    tallow__xfer_get_stats(x, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.files_skipped, 0); /* refused, not "already there" */
    tallow__xfer_free(x);
    fx_free(f);
}

static void test_transfer_send_refuses_bad_frames(void **state)
{
    fx *f = fx_new(300 * KiB);
    uint64_t tid;
    /* an ack for bytes never sent */
    tallow__xfer *x = start_sender(f, &tid);
    uint64_t zero = 0;
    assert_int_equal(accept_with(tid, &zero, 1), 1);
    tallow_msg_Ack ack = {.transfer_id = tid, .bytes = f->len + 1};
    assert_int_equal(deliver(tid, &tallow_msgtype_Ack, &ack), 1);
    expect_eproto(tid);
    tallow__xfer_free(x);

    /* a resume offset beyond the file */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_sender(f, &tid);
    uint64_t beyond = f->len + 2;
    assert_int_equal(accept_with(tid, &beyond, 1), 1);
    expect_eproto(tid);
    assert_int_equal(count_sent(TALLOW_MSG_Chunk), 0);
    tallow__xfer_free(x);

    /* the receiver's completion before the sender finished: out of order */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_sender(f, &tid);
    tallow_msg_TransferComplete rtc = {.transfer_id = tid, .files = 1, .bytes = f->len};
    assert_int_equal(deliver(tid, &tallow_msgtype_TransferComplete, &rtc), 1);
    expect_eproto(tid);
    tallow__xfer_free(x);

    /* data sent to a sender */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_sender(f, &tid);
    uint8_t b[4] = {1, 2, 3, 4};
    tallow_msg_Chunk c = {.transfer_id = tid, .data = {b, 4}, .last = 1};
    assert_int_equal(deliver(tid, &tallow_msgtype_Chunk, &c), 1);
    expect_eproto(tid);
    tallow__xfer_free(x);

    /* this transfer's answer sealed under another key */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_sender(f, &tid);
    uint8_t list[1] = {0};
    tallow_msg_FileAccept a = {.transfer_id = tid, .resume = {list, 1}};
    fake.rx_key = TALLOW__SESSION_KEY;
    assert_int_equal(fake.filter(FAKE_SESSION, &tallow_msgtype_FileAccept, &a, fake.filter_ud), 1);
    expect_eproto(tid);
    tallow__xfer_free(x);

    /* another transfer's messages are not this one's business */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_sender(f, &tid);
    tallow_msg_Ack other = {.transfer_id = tid ^ 1, .bytes = 1};
    assert_int_equal(deliver(tid ^ 1, &tallow_msgtype_Ack, &other), 0);
    assert_int_equal(res.done, 0);
    tallow__xfer_free(x);
    fx_free(f);
}

/* Runs the loop (progress ticks every 100 ms) until the transfer ended or about `ms` passed. */
static void run_loop(int ms)
{
    for (int i = 0; i < ms / 50 && !res.done; i++)
        tallow_loop_run_once(tallow_ctx_loop(fake.ctx), 50);
}

static void test_transfer_send_stall_counts_from_last_message(void **state)
{
    setenv("TALLOW_STALL_TIMEOUT", "5", 1); /* seconds */
    fx *f = fx_new(300 * KiB);
    uint64_t tid;
    tallow__xfer *x = start_sender(f, &tid);
    uint64_t zero = 0;
    assert_int_equal(accept_with(tid, &zero, 1), 1);
    /* the transfer has run for longer than the stall limit, but the peer just spoke */
    x->last_heard_ns -= 20000000000ull;
    tallow_msg_Ack ack = {.transfer_id = tid, .bytes = CHUNK};
    assert_int_equal(deliver(tid, &tallow_msgtype_Ack, &ack), 1);
    run_loop(300);
    assert_int_equal(res.done, 0);
    /* and a peer silent for longer than the limit is given up on */
    x->last_heard_ns -= 20000000000ull;
    run_loop(2000);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, TALLOW_ETIMEOUT);
    assert_non_null(last_sent(TALLOW_MSG_TransferError));
    tallow__xfer_free(x);
    fx_free(f);
    unsetenv("TALLOW_STALL_TIMEOUT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transfer_send_accept_stream_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_resume_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_already_there, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_accept_parts_said_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_refuses_bad_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_stall_counts_from_last_message, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
