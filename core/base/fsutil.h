/* core/base/fsutil.h — the filesystem half of the transfer engine (internal): checks on untrusted
 * relative paths, symlink-proof directory walking under a destination fd, the manifest (build,
 * encode, strict decode), the receiver's file sink with resume, and the sender's source helper.
 * Errors are negative: -errno from the OS, or TALLOW_* codes. Nothing here is exported. */
#ifndef TALLOW_FSUTIL_H
#define TALLOW_FSUTIL_H

#include <sodium/crypto_generichash.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <tallow/error.h>

#define TALLOW__PATH_MAX 4096u       /* longest relative path accepted, in bytes */
#define TALLOW__NAME_MAX 255u        /* longest component, in bytes */
#define TALLOW__HASH_LEN 32u         /* BLAKE2b-256 */
#define TALLOW__SYNC_EACH (4u << 20) /* files from this size are fsynced as they finish */
#define TALLOW__MANIFEST_VERSION 1u  /* first varint of an encoded manifest */
/* Bounds on one manifest (an offer, a sync listing), whatever the number of messages it
 * travelled in: entries, path bytes, encoded bytes. A manifest larger than one message goes in
 * parts of TALLOW__MANIFEST_PART bytes; the receiver grows its buffer as parts arrive, up to
 * TALLOW__MANIFEST_MAX_BYTES, never to a size the peer merely claims. */
#define TALLOW__MANIFEST_MAX_ENTRIES (1u << 22)           /* 4,194,304 */
#define TALLOW__MANIFEST_MAX_PATHS (128u * 1024u * 1024u) /* total path bytes a decode accepts */
#define TALLOW__MANIFEST_MAX_BYTES (256u * 1024u * 1024u) /* encoded, all parts together */
#define TALLOW__MANIFEST_PART (1u << 20)                  /* bytes per part (frames: 2 MiB) */
#define TALLOW__MANIFEST_DEF_ENTRIES TALLOW__MANIFEST_MAX_ENTRIES /* max_entries for 0 */

/* ---- untrusted paths (core/base/path.c) */

/* 0 if rel[0..len) is a safe '/'-separated relative path, else TALLOW_EUNSAFEPATH and a short
 * reason in why (NUL-terminated, truncated to whylen; why may be NULL). Refuses: NUL inside,
 * empty, absolute, empty / "." / ".." components, trailing '/', bytes 0x00-0x1F and 0x7F, C1
 * controls U+0080-U+009F, invalid or overlong UTF-8, surrogates, backslash, more than 4096 bytes,
 * a component over 255 bytes, Windows device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, CONIN$,
 * CONOUT$, with or without extension, any case) and components ending in '.' or ' '. */
int tallow__path_check(const char *rel, size_t len, char *why, size_t whylen);

/* Writes a display-safe copy of s[0..len) into out[cap] and returns out. Valid UTF-8 other than
 * controls passes through; control bytes, C1 controls, bidi overrides, invalid UTF-8 and DEL show
 * as \xNN; a backslash shows as \\. Output is always NUL-terminated when cap > 0; if it does not
 * fit it ends in "..." and is never cut inside an escape or a character. */
const char *tallow__printable(const char *s, size_t len, char *out, size_t cap);

/* Creates every missing component of reldir (a path that passes tallow__path_check; "" or NULL
 * means destfd itself) under destfd with mkdirat(mode), never following a symlink. 0, or
 * TALLOW_EUNSAFEPATH when reldir is unsafe or an existing component is a symlink or not a
 * directory, or -errno. */
int tallow__safe_mkdirs(int destfd, const char *reldir, mode_t mode);

/* Opens reldir under destfd component by component (openat O_DIRECTORY|O_NOFOLLOW each), creating
 * missing ones (mode 0755, before umask) when create is set. Returns a new O_DIRECTORY fd (the
 * caller closes it), or TALLOW_EUNSAFEPATH (unsafe name, symlink or non-directory on the way), or
 * -errno (-ENOENT when a component is missing and !create). */
int tallow__safe_open_dir(int destfd, const char *reldir, int create);

/* ---- manifest (core/transfer/manifest.c, core/transfer/manifest_build.c) */

enum { TALLOW__ENT_FILE = 0, TALLOW__ENT_DIR = 1 };

typedef struct tallow__entry {
    char *path;       /* relative, '/'-separated, NUL-terminated; owned by the manifest */
    uint64_t size;    /* bytes; 0 for a directory */
    uint32_t mode;    /* permission bits only (& 0777): never setuid, setgid or sticky */
    int64_t mtime_ns; /* nanoseconds since the epoch */
    uint8_t type;     /* TALLOW__ENT_FILE or TALLOW__ENT_DIR */
    char *src;        /* sender only: source path to open (owned; NULL after decode) */
} tallow__entry;

typedef struct tallow__manifest {
    tallow__entry *e; /* owned array of n entries; directories come before their contents */
    size_t n;
    uint64_t total_size; /* sum of file sizes */
    uint64_t nfiles;     /* number of FILE entries */
} tallow__manifest;

/* Called for every source skipped while building (symlink, special file, unreadable directory,
 * a name the receiver would refuse). path and why are borrowed for the call. */
