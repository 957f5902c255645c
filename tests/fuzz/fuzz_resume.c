/* tests/fuzz/fuzz_resume.c — libFuzzer target for the receiver's resume list as the sender reads
 * it (FileAccept.resume, parsed by on_accept in core/transfer.c). transfer.c is compiled into
 * this file to reach its static parser; the sender is held "inside pump" so that accepting
 * streams nothing. Input: n (1 byte), then n entry bytes (bit 7: directory, low bits pick a size),
 * then the resume list. Whatever is accepted must stay within each entry's bounds. */
#include "../../core/transfer.c"

#include <stdio.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_resume: check failed: %s (line %d)\n", #c, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const uint64_t sizes[] = {
    0, 1, 2, 127, 128, 129, 16383, 16384, RESUME_ALIGN - 1, RESUME_ALIGN, RESUME_ALIGN + 1,
    UINT32_MAX, (uint64_t)UINT32_MAX + 1, INT64_MAX - 1, INT64_MAX,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t n = data[0] % 17, pos = 1;
    if (size < 1 + n) return 0;
    tallow__xfer *x = calloc(1, sizeof *x);
    CHECK(x);
    x->sender = 1;
    x->state = X_OFFERED;
    x->in_pump = 1; /* pump() returns at once: nothing is read or sent */
    x->m.e = calloc(n ? n : 1, sizeof *x->m.e);
    x->resume = calloc(n ? n : 1, sizeof *x->resume);
    CHECK(x->m.e && x->resume);
    x->m.n = n;
    for (size_t i = 0; i < n; i++, pos++) {
        tallow__entry *e = &x->m.e[i];
        e->type = data[pos] & 0x80 ? TALLOW__ENT_DIR : TALLOW__ENT_FILE;
        e->size = e->type == TALLOW__ENT_DIR ? 0 : sizes[(data[pos] & 0x7f) % (sizeof sizes / 8)];
        if (x->m.total_size + e->size < x->m.total_size) e->size = 0; /* decode refuses overflow */
        if (e->type == TALLOW__ENT_FILE) x->m.nfiles++;
        x->m.total_size += e->size;
    }
    /* the list arrives as a FileAccept field: borrowed bytes of the peer's frame */
    uint8_t *list = malloc(size - pos + 1);
    CHECK(list);
    memcpy(list, data + pos, size - pos);
    tallow_msg_FileAccept a = {.transfer_id = 1, .resume = {list, size - pos}};
    int rc = on_accept(x, &a);
    if (rc == 0) {
        CHECK(x->state == X_STREAMING);
        uint64_t resumed = 0, skipped = 0;
        for (size_t i = 0; i < n; i++) {
            const tallow__entry *e = &x->m.e[i];
            CHECK(x->resume[i] <= e->size + 1);
            if (e->type == TALLOW__ENT_DIR) CHECK(x->resume[i] == 0);
            else if (is_skip(x, i)) skipped++, resumed += e->size;
            else resumed += x->resume[i];
        }
        CHECK(x->st.bytes_resumed == resumed && x->st.files_skipped == skipped);
        CHECK(resumed <= x->m.total_size && x->st.bytes_done == resumed);
    } else {
        CHECK(rc == TALLOW_EPROTO);
    }
    free(list);
    free(x->resume);
    free(x->m.e);
    free(x);
    return 0;
}
