/* core/transfer/manifest.c — the manifest's wire form and its strict decoder. A peer's manifest is
 * hostile: every length is bounded before anything is allocated, every path passes
 * tallow__path_check, and entries that would collide on the receiver (duplicates, case-folded
 * duplicates, an entry under a file) are refused. Wire form, all varints (tallow_varint_*):
 *   version(1) n { type | path_len path | size | mode | zigzag(mtime_ns) } * n */
#include <stdlib.h>
#include <string.h>

#include <tallow/msg.h>

#include "fsutil.h"

/* smallest possible entry: type, path_len, 1 path byte, size, mode, mtime */
#define MIN_ENTRY_BYTES 6u

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t u)
{
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

void tallow__manifest_free(tallow__manifest *m)
{
    if (!m) return;
    for (size_t i = 0; m->e && i < m->n; i++) {
        free(m->e[i].path);
        free(m->e[i].src);
    }
    free(m->e);
    memset(m, 0, sizeof *m);
}

int tallow__manifest_encode(const tallow__manifest *m, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t total = tallow_varint_size(TALLOW__MANIFEST_VERSION) + tallow_varint_size(m->n);
    for (size_t i = 0; i < m->n; i++) {
        const tallow__entry *e = &m->e[i];
        if (!e->path || e->type > TALLOW__ENT_DIR) return TALLOW_EINVAL;
        size_t plen = strlen(e->path);
        total += tallow_varint_size(e->type) + tallow_varint_size(plen) + plen +
                 tallow_varint_size(e->size) + tallow_varint_size(e->mode & 0777u) +
                 tallow_varint_size(zigzag(e->mtime_ns));
    }
    uint8_t *buf = malloc(total);
    if (!buf) return TALLOW_ENOMEM;
    size_t pos = tallow_varint_put(buf, TALLOW__MANIFEST_VERSION);
    pos += tallow_varint_put(buf + pos, m->n);
    for (size_t i = 0; i < m->n; i++) {
        const tallow__entry *e = &m->e[i];
        size_t plen = strlen(e->path);
        pos += tallow_varint_put(buf + pos, e->type);
        pos += tallow_varint_put(buf + pos, plen);
        memcpy(buf + pos, e->path, plen);
        pos += plen;
        pos += tallow_varint_put(buf + pos, e->size);
        pos += tallow_varint_put(buf + pos, e->mode & 0777u);
        pos += tallow_varint_put(buf + pos, zigzag(e->mtime_ns));
    }
    *out = buf;
    *len = pos;
    return 0;
}

/* ---- collisions: compare on a key that folds ASCII case and spells the precomposed letters of
 * Latin-1 and Latin Extended-A (U+00C0..U+017F) as base letter + combining mark, so that "A"/"a"
 * and NFC "\xc3\xa9" / NFD "e\xcc\x81" (both "é") collide, as they do on case- or
 * normalisation-insensitive filesystems (macOS, Windows). Sort the keys, then look at neighbours
 * and ancestors. */

/* canonical decomposition of U+00C0 + i: base letter (0 = none) and mark U+0300 + decomp_mark[i]
 * (generated once from the Unicode tables) */
/* clang-format off */
static const char decomp_base[192] = {
    'A', 'A', 'A', 'A', 'A', 'A', 0, 'C', 'E', 'E', 'E', 'E', 'I', 'I', 'I', 'I',
    0, 'N', 'O', 'O', 'O', 'O', 'O', 0, 0, 'U', 'U', 'U', 'U', 'Y', 0, 0,
    'a', 'a', 'a', 'a', 'a', 'a', 0, 'c', 'e', 'e', 'e', 'e', 'i', 'i', 'i', 'i',
    0, 'n', 'o', 'o', 'o', 'o', 'o', 0, 0, 'u', 'u', 'u', 'u', 'y', 0, 'y',
    'A', 'a', 'A', 'a', 'A', 'a', 'C', 'c', 'C', 'c', 'C', 'c', 'C', 'c', 'D', 'd',
    0, 0, 'E', 'e', 'E', 'e', 'E', 'e', 'E', 'e', 'E', 'e', 'G', 'g', 'G', 'g',
    'G', 'g', 'G', 'g', 'H', 'h', 0, 0, 'I', 'i', 'I', 'i', 'I', 'i', 'I', 'i',
    'I', 0, 0, 0, 'J', 'j', 'K', 'k', 0, 'L', 'l', 'L', 'l', 'L', 'l', 0,
    0, 0, 0, 'N', 'n', 'N', 'n', 'N', 'n', 0, 0, 0, 'O', 'o', 'O', 'o',
    'O', 'o', 0, 0, 'R', 'r', 'R', 'r', 'R', 'r', 'S', 's', 'S', 's', 'S', 's',
    'S', 's', 'T', 't', 'T', 't', 0, 0, 'U', 'u', 'U', 'u', 'U', 'u', 'U', 'u',
    'U', 'u', 'U', 'u', 'W', 'w', 'Y', 'y', 'Y', 'Z', 'z', 'Z', 'z', 'Z', 'z', 0,
};
static const uint8_t decomp_mark[192] = {
    0x00, 0x01, 0x02, 0x03, 0x08, 0x0a, 0x00, 0x27, 0x00, 0x01, 0x02, 0x08, 0x00, 0x01, 0x02, 0x08,
    0x00, 0x03, 0x00, 0x01, 0x02, 0x03, 0x08, 0x00, 0x00, 0x00, 0x01, 0x02, 0x08, 0x01, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x08, 0x0a, 0x00, 0x27, 0x00, 0x01, 0x02, 0x08, 0x00, 0x01, 0x02, 0x08,
    0x00, 0x03, 0x00, 0x01, 0x02, 0x03, 0x08, 0x00, 0x00, 0x00, 0x01, 0x02, 0x08, 0x01, 0x00, 0x08,
    0x04, 0x04, 0x06, 0x06, 0x28, 0x28, 0x01, 0x01, 0x02, 0x02, 0x07, 0x07, 0x0c, 0x0c, 0x0c, 0x0c,
    0x00, 0x00, 0x04, 0x04, 0x06, 0x06, 0x07, 0x07, 0x28, 0x28, 0x0c, 0x0c, 0x02, 0x02, 0x06, 0x06,
    0x07, 0x07, 0x27, 0x27, 0x02, 0x02, 0x00, 0x00, 0x03, 0x03, 0x04, 0x04, 0x06, 0x06, 0x28, 0x28,
    0x07, 0x00, 0x00, 0x00, 0x02, 0x02, 0x27, 0x27, 0x00, 0x01, 0x01, 0x27, 0x27, 0x0c, 0x0c, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x01, 0x27, 0x27, 0x0c, 0x0c, 0x00, 0x00, 0x00, 0x04, 0x04, 0x06, 0x06,
    0x0b, 0x0b, 0x00, 0x00, 0x01, 0x01, 0x27, 0x27, 0x0c, 0x0c, 0x01, 0x01, 0x02, 0x02, 0x27, 0x27,
    0x0c, 0x0c, 0x27, 0x27, 0x0c, 0x0c, 0x00, 0x00, 0x03, 0x03, 0x04, 0x04, 0x06, 0x06, 0x0a, 0x0a,
    0x0b, 0x0b, 0x28, 0x28, 0x02, 0x02, 0x02, 0x02, 0x08, 0x01, 0x01, 0x07, 0x07, 0x0c, 0x0c, 0x00,
};
/* clang-format on */

typedef struct ref {
    char *key;
    size_t len;
    size_t idx;
    uint8_t type;
} ref;

static int fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* The collision key of p[0..len) (malloc'd; 3 bytes per 2-byte letter at most). */
static char *collision_key(const char *p, size_t len, size_t *klen)
{
    char *k = malloc(len * 2 + 1);
    if (!k) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = (unsigned char)p[i];
        if (b >= 0xC3 && b <= 0xC5 && i + 1 < len && ((unsigned char)p[i + 1] & 0xC0) == 0x80) {
            unsigned cp = ((b & 0x1Fu) << 6) | ((unsigned char)p[i + 1] & 0x3Fu);
            if (cp >= 0xC0 && cp <= 0x17F && decomp_base[cp - 0xC0]) {
                unsigned m = 0x300u + decomp_mark[cp - 0xC0];
                k[o++] = (char)fold((unsigned char)decomp_base[cp - 0xC0]);
                k[o++] = (char)(0xC0 | (m >> 6));
                k[o++] = (char)(0x80 | (m & 0x3F));
                i += 2;
                continue;
            }
        }
        k[o++] = (char)fold(b);
        i++;
    }
    k[o] = '\0';
    *klen = o;
    return k;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int d = memcmp(a, b, alen < blen ? alen : blen);
    if (d) return d;
    return alen < blen ? -1 : alen > blen;
}

static int ref_cmp(const void *x, const void *y)
{
    const ref *a = x, *b = y;
    int d = key_cmp(a->key, a->len, b->key, b->len);
    if (d) return d;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static const ref *find_key(const ref *r, size_t n, const char *key, size_t klen)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = key_cmp(r[mid].key, r[mid].len, key, klen);
        if (d == 0) return &r[mid];
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int tallow__manifest_check_collisions(const tallow__manifest *m, size_t *bad)
{
    if (m->n < 2) return 0;
    ref *r = calloc(m->n, sizeof *r);
    if (!r) return TALLOW_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < m->n && !rc; i++) {
        r[i].key = collision_key(m->e[i].path, strlen(m->e[i].path), &r[i].len);
        r[i].idx = i;
        r[i].type = m->e[i].type;
        if (!r[i].key) rc = TALLOW_ENOMEM;
    }
    if (!rc) qsort(r, m->n, sizeof *r, ref_cmp);
    for (size_t i = 1; i < m->n && !rc; i++) {
        if (key_cmp(r[i - 1].key, r[i - 1].len, r[i].key, r[i].len) == 0) {
            *bad = r[i].idx;
            rc = TALLOW_EUNSAFEPATH;
        }
    }
    /* keys are unique now, so an ancestor matches at most one entry; '/' maps to itself, so an
     * ancestor's key is a prefix of the entry's key */
    for (size_t i = 0; i < m->n && !rc; i++) {
        const char *k = r[i].key;
        for (const char *sl = strchr(k, '/'); sl; sl = strchr(sl + 1, '/')) {
            const ref *a = find_key(r, m->n, k, (size_t)(sl - k));
            if (a && a->type == TALLOW__ENT_FILE) {
                *bad = r[i].idx;
                rc = TALLOW_EUNSAFEPATH;
                break;
            }
        }
    }
    for (size_t i = 0; i < m->n; i++)
        free(r[i].key);
    free(r);
    return rc;
}

/* ---- decode */

typedef struct rd {
    const uint8_t *buf;
    size_t len, pos;
} rd;

static int get(rd *r, uint64_t *v)
{
    int n = tallow_varint_get(r->buf + r->pos, r->len - r->pos, v);
    if (n < 0) return TALLOW_EBADMSG;
    r->pos += (size_t)n;
    return 0;
}

static int decode_entry(rd *r, tallow__entry *e, uint64_t *path_bytes)
{
    uint64_t type, plen, size, mode, mt;
    if (get(r, &type) || type > TALLOW__ENT_DIR) return TALLOW_EBADMSG;
    if (get(r, &plen) || plen > r->len - r->pos) return TALLOW_EBADMSG;
    *path_bytes += plen;
    if (*path_bytes > TALLOW__MANIFEST_MAX_PATHS) return TALLOW_ETOOBIG;
    const char *p = (const char *)r->buf + r->pos;
    if (tallow__path_check(p, (size_t)plen, NULL, 0)) return TALLOW_EUNSAFEPATH;
    r->pos += (size_t)plen;
    if (get(r, &size) || get(r, &mode) || get(r, &mt)) return TALLOW_EBADMSG;
    if (mode > 07777 || (type == TALLOW__ENT_DIR && size != 0) || size > (uint64_t)INT64_MAX)
        return TALLOW_EBADMSG; /* no filesystem holds more than off_t can address */
    e->path = malloc((size_t)plen + 1);
    if (!e->path) return TALLOW_ENOMEM;
    memcpy(e->path, p, (size_t)plen);
    e->path[plen] = '\0';
    e->type = (uint8_t)type;
    e->size = size;
    e->mode = (uint32_t)mode & 0777u;
    e->mtime_ns = unzigzag(mt);
    e->src = NULL;
    return 0;
}

int tallow__manifest_decode(const uint8_t *buf, size_t len, size_t max_entries,
                            tallow__manifest *out)
{
    memset(out, 0, sizeof *out);
    if (!buf && len) return TALLOW_EINVAL;
    if (max_entries == 0) max_entries = TALLOW__MANIFEST_DEF_ENTRIES;
    rd r = {buf, len, 0};
    uint64_t version, n, path_bytes = 0;
    if (get(&r, &version) || version != TALLOW__MANIFEST_VERSION) return TALLOW_EBADMSG;
    if (get(&r, &n)) return TALLOW_EBADMSG;
    if (n > max_entries) return TALLOW_ETOOBIG;
    if (n > (r.len - r.pos) / MIN_ENTRY_BYTES) return TALLOW_EBADMSG; /* before allocating */
    int rc = 0;
    if (n) {
        out->e = calloc((size_t)n, sizeof *out->e);
        if (!out->e) return TALLOW_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        tallow__entry *e = &out->e[i];
        rc = decode_entry(&r, e, &path_bytes);
        if (rc) break;
        out->n++;
        if (e->type == TALLOW__ENT_FILE) {
            if (e->size > UINT64_MAX - out->total_size) {
                rc = TALLOW_EBADMSG;
                break;
            }
            out->total_size += e->size;
            out->nfiles++;
        }
    }
    if (!rc && r.pos != r.len) rc = TALLOW_EBADMSG;
    size_t bad;
    if (!rc) rc = tallow__manifest_check_collisions(out, &bad);
    if (rc) tallow__manifest_free(out);
    return rc;
}