typedef void (*tallow__manifest_warn_fn)(void *ud, const char *path, const char *why);

/* Builds the sender's manifest from n command-line paths. Each path contributes its basename as a
 * top-level entry; directories are walked recursively (names sorted, directories listed before
 * their contents, empty ones kept), symlinks and special files are skipped with a warning and
 * never followed. Fills *out (free with tallow__manifest_free); on error *out is empty.
 * Returns 0, -errno (a top-level path that cannot be read), TALLOW_EINVAL (a top-level symlink,
 * special file or a path without a basename, such as "/"), TALLOW_EUNSAFEPATH (two entries that
 * collide, exactly, by ASCII case or by NFC/NFD spelling of a Latin letter, e.g. two arguments
 * with the same basename), TALLOW_ENOMEM. */
int tallow__manifest_build_ex(const char *const *paths, size_t n, tallow__manifest_warn_fn warn,
                              void *ud, tallow__manifest *out);
/* Same, with warnings discarded. */
int tallow__manifest_build(const char *const *paths, size_t n, tallow__manifest *out);

/* Encodes m (src is not encoded) into a malloc'd buffer: *out (caller frees) and *len.
 * 0, TALLOW_EINVAL (an entry with a bad type or path) or TALLOW_ENOMEM. */
int tallow__manifest_encode(const tallow__manifest *m, uint8_t **out, size_t *len);

/* Strict decode of a peer's manifest. max_entries bounds the entry count (0 = the default,
 * TALLOW__MANIFEST_DEF_ENTRIES); total path bytes are bounded by TALLOW__MANIFEST_MAX_PATHS.
 * Every path must pass tallow__path_check; exact duplicates and names equal once ASCII case is
 * folded and Latin-1/Latin Extended-A letters are decomposed (NFC "é" = NFD "e" + U+0301) are
 * refused, and so is any entry under a FILE entry. The whole buffer must be consumed. Fills *out
 * (free with tallow__manifest_free). Returns 0, TALLOW_EBADMSG (malformed, truncated, trailing
 * bytes, bad type/mode, directory with a size, a size above INT64_MAX, total size overflow),
 * TALLOW_EUNSAFEPATH, TALLOW_ETOOBIG, TALLOW_ENOMEM; on error *out is empty. */
int tallow__manifest_decode(const uint8_t *buf, size_t len, size_t max_entries,
                            tallow__manifest *out);

/* Frees everything m owns and zeroes it. Safe on a zeroed or already freed manifest. */
void tallow__manifest_free(tallow__manifest *m);

/* Shared by build and decode: checks entries for collisions (exact, ASCII case, NFC/NFD of
 * U+00C0..U+017F, entry under a file). 0 or TALLOW_EUNSAFEPATH (with *bad set to the offending
 * index) or TALLOW_ENOMEM. */
int tallow__manifest_check_collisions(const tallow__manifest *m, size_t *bad);

/* ---- hashing (core/transfer/sink.c): BLAKE2b-256, unkeyed */

/* Holds a crypto_generichash_state at a 64-byte aligned spot inside raw; do not copy a live one. */
typedef struct tallow__hash {
    unsigned char raw[sizeof(crypto_generichash_state) + 64];
} tallow__hash;

void tallow__hash_init(tallow__hash *h);
void tallow__hash_update(tallow__hash *h, const void *data, size_t len);
void tallow__hash_final(tallow__hash *h, uint8_t out[TALLOW__HASH_LEN]);

/* The hash of the first n bytes of fd (a resumed prefix: the receiver's partial file, the
 * sender's source). 0, TALLOW_ENOMEM, or a negative errno (-EIO: the file is shorter). */
int tallow__hash_prefix(int fd, uint64_t n, uint8_t out[TALLOW__HASH_LEN]);

/* ---- receiver: one file (core/transfer/sink.c) */

typedef struct tallow__sink {
    int dirfd;        /* parent directory of the final name; -1 when closed */
    int fd;           /* the temporary file; -1 when closed */
    int overwrite;    /* replace an existing final name */
    uint32_t mode;    /* final permission bits */
    int64_t mtime_ns; /* final mtime */
    uint64_t size;    /* expected size */
    uint64_t written; /* bytes present in the temporary file */
    uint64_t flushed; /* writeback started up to here (sink_write) */
    uint64_t prefix;  /* bytes kept from an earlier session (0: a fresh file) */
    uint8_t prefix_hash[TALLOW__HASH_LEN]; /* the sender's BLAKE2b-256 of them (seal) */
    char name[TALLOW__NAME_MAX + 1];       /* final basename */
    char part[TALLOW__NAME_MAX + 1];       /* temporary basename */
} tallow__sink;

