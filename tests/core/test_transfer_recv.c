/* tests/core/test_transfer_recv.c — the transfer engine's receiver without a network, against
 * the fake session of transfer_fake.h: accept list, chunks written in order and renamed, resume
 * of a kept prefix (hash checked), a large file flushed off the loop, completion (said again
 * after a resync), and out-of-order,
 * oversized, unhashed or unexpected frames refused; a peer's error and a rejection. The sender is
 * test_transfer.c's. */
#include "transfer_fake.h"

/* ================================================================ receiver */

/* An offer of f's file, as a sender would make it (manifest from the source). */
static tallow__xfer *start_receiver(fx *f, uint64_t tid, uint64_t want_resume)
{
    tallow__manifest m;
    const char *paths[] = {f->path};
    assert_int_equal(tallow__manifest_build(paths, 1, &m), 0);
    uint8_t *enc;
    size_t enclen;
    assert_int_equal(tallow__manifest_encode(&m, &enc, &enclen), 0);
    tallow_msg_FileOffer fo = {.transfer_id = tid,
                               .kind = TALLOW__XFER_FILES,
                               .count = 1,
                               .total_size = f->len,
                               .manifest = {enc, enclen}};
    tallow__xfer *x = NULL;
    assert_int_equal(tallow__xfer_recv(FAKE_SESSION, &fo, f->dstfd, 0, &cbs, NULL, &x), 0);
    free(enc);
    tallow__manifest_free(&m);
    const sent *a = last_sent(TALLOW_MSG_FileAccept);
    assert_non_null(a);
    assert_int_equal(a->tid, tid);
    assert_false(a->more);
    uint64_t v = UINT64_MAX;
    assert_int_equal(tallow_varint_get(a->bytes, a->len, &v), (int)a->len);
    assert_int_equal(v, want_resume);
    assert_int_equal(a->len2, 0); /* nothing refused */
    return x;
}

static int chunk(uint64_t tid, const fx *f, uint64_t off, size_t n, const uint8_t *hash)
{
    tallow_msg_Chunk c = {.transfer_id = tid,
                          .file_index = 0,
                          .offset = off,
                          .data = {f->data + off, n},
                          .last = off + n == f->len};
    if (hash) c.hash = (tallow_bytes){hash, 32};
    return deliver(tid, &tallow_msgtype_Chunk, &c);
}

/* Sends f's bytes [from, to) in CHUNK pieces. */
static void chunks(uint64_t tid, const fx *f, uint64_t from, uint64_t to, const uint8_t *hash)
{
    for (uint64_t off = from; off < to; off += CHUNK) {
        size_t n = to - off < CHUNK ? (size_t)(to - off) : CHUNK;
        assert_int_equal(chunk(tid, f, off, n, off + n == f->len ? hash : NULL), 1);
    }
}

static void check_arrived(const fx *f)
{
    size_t len = 0;
    uint8_t *got = fst_read(f->dstfd, "a.bin", &len);
    assert_non_null(got);
    assert_int_equal(len, f->len);
    assert_memory_equal(got, f->data, len);
    free(got);
}

static void finish_receiver(tallow__xfer *x, uint64_t tid, const fx *f)
{
    tallow_msg_TransferComplete tc = {.transfer_id = tid, .files = 1, .bytes = f->len};
    assert_int_equal(deliver(tid, &tallow_msgtype_TransferComplete, &tc), 1);
    assert_null(last_sent(TALLOW_MSG_TransferComplete)); /* not before the destination is flushed */
    settle_disk();
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, 0);
    const sent *back = last_sent(TALLOW_MSG_TransferComplete);
    assert_non_null(back);
    assert_int_equal(back->a, 1);
    assert_int_equal(back->b, f->len);
    assert_null(fake.filter);
}

