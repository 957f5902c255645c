/* tallow/plugin.h — the plugin ABI. A plugin is a shared object exporting one fixed entry symbol,
 * tallow_plugin_entry, that returns a descriptor. The host checks the ABI number and the struct
 * size before calling init; init only registers things through the host's registrars and may
 * keep state of its own (no globals).
 *
 * The rules every interface follows (transport, discovery, gatherer, punching strategy, service,
 * Lua module), in the
 * manner of SQLite's VFS:
 * - Every ops struct starts with version, struct_size and name. The host refuses (TALLOW_EINVAL,
 *   and an "init failed" message naming the plugin, the interface and the sizes) a version it
 *   does not know or a struct_size smaller than the oldest version's required part.
 * - The host keeps its own copy, as large as its own header's struct: slots an older plugin's
 *   smaller struct lacks are zero, then every optional slot left NULL gets the host's default
 *   (documented at the slot). Callers never test a slot for NULL.
 * - Structs grow at the end only; a slot never moves, changes type or changes meaning.
 *
 * Memory: one rule for every plugin. A plugin allocates its own memory with the C allocator
 * (malloc, calloc, realloc, free) and frees it itself; the host does the same with its own.
 * Whoever allocates frees: nothing crosses the boundary to be freed on the other side. (alloc and
 * free below are calloc and free, kept so that older plugins still build.) */
#ifndef TALLOW_PLUGIN_H
#define TALLOW_PLUGIN_H

#include "common.h"
#include "msg.h"

/* 2: tallow_host.log takes the host (a plugin's own, which knows its name), and host.name. */
#define TALLOW_PLUGIN_ABI 2
#define TALLOW_PLUGIN_ENTRY_SYMBOL "tallow_plugin_entry"

struct tallow_transport_ops;
struct tallow_discovery_ops;
struct tallow_gatherer_ops;
struct tallow_service_ops;
struct tallow_lua_module_ops;
struct tallow_punch_ops;

/* What the host gives a plugin: services and registrars. Each plugin has its own (borrowed from
 * init until after fini), so that what it logs carries its name. Appended to only; struct_size
 * tells which slots exist. */
struct tallow_host {
    uint32_t struct_size;
    uint32_t abi;
    tallow_ctx *ctx;
    tallow_loop *loop;
    tallow_registry *registry;
    const tallow_policy *policy;
    /* printf-style logging, every line tagged with this plugin's name (during init and after):
     * host->log(host, TALLOW_LOG_INFO, "...") */
    void (*log)(const tallow_host *host, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    void *(*alloc)(size_t size); /* calloc(1, size): the C allocator (see Memory above) */
    void (*free)(void *p);       /* free */
    /* Registrars: the ops are borrowed until fini; plugin_state is passed back in calls.
     * Each returns 0, TALLOW_EPLUGDUP (name taken), TALLOW_EINVAL (unknown version, struct_size
     * too small, a required slot NULL: the context's last error says which) or TALLOW_ENOMEM. */
    int (*register_transport)(tallow_ctx *ctx, const struct tallow_transport_ops *ops,
                              void *plugin_state);
    int (*register_discovery)(tallow_ctx *ctx, const struct tallow_discovery_ops *ops,
                              void *plugin_state);
    int (*register_gatherer)(tallow_ctx *ctx, const struct tallow_gatherer_ops *ops,
                             void *plugin_state);
    int (*register_service)(tallow_ctx *ctx, const struct tallow_service_ops *ops,
                            void *plugin_state);
    int (*register_msg)(tallow_ctx *ctx, const tallow_msg_type *type);
    /* A Lua face: scripts get it with tallow.plugins.module(name) (include/tallow/lua.h).
     * Present when struct_size covers it. */
    int (*register_lua_module)(tallow_ctx *ctx, const struct tallow_lua_module_ops *ops,
                               void *plugin_state);
    /* The plugin's name (its descriptor's), as its log lines carry it. ABI 2. */
    const char *name;
    /* A punching strategy for the direct-path negotiator (include/tallow/punch.h). Present when
     * struct_size covers it. */
    int (*register_punch)(tallow_ctx *ctx, const struct tallow_punch_ops *ops, void *plugin_state);
};

typedef struct tallow_plugin_desc {
    uint32_t abi;         /* TALLOW_PLUGIN_ABI the plugin was built against */
    uint32_t struct_size; /* sizeof(tallow_plugin_desc) the plugin was built with */
    const char *name;     /* unique; also the name scripts load it by */
    const char *version;
    const char *summary; /* one line for `tallow plugins` */
    /* Registers the plugin's interfaces. *state_out may be set; it is passed to fini. Returns 0
     * or a negative error (the host then unloads the plugin without calling fini). */
    int (*init)(const tallow_host *host, void **state_out);
    void (*fini)(void *state);
} tallow_plugin_desc;

typedef const tallow_plugin_desc *(*tallow_plugin_entry_fn)(void);

/* Declares the entry point in a plugin source file:
 *   TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void) { return &desc; } */
#define TALLOW_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Loads a plugin by path or by name (searched in TALLOW_PLUGIN_PATH, the build tree, then the
 * install prefix). Returns 0 or TALLOW_EPLUGNOFILE, TALLOW_EPLUGNOENTRY, TALLOW_EPLUGABI,
 * TALLOW_EPLUGDUP, TALLOW_EPLUGINIT; on error a message naming the file is available from
 * tallow_ctx_last_error(). */
TALLOW_API int tallow_plugin_load(tallow_ctx *ctx, const char *name_or_path);
/* Loads every plugin found on the search path; failures are logged and skipped. Returns the
 * number loaded. */
TALLOW_API int tallow_plugin_load_all(tallow_ctx *ctx);
/* Calls fn for each loaded plugin's descriptor (borrowed) and its file path. */
TALLOW_API void tallow_plugin_foreach(
    tallow_ctx *ctx, void (*fn)(const tallow_plugin_desc *d, const char *path, void *ud), void *ud);

#endif
