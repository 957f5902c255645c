/* tallow/ctx.h — the context: all of one program's state (loop, registry, policy, plugins,
 * registered interfaces). No globals anywhere in tallow: everything hangs off a context. */
#ifndef TALLOW_CTX_H
#define TALLOW_CTX_H

#include "common.h"

/* Creates a context with a fresh loop, a registry of the core types and a default policy.
 * NULL on failure. The caller owns it. */
TALLOW_API tallow_ctx *tallow_ctx_new(void);
/* Unloads plugins (fini in reverse order), then frees everything. */
TALLOW_API void tallow_ctx_free(tallow_ctx *ctx);
TALLOW_API tallow_loop *tallow_ctx_loop(tallow_ctx *ctx);
TALLOW_API tallow_registry *tallow_ctx_registry(tallow_ctx *ctx);
TALLOW_API tallow_policy *tallow_ctx_policy(tallow_ctx *ctx);
/* The last error message set by a failing call (borrowed, valid until the next failure). */
TALLOW_API const char *tallow_ctx_last_error(tallow_ctx *ctx);
TALLOW_API void tallow_ctx_set_error(tallow_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Logging: level filter from TALLOW_LOG (error, warn, info, debug); default warn. Lines go to
 * stderr prefixed with "tallow: ". */
TALLOW_API void tallow_ctx_log(tallow_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
TALLOW_API void tallow_ctx_set_log_level(tallow_ctx *ctx, int level);
/* json = 1: each log line is one JSON object ({"time", "level", "source", "msg"}) for log
 * collectors; 0: the plain "tallow: level: message" lines (default). */
TALLOW_API void tallow_ctx_set_log_format(tallow_ctx *ctx, int json);

#endif
