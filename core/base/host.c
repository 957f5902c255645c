/* core/base/host.c — the services handed to plugins (each plugin its own tallow_host, its name on
 * its log lines), the registrars, the lookups of what they registered (transports, NAT discovery,
 * gatherers, punching strategies, services, Lua modules) and the host-side channel wrappers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/lua.h>

#include "ctx_internal.h"

/* A plugin's log line: tagged with its name, during init and after. */
static void host_log(const tallow_host *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(const tallow_host *host, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tallow__ctx_vlog(host->ctx, host->name, level, fmt, ap);
    va_end(ap);
}

static void *host_alloc(size_t n)
{
    return calloc(1, n);
}

/* The one registration path: every interface is checked and completed by core/base/iface.c; a
 * refusal says which interface and why; it is kept as the context's last error, which the loader
 * adds to its "init failed" message naming the plugin's file and name. */
static int reg(tallow_ctx *ctx, tallow__iface_list *l, const tallow__iface_kind *k, const void *ops,
               void *st)
{
    char why[256];
    int rc = tallow__iface_register(l, k, ops, st, why, sizeof(why));
    if (rc < 0 && why[0]) tallow_ctx_set_error(ctx, "%s", why);
    return rc;
}

static int reg_transport(tallow_ctx *ctx, const struct tallow_transport_ops *ops, void *st)
{
    return reg(ctx, &ctx->transports, &tallow__iface_transport, ops, st);
}

static int reg_discovery(tallow_ctx *ctx, const struct tallow_discovery_ops *ops, void *st)
{
    return reg(ctx, &ctx->discoveries, &tallow__iface_discovery, ops, st);
}

static int reg_gatherer(tallow_ctx *ctx, const struct tallow_gatherer_ops *ops, void *st)
{
    return reg(ctx, &ctx->gatherers, &tallow__iface_gatherer, ops, st);
}

static int reg_service(tallow_ctx *ctx, const struct tallow_service_ops *ops, void *st)
{
    return reg(ctx, &ctx->services, &tallow__iface_service, ops, st);
}

static int reg_lua_module(tallow_ctx *ctx, const struct tallow_lua_module_ops *ops, void *st)
{
    return reg(ctx, &ctx->lua_modules, &tallow__iface_lua_module, ops, st);
}

static int reg_punch(tallow_ctx *ctx, const struct tallow_punch_ops *ops, void *st)
{
    return reg(ctx, &ctx->punches, &tallow__iface_punch, ops, st);
}

static int reg_msg(tallow_ctx *ctx, const tallow_msg_type *t)
{
    return tallow_registry_add(ctx->registry, t);
}

void tallow__host_make(tallow_host *h, tallow_ctx *ctx, const char *plugin_name)
{
    *h = (tallow_host){
        .struct_size = sizeof(tallow_host),
        .abi = TALLOW_PLUGIN_ABI,
        .ctx = ctx,
        .loop = ctx->loop,
        .registry = ctx->registry,
        .policy = &ctx->policy,
        .log = host_log,
        .alloc = host_alloc,
        .free = free,
        .register_transport = reg_transport,
        .register_discovery = reg_discovery,
        .register_gatherer = reg_gatherer,
        .register_service = reg_service,
        .register_msg = reg_msg,
        .register_lua_module = reg_lua_module,
        .name = plugin_name,
        .register_punch = reg_punch,
    };
}

TALLOW_API const tallow_transport_ops *tallow_transport_find(tallow_ctx *ctx, const char *name)
{
    const tallow__iface *i = tallow__iface_find(&ctx->transports, name);
    return i ? i->ops : NULL;
}

TALLOW_API const tallow_discovery_ops *tallow_discovery_find(tallow_ctx *ctx, const char *name,
                                                             void **plugin_state)
{
    const tallow__iface *i = tallow__iface_find(&ctx->discoveries, name);
    if (i && plugin_state) *plugin_state = i->plugin_state;
    return i ? i->ops : NULL;
}

TALLOW_API void
tallow_gatherer_foreach(tallow_ctx *ctx,
                        void (*fn)(const tallow_gatherer_ops *ops, void *state, void *ud), void *ud)
{
    for (size_t i = 0; i < ctx->gatherers.n; i++)
        fn(ctx->gatherers.v[i].ops, ctx->gatherers.v[i].plugin_state, ud);
}

TALLOW_API void tallow_punch_foreach(tallow_ctx *ctx,
                                     void (*fn)(const tallow_punch_ops *ops, void *state, void *ud),
                                     void *ud)
{
    for (size_t i = 0; i < ctx->punches.n; i++)
        fn(ctx->punches.v[i].ops, ctx->punches.v[i].plugin_state, ud);
}

TALLOW_API const tallow_service_ops *tallow_service_find(tallow_ctx *ctx, const char *name,
                                                         void **plugin_state)
{
    const tallow__iface *i = tallow__iface_find(&ctx->services, name);
    if (i && plugin_state) *plugin_state = i->plugin_state;
    return i ? i->ops : NULL;
}

TALLOW_API const tallow_lua_module_ops *tallow_lua_module_find(tallow_ctx *ctx, const char *name,
                                                               void **plugin_state)
{
    const tallow__iface *i = tallow__iface_find(&ctx->lua_modules, name);
    if (i && plugin_state) *plugin_state = i->plugin_state;
    return i ? i->ops : NULL;
}

/* ---- channels: host-side wrappers over a transport's vtable */

TALLOW_API int tallow_channel_open(tallow_ctx *ctx, const char *transport,
                                   const tallow_channel_params *p, const tallow_channel_events *ev,
                                   void *ud, tallow_channel **out)
{
    const tallow__iface *i = tallow__iface_find(&ctx->transports, transport);
    if (!i) {
        tallow_ctx_set_error(ctx, "no transport named '%s' is loaded", transport);
        return TALLOW_ENOTFOUND;
    }
    if (!p || p->struct_size < offsetof(tallow_channel_params, flags)) {
        tallow_ctx_set_error(ctx,
                             "transport %s: channel parameters without a struct_size "
                             "(use TALLOW_CHANNEL_PARAMS_INIT)",
                             transport);
        return TALLOW_EINVAL;
    }
    const tallow_transport_ops *ops = i->ops;
    tallow_channel *ch = calloc(1, ops->instance_size);
    if (!ch) return TALLOW_ENOMEM;
    ch->ops = ops;
    ch->plugin_state = i->plugin_state;
    ch->ctx = ctx;
    ch->loop = ctx->loop;
    ch->ev = ev;
    ch->ev_ud = ud;
    int rc = ops->open(ch, p);
    if (rc < 0) {
        free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

TALLOW_API int tallow_channel_send(tallow_channel *ch, uint32_t to, const uint8_t *frame,
                                   size_t len)
{
    return ch->ops->send(ch, to, frame, len);
}

TALLOW_API void tallow_channel_get_info(tallow_channel *ch, tallow_channel_info *info)
{
    memset(info, 0, sizeof(*info));
    ch->ops->get_info(ch, info);
    if (!info->path) info->path = ch->ops->name;
}

TALLOW_API void tallow_channel_close(tallow_channel *ch)
{
    if (!ch) return;
    ch->ops->close(ch);
    free(ch);
}

TALLOW_API size_t tallow_channel_queued(tallow_channel *ch)
{
    return ch->ops->queued(ch);
}

TALLOW_API int tallow_channel_control(tallow_channel *ch, int op, void *arg)
{
    return ch->ops->control(ch, op, arg);
}