static void test_transfer_recv_in_order_complete(void **state)
{
    fx *f = fx_new(600 * KiB + 3);
    uint64_t tid = 0x1234;
    tallow__xfer *x = start_receiver(f, tid, 0);
    chunks(tid, f, 0, 2 * CHUNK, NULL);
    size_t len;
    uint8_t *early = fst_read(f->dstfd, "a.bin", &len);
    assert_null(early); /* the final name appears only once the file is whole */
    chunks(tid, f, 2 * CHUNK, f->len, NULL);
    check_arrived(f);
    const sent *ack = last_sent(TALLOW_MSG_Ack);
    assert_non_null(ack);
    assert_int_equal(ack->a, f->len); /* the last chunk is acknowledged at once */
    assert_int_equal(res.done, 0);
    finish_receiver(x, tid, f);
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0);
    /* the sender's chunks and completion said again after that (it rewound after a resync)
     * are this transfer's, never news for the script; another transfer's are not claimed */
    assert_non_null(fake.on_chunk);
    tallow_msg_Chunk late = {.transfer_id = tid, .data = {f->data, 1}};
    assert_int_equal(fake.on_chunk(FAKE_SESSION, &tallow_msgtype_Chunk, &late, fake.on_chunk_ud),
                     1);
    late.transfer_id = tid + 1;
    assert_int_equal(fake.on_chunk(FAKE_SESSION, &tallow_msgtype_Chunk, &late, fake.on_chunk_ud),
                     0);
    tallow_msg_TransferComplete again = {.transfer_id = tid, .files = 1, .bytes = f->len};
    assert_int_equal(fake.on_complete(FAKE_SESSION, &tallow_msgtype_TransferComplete, &again,
                                      fake.on_complete_ud),
                     1);
    tallow__xfer_free(x);
    fx_free(f);
}

/* A file of TALLOW__SYNC_EACH bytes or more is flushed off the loop: its last chunk is
 * acknowledged at once, the final name appears only when the flush came back on the loop, and
 * the sender's completion is answered after that (and the destination's flush). A transfer freed
 * while such a flush runs waits for it and keeps the whole file under its temporary name. */
static void test_transfer_recv_flush_off_the_loop(void **state)
{
    fx *f = fx_new(TALLOW__SYNC_EACH + 5);
    uint64_t tid = 0x77;
    tallow__xfer *x = start_receiver(f, tid, 0);
    chunks(tid, f, 0, f->len, NULL);
    assert_int_equal(last_sent(TALLOW_MSG_Ack)->a, f->len);
    size_t len;
    assert_null(fst_read(f->dstfd, "a.bin", &len)); /* the rename waits for the flush */
    finish_receiver(x, tid, f);
    check_arrived(f);
    assert_int_equal(fst_count(f->dst), 1); /* no temporary file left */
    tallow__xfer_free(x);

    /* freed while the flush runs */
    memset(&res, 0, sizeof(res));
    clear_log();
    assert_int_equal(unlinkat(f->dstfd, "a.bin", 0), 0);
    x = start_receiver(f, tid + 1, 0);
    chunks(tid + 1, f, 0, f->len, NULL);
    tallow__xfer_free(x);
    assert_null(fst_read(f->dstfd, "a.bin", &len));
    assert_int_equal(fst_count(f->dst), 1); /* the .tallow-part, whole, for a resume */
    assert_int_equal(res.done, 0);
    fx_free(f);
}

/* The receiver's TransferComplete is lost with the path it went on (a direct path declared dead
 * while it was in flight): the receiver has finished, the sender has not. After the switch back
 * the session resynchronises both; the finished receiver says its completion again (a new
 * record under the transfer's key), and the sender, which was waiting for it, completes. */
