/* core/host.c — the services handed to plugins (tallow_host) and the lookups of what they
 * registered: transports, NAT discovery, gatherers, services. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/lua.h>

#include "ctx_internal.h"

static void host_log(tallow_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(tallow_ctx *ctx, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    tallow_ctx_log(ctx, level, "%s", line);
}

static void *host_alloc(size_t n)
{
    return calloc(1, n);
}

static int reg_transport(tallow_ctx *ctx, const struct tallow_transport_ops *ops, void *st)
{
    if (!ops || ops->version < 1 || ops->struct_size < offsetof(tallow_transport_ops, close) ||
        !ops->open || !ops->send || ops->instance_size < sizeof(tallow_channel))
        return TALLOW_EINVAL;
    return tallow__iface_add(&ctx->transports, ops->name, ops, ops->struct_size,
                             sizeof(tallow_transport_ops), st);
}

static int reg_discovery(tallow_ctx *ctx, const struct tallow_discovery_ops *ops, void *st)
{
    if (!ops || ops->version < 1 || !ops->discover) return TALLOW_EINVAL;
    return tallow__iface_add(&ctx->discoveries, ops->name, ops, ops->struct_size,
                             sizeof(tallow_discovery_ops), st);
}

static int reg_gatherer(tallow_ctx *ctx, const struct tallow_gatherer_ops *ops, void *st)
{
    if (!ops || ops->version < 1 || !ops->gather) return TALLOW_EINVAL;
    return tallow__iface_add(&ctx->gatherers, ops->name, ops, ops->struct_size,
                             sizeof(tallow_gatherer_ops), st);
}

static int reg_service(tallow_ctx *ctx, const struct tallow_service_ops *ops, void *st)
{
    if (!ops || ops->version < 1 || !ops->start || !ops->stop) return TALLOW_EINVAL;
    return tallow__iface_add(&ctx->services, ops->name, ops, ops->struct_size,
                             sizeof(tallow_service_ops), st);
}

static int reg_lua_module(tallow_ctx *ctx, const struct tallow_lua_module_ops *ops, void *st)
{
    if (!ops || ops->version < 1 || !ops->open) return TALLOW_EINVAL;
    return tallow__iface_add(&ctx->lua_modules, ops->name, ops, ops->struct_size,
                             sizeof(tallow_lua_module_ops), st);
}

static int reg_msg(tallow_ctx *ctx, const tallow_msg_type *t)
{
    return tallow_registry_add(ctx->registry, t);
}

void tallow__host_init(tallow_ctx *ctx)
{
    ctx->host = (tallow_host){
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

TALLOW_API void tallow_gatherer_foreach(tallow_ctx *ctx,
                                        void (*fn)(const tallow_gatherer_ops *ops, void *state,
                                                   void *ud),
                                        void *ud)
{
    for (size_t i = 0; i < ctx->gatherers.n; i++)
        fn(ctx->gatherers.v[i].ops, ctx->gatherers.v[i].plugin_state, ud);
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
    if (ch->ops->get_info) ch->ops->get_info(ch, info);
    if (!info->path) info->path = ch->ops->name;
}

TALLOW_API void tallow_channel_close(tallow_channel *ch)
{
    if (!ch) return;
    if (ch->ops->close) ch->ops->close(ch);
    free(ch);
}
