/* tests/fuzz/fuzz_resume.c — libFuzzer target for the resume data.
 * Byte 0 below 0x80: the receiver's resume list as the sender reads it (FileAccept.resume,
 * parsed by on_accept in core/transfer/transfer_send.c), in one message or, when (byte 0 / 17) is
 * odd, in two parts cut in the middle (more = 1 on the first). transfer_send.c is compiled into
 * this file to reach its static parser; the sender is held "inside pump" so that accepting streams
 * nothing. Input: n (byte 0 & 0x3f, % 17), then n entry bytes (bit 7: directory, low bits pick a
 * size), then, when byte 0 has bit 6, a length byte and that many bytes of refusal list
 * (FileAccept.refused), then the resume list. Whatever is accepted must stay within each entry's
 * bounds, and a refused file is neither counted as already there nor sent. Byte 0 from 0x80: a
 * peer's manifest (the rest of the input) probed against a destination that holds files, a
 * directory, a symlink, a FIFO and partial files (tallow__sink_probe, which decides what a receiver
 * resumes): offsets stay within the entry and aligned, and the destination is never changed. */
#include "../../core/transfer/transfer_send.c"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_resume: check failed: %s (line %d)\n", #c, __LINE__);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const uint64_t sizes[] = {
    0,
    1,
    2,
    127,
    128,
    129,
    16383,
    16384,
    RESUME_ALIGN - 1,
    RESUME_ALIGN,
    RESUME_ALIGN + 1,
    UINT32_MAX,
    (uint64_t)UINT32_MAX + 1,
    INT64_MAX - 1,
    INT64_MAX,
};

