/* core/base/ctx.c — the context: owns the loop, the registry, the policy, the interface tables and
 * the loaded plugins; logging and the last-error message. Calls nothing of the loader's by name:
 * plugins are unloaded through the hook the loader sets (see ctx_internal.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx_internal.h"

static int level_from_env(void)
{
    const char *e = getenv("TALLOW_LOG");
    if (!e) return TALLOW_LOG_WARN;
    if (!strcmp(e, "error")) return TALLOW_LOG_ERROR;
    if (!strcmp(e, "info")) return TALLOW_LOG_INFO;
    if (!strcmp(e, "debug")) return TALLOW_LOG_DEBUG;
    return TALLOW_LOG_WARN;
}

TALLOW_API tallow_ctx *tallow_ctx_new(void)
{
    tallow_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) return NULL;
    ctx->loop = tallow_loop_new();
    ctx->registry = tallow_registry_new();
    if (!ctx->loop || !ctx->registry) {
        tallow_ctx_free(ctx);
        return NULL;
    }
    ctx->log_level = level_from_env();
    return ctx;
}

TALLOW_API void tallow_ctx_free(tallow_ctx *ctx)
{
    if (!ctx) return;
    if (ctx->unload_plugins) ctx->unload_plugins(ctx);
    tallow__iface_list_free(&ctx->transports);
    tallow__iface_list_free(&ctx->discoveries);
    tallow__iface_list_free(&ctx->gatherers);
    tallow__iface_list_free(&ctx->services);
    tallow__iface_list_free(&ctx->lua_modules);
    tallow__iface_list_free(&ctx->punches);
    tallow_registry_free(ctx->registry);
    tallow_loop_free(ctx->loop);
    free(ctx->policy.proxy);
    free(ctx);
}

TALLOW_API tallow_loop *tallow_ctx_loop(tallow_ctx *ctx)
{
    return ctx->loop;
}

TALLOW_API tallow_registry *tallow_ctx_registry(tallow_ctx *ctx)
{
    return ctx->registry;
}

TALLOW_API tallow_policy *tallow_ctx_policy(tallow_ctx *ctx)
{
    return &ctx->policy;
}

TALLOW_API const char *tallow_ctx_last_error(tallow_ctx *ctx)
{
    return ctx->last_error;
}

TALLOW_API void tallow_ctx_set_error(tallow_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->last_error, sizeof(ctx->last_error), fmt, ap);
    va_end(ap);
}

TALLOW_API void tallow_ctx_set_log_level(tallow_ctx *ctx, int level)
{
    ctx->log_level = level;
}

TALLOW_API void tallow_ctx_set_log_format(tallow_ctx *ctx, int json)
{
    ctx->log_json = json;
}

/* Writes s as a JSON string body: quotes, backslashes and control characters escaped. */
static void json_str(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
}

static void vlog_json(const char *source, const char *level, const char *line)
{
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    flockfile(stderr);
    fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"source\":\"", when,
            ts.tv_nsec / 1000000, level);
    const char *colon = source ? NULL : strstr(line, ": ");
    /* "relay: room ..." from a plugin: the source is the part before the first ": " */
    if (colon && colon - line < 24 && !memchr(line, ' ', (size_t)(colon - line))) {
        char part[24];
        memcpy(part, line, (size_t)(colon - line));
        part[colon - line] = 0;
        json_str(stderr, part);
        line = colon + 2;
    } else {
        json_str(stderr, source ? source : "tallow");
    }
    fputs("\",\"msg\":\"", stderr);
    json_str(stderr, line);
    fputs("\"}\n", stderr);
    funlockfile(stderr);
}

/* source: a plugin's name (its lines read "tallow: LEVEL: NAME: message", in JSON "source"),
 * NULL for the core. A plugin's message that already starts with "NAME: " keeps it once. */
void tallow__ctx_vlog(tallow_ctx *ctx, const char *source, int level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level > ctx->log_level) return;
    char buf[1024];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    const char *line = buf;
    size_t sl = source ? strlen(source) : 0;
    if (source && strncmp(line, source, sl) == 0 && line[sl] == ':' && line[sl + 1] == ' ')
        line += sl + 2;
    const char *lv = names[level < 0 ? 0 : level > 3 ? 3 : level];
    if (ctx->log_json) {
        vlog_json(source, lv, line);
        return;
    }
    fprintf(stderr, "tallow: %s: %s%s%s\n", lv, source ? source : "", source ? ": " : "", line);
}

TALLOW_API void tallow_ctx_log(tallow_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tallow__ctx_vlog(ctx, NULL, level, fmt, ap);
    va_end(ap);
}
