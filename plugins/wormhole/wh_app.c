/* plugins/wormhole/wh_app.c — magic-wormhole's file-transfer app: text, file and directory
 * offers, answers, the transit message (always before the offer: the Python receiver needs it
 * first, and wormhole-william refuses a second one), the stream of records, and the receiver's
 * ack with the SHA-256 of what arrived (always there: wormhole-william needs it). */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <tallow/error.h>
#include <tallow/safefs.h>

#include "wh.h"

#define PHASE_WAIT_MS (120 * 1000)          /* a paired peer says nothing: give up */
#define ANSWER_WAIT_MS (24LL * 3600 * 1000) /* a person deciding to accept: no real limit */
#define TRANSIT_WAIT_MS (60 * 1000)
#define STALL_MS (120 * 1000)
#define CHUNK (64 * 1024)

static int fail(wh_session *s, int rc, const char *msg)
{
    snprintf(s->err, sizeof(s->err), "%s", msg);
    return rc;
}

static int conn_fail(wh_session *s, int rc)
{
    snprintf(s->err, sizeof(s->err), "%s", s->c.err[0] ? s->c.err : tallow_strerror(rc));
    return rc;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct prog {
    wh_session *s;
    const char *verb;
    tallow_progress_info p;
    uint64_t last;
} prog;

static void prog_start(prog *g, wh_session *s, const char *verb, uint64_t total)
{
    memset(g, 0, sizeof(*g));
    g->s = s;
    g->verb = verb;
    g->p.bytes_total = total;
    g->p.files_total = 1;
    g->p.started_ns = now_ns();
}

static void prog_add(prog *g, uint64_t n)
{
    g->p.bytes_done += n;
    g->p.wire_bytes += n;
    uint64_t t = now_ns();
    if (t - g->last >= 100000000ull) {
        g->last = t;
        tallow_progress_print(g->s->progress, g->verb, &g->p, g->s->path, 0);
    }
}

static void prog_end(prog *g)
{
    g->p.finished_ns = now_ns();
    g->p.files_done = g->p.files_total;
    tallow_progress_print(g->s->progress, g->verb, &g->p, g->s->path, 1);
    g->s->seconds = (double)(g->p.finished_ns - g->p.started_ns) / 1e9;
    g->s->wire = g->p.wire_bytes;
}

/* Reads the peer's phases until one holds key (returned, owned), storing its transit. An
 * {"error": ...} from the peer ends it with TALLOW_EREJECTED. */
static int wait_for(wh_session *s, const char *key, json_t **out, int64_t wait_ms)
{
    int64_t deadline = wh_now_ms() + wait_ms;
    for (;;) {
        json_t *m = NULL;
        int rc = wh_conn_recv(&s->c, &m, deadline);
        if (rc == TALLOW_ETIMEOUT) {
            return fail(s, rc, "the other side sent nothing in time; giving up");
        }
        if (rc) return conn_fail(s, rc);
        json_t *e = json_object_get(m, "error");
        if (e) {
            char msg[WH_ERRLEN], pr[160];
            const char *es = json_is_string(e) ? json_string_value(e) : "?";
            snprintf(msg, sizeof(msg), "the other side stopped: %s",
                     tallow_printable(es, strlen(es), pr, sizeof(pr)));
            json_decref(m);
            return fail(s, TALLOW_EREJECTED, msg);
        }
        json_t *tr = json_object_get(m, "transit");
        if (tr) {
            if (!s->peer_transit) s->peer_transit = json_incref(tr);
        }
        json_t *v = json_object_get(m, key);
        if (v) {
            *out = json_incref(v);
            json_decref(m);
            return 0;
        }
        json_decref(m);
    }
}

int wh_send_text(wh_session *s, const char *text, size_t len)
{
    json_t *str = json_stringn(text, len);
    if (!str)
        return fail(s, TALLOW_EINVAL,
                    "the text is not valid UTF-8 (magic-wormhole sends text as JSON)");
    int rc =
        wh_conn_send(&s->c, json_pack("{s:{s:o}}", "offer", "message", str), wh_now_ms() + 30000);
    if (rc) return conn_fail(s, rc);
    json_t *ans = NULL;
    rc = wait_for(s, "answer", &ans, ANSWER_WAIT_MS);
    if (rc) return rc;
    const char *ack = json_string_value(json_object_get(ans, "message_ack"));
    int ok = ack && strcmp(ack, "ok") == 0;
    json_decref(ans);
    if (!ok) return fail(s, TALLOW_EPROTO, "the other side did not acknowledge the text");
    s->bytes = len;
    s->path = "mailbox";
    wh_conn_close(&s->c, "happy");
    return 0;
}

static int start_transit(wh_session *s, int sender)
{
    int rc = wh_transit_init(&s->t, sender, s->transit_relay, s->no_p2p);
    s->have_t = 1;
    if (rc) return fail(s, rc, s->t.err[0] ? s->t.err : tallow_strerror(rc));
    rc = wh_conn_send(&s->c, wh_transit_message(&s->t), wh_now_ms() + 30000);
    return rc ? conn_fail(s, rc) : 0;
}

static int connect_transit(wh_session *s)
{
    if (!s->peer_transit) return fail(s, TALLOW_EPROTO, "the other side sent no transit hints");
    int rc = wh_transit_connect(&s->t, s->c.key, s->peer_transit, wh_now_ms() + TRANSIT_WAIT_MS);
    if (rc) return fail(s, rc, s->t.err);
    s->path = s->t.path;
    return 0;
}

/* Streams fd (size bytes) as records, then checks the receiver's ack. */
static int stream_out(wh_session *s, int fd, uint64_t size, const char *verb)
{
    uint8_t *buf = malloc(CHUNK);
    if (!buf) return TALLOW_ENOMEM;
    /* SHA-256 from GnuTLS: it uses the CPU's SHA extensions (libsodium's is plain C, 10x slower) */
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
        free(buf);
        return TALLOW_ENOMEM;
    }
    prog g;
    prog_start(&g, s, verb, size);
    uint64_t sent = 0;
    int rc = 0;
    while (sent < size) {
        size_t want = size - sent < CHUNK ? (size_t)(size - sent) : CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)sent);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = fail(s, r < 0 ? -errno : TALLOW_EPROTO,
                      "the file shrank or could not be read while sending");
            break;
        }
        gnutls_hash(h, buf, (size_t)r);
        rc = wh_transit_send(&s->t, buf, (size_t)r, wh_now_ms() + STALL_MS);
        if (rc) {
            fail(s, rc, s->t.err);
            break;
        }
        sent += (uint64_t)r;
        prog_add(&g, (uint64_t)r);
    }
    free(buf);
    uint8_t digest[32];
    char hex[65];
    gnutls_hash_deinit(h, digest);
    if (rc) return rc;
    wh_hex(hex, digest, 32);
    const uint8_t *rec;
    size_t rl;
    rc = wh_transit_recv(&s->t, &rec, &rl, wh_now_ms() + STALL_MS);
    if (rc) return fail(s, rc, "the receiver closed without acknowledging what it got");
    json_t *ack = json_loadb((const char *)rec, rl, 0, NULL);
    const char *a = json_string_value(json_object_get(ack, "ack"));
    const char *sh = json_string_value(json_object_get(ack, "sha256"));
    int ok = a && strcmp(a, "ok") == 0;
    int hash_ok = sh && strcasecmp(sh, hex) == 0;
    json_decref(ack);
    if (!ok) return fail(s, TALLOW_EPROTO, "the receiver did not acknowledge the transfer");
    if (!hash_ok)
        return fail(s, TALLOW_EHASH,
                    "integrity check failed: the receiver's SHA-256 of what "
                    "arrived differs from what was sent");
    prog_end(&g);
    s->bytes = size;
    return 0;
}

