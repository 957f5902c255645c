/* core/base/ctx_internal.h — the context's insides, shared by the core's own files only.
 *
 * Which file may call which (the arrows point one way):
 *   plugin.c (the loader) -> host.c (a plugin's tallow_host, the registrars, channels)
 *   host.c -> iface.c (tables, validation, defaults) and ctx.c (logging, last error)
 *   ctx.c -> iface.c (frees the tables); the loader's unload is reached through
 *            ctx->unload_plugins, which plugin.c sets, so ctx.c names nothing of the loader's.
 *   iface.c -> public headers only. */
#ifndef TALLOW_CTX_INTERNAL_H
#define TALLOW_CTX_INTERNAL_H

#include <stdarg.h>

#include <tallow/tallow.h>

typedef struct tallow__iface {
    const char *name;
    const void *ops; /* host-owned copy of the host's size, every optional slot filled */
    void *plugin_state;
} tallow__iface;

typedef struct tallow__iface_list {
    tallow__iface *v;
    size_t n, cap;
} tallow__iface_list;

/* One kind of interface (core/base/iface.c): how its ops are checked and completed. */
typedef struct tallow__iface_kind {
    const char *what; /* "transport", ... for messages */
    uint32_t version; /* the newest ops version this host knows */
    size_t min_size;  /* the smallest struct_size accepted: through the last required slot */
    size_t host_size; /* sizeof the ops struct as this host was built */
    const char *(*check)(const void *ops); /* NULL, or what is wrong with the required slots */
    void (*fill)(void *ops);               /* sets every NULL optional slot to its default */
} tallow__iface_kind;

extern const tallow__iface_kind tallow__iface_transport, tallow__iface_discovery,
    tallow__iface_gatherer, tallow__iface_service, tallow__iface_lua_module, tallow__iface_punch;

typedef struct tallow__plugin tallow__plugin;

struct tallow_policy {
    int no_p2p;
    int allow_loopback;
    int locked;
    char *proxy;
};

struct tallow_ctx {
    tallow_loop *loop;
    tallow_registry *registry;
    struct tallow_policy policy;
    int log_level;
    int log_json; /* one JSON object per line (tallow_ctx_set_log_format) */
    char last_error[512];
    tallow__iface_list transports, discoveries, gatherers, services, lua_modules, punches;
    tallow__plugin *plugins; /* load order; unloaded in reverse */
    const char *loading;     /* name of the plugin whose init runs (registrations are its) */
    /* Set by the loader once it has loaded something; tallow_ctx_free calls it first. */
    void (*unload_plugins)(tallow_ctx *ctx);
};

/* Registers ops of kind k in l: checks version, struct_size and required slots, keeps a copy of
 * the host's size with every optional slot filled. 0, TALLOW_EINVAL, TALLOW_EPLUGDUP (why says
 * which) or TALLOW_ENOMEM. */
int tallow__iface_register(tallow__iface_list *l, const tallow__iface_kind *k, const void *ops,
                           void *state, char *why, size_t whylen);
const tallow__iface *tallow__iface_find(const tallow__iface_list *l, const char *name);
void tallow__iface_list_free(tallow__iface_list *l);
/* Drops the entries after the first n (a failed plugin init's registrations). */
void tallow__iface_list_truncate(tallow__iface_list *l, size_t n);

/* A log line from a source (a plugin's name; NULL: the core). */
void tallow__ctx_vlog(tallow_ctx *ctx, const char *source, int level, const char *fmt, va_list ap);

/* host.c: fills a plugin's own tallow_host (name borrowed from its descriptor). */
void tallow__host_make(tallow_host *h, tallow_ctx *ctx, const char *plugin_name);

#endif
