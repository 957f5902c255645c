/* tests/core/test_transfer.c — the transfer engine's two state machines without a network: the
 * session functions it calls are replaced (linker --wrap, see tests/CMakeLists.txt) by a fake
 * that records every message the engine sends and lets the test deliver the peer's messages
 * through the filter the engine installed. Sender: offer, accept, refusal, streaming in order,
 * resume from an offset (with the hash of the kept prefix), a file the receiver already has,
 * completion, and malformed or misplaced messages refused. Receiver: accept list, chunks written
 * in order and renamed, resume of a kept prefix (hash checked), completion, and out-of-order,
 * oversized, unhashed or unexpected frames refused. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "fstest.h"
#include "transfer.h"
#include "transfer_internal.h" /* the stall clock, for the stall test */

#define KiB 1024u
/* CHUNK: the engine's chunk size, from transfer_internal.h */

/* ---- the fake session */

typedef struct sent {
    uint32_t id;
    uint64_t tid, a, b, c; /* per type: see record() */
    int more, last;
    uint8_t *bytes, *bytes2; /* data / manifest / resume / reason; refused list */
    size_t len, len2;
} sent;

static struct {
    tallow_ctx *ctx;
    tallow__session_filter filter;
    void *filter_ud;
    void (*resync)(void *ud);
    void *resync_ud;
    void (*resync_free)(void *ud);      /* the hook owns resync_ud (set_resync_owned) */
    tallow__session_filter on_complete; /* the handler for TransferComplete's id */
    void *on_complete_ud;
    uint64_t rx_key;
    sent log[256];
    size_t n;
    uint8_t spot[CHUNK + 64];
} fake;

#define FAKE_SESSION ((tallow__session *)&fake)

static uint8_t *dup_bytes(tallow_bytes b)
{
    uint8_t *p = malloc(b.len + 1);
    assert_non_null(p);
    if (b.len) memcpy(p, b.ptr, b.len);
    return p;
}

static void record(const tallow_msg_type *t, const void *msg)
{
    assert_true(fake.n < sizeof(fake.log) / sizeof(fake.log[0]));
    sent *e = &fake.log[fake.n++];
    memset(e, 0, sizeof(*e));
    e->id = t->id;
    switch (t->id) {
    case TALLOW_MSG_FileOffer: {
        const tallow_msg_FileOffer *m = msg;
        e->tid = m->transfer_id, e->a = m->count, e->b = m->total_size, e->more = (int)m->more;
        e->bytes = dup_bytes(m->manifest), e->len = m->manifest.len;
        break;
    }
    case TALLOW_MSG_FileAccept: {
        const tallow_msg_FileAccept *m = msg;
        e->tid = m->transfer_id, e->more = (int)m->more;
        e->bytes = dup_bytes(m->resume), e->len = m->resume.len;
        e->bytes2 = dup_bytes(m->refused), e->len2 = m->refused.len;
        break;
    }
    case TALLOW_MSG_FileReject: {
        const tallow_msg_FileReject *m = msg;
        e->tid = m->transfer_id;
        e->bytes = dup_bytes(m->reason), e->len = m->reason.len;
        break;
    }
    case TALLOW_MSG_Chunk: {
        const tallow_msg_Chunk *m = msg;
        e->tid = m->transfer_id, e->a = m->file_index, e->b = m->offset, e->last = (int)m->last;
        e->bytes = dup_bytes(m->data), e->len = m->data.len;
        e->bytes2 = dup_bytes(m->hash), e->len2 = m->hash.len;
        break;
    }
    case TALLOW_MSG_Ack: {
        const tallow_msg_Ack *m = msg;
        e->tid = m->transfer_id, e->a = m->bytes, e->b = m->file_index;
        break;
    }
    case TALLOW_MSG_TransferComplete: {
        const tallow_msg_TransferComplete *m = msg;
        e->tid = m->transfer_id, e->a = m->files, e->b = m->bytes;
        break;
    }
    case TALLOW_MSG_TransferError: {
        const tallow_msg_TransferError *m = msg;
        e->tid = m->transfer_id, e->c = (uint64_t)m->code;
        e->bytes = dup_bytes(m->message), e->len = m->message.len;
        break;
    }
    case TALLOW_MSG_ResumeInfo: {
        const tallow_msg_ResumeInfo *m = msg;
        e->tid = m->transfer_id, e->a = m->file_index, e->b = m->offset;
        break;
    }
    default:
        fail_msg("the engine sent an unexpected %s", t->name);
    }
}