int wh_send_path(wh_session *s, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(s->err, sizeof(s->err), "%s: %s", path, strerror(errno));
        return -errno;
    }
    int fd = -1, rc;
    json_t *offer;
    char *copy = strdup(path);
    if (!copy) return TALLOW_ENOMEM;
    char *trimmed = copy;
    size_t cl = strlen(copy);
    while (cl > 1 && copy[cl - 1] == '/')
        copy[--cl] = 0;
    const char *base = basename(trimmed);
    uint64_t size, numfiles = 1, numbytes = 0;
    if (S_ISDIR(st.st_mode)) {
        const char *tmpdir = getenv("TMPDIR");
        char tmpl[4200];
        snprintf(tmpl, sizeof(tmpl), "%s/tallow-wormhole-zip.XXXXXX",
                 tmpdir && *tmpdir ? tmpdir : "/tmp");
        fd = mkstemp(tmpl);
        if (fd < 0) {
            free(copy);
            return fail(s, -errno, "cannot make a temporary file for the zip");
        }
        close(fd);
        rc = wh_zip_dir(path, tmpl, &numfiles, &numbytes, s->err, sizeof(s->err));
        fd = rc ? -1 : open(tmpl, O_RDONLY | O_CLOEXEC);
        unlink(tmpl);
        if (!rc && fd < 0) rc = fail(s, -errno, "cannot read the zip back");
        if (rc) {
            free(copy);
            return rc;
        }
        size = (uint64_t)lseek(fd, 0, SEEK_END);
        offer = json_pack("{s:{s:s,s:s,s:I,s:I,s:I}}", "directory", "mode", "zipfile/deflated",
                          "dirname", base, "zipsize", (json_int_t)size, "numbytes",
                          (json_int_t)numbytes, "numfiles", (json_int_t)numfiles);
    } else if (S_ISREG(st.st_mode)) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(s->err, sizeof(s->err), "%s: %s", path, strerror(errno));
            free(copy);
            return -errno;
        }
        size = (uint64_t)st.st_size;
        offer = json_pack("{s:{s:s,s:I}}", "file", "filename", base, "filesize", (json_int_t)size);
    } else {
        free(copy);
        return fail(s, TALLOW_EINVAL, "only a regular file or a directory can be sent");
    }
    free(copy);
    rc = start_transit(s, 1);
    if (!rc)
        rc = wh_conn_send(&s->c, json_pack("{s:o}", "offer", offer), wh_now_ms() + 30000);
    else
        json_decref(offer);
    if (rc && !s->err[0]) conn_fail(s, rc);
    json_t *ans = NULL;
    if (!rc) rc = wait_for(s, "answer", &ans, ANSWER_WAIT_MS);
    if (!rc) {
        const char *fa = json_string_value(json_object_get(ans, "file_ack"));
        if (!fa || strcmp(fa, "ok") != 0)
            rc = fail(s, TALLOW_EPROTO, "the other side answered without accepting the file");
        json_decref(ans);
    }
    if (!rc) {
        /* everything else goes over transit: leave the mailbox (the spec allows closing now) */
        wh_conn_close(&s->c, "happy");
        rc = connect_transit(s);
    }
    if (!rc) rc = stream_out(s, fd, size, "sending");
    if (!rc) s->files = numfiles;
    close(fd);
    return rc;
}

