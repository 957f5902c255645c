/* core/base/iface.c — the interface tables and the one registration path every plugin interface
 * goes through (transport, discovery, gatherer, punching strategy, service, Lua module): the
 * version and struct_size are checked against the smallest struct the host accepts, the ops are
 * copied into a zeroed struct of the host's size, the required slots are checked, and every
 * optional slot left NULL (or absent from an older plugin's smaller struct) gets the host's
 * default, so no caller tests for NULL. Depends on nothing but the public headers: the context and
 * the loader call in, never out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/lua.h>

#include "ctx_internal.h"

/* ---- the tables */

const tallow__iface *tallow__iface_find(const tallow__iface_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0) return &l->v[i];
    return NULL;
}

void tallow__iface_list_truncate(tallow__iface_list *l, size_t n)
{
    while (l->n > n)
        free((void *)l->v[--l->n].ops);
}

void tallow__iface_list_free(tallow__iface_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((void *)l->v[i].ops);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- the host's defaults for optional slots */

static void tr_close(tallow_channel *ch)
{
    (void)ch;
}

static void tr_get_info(tallow_channel *ch, tallow_channel_info *info)
{
    (void)ch;
    (void)info;
}

static size_t tr_queued(tallow_channel *ch)
{
    (void)ch;
    return 0;
}

static int tr_control(tallow_channel *ch, int op, void *arg)
{
    (void)ch;
    (void)op;
    (void)arg;
    return TALLOW_ENOTSUP;
}

static const char *tr_check(const void *o)
{
    const tallow_transport_ops *ops = o;
    if (!ops->open || !ops->send) return "open and send are required";
    if (ops->instance_size < sizeof(tallow_channel))
        return "instance_size is smaller than tallow_channel";
    return NULL;
}

static void tr_fill(void *o)
{
    tallow_transport_ops *ops = o;
    if (!ops->close) ops->close = tr_close;
    if (!ops->get_info) ops->get_info = tr_get_info;
    if (!ops->queued) ops->queued = tr_queued;
    if (!ops->control) ops->control = tr_control;
}

static const char *disc_check(const void *o)
{
    const tallow_discovery_ops *ops = o;
    return ops->discover ? NULL : "discover is required";
}

static const char *gath_check(const void *o)
{
    const tallow_gatherer_ops *ops = o;
    return ops->gather ? NULL : "gather is required";
}

static void gath_release(void *plugin_state, tallow_udp *udp)
{
    (void)plugin_state;
    (void)udp;
}

static void gath_fill(void *o)
{
    tallow_gatherer_ops *ops = o;
    if (!ops->release) ops->release = gath_release;
}

static const char *const svc_no_options[] = {NULL};

static void svc_stats(void *inst, void (*fn)(const char *key, uint64_t value, void *ud), void *ud)
{
    (void)inst;
    (void)fn;
    (void)ud;
}

static int svc_check(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts)
{
    (void)plugin_state;
    (void)ctx;
    (void)opts;
    (void)nopts;
    return TALLOW_ENOTSUP;
}

static int svc_reload(void *inst, const tallow_kv *opts, size_t nopts)
{
    (void)inst;
    (void)opts;
    (void)nopts;
    return TALLOW_ENOTSUP;
}

static int svc_drain(void *inst)
{
    (void)inst;
    return TALLOW_ENOTSUP;
}

static const char *svc_check_ops(const void *o)
{
    const tallow_service_ops *ops = o;
    return ops->start && ops->stop ? NULL : "start and stop are required";
}

static void svc_fill(void *o)
{
    tallow_service_ops *ops = o;
    if (!ops->options_help) ops->options_help = svc_no_options;
    if (!ops->stats) ops->stats = svc_stats;
    if (!ops->check) ops->check = svc_check;
    if (!ops->reload) ops->reload = svc_reload;
    if (!ops->drain) ops->drain = svc_drain;
}

static const char *punch_check(const void *o)
{
    const tallow_punch_ops *ops = o;
    return ops->open && ops->tick ? NULL : "open and tick are required";
}

static void punch_update(void *inst, tallow_punch *p)
{
    (void)inst;
    (void)p;
}

static void punch_close(void *inst)
{
    (void)inst;
}

static void punch_fill(void *o)
{
    tallow_punch_ops *ops = o;
    if (!ops->update) ops->update = punch_update;
    if (!ops->close) ops->close = punch_close;
}

static const char *lua_check(const void *o)
{
    const tallow_lua_module_ops *ops = o;
    return ops->open ? NULL : "open is required";
}

static void no_fill(void *o)
{
    (void)o;
}

/* The end of a member: the smallest struct_size that holds it. */
#define TALLOW__END(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

const tallow__iface_kind tallow__iface_transport = {"transport",
                                                    TALLOW_TRANSPORT_OPS_VERSION,
                                                    TALLOW__END(tallow_transport_ops, send),
                                                    sizeof(tallow_transport_ops),
                                                    tr_check,
                                                    tr_fill};
const tallow__iface_kind tallow__iface_discovery = {"discovery",
                                                    TALLOW_DISCOVERY_OPS_VERSION,
                                                    TALLOW__END(tallow_discovery_ops, discover),
                                                    sizeof(tallow_discovery_ops),
                                                    disc_check,
                                                    no_fill};
const tallow__iface_kind tallow__iface_gatherer = {"gatherer",
                                                   TALLOW_GATHERER_OPS_VERSION,
                                                   TALLOW__END(tallow_gatherer_ops, gather),
                                                   sizeof(tallow_gatherer_ops),
                                                   gath_check,
                                                   gath_fill};
const tallow__iface_kind tallow__iface_punch = {"punching strategy",
                                                TALLOW_PUNCH_OPS_VERSION,
                                                TALLOW__END(tallow_punch_ops, tick),
                                                sizeof(tallow_punch_ops),
                                                punch_check,
                                                punch_fill};
const tallow__iface_kind tallow__iface_service = {"service",
                                                  TALLOW_SERVICE_OPS_VERSION,
                                                  TALLOW__END(tallow_service_ops, stop),
                                                  sizeof(tallow_service_ops),
                                                  svc_check_ops,
                                                  svc_fill};
const tallow__iface_kind tallow__iface_lua_module = {"Lua module",
                                                     TALLOW_LUA_MODULE_OPS_VERSION,
                                                     TALLOW__END(tallow_lua_module_ops, open),
                                                     sizeof(tallow_lua_module_ops),
                                                     lua_check,
                                                     no_fill};

/* Every ops struct starts with these three members. */
typedef struct ops_head {
    uint32_t version;
    uint32_t struct_size;
    const char *name;
} ops_head;

int tallow__iface_register(tallow__iface_list *l, const tallow__iface_kind *k, const void *ops,
                           void *state, char *why, size_t whylen)
{
    ops_head h = {0};
    why[0] = 0;
    if (!ops) {
        snprintf(why, whylen, "%s: no ops", k->what);
        return TALLOW_EINVAL;
    }
    memcpy(&h, ops, offsetof(ops_head, name)); /* version and struct_size: in every version */
    if (h.struct_size < sizeof(ops_head) || h.struct_size < k->min_size) {
        snprintf(why, whylen,
                 "%s ops: struct_size %u is smaller than the %zu bytes of the oldest version "
                 "(rebuild the plugin against this tallow's headers)",
                 k->what, h.struct_size, k->min_size);
        return TALLOW_EINVAL;
    }
    memcpy(&h, ops, sizeof(h));
    if (h.version < 1 || h.version > k->version) {
        snprintf(why, whylen, "%s '%s': ops version %u, this tallow knows 1 to %u", k->what,
                 h.name ? h.name : "?", h.version, k->version);
        return TALLOW_EINVAL;
    }
    if (!h.name || !h.name[0]) {
        snprintf(why, whylen, "%s ops: no name", k->what);
        return TALLOW_EINVAL;
    }
    if (tallow__iface_find(l, h.name)) {
        snprintf(why, whylen, "%s '%s' is already registered", k->what, h.name);
        return TALLOW_EPLUGDUP;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        tallow__iface *v = realloc(l->v, cap * sizeof(*v));
        if (!v) return TALLOW_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    void *copy = calloc(1, k->host_size);
    if (!copy) return TALLOW_ENOMEM;
    /* an older plugin's smaller struct: the slots it lacks stay zero, then get defaults; a newer
     * plugin's larger struct: the slots this host does not know are not read */
    memcpy(copy, ops, h.struct_size < k->host_size ? h.struct_size : k->host_size);
    const char *bad = k->check(copy);
    if (bad) {
        snprintf(why, whylen, "%s '%s': %s", k->what, h.name, bad);
        free(copy);
        return TALLOW_EINVAL;
    }
    k->fill(copy);
    l->v[l->n++] = (tallow__iface){.name = h.name, .ops = copy, .plugin_state = state};
    return 0;
}
