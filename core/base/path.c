/* core/base/path.c — every name a peer sends is hostile: tallow__path_check() decides whether a
 * relative path may be used at all, tallow__printable() makes any name safe to show on a terminal,
 * and the safe_* walkers open directories under the destination one component at a time, never
 * following a symlink, so that nothing can be created outside it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include <tallow/safefs.h>

/* Decodes one strict UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF).
 * Returns its length (1..4) and *cp, or 0 when p[0..n) does not start with a valid one. */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char b = p[0];
    size_t k;
    uint32_t c, min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        k = 2, c = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        k = 3, c = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        k = 4, c = b & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return k;
}

static int refuse(char *why, size_t whylen, const char *msg)
{
    if (why && whylen) snprintf(why, whylen, "%s", msg);
    return TALLOW_EUNSAFEPATH;
}

static int ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen) return 0;
    for (size_t i = 0; i < alen; i++) {
        char c = a[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (c != b[i]) return 0;
    }
    return 1;
}

/* Windows resolves these names to devices whatever the extension ("nul.txt", "COM1.tar.gz"),
 * and ignores spaces before the dot ("CON .txt"). */
static int is_device_name(const char *c, size_t clen)
{
    static const char *const fixed[] = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"};
    size_t base = 0;
    while (base < clen && c[base] != '.')
        base++;
    while (base > 0 && c[base - 1] == ' ')
        base--;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (ieq(c, base, fixed[i])) return 1;
    if (base >= 4 && (ieq(c, 3, "COM") || ieq(c, 3, "LPT"))) {
        /* COM1-9, LPT1-9, and the superscript digits Windows also maps: ¹ ² ³ */
        if (base == 4 && c[3] >= '1' && c[3] <= '9') return 1;
        if (base == 5 && (unsigned char)c[3] == 0xC2 &&
            ((unsigned char)c[4] == 0xB9 || (unsigned char)c[4] == 0xB2 ||
             (unsigned char)c[4] == 0xB3))
            return 1;
    }
    return 0;
}

static int check_component(const char *c, size_t clen, char *why, size_t whylen)
{
    if (clen == 0) return refuse(why, whylen, "empty component");
    if (clen > TALLOW__NAME_MAX) return refuse(why, whylen, "component too long");
    if ((clen == 1 && c[0] == '.') || (clen == 2 && c[0] == '.' && c[1] == '.'))
        return refuse(why, whylen, "'.' or '..' component");
    for (size_t i = 0; i < clen;) {
        unsigned char b = (unsigned char)c[i];
        uint32_t cp;
        if (b < 0x20 || b == 0x7F) return refuse(why, whylen, "control character");
        if (b == '\\') return refuse(why, whylen, "backslash");
        size_t k = utf8_next((const unsigned char *)c + i, clen - i, &cp);
        if (k == 0) return refuse(why, whylen, "invalid UTF-8");
        if (cp >= 0x80 && cp <= 0x9F) return refuse(why, whylen, "C1 control character");
        i += k;
    }
    if (c[clen - 1] == '.' || c[clen - 1] == ' ')
        return refuse(why, whylen, "name ends in '.' or ' '");
    if (is_device_name(c, clen)) return refuse(why, whylen, "Windows device name");
    return 0;
}

int tallow__path_check(const char *rel, size_t len, char *why, size_t whylen)
{
    if (why && whylen) why[0] = '\0';
    if (!rel) return refuse(why, whylen, "no path");
    if (len == 0) return refuse(why, whylen, "empty path");
    if (memchr(rel, '\0', len)) return refuse(why, whylen, "NUL inside");
    if (len > TALLOW__PATH_MAX) return refuse(why, whylen, "path too long");
    if (rel[0] == '/') return refuse(why, whylen, "absolute path");
    size_t start = 0;
    for (;;) {
        const char *slash = memchr(rel + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - rel) : len;
        int rc = check_component(rel + start, end - start, why, whylen);
        if (rc) return rc;
        if (!slash) return 0;
        start = end + 1; /* a trailing '/' leaves an empty last component: refused */
    }
}