int wh_get_offer(wh_session *s, int64_t deadline)
{
    json_t *o = NULL;
    int rc = wait_for(s, "offer", &o, deadline - wh_now_ms());
    if (rc) return rc;
    if (!json_is_object(o)) {
        json_decref(o);
        return fail(s, TALLOW_EPROTO, "the offer is not an object");
    }
    s->offer = o;
    return 0;
}

int wh_reject(wh_session *s, const char *why)
{
    int rc = wh_conn_send(&s->c, json_pack("{s:s}", "error", why ? why : "transfer rejected"),
                          wh_now_ms() + 5000);
    wh_conn_close(&s->c, "happy");
    return rc;
}

/* Receives size bytes of records into fd, hashing them, then acks with the hash. */
static int stream_in(wh_session *s, int fd, uint64_t size, const char *verb)
{
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) return TALLOW_ENOMEM;
    prog g;
    prog_start(&g, s, verb, size);
    uint64_t got = 0;
    int rc = 0;
    while (!rc && got < size) {
        const uint8_t *rec;
        size_t rl;
        rc = wh_transit_recv(&s->t, &rec, &rl, wh_now_ms() + STALL_MS);
        if (rc) {
            fail(s, rc, s->t.err);
            break;
        }
        if (rl > size - got) {
            rc = fail(s, TALLOW_EPROTO, "the sender sent more bytes than it offered");
            break;
        }
        gnutls_hash(h, rec, rl);
        size_t off = 0;
        while (!rc && off < rl) {
            ssize_t w = pwrite(fd, rec + off, rl - off, (off_t)(got + off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int nospc = w < 0 && (errno == ENOSPC || errno == EDQUOT);
                rc = fail(s,
                          nospc   ? TALLOW_ENOSPACE
                          : w < 0 ? -errno
                                  : -EIO,
                          nospc ? tallow_strerror(TALLOW_ENOSPACE) : strerror(w < 0 ? errno : EIO));
                break;
            }
            off += (size_t)w;
        }
        got += rl;
        prog_add(&g, rl);
    }
    uint8_t digest[32];
    char hex[65];
    gnutls_hash_deinit(h, digest);
    if (rc) return rc;
    wh_hex(hex, digest, 32);
    json_t *ack = json_pack("{s:s,s:s}", "ack", "ok", "sha256", hex);
    char *a = json_dumps(ack, JSON_COMPACT);
    json_decref(ack);
    rc = a ? wh_transit_send(&s->t, (const uint8_t *)a, strlen(a), wh_now_ms() + 10000)
           : TALLOW_ENOMEM;
    free(a);
    if (rc) return fail(s, rc, "could not send the acknowledgement");
    prog_end(&g);
    s->bytes = size;
    return 0;
}

