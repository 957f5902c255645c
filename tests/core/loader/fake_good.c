/* tests/core/loader/fake_good.c — a well-behaved plugin: registers a transport and a message
 * type 0x8001, keeps state, and reports init and fini (with whether its state came back). Its
 * other interfaces leave every optional slot NULL (the host must fill defaults): a gatherer, a
 * service, and "fake-old", a transport built against an older header whose struct ends before
 * get_info (the slots it has past its struct_size must not be read). It logs through its host
 * during init (a line already starting with its name) and from open, after init (the lines must
 * carry its name, once). */
#include <stdlib.h>
#include <string.h>

#include <tallow/error.h>
#include <tallow/gather.h>
#include <tallow/plugin.h>
#include <tallow/service.h>
#include <tallow/transport.h>

#include "fake_log.h"

#define GOOD_MAGIC 0x600dfeedu

typedef struct good_state {
    uint32_t magic;
    const tallow_host *host;
} good_state;

/* open succeeds only if the host handed back our state */
static int good_open(tallow_channel *ch, const tallow_channel_params *p)
{
    const good_state *st = ch->plugin_state;
    if (!st || st->magic != GOOD_MAGIC) return TALLOW_EINVAL;
    st->host->log(st->host, TALLOW_LOG_WARN, "channel opened to %s",
                  p->address ? p->address : "nowhere");
    return 0;
}

static int good_send(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len)
{
    return 0;
}

static const tallow_transport_ops good_transport = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = sizeof(tallow_transport_ops),
    .name = "fake-good",
    .instance_size = sizeof(tallow_channel),
    .open = good_open,
    .send = good_send,
};

/* Past fake-old's struct_size: a host that read it would report 4242 queued bytes. */
static size_t old_queued(tallow_channel *ch)
{
    return 4242;
}

static const tallow_transport_ops old_transport = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = offsetof(tallow_transport_ops, get_info),
    .name = "fake-old",
    .instance_size = sizeof(tallow_channel),
    .open = good_open,
    .send = good_send,
    .queued = old_queued,
};

static int good_gather(void *plugin_state, const tallow_gather_params *p, tallow_gather_cb cb,
                       void *ud)
{
    return TALLOW_ENOTFOUND;
}

static const tallow_gatherer_ops good_gatherer = {
    .version = TALLOW_GATHERER_OPS_VERSION,
    .struct_size = sizeof(tallow_gatherer_ops),
    .name = "fake-gather",
    .gather = good_gather,
};

static int good_start(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts,
                      void **inst)
{
    return TALLOW_ENOTFOUND;
}

static void good_stop(void *inst) {}

static const tallow_service_ops good_service = {
    .version = TALLOW_SERVICE_OPS_VERSION,
    .struct_size = sizeof(tallow_service_ops),
    .name = "fake-service",
    .start = good_start,
    .stop = good_stop,
};

typedef struct good_msg {
    uint64_t n;
    tallow_bytes text;
} good_msg;

static const tallow_field good_fields[] = {
    {.tag = 1, .name = "n", .kind = TALLOW_F_U64, .offset = offsetof(good_msg, n)},
    {.tag = 2, .name = "text", .kind = TALLOW_F_STR, .offset = offsetof(good_msg, text)},
};

static const tallow_msg_type good_type = {.id = 0x8001,
                                          .name = "FakeGoodMsg",
                                          .struct_size = sizeof(good_msg),
                                          .nfields = 2,
                                          .fields = good_fields};

static int good_init(const tallow_host *host, void **state_out)
{
    if (host->abi != TALLOW_PLUGIN_ABI || host->struct_size < sizeof(tallow_host))
        return TALLOW_EINVAL;
    good_state *st = calloc(1, sizeof(*st));
    if (!st) return TALLOW_ENOMEM;
    st->magic = GOOD_MAGIC;
    st->host = host;
    int rc = host->register_transport(host->ctx, &good_transport, st);
    if (rc == 0) rc = host->register_transport(host->ctx, &old_transport, st);
    if (rc == 0) rc = host->register_gatherer(host->ctx, &good_gatherer, st);
    if (rc == 0) rc = host->register_service(host->ctx, &good_service, st);
    if (rc == 0) rc = host->register_msg(host->ctx, &good_type);
    if (rc < 0) {
        free(st);
        return rc;
    }
    *state_out = st;
    /* during init, with its own name already in front: the host must not double it */
    host->log(host, TALLOW_LOG_WARN, "fake_good: registered");
    fake_log("init fake_good");
    return 0;
}

static void good_fini(void *state)
{
    good_state *st = state;
    fake_log(st && st->magic == GOOD_MAGIC ? "fini fake_good state-ok"
                                           : "fini fake_good state-bad");
    free(st);
}

static const tallow_plugin_desc good_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "fake_good",
    .version = "1.0",
    .summary = "test plugin that loads",
    .init = good_init,
    .fini = good_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &good_desc;
}