/* Opens (or reopens, to resume) the temporary file for FILE entry e under destfd, in the final
 * name's directory: ".<basename>.<16 hex of id>.tallow-part", id = BLAKE2b-128(path, size, mtime)
 * (first 8 bytes), so a different file never resumes from it; the basename part is shortened to
 * fit NAME_MAX. Parent directories are created safely. The partial
 * file's size is rounded down to align (0 = never resume), the rest is cut, and the kept prefix's
 * length is s->prefix; *resume_off receives it (the sender restarts there). tallow__sink_finish
 * hashes that prefix from disk and checks it against the sender's hash of the same prefix of its
 * file (s->prefix_hash holds the sender's, from seal on). The bytes written after the prefix are
 * not hashed: they come through the session's AEAD (per-transfer key, implicit record numbers),
 * with offsets and sizes checked. Returns 0, TALLOW_EEXIST (final name exists and !overwrite),
 * TALLOW_EUNSAFEPATH (unsafe path, final name or temp name is a symlink, directory or special file,
 * symlinks on the way), TALLOW_EINVAL (not a FILE entry), TALLOW_ETOOBIG (size above INT64_MAX),
 * TALLOW_ENOSPACE (cannot reserve the space; the partial is kept), -EFBIG (larger than the
 * filesystem's largest file), -errno. Hashing a kept prefix reads it back, so a resume costs one
 * sequential read of it. On error the sink is closed (tallow__sink_abort is then a no-op). */
int tallow__sink_open(tallow__sink *s, int destfd, const tallow__entry *e, int overwrite,
                      uint64_t align, uint64_t *resume_off);

/* Appends data at off, which must equal the bytes written so far (every 16 MiB it starts the
 * writeback of what it wrote, so the final fsync has little left). No allocation. Returns 0,
 * TALLOW_EPROTO (off out of sequence or past the manifest size), TALLOW_ENOSPACE (ENOSPC/EDQUOT:
 * the bytes that did land are kept and counted, for resume), -errno. The sink stays open. */
/* Looks, without creating anything, at what the destination already has of file entry e:
 * returns 1 if the final name holds it whole (same size and mtime: an earlier run finished it),
 * 0 with *off = the verified-prefix length a sink_open would resume from (0: nothing), or a
 * negative error when the entry must be refused (TALLOW_EUNSAFEPATH, TALLOW_EEXIST, -errno). */
int tallow__sink_probe(int destfd, const tallow__entry *e, int overwrite, uint64_t align,
                       uint64_t *off);
int tallow__sink_write(tallow__sink *s, uint64_t off, const uint8_t *data, size_t len);

/* Completes the file: size must match (else TALLOW_EPROTO, partial kept). prefix_hash is the
 * sender's BLAKE2b-256 of the first s->prefix bytes of its file: required when the sink resumed a
 * prefix (s->prefix > 0), NULL otherwise (else TALLOW_EPROTO, partial kept); a hash that differs
 * from the kept prefix's gives TALLOW_EHASH and the temporary file is removed (the source changed
 * since the interrupted transfer, or the partial copy was damaged). Then mode (& 0777), mtime,
 * fsync, and rename onto the final name (RENAME_NOREPLACE unless overwrite: TALLOW_EEXIST if the
 * name appeared meanwhile, partial kept). The sink is closed in every case. */
int tallow__sink_finish(tallow__sink *s, const uint8_t *prefix_hash);
/* tallow__sink_finish in three steps, for a receiver that waits on the disk off its loop
 * (core/base/work.h): seal checks the size and that a hash comes with (only with) a kept prefix,
 * keeps that hash, sets mode and mtime (on error the sink is closed, as finish does); sync hashes
 * the kept prefix and compares (TALLOW_EHASH), then fsyncs a file of TALLOW__SYNC_EACH bytes or
 * more — needs_sync says whether it has anything to do — and touches nothing but the sink, so it
 * may run on another thread; publish takes sync's result: 0 renames onto the final name,
 * TALLOW_EHASH removes the temporary file, another error only closes (partial kept). */
int tallow__sink_seal(tallow__sink *s, const uint8_t *prefix_hash);
int tallow__sink_needs_sync(const tallow__sink *s);
int tallow__sink_sync(const tallow__sink *s);
int tallow__sink_publish(tallow__sink *s, int sync_rc);

/* Closes the sink; removes the temporary file unless keep_partial. Idempotent. */
void tallow__sink_abort(tallow__sink *s, int keep_partial);

/* ---- receiver: directories (core/transfer/sink.c) */

/* Creates DIR entry e under destfd (safely; missing parents 0755 before umask; e itself gets its
 * mode | 0700 for now, so that contents can be written). An existing directory is accepted. 0,
 * TALLOW_EINVAL, TALLOW_EUNSAFEPATH, -errno. */
int tallow__dir_apply(int destfd, const tallow__entry *e);
/* Sets e's final mode (& 0777) and mtime; call after its contents are written, deepest first
 * (walk the manifest backwards). 0, TALLOW_EINVAL, TALLOW_EUNSAFEPATH, -errno. */
int tallow__dir_finish(int destfd, const tallow__entry *e);

/* ---- sender (core/transfer/sink.c) */

/* Opens e->src for reading (O_NOFOLLOW) and checks it is still a regular file of e->size bytes.
 * *fd receives a new fd (the caller closes it). 0, -ESTALE (changed since the manifest was
 * built: size or type), TALLOW_EINVAL (no src or not a FILE entry), -errno. */
int tallow__source_open(const tallow__entry *e, int *fd);

#endif
