/* tallow/plugin.h — the plugin ABI. A plugin is a shared object exporting one fixed entry symbol,
 * tallow_plugin_entry, that returns a descriptor. The host checks the ABI number and the struct
 * size before calling init; init only registers things through the host's registrars and may
 * keep state of its own (no globals). Whoever allocates frees: nothing crosses the boundary to be
 * freed on the other side. */
#ifndef TALLOW_PLUGIN_H
#define TALLOW_PLUGIN_H

#include "common.h"
#include "msg.h"

#define TALLOW_PLUGIN_ABI 1
#define TALLOW_PLUGIN_ENTRY_SYMBOL "tallow_plugin_entry"

struct tallow_transport_ops;
struct tallow_discovery_ops;
struct tallow_gatherer_ops;
struct tallow_service_ops;
struct tallow_lua_module_ops;

/* What the host gives every plugin: services and registrars. Borrowed for the plugin's
 * lifetime. Appended to only; struct_size tells which slots exist. */
struct tallow_host {
    uint32_t struct_size;
    uint32_t abi;
    tallow_ctx *ctx;
    tallow_loop *loop;
    tallow_registry *registry;
    const tallow_policy *policy;
    /* printf-style logging tagged with the plugin's name. */
    void (*log)(tallow_ctx *ctx, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    void *(*alloc)(size_t size); /* zeroed; NULL on failure */
    void (*free)(void *p);
    /* Registrars: the ops are borrowed until fini; plugin_state is passed back in calls.
     * Each returns 0, TALLOW_EPLUGDUP (name taken) or TALLOW_EINVAL (bad vtable). */
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
TALLOW_API void tallow_plugin_foreach(tallow_ctx *ctx,
                                      void (*fn)(const tallow_plugin_desc *d, const char *path,
                                                 void *ud),
                                      void *ud);

#endif
