/* tests/core/transfer_fake.h — what test_transfer.c (the sender) and test_transfer_recv.c (the
 * receiver) share: the fake session that replaces the functions the engine calls (linker --wrap,
 * see tests/CMakeLists.txt; it records every message sent and delivers the peer's through the
 * filter the engine installed), the callbacks' results, the fixture (a source folder with one
 * file, a destination folder), and the sender's start and the peer's answers both sides use. */
#ifndef TALLOW_TEST_TRANSFER_FAKE_H
#define TALLOW_TEST_TRANSFER_FAKE_H

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "fstest.h"
#include "transfer.h"
#include "transfer_internal.h" /* CHUNK, and the stall clock for the stall test */

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
    tallow__session_filter on_chunk; /* the handler for Chunk's id */
    void *on_chunk_ud;
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
        e->tid = m->transfer_id, e->more = (int)m->more, e->last = (int)m->again;
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
    /* the only ids the engine claims: late completions (both roles), late chunks (receiver) */
    if (id == TALLOW_MSG_Chunk) {
        fake.on_chunk = f;
        fake.on_chunk_ud = ud;
        return 0;
    }
    assert_int_equal(id, TALLOW_MSG_TransferComplete);
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

/* Disk work runs off the loop (core/base/work.h): the receiver's checks and flushes, the
 * sender's hash of a resumed file's kept prefix. Runs the loop until the transfer is done or a
 * TransferComplete went out, at most 5 s (the work on a test file takes milliseconds). */
static inline void settle_disk(void)
{
    for (int i = 0; i < 500 && !res.done && !last_sent(TALLOW_MSG_TransferComplete); i++)
        tallow_loop_run_once(tallow_ctx_loop(fake.ctx), 10);
}

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

/* ---- both sides: a sender started, a peer accepting, a transfer ended for a protocol error */

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

#endif