/* The receiver's yes: our transit hints, then the answer (magic-wormhole's order), the sender's
 * hints if they have not come yet, the mailbox left, the transit connection made. */
static int accept_and_connect(wh_session *s)
{
    int rc = start_transit(s, 0);
    if (rc) return rc;
    rc = wh_conn_send(&s->c, json_pack("{s:{s:s}}", "answer", "file_ack", "ok"),
                      wh_now_ms() + 30000);
    if (rc) return conn_fail(s, rc);
    if (!s->peer_transit) {
        json_t *tr = NULL;
        rc = wait_for(s, "transit", &tr, PHASE_WAIT_MS);
        json_decref(tr);
        if (rc) return rc;
    }
    wh_conn_close(&s->c, "happy");
    return connect_transit(s);
}

static int check_space(wh_session *s, int dirfd, uint64_t need)
{
    struct statvfs v;
    if (fstatvfs(dirfd, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < need) {
        snprintf(s->err, sizeof(s->err), "%s (%llu bytes offered)",
                 tallow_strerror(TALLOW_ENOSPACE), (unsigned long long)need);
        return TALLOW_ENOSPACE;
    }
    return 0;
}

static int accept_file(wh_session *s, int destfd, int overwrite, json_t *f)
{
    const char *name = json_string_value(json_object_get(f, "filename"));
    json_t *sz = json_object_get(f, "filesize");
    if (!name || !json_is_integer(sz) || json_integer_value(sz) < 0)
        return fail(s, TALLOW_EPROTO, "a file offer without a name or size");
    uint64_t size = (uint64_t)json_integer_value(sz);
    char why[100], pr[200];
    if (tallow_path_check(name, strlen(name), why, sizeof(why)) != 0 || strchr(name, '/')) {
        snprintf(s->err, sizeof(s->err), "%s: %s (%s)", tallow_strerror(TALLOW_EUNSAFEPATH),
                 tallow_printable(name, strlen(name), pr, sizeof(pr)),
                 strchr(name, '/') ? "a file name with '/'" : why);
        wh_reject(s, "unsafe file name");
        return TALLOW_EUNSAFEPATH;
    }
    struct stat st;
    if (fstatat(destfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (!overwrite || !S_ISREG(st.st_mode))) {
        int rc = overwrite ? TALLOW_EUNSAFEPATH : TALLOW_EEXIST;
        snprintf(s->err, sizeof(s->err), "%s: %s",
                 tallow_printable(name, strlen(name), pr, sizeof(pr)),
                 overwrite ? "exists and is not a regular file" : tallow_strerror(TALLOW_EEXIST));
        wh_reject(s, "the file exists on the receiving side");
        return rc;
    }
    int rc = check_space(s, destfd, size);
    if (rc) {
        wh_reject(s, "not enough space on the receiving side");
        return rc;
    }
    rc = accept_and_connect(s);
    if (rc) return rc;
    char part[300];
    int fd = wh_open_part(destfd, name, part, sizeof(part));
    if (fd < 0) return fail(s, fd, "cannot create the file in the destination");
    rc = stream_in(s, fd, size, "receiving");
    if (!rc && fsync(fd) != 0) rc = fail(s, -errno, "cannot write the file to disk");
    close(fd);
    if (!rc) {
        fchmodat(destfd, part, 0644 & ~0, 0);
        unsigned flags = overwrite ? 0 : RENAME_NOREPLACE;
        if (renameat2(destfd, part, destfd, name, flags) != 0)
            rc = fail(s, errno == EEXIST ? TALLOW_EEXIST : -errno,
                      errno == EEXIST ? tallow_strerror(TALLOW_EEXIST) : strerror(errno));
    }
    if (rc)
        unlinkat(destfd, part, 0);
    else
        s->files = 1;
    return rc;
}

static int accept_dir(wh_session *s, int destfd, int overwrite, json_t *d)
{
    const char *mode = json_string_value(json_object_get(d, "mode"));
    const char *dirname = json_string_value(json_object_get(d, "dirname"));
    json_t *zs = json_object_get(d, "zipsize"), *nb = json_object_get(d, "numbytes");
    if (!mode || strcmp(mode, "zipfile/deflated") != 0 || !dirname || !json_is_integer(zs) ||
        json_integer_value(zs) < 0) {
        wh_reject(s, "unknown directory mode");
        return fail(s, TALLOW_EPROTO, "a directory offer this side does not understand");
    }
    char why[100], pr[200];
    if (tallow_path_check(dirname, strlen(dirname), why, sizeof(why)) != 0 ||
        strchr(dirname, '/')) {
        snprintf(s->err, sizeof(s->err), "%s: %s (%s)", tallow_strerror(TALLOW_EUNSAFEPATH),
                 tallow_printable(dirname, strlen(dirname), pr, sizeof(pr)),
                 strchr(dirname, '/') ? "a folder name with '/'" : why);
        wh_reject(s, "unsafe folder name");
        return TALLOW_EUNSAFEPATH;
    }
    uint64_t zipsize = (uint64_t)json_integer_value(zs);
    uint64_t numbytes =
        json_is_integer(nb) && json_integer_value(nb) > 0 ? (uint64_t)json_integer_value(nb) : 0;
    int rc = check_space(s, destfd, zipsize + numbytes);
    if (rc) {
        wh_reject(s, "not enough space on the receiving side");
        return rc;
    }
    int sub = tallow_safe_open_dir(destfd, dirname, 1);
    if (sub < 0) {
        snprintf(s->err, sizeof(s->err), "%s: %s",
                 tallow_printable(dirname, strlen(dirname), pr, sizeof(pr)), tallow_strerror(sub));
        wh_reject(s, "cannot create the folder");
        return sub;
    }
    rc = accept_and_connect(s);
    if (rc) {
        close(sub);
        return rc;
    }
    /* the zip lands as an unnamed file in the destination (its free space was checked) */
    int zfd = openat(sub, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (zfd < 0) {
        close(sub);
        return fail(s, -errno, "cannot make a temporary file for the zip in the destination");
    }
    rc = stream_in(s, zfd, zipsize, "receiving");
    uint64_t files = 0, bytes = 0;
    if (!rc) {
        /* the zip's own sizes are the sender's word: cap what unpacks at what it announced
         * (or 4x the zip when it announced nothing), so a zip bomb stops with a message */
        uint64_t cap = numbytes ? numbytes : zipsize * 4 + (1u << 20);
        rc = wh_unzip(zfd, sub, overwrite, cap, s->notices, &files, &bytes, s->err, sizeof(s->err));
    }
    close(zfd);
    close(sub);
    if (!rc) {
        s->files = files;
        s->bytes = bytes;
    }
    return rc;
}

int wh_accept(wh_session *s, const char *dest, int overwrite, char **text, size_t *textlen)
{
    json_t *msg = json_object_get(s->offer, "message");
    if (json_is_string(msg)) {
        int rc = wh_conn_send(&s->c, json_pack("{s:{s:s}}", "answer", "message_ack", "ok"),
                              wh_now_ms() + 30000);
        if (rc) return conn_fail(s, rc);
        *textlen = json_string_length(msg);
        *text = malloc(*textlen + 1);
        if (!*text) return TALLOW_ENOMEM;
        memcpy(*text, json_string_value(msg), *textlen + 1);
        s->bytes = *textlen;
        s->path = "mailbox";
        wh_conn_close(&s->c, "happy");
        return 0;
    }
    int destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (destfd < 0) {
        snprintf(s->err, sizeof(s->err), "%s: %s", dest, strerror(errno));
        wh_reject(s, "the receiver has no such destination");
        return -errno;
    }
    int rc;
    json_t *f = json_object_get(s->offer, "file"), *d = json_object_get(s->offer, "directory");
    if (json_is_object(f))
        rc = accept_file(s, destfd, overwrite, f);
    else if (json_is_object(d))
        rc = accept_dir(s, destfd, overwrite, d);
    else {
        wh_reject(s, "unknown offer");
        rc = fail(s, TALLOW_EPROTO, "an offer of a kind this side does not know");
    }
    close(destfd);
    return rc;
}

void wh_session_free(wh_session *s)
{
    wh_conn_free(&s->c);
    if (s->have_t) wh_transit_free(&s->t);
    s->have_t = 0;
    json_decref(s->peer_transit);
    json_decref(s->offer);
    json_decref(s->notices);
    free(s->transit_relay);
    s->peer_transit = s->offer = s->notices = NULL;
    s->transit_relay = NULL;
}
