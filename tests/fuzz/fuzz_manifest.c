/* tests/fuzz/fuzz_manifest.c — libFuzzer target for a peer's manifest (tallow__manifest_decode)
 * and the path helpers: every decoded entry must pass tallow__path_check and print safely, the
 * decoded manifest must encode and decode to the same entries; the raw input is also checked as
 * one path and printed into buffers of several sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_manifest: check failed: %s (line %d)\n", #c, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* tallow__printable output: NUL-terminated inside cap, no control byte, no DEL. */
static void check_printable(const char *s, size_t len, size_t cap)
{
    char *out = malloc(cap + 1);
    CHECK(out);
    out[cap] = 0x5a; /* canary just past cap */
    const char *r = tallow__printable(s, len, out, cap);
    CHECK(r == out && out[cap] == 0x5a);
    size_t n = strnlen(out, cap);
    CHECK(n < cap);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        CHECK(c >= 0x20 && c != 0x7f);
    }
    free(out);
}

static void check_path(const char *p, size_t len)
{
    char why[64];
    int rc = tallow__path_check(p, len, why, sizeof why);
    CHECK(rc == 0 || rc == TALLOW_EUNSAFEPATH);
    if (rc == 0) {
        CHECK(len > 0 && len <= TALLOW__PATH_MAX && p[0] != '/' && p[len - 1] != '/');
        CHECK(memchr(p, 0, len) == NULL && memchr(p, '\\', len) == NULL);
    } else {
        CHECK(strnlen(why, sizeof why) < sizeof why);
    }
    char tiny[3];
    (void)tallow__path_check(p, len, tiny, sizeof tiny);
    (void)tallow__path_check(p, len, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the raw input as one path */
    char *s = malloc(size + 1);
    CHECK(s);
    memcpy(s, data, size);
    s[size] = 0;
    check_path(s, size);
    check_printable(s, size, 1);
    check_printable(s, size, 8);
    check_printable(s, size, 4 * size + 4); /* always large enough: nothing cut */
    free(s);

    tallow__manifest m;
    int rc = tallow__manifest_decode(data, size, 4096, &m);
    if (rc < 0) {
        CHECK(rc == TALLOW_EBADMSG || rc == TALLOW_EUNSAFEPATH || rc == TALLOW_ETOOBIG ||
              rc == TALLOW_ENOMEM);
        CHECK(m.n == 0 && m.e == NULL);
        return 0;
    }
    uint64_t total = 0, nfiles = 0;
    for (size_t i = 0; i < m.n; i++) {
        const tallow__entry *e = &m.e[i];
        size_t len = strlen(e->path);
        CHECK(tallow__path_check(e->path, len, NULL, 0) == 0);
        CHECK(e->type == TALLOW__ENT_FILE || e->type == TALLOW__ENT_DIR);
        CHECK((e->mode & ~0777u) == 0 && e->src == NULL);
        CHECK(e->type == TALLOW__ENT_FILE || e->size == 0);
        if (e->type == TALLOW__ENT_FILE) nfiles++;
        total += e->size;
        check_printable(e->path, len, 16);
        check_printable(e->path, len, 300);
    }
    CHECK(total == m.total_size && nfiles == m.nfiles);
    size_t bad = 0;
    CHECK(tallow__manifest_check_collisions(&m, &bad) == 0);

    uint8_t *enc;
    size_t elen;
    CHECK(tallow__manifest_encode(&m, &enc, &elen) == 0);
    CHECK(elen <= size);
    tallow__manifest m2;
    CHECK(tallow__manifest_decode(enc, elen, 4096, &m2) == 0 && m2.n == m.n);
    for (size_t i = 0; i < m.n; i++) {
        CHECK(strcmp(m.e[i].path, m2.e[i].path) == 0 && m.e[i].size == m2.e[i].size);
        CHECK(m.e[i].mode == m2.e[i].mode && m.e[i].mtime_ns == m2.e[i].mtime_ns);
        CHECK(m.e[i].type == m2.e[i].type);
    }
    /* re-encoding is stable */
    uint8_t *enc2;
    size_t elen2;
    CHECK(tallow__manifest_encode(&m2, &enc2, &elen2) == 0);
    CHECK(elen2 == elen && memcmp(enc, enc2, elen) == 0);
    free(enc);
    free(enc2);
    tallow__manifest_free(&m2);
    tallow__manifest_free(&m);
    tallow__manifest_free(&m); /* idempotent */
    return 0;
}