int __wrap_tallow__session_send_tx(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                                   const void *msg)
{
    assert_ptr_equal(s, FAKE_SESSION);
    record(t, msg);
    assert_int_equal(fake.log[fake.n - 1].tid, tid); /* sealed under the transfer's own key */
    return 0;
}

uint8_t *__wrap_tallow__session_tx_spot(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                                        const void *msg, const tallow_bytes *field)
{
    assert_true(field->len <= sizeof(fake.spot));
    return fake.spot;
}

void __wrap_tallow__session_set_filter(tallow__session *s, tallow__session_filter f, void *ud)
{
    fake.filter = f;
    fake.filter_ud = ud;
}

int __wrap_tallow__session_on(tallow__session *s, uint32_t id, tallow__session_filter f, void *ud)
{
    assert_int_equal(id, TALLOW_MSG_TransferComplete); /* the only id the engine claims */
    fake.on_complete = f;
    fake.on_complete_ud = ud;
    return 0;
}

void __wrap_tallow__session_set_resync_owned(tallow__session *s, void (*fn)(void *ud), void *ud,
                                             void (*free_ud)(void *ud))
{
    /* as the session does: an owned state is freed when the hook is replaced */
    if (fake.resync_free && fake.resync_ud != ud) fake.resync_free(fake.resync_ud);
    fake.resync = fn;
    fake.resync_ud = ud;
    fake.resync_free = free_ud;
}

void __wrap_tallow__session_set_resync(tallow__session *s, void (*fn)(void *ud), void *ud)
{
    __wrap_tallow__session_set_resync_owned(s, fn, ud, NULL);
}

uint64_t __wrap_tallow__session_rx_key(const tallow__session *s)
{
    return fake.rx_key;
}

tallow_ctx *__wrap_tallow__session_ctx(tallow__session *s)
{
    return fake.ctx;
}

void __wrap_tallow__session_info(tallow__session *s, tallow_channel_info *info)
{
    memset(info, 0, sizeof(*info));
}

/* Delivers a message of the peer under the key of transfer tid; returns what the filter said. */
static int deliver(uint64_t tid, const tallow_msg_type *t, const void *msg)
{
    assert_non_null(fake.filter);
    fake.rx_key = tid;
    return fake.filter(FAKE_SESSION, t, msg, fake.filter_ud);
}

static size_t count_sent(uint32_t id)
{
    size_t k = 0;
    for (size_t i = 0; i < fake.n; i++)
        k += fake.log[i].id == id;
    return k;
}

static const sent *last_sent(uint32_t id)
{
    for (size_t i = fake.n; i-- > 0;)
        if (fake.log[i].id == id) return &fake.log[i];
    return NULL;
}

static void clear_log(void)
{
    for (size_t i = 0; i < fake.n; i++) {
        free(fake.log[i].bytes);
        free(fake.log[i].bytes2);
    }
    fake.n = 0;
}

/* ---- callbacks */

static struct {
    int done, status;
    int notices;
} res;

static void on_done(tallow__xfer *x, int status, void *ud)
{
    res.done++;
    res.status = status;
}

static void on_notice(tallow__xfer *x, const char *msg, void *ud)
{
    res.notices++;
}

static const tallow__xfer_cbs cbs = {.on_notice = on_notice, .on_done = on_done};

/* ---- fixture: a source folder with one file, and a destination folder */

typedef struct fx {
    char *src, *dst;
    int dstfd;
    char path[600];
    uint8_t *data;
    size_t len;
} fx;

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
        p[i] = (uint8_t)seed;
    }
}