/* Characters that are valid but reorder or hide text on a terminal: bidi marks and overrides,
 * zero-width characters, line/paragraph separators, BOM. */
static int is_invisible(uint32_t cp)
{
    return (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x206F) || cp == 0x061C || cp == 0xFEFF;
}

const char *tallow__printable(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    if (!out || cap == 0) return out;
    size_t limit = cap - 1, o = 0, safe = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; s && i < len;) {
        char tok[16];
        size_t tlen, consumed;
        uint32_t cp = 0;
        size_t k = utf8_next(p + i, len - i, &cp);
        if (k == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || is_invisible(cp)) {
            /* escape one byte at a time; for a multi-byte char, all of its bytes */
            size_t n = k ? k : 1;
            for (size_t j = 0; j < n; j++) {
                tok[j * 4] = '\\';
                tok[j * 4 + 1] = 'x';
                tok[j * 4 + 2] = hex[p[i + j] >> 4];
                tok[j * 4 + 3] = hex[p[i + j] & 15];
            }
            tlen = n * 4, consumed = n;
        } else if (cp == '\\') {
            tok[0] = tok[1] = '\\';
            tlen = 2, consumed = 1;
        } else {
            memcpy(tok, p + i, k);
            tlen = k, consumed = k;
        }
        if (o + tlen > limit) {
            o = safe;
            for (int d = 0; d < 3 && o < limit; d++)
                out[o++] = '.';
            out[o] = '\0';
            return out;
        }
        memcpy(out + o, tok, tlen);
        o += tlen;
        if (o + 3 <= limit) safe = o;
        i += consumed;
    }
    out[o] = '\0';
    return out;
}

/* Opens one component under dirfd as a directory without following a symlink, creating it first
 * when asked. Returns the new fd or a negative code. */
static int open_component(int dirfd, const char *name, int create, mode_t mode)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dirfd, name, flags);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST) return -errno;
        fd = openat(dirfd, name, flags);
    }
    if (fd >= 0) return fd;
    if (errno == ELOOP || errno == ENOTDIR) return TALLOW_EUNSAFEPATH;
    return -errno;
}

static int walk(int destfd, const char *reldir, int create, mode_t mode)
{
    size_t len = reldir ? strlen(reldir) : 0;
    if (len && tallow__path_check(reldir, len, NULL, 0)) return TALLOW_EUNSAFEPATH;
    int cur = openat(destfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) return -errno;
    char comp[TALLOW__NAME_MAX + 1];
    const char *p = reldir;
    while (len) {
        const char *slash = memchr(p, '/', len);
        size_t clen = slash ? (size_t)(slash - p) : len;
        memcpy(comp, p, clen); /* clen <= NAME_MAX: checked above */
        comp[clen] = '\0';
        int next = open_component(cur, comp, create, mode);
        close(cur);
        if (next < 0) return next;
        cur = next;
        p += clen + (slash ? 1 : 0);
        len -= clen + (slash ? 1 : 0);
    }
    return cur;
}

int tallow__safe_mkdirs(int destfd, const char *reldir, mode_t mode)
{
    int fd = walk(destfd, reldir, 1, mode);
    if (fd < 0) return fd;
    close(fd);
    return 0;
}

int tallow__safe_open_dir(int destfd, const char *reldir, int create)
{
    return walk(destfd, reldir, create, 0755);
}

/* ---- the same rules for plugins (include/tallow/safefs.h) */

TALLOW_API int tallow_path_check(const char *rel, size_t len, char *why, size_t whylen)
{
    return tallow__path_check(rel, len, why, whylen);
}

TALLOW_API const char *tallow_printable(const char *s, size_t len, char *out, size_t cap)
{
    return tallow__printable(s, len, out, cap);
}

TALLOW_API int tallow_safe_open_dir(int destfd, const char *reldir, int create)
{
    return tallow__safe_open_dir(destfd, reldir, create);
}