static void test_transfer_recv_completion_said_again_after_resync(void **state)
{
    fx *f = fx_new(300 * KiB + 11);
    /* the receiver: everything arrives, it answers the sender's completion and is done */
    uint64_t tid = 0x5eed;
    tallow__xfer *r = start_receiver(f, tid, 0);
    chunks(tid, f, 0, f->len, NULL);
    finish_receiver(r, tid, f);
    assert_int_equal(count_sent(TALLOW_MSG_TransferComplete), 1);
    tallow__xfer_free(r); /* its user has the result and lets it go; the session lives on */
    /* that completion is lost; the path is replaced and the session resynchronises */
    assert_non_null(fake.resync); /* the finished transfer still answers a resync */
    fake.resync(fake.resync_ud);
    assert_int_equal(count_sent(TALLOW_MSG_TransferComplete), 2);
    const sent *again = last_sent(TALLOW_MSG_TransferComplete);
    assert_int_equal(again->tid, tid); /* sealed under the transfer's key (the fake checks) */
    assert_int_equal(again->a, 1);
    assert_int_equal(again->b, f->len);
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0);
    tallow_msg_TransferComplete said = {.transfer_id = tid, .files = again->a, .bytes = again->b};
    fake.resync(fake.resync_ud); /* each resync says it again (each time a new record) */
    assert_int_equal(count_sent(TALLOW_MSG_TransferComplete), 3);

    /* the sender's side of the same story: it streamed everything, sent its completion, and
     * waits; the path goes, it resynchronises (waiting for the receiver's word) and the word that
     * comes is the completion said again. Starting it takes the session's resync hook, which
     * frees the receiver's record (ASan would tell a leak or a double free). */
    clear_log();
    memset(&res, 0, sizeof(res));
    uint64_t stid;
    tallow__xfer *x = start_sender(f, &stid);
    uint64_t zero = 0;
    assert_int_equal(accept_with(stid, &zero, 1), 1);
    assert_non_null(last_sent(TALLOW_MSG_TransferComplete));
    tallow_msg_Ack ack = {.transfer_id = stid, .bytes = f->len};
    assert_int_equal(deliver(stid, &tallow_msgtype_Ack, &ack), 1);
    assert_non_null(fake.resync);
    fake.resync(fake.resync_ud);
    assert_int_equal(res.done, 0);
    said.transfer_id = stid;
    assert_int_equal(deliver(stid, &tallow_msgtype_TransferComplete, &said), 1);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, 0);
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0);
    assert_null(fake.resync); /* a sender keeps nothing to say after its end */
    tallow__xfer_free(x);
    fx_free(f);
}

/* The receiver's FileAccept is lost with the path it went on (a relay that died under it): the
 * sender still waits for it. Until the sender's first word for the transfer shows that it
 * arrived, a resync says the accept again (a new record under the transfer's key) before the
 * position; after that word, the position alone. A sender that had the first ignores a repeat. */
static void test_transfer_accept_said_again_after_resync(void **state)
{
    fx *f = fx_new(300 * KiB + 5);
    uint64_t tid = 0xacce;
    tallow__xfer *r = start_receiver(f, tid, 0);
    assert_non_null(fake.resync);
    fake.resync(fake.resync_ud);
    assert_int_equal(count_sent(TALLOW_MSG_FileAccept), 2);
    assert_false(fake.log[0].last); /* the first time: not "again" */
    const sent *again = last_sent(TALLOW_MSG_FileAccept);
    assert_int_equal(again->tid, tid);
    assert_false(again->more);
    assert_true(again->last); /* again: a sender that had part of it starts over */
    assert_int_equal(again->len, 1);
    assert_int_equal(again->bytes[0], 0);
    assert_int_equal(again->len2, 0);
    assert_int_equal(count_sent(TALLOW_MSG_ResumeInfo), 1);
    assert_int_equal(fake.log[fake.n - 1].id, TALLOW_MSG_ResumeInfo); /* the position after it */
    chunks(tid, f, 0, CHUNK, NULL); /* the sender speaks: it had the accept */
    fake.resync(fake.resync_ud);
    assert_int_equal(count_sent(TALLOW_MSG_FileAccept), 2);
    assert_int_equal(count_sent(TALLOW_MSG_ResumeInfo), 2);
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0);
    tallow__xfer_free(r);

    clear_log();
    memset(&res, 0, sizeof(res));
    uint64_t stid;
    tallow__xfer *x = start_sender(f, &stid);
    uint64_t zero = 0;
    assert_int_equal(accept_with(stid, &zero, 1), 1);
    assert_non_null(last_sent(TALLOW_MSG_TransferComplete));
    assert_int_equal(accept_with(stid, &zero, 1), 1); /* said again: ignored */
    assert_int_equal(res.done, 0);
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0);
    tallow_msg_Ack ack = {.transfer_id = stid, .bytes = f->len};
    assert_int_equal(deliver(stid, &tallow_msgtype_Ack, &ack), 1);
    tallow_msg_TransferComplete said = {.transfer_id = stid, .files = 1, .bytes = f->len};
    assert_int_equal(deliver(stid, &tallow_msgtype_TransferComplete, &said), 1);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, 0);
    tallow__xfer_free(x);
    fx_free(f);
}

