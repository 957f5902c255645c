/* core/ctx.c — the context: owns the loop, the registry, the policy, the interface tables and
 * the loaded plugins; logging and the last-error message. */
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
    tallow__host_init(ctx);
    return ctx;
}

TALLOW_API void tallow_ctx_free(tallow_ctx *ctx)
{
    if (!ctx) return;
    tallow__plugins_unload_all(ctx);
    tallow__iface_list_free(&ctx->transports);
    tallow__iface_list_free(&ctx->discoveries);
    tallow__iface_list_free(&ctx->gatherers);
    tallow__iface_list_free(&ctx->services);
    tallow__iface_list_free(&ctx->lua_modules);
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

static void vlog_json(tallow_ctx *ctx, const char *level, const char *line)
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
    const char *src = ctx->log_tag ? ctx->log_tag : "tallow";
    const char *colon = ctx->log_tag ? NULL : strstr(line, ": ");
    /* "relay: room ..." from a plugin: the source is the part before the first ": " */
    if (colon && colon - line < 24 && !memchr(line, ' ', (size_t)(colon - line))) {
        char part[24];
        memcpy(part, line, (size_t)(colon - line));
        part[colon - line] = 0;
        json_str(stderr, part);
        line = colon + 2;
    } else {
        json_str(stderr, src);
    }
    fputs("\",\"msg\":\"", stderr);
    json_str(stderr, line);
    fputs("\"}\n", stderr);
    funlockfile(stderr);
}

static void vlog(tallow_ctx *ctx, int level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level > ctx->log_level) return;
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (ctx->log_json) return vlog_json(ctx, names[level < 0 ? 0 : level > 3 ? 3 : level], line);
    fprintf(stderr, "tallow: %s%s%s: %s\n", ctx->log_tag ? ctx->log_tag : "",
            ctx->log_tag ? ": " : "", names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}

TALLOW_API void tallow_ctx_log(tallow_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, fmt, ap);
    va_end(ap);
}

/* ---- interface tables */

int tallow__iface_add(tallow__iface_list *l, const char *name, const void *ops, uint32_t ops_size,
                      uint32_t host_size, void *state)
{
    if (!name || !name[0]) return TALLOW_EINVAL;
    if (tallow__iface_find(l, name)) return TALLOW_EPLUGDUP;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        tallow__iface *v = realloc(l->v, cap * sizeof(*v));
        if (!v) return TALLOW_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    void *copy = calloc(1, host_size);
    if (!copy) return TALLOW_ENOMEM;
    memcpy(copy, ops, ops_size < host_size ? ops_size : host_size);
    l->v[l->n++] = (tallow__iface){.name = name, .ops = copy, .plugin_state = state};
    return 0;
}

const tallow__iface *tallow__iface_find(const tallow__iface_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0) return &l->v[i];
    return NULL;
}

void tallow__iface_list_truncate(tallow__iface_list *l, size_t n)
{
    while (l->n > n) free((void *)l->v[--l->n].ops);
}

void tallow__iface_list_free(tallow__iface_list *l)
{
    for (size_t i = 0; i < l->n; i++) free((void *)l->v[i].ops);
    free(l->v);
    memset(l, 0, sizeof(*l));
}
