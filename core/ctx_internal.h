/* core/ctx_internal.h — the context's insides, shared by the core's own files only. */
#ifndef TALLOW_CTX_INTERNAL_H
#define TALLOW_CTX_INTERNAL_H

#include <tallow/tallow.h>

typedef struct tallow__iface {
    const char *name;
    const void *ops;    /* host-owned copy, zero-extended to the host's struct size */
    void *plugin_state;
} tallow__iface;

typedef struct tallow__iface_list {
    tallow__iface *v;
    size_t n, cap;
} tallow__iface_list;

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
    tallow__iface_list transports, discoveries, gatherers, services, lua_modules;
    tallow__plugin *plugins; /* load order; unloaded in reverse */
    tallow_host host;        /* the services handed to plugins */
    const char *log_tag;     /* plugin name while its init runs */
};

/* Adds an interface; ops copied into a zeroed buffer of host_size bytes. */
int tallow__iface_add(tallow__iface_list *l, const char *name, const void *ops, uint32_t ops_size,
                      uint32_t host_size, void *state);
const tallow__iface *tallow__iface_find(const tallow__iface_list *l, const char *name);
void tallow__iface_list_free(tallow__iface_list *l);
/* Drops the entries after the first n (a failed plugin init's registrations). */
void tallow__iface_list_truncate(tallow__iface_list *l, size_t n);
const tallow_msg_type **tallow__registry_save(const tallow_registry *r, size_t *n);
void tallow__registry_restore(tallow_registry *r, const tallow_msg_type **saved, size_t n);

void tallow__plugins_unload_all(tallow_ctx *ctx);
void tallow__host_init(tallow_ctx *ctx);

#endif