static void test_transfer_recv_resume_from_offset(void **state)
{
    /* a first session ends after 1.25 MiB of a 1.5 MiB file: the receiver keeps the 1 MiB
     * aligned prefix and, offered the file again, asks to resume there */
    fx *f = fx_new(1536 * KiB);
    uint64_t tid = 77;
    tallow__xfer *x = start_receiver(f, tid, 0);
    chunks(tid, f, 0, 1280 * KiB, NULL);
    tallow__xfer_free(x); /* the connection died */
    assert_int_equal(res.done, 0);
    clear_log();

    uint64_t tid2 = 78;
    x = start_receiver(f, tid2, 1024 * KiB);
    /* a resumed file's last chunk must carry the hash of the kept prefix */
    uint8_t hash[32];
    crypto_generichash(hash, sizeof(hash), f->data, 1024 * KiB, NULL, 0);
    chunks(tid2, f, 1024 * KiB, f->len, hash);
    finish_receiver(x, tid2, f); /* the kept prefix is checked off the loop, then renamed */
    check_arrived(f);
    tallow__xfer_stats st;
    tallow__xfer_get_stats(x, &st);
    assert_int_equal(st.bytes_resumed, 1024 * KiB);
    assert_int_equal(st.bytes_wire, f->len - 1024 * KiB);
    tallow__xfer_free(x);
    fx_free(f);
}

static void test_transfer_recv_resume_bad_hash(void **state)
{
    fx *f = fx_new(1536 * KiB);
    tallow__xfer *x = start_receiver(f, 5, 0);
    chunks(5, f, 0, 1280 * KiB, NULL);
    tallow__xfer_free(x);
    clear_log();
    x = start_receiver(f, 6, 1024 * KiB);
    uint8_t wrong[32] = {0};
    chunks(6, f, 1024 * KiB, f->len - CHUNK, NULL);
    assert_int_equal(chunk(6, f, f->len - CHUNK, CHUNK, wrong), 1);
    settle_disk(); /* the kept prefix is hashed off the loop */
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, TALLOW_EHASH);
    assert_non_null(last_sent(TALLOW_MSG_TransferError));
    size_t len;
    assert_null(fst_read(f->dstfd, "a.bin", &len)); /* never renamed into place */
    tallow__xfer_free(x);

    /* the damaged partial copy was removed: the next offer starts from 0 */
    clear_log();
    x = start_receiver(f, 9, 0);
    tallow__xfer_free(x);
    fx_free(f);
}