static fx *fx_new(size_t len)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->src = fst_mkdtemp("xfer-src");
    f->dst = fst_mkdtemp("xfer-dst");
    assert_non_null(f->src);
    assert_non_null(f->dst);
    f->dstfd = open(f->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->dstfd >= 0);
    f->len = len;
    f->data = malloc(len + 1);
    fill(f->data, len, 2463534242u);
    int sfd = open(f->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(fst_write(sfd, "a.bin", f->data, len), 0);
    close(sfd);
    snprintf(f->path, sizeof(f->path), "%s/a.bin", f->src);
    return f;
}

static void fx_free(fx *f)
{
    close(f->dstfd);
    fst_rm_rf(f->src);
    fst_rm_rf(f->dst);
    free(f->src);
    free(f->dst);
    free(f->data);
    free(f);
}

static int setup(void **state)
{
    memset(&res, 0, sizeof(res));
    fake.filter = NULL;
    fake.resync = NULL;
    fake.ctx = tallow_ctx_new();
    unsetenv("TALLOW_STALL_TIMEOUT");
    return fake.ctx ? 0 : -1;
}

static int teardown(void **state)
{
    __wrap_tallow__session_set_resync(FAKE_SESSION, NULL, NULL); /* as the session's close */
    clear_log();
    tallow_ctx_free(fake.ctx);
    return 0;
}

/* ================================================================ sender */

/* Starts a sender of f's file; returns it with its FileOffer checked. */
static tallow__xfer *start_sender(fx *f, uint64_t *tid)
{
    tallow__manifest m;
    const char *paths[] = {f->path};
    assert_int_equal(tallow__manifest_build(paths, 1, &m), 0);
    tallow__xfer *x = NULL;
    assert_int_equal(tallow__xfer_send(FAKE_SESSION, &m, NULL, 0, &cbs, NULL, &x), 0);
    assert_non_null(x);
    assert_int_equal(m.n, 0); /* taken over */
    const sent *o = last_sent(TALLOW_MSG_FileOffer);
    assert_non_null(o);
    assert_int_equal(count_sent(TALLOW_MSG_FileOffer), 1);
    assert_int_equal(o->a, 1);
    assert_int_equal(o->b, f->len);
    assert_false(o->more);
    tallow__manifest got;
    assert_int_equal(tallow__manifest_decode(o->bytes, o->len, 0, &got), 0);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.e[0].path, "a.bin");
    assert_int_equal(got.e[0].size, f->len);
    tallow__manifest_free(&got);
    assert_non_null(fake.filter);                      /* it listens for the answer now */
    assert_int_equal(count_sent(TALLOW_MSG_Chunk), 0); /* nothing streams before the answer */
    *tid = o->tid;
    return x;
}

static int accept_with(uint64_t tid, const uint64_t *resume, size_t n)
{
    uint8_t list[64];
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += tallow_varint_put(list + pos, resume[i]);
    tallow_msg_FileAccept a = {.transfer_id = tid, .resume = {list, pos}};
    return deliver(tid, &tallow_msgtype_FileAccept, &a);
}

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

/* Ends with EPROTO and tells the peer with a TransferError. */
static void expect_eproto(uint64_t tid)
{
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, TALLOW_EPROTO);
    const sent *te = last_sent(TALLOW_MSG_TransferError);
    assert_non_null(te);
    assert_int_equal(te->tid, tid);
    assert_int_equal((int64_t)te->c, tallow_err_to_wire(TALLOW_EPROTO)); /* the wire keeps -1017 */
    assert_null(fake.filter);
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
    tallow__xfer_free(x);
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
    const sent *again = last_sent(TALLOW_MSG_FileAccept);
    assert_int_equal(again->tid, tid);
    assert_false(again->more);
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
    check_arrived(f);
    finish_receiver(x, tid2, f);
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
        cmocka_unit_test_setup_teardown(test_transfer_send_accept_stream_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_resume_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_already_there, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_refuses_bad_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_send_stall_counts_from_last_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transfer_recv_in_order_complete, setup, teardown),
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
