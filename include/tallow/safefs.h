/* tallow/safefs.h — what a plugin that receives files needs to behave like tallow's own receive:
 * the same path rules, the same escaping for the terminal, the same directory walk that never
 * follows a symlink, and the same progress line. */
#ifndef TALLOW_SAFEFS_H
#define TALLOW_SAFEFS_H

#include "common.h"

/* 0 if rel[0..len) is a safe relative path ('/'-separated), else TALLOW_EUNSAFEPATH and a short
 * reason in why. Refuses what `tallow receive` refuses (absolute, "..", controls, devices...). */
TALLOW_API int tallow_path_check(const char *rel, size_t len, char *why, size_t whylen);
/* A display-safe copy of s[0..len) in out[cap] (controls escaped); returns out. */
TALLOW_API const char *tallow_printable(const char *s, size_t len, char *out, size_t cap);
/* Opens (creating when create is set) reldir under destfd, never following a symlink. A new
 * directory fd, or TALLOW_EUNSAFEPATH, or -errno. */
TALLOW_API int tallow_safe_open_dir(int destfd, const char *reldir, int create);

/* One progress update as tallow's transfers print it: mode 1 = the bar on stderr, 2 = a JSON
 * line on stdout ("progress", or "done" when final), 0 = nothing. path is "relay" or "direct". */
typedef struct tallow_progress_info {
    uint64_t bytes_done, bytes_total, files_done, files_total, wire_bytes;
    uint64_t started_ns, finished_ns;
} tallow_progress_info;
TALLOW_API void tallow_progress_print(int mode, const char *verb, const tallow_progress_info *p,
                                      const char *path, int final);

#endif