static void test_transfer_recv_refuses_bad_frames(void **state)
{
    fx *f = fx_new(600 * KiB);
    /* a chunk that skips ahead */
    tallow__xfer *x = start_receiver(f, 11, 0);
    assert_int_equal(chunk(11, f, CHUNK, CHUNK, NULL), 1);
    expect_eproto(11);
    size_t len;
    assert_null(fst_read(f->dstfd, "a.bin", &len));
    tallow__xfer_free(x);

    /* a chunk repeated (a replay of bytes already written) */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_receiver(f, 12, 0);
    assert_int_equal(chunk(12, f, 0, CHUNK, NULL), 1);
    assert_int_equal(chunk(12, f, 0, CHUNK, NULL), 1);
    expect_eproto(12);
    tallow__xfer_free(x);

    /* more bytes than the offer declared */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_receiver(f, 13, 0);
    chunks(13, f, 0, 2 * CHUNK, NULL);
    static uint8_t big[CHUNK];
    tallow_msg_Chunk c = {.transfer_id = 13, .offset = 2 * CHUNK, .data = {big, CHUNK}, .last = 1};
    assert_int_equal(deliver(13, &tallow_msgtype_Chunk, &c), 1);
    expect_eproto(13);
    tallow__xfer_free(x);

    /* a file not resumed that comes with a hash */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_receiver(f, 14, 0);
    uint8_t h[32] = {1};
    chunks(14, f, 0, 2 * CHUNK, NULL);
    assert_int_equal(chunk(14, f, 2 * CHUNK, f->len - 2 * CHUNK, h), 1);
    expect_eproto(14);
    tallow__xfer_free(x);

    /* the end announced before every file arrived */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_receiver(f, 15, 0);
    chunks(15, f, 0, CHUNK, NULL);
    tallow_msg_TransferComplete tc = {.transfer_id = 15, .files = 1, .bytes = f->len};
    assert_int_equal(deliver(15, &tallow_msgtype_TransferComplete, &tc), 1);
    expect_eproto(15);
    tallow__xfer_free(x);

    /* a message only a receiver sends */
    memset(&res, 0, sizeof(res));
    clear_log();
    x = start_receiver(f, 16, 0);
    tallow_msg_Ack ack = {.transfer_id = 16, .bytes = 0};
    assert_int_equal(deliver(16, &tallow_msgtype_Ack, &ack), 1);
    expect_eproto(16);
    tallow__xfer_free(x);
    assert_null(fst_read(f->dstfd, "a.bin", &len));
    fx_free(f);
}

static void test_transfer_recv_peer_error_and_reject(void **state)
{
    fx *f = fx_new(1000);
    tallow__xfer *x = start_receiver(f, 21, 0);
    const char why[] = "the sender cancelled";
    tallow_msg_TransferError te = {.transfer_id = 21,
                                   .code = TALLOW_ECANCELED,
                                   .message = {(const uint8_t *)why, strlen(why)}};
    assert_int_equal(deliver(21, &tallow_msgtype_TransferError, &te), 1);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, TALLOW_ECANCELED);
    assert_string_equal(tallow_ctx_last_error(fake.ctx), why);
    assert_int_equal(count_sent(TALLOW_MSG_TransferError), 0); /* not echoed back */
    tallow__xfer_free(x);

    /* a refused offer: FileReject with the reason, under the offer's key */
    clear_log();
    assert_int_equal(tallow__xfer_reject(FAKE_SESSION, 22, "no thanks"), 0);
    const sent *r = last_sent(TALLOW_MSG_FileReject);
    assert_non_null(r);
    assert_int_equal(r->tid, 22);
    assert_int_equal(r->len, strlen("no thanks"));
    assert_memory_equal(r->bytes, "no thanks", r->len);

    /* a malformed manifest is refused (FileReject) and nothing starts */
    clear_log();
    uint8_t junk[3] = {9, 9, 9};
    tallow_msg_FileOffer fo = {.transfer_id = 23,
                               .kind = TALLOW__XFER_FILES,
                               .count = 1,
                               .manifest = {junk, sizeof(junk)}};
    tallow__xfer *y = NULL;
    assert_true(tallow__xfer_recv(FAKE_SESSION, &fo, f->dstfd, 0, &cbs, NULL, &y) < 0);
    assert_null(y);
    assert_non_null(last_sent(TALLOW_MSG_FileReject));
    assert_int_equal(count_sent(TALLOW_MSG_FileAccept), 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transfer_recv_in_order_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_recv_flush_off_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_recv_completion_said_again_after_resync,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_accept_said_again_after_resync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transfer_recv_resume_from_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_recv_resume_bad_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_recv_refuses_bad_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_recv_peer_error_and_reject, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