static char dest[64];
static int destfd = -1;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}
static void rm_dest(void)
{
    nftw(dest, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* a partial file as an earlier run would have left it: len bytes of entry e */
static void leave_partial(const char *path, uint64_t size, int64_t mtime, size_t len)
{
    tallow__entry e = {.path = (char *)path, .size = size, .mode = 0644, .mtime_ns = mtime};
    tallow__sink sk;
    uint64_t off;
    static uint8_t junk[4096];
    CHECK(tallow__sink_open(&sk, destfd, &e, 1, 1, &off) == 0);
    for (size_t done = 0; done < len; done += sizeof junk)
        CHECK(tallow__sink_write(&sk, done, junk,
                                 len - done < sizeof junk ? len - done : sizeof junk) == 0);
    tallow__sink_abort(&sk, 1);
}

static void setup_dest(void)
{
    snprintf(dest, sizeof dest, "/tmp/fuzz_resume.XXXXXX");
    CHECK(mkdtemp(dest) != NULL);
    atexit(rm_dest);
    destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(destfd >= 0);
    CHECK(mkdirat(destfd, "d", 0755) == 0 && mkdirat(destfd, "d/sub", 0755) == 0);
    int fd = openat(destfd, "a.txt", O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0 && write(fd, "hello", 5) == 5);
    close(fd);
    CHECK(symlinkat("/tmp", destfd, "link") == 0 && symlinkat("a.txt", destfd, "d/ln") == 0);
    CHECK(mkfifoat(destfd, "fifo", 0600) == 0);
    leave_partial("big.iso", 3u << 20, 7, (2u << 20) + 5);
    leave_partial("d/sub/part.bin", 100, 0, 40);
}

static void probe_manifest(const uint8_t *data, size_t size, uint8_t mode)
{
    if (destfd < 0) setup_dest();
    struct stat before, after;
    CHECK(fstat(destfd, &before) == 0);
    tallow__manifest m;
    if (tallow__manifest_decode(data, size, 64, &m) < 0) return;
    for (size_t i = 0; i < m.n; i++) {
        const tallow__entry *e = &m.e[i];
        uint64_t align = (mode & 1) ? 1 : RESUME_ALIGN, off = 12345;
        int rc = tallow__sink_probe(destfd, e, (int)((mode >> 1) ^ i) & 1, align, &off);
        if (e->type != TALLOW__ENT_FILE) {
            CHECK(rc == TALLOW_EINVAL);
            continue;
        }
        CHECK(rc == 0 || rc == 1 || rc == TALLOW_EUNSAFEPATH || rc == TALLOW_EEXIST ||
              rc == -ENOTDIR || rc == -ENAMETOOLONG || rc == -EACCES);
        CHECK(off <= e->size && off % align == 0);
        if (rc != 0) CHECK(off == 0);
    }
    tallow__manifest_free(&m);
    CHECK(fstat(destfd, &after) == 0);
    CHECK(after.st_nlink == before.st_nlink && after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
          after.st_mtim.tv_nsec == before.st_mtim.tv_nsec); /* nothing created or removed */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] >= 0x80) {
        probe_manifest(data + 1, size - 1, data[0]);
        return 0;
    }
    size_t n = (data[0] & 0x3f) % 17, pos = 1;
    if (size < 1 + n) return 0;
    static const tallow__xfer_cbs cbs = {0};
    tallow__xfer *x = calloc(1, sizeof *x);
    CHECK(x);
    x->sender = 1;
    x->state = X_OFFERED;
    x->in_pump = 1; /* pump() returns at once: nothing is read or sent */
    x->cbs = &cbs;
    x->m.e = calloc(n ? n : 1, sizeof *x->m.e);
    x->resume = calloc(n ? n : 1, sizeof *x->resume);
    x->kept = calloc(n ? n : 1, sizeof *x->kept);
    CHECK(x->m.e && x->resume && x->kept);
    x->m.n = n;
    for (size_t i = 0; i < n; i++, pos++) {
        tallow__entry *e = &x->m.e[i];
        e->path = (char *)"f"; /* borrowed: only named in refusal messages */
        e->type = data[pos] & 0x80 ? TALLOW__ENT_DIR : TALLOW__ENT_FILE;
        e->size = e->type == TALLOW__ENT_DIR ? 0 : sizes[(data[pos] & 0x7f) % (sizeof sizes / 8)];
        if (x->m.total_size + e->size < x->m.total_size) e->size = 0; /* decode refuses overflow */
        if (e->type == TALLOW__ENT_FILE) x->m.nfiles++;
        x->m.total_size += e->size;
    }
    size_t rlen = 0;
    if ((data[0] & 0x40) && pos < size) {
        rlen = data[pos++];
        if (rlen > size - pos) rlen = size - pos;
    }
    /* the lists arrive as FileAccept fields: borrowed bytes of the peer's frame */
    uint8_t *refused = malloc(rlen + 1), *list = malloc(size - pos - rlen + 1);
    CHECK(refused && list);
    memcpy(refused, data + pos, rlen);
    pos += rlen;
    memcpy(list, data + pos, size - pos);
    tallow_msg_FileAccept a = {
        .transfer_id = 1, .resume = {list, size - pos}, .refused = {refused, rlen}};
    int rc = 0;
    if ((data[0] / 17) & 1) { /* in two parts (FileAccept.more), cut in the middle */
        size_t half = (size - pos) / 2;
        tallow_msg_FileAccept first = {.transfer_id = 1, .resume = {list, half}, .more = 1};
        rc = on_accept(x, &first);
        CHECK(rc < 0 || x->state == X_OFFERED); /* nothing starts before the last part */
        a.resume = (tallow_bytes){list + half, size - pos - half};
    }
    if (rc == 0) rc = on_accept(x, &a);
    if (rc == 0) {
        CHECK(x->state == X_STREAMING);
        /* every refusal names an entry, once, in order: count the pairs again */
        const uint8_t *rp = refused;
        size_t rleft = rlen;
        uint64_t idx, err, pairs = 0, seen[17] = {0};
        while (next_refused(&rp, &rleft, &idx, &err) == 0 && idx != UINT64_MAX) {
            CHECK(idx < n);
            seen[idx] = 1;
            pairs++;
        }
        CHECK(rleft == 0 && x->st.refused == pairs && x->refused_named <= pairs);
        uint64_t resumed = 0, skipped = 0;
        for (size_t i = 0; i < n; i++) {
            const tallow__entry *e = &x->m.e[i];
            CHECK(x->resume[i] <= e->size + 1);
            CHECK(x->kept[i] ==
                  (tallow__xfer_is_skip(x, i) ? 0 : x->resume[i])); /* what the hash covers */
            if (e->type == TALLOW__ENT_DIR)
                CHECK(x->resume[i] == 0);
            else if (seen[i])
                CHECK(tallow__xfer_is_skip(x, i)); /* not sent, not "already there" */
            else if (tallow__xfer_is_skip(x, i))
                skipped++, resumed += e->size;
            else
                resumed += x->resume[i];
        }
        CHECK(x->st.bytes_resumed == resumed && x->st.files_skipped == skipped);
        CHECK(resumed <= x->m.total_size && x->st.bytes_done == resumed);
    } else {
        CHECK(rc == TALLOW_EPROTO);
    }
    free(list);
    free(refused);
    free(x->resume);
    free(x->kept);
    free(x->m.e);
    free(x);
    return 0;
}
