/* tallow/service.h — long-running servers a plugin offers (the relay). A script starts one by
 * name with string options (`tallow.service.start("relay", {listen = "0.0.0.0:4433"})`). */
#ifndef TALLOW_SERVICE_H
#define TALLOW_SERVICE_H

#include "common.h"

#define TALLOW_SERVICE_OPS_VERSION 1

typedef struct tallow_kv {
    const char *key;
    const char *value;
} tallow_kv;

typedef struct tallow_service_ops {
    uint32_t version;
    uint32_t struct_size;
    const char *name;
    const char *summary;
    /* Option help lines ("--listen ADDR:PORT  where to listen (default 0.0.0.0:4433)"), NULL
     * terminated; borrowed. Optional (default: an empty list). */
    const char *const *options_help;
    /* Starts the service with borrowed options; *inst is the plugin's. 0 or a negative error
     * (message logged). */
    int (*start)(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts,
                 void **inst);
    /* Stops and frees the instance. */
    void (*stop)(void *inst);
    /* Reports counters as key/value pairs through fn. Optional (default: none). */
    void (*stats)(void *inst, void (*fn)(const char *key, uint64_t value, void *ud), void *ud);
    /* The rest is optional (absent from plugins built before it: struct_size tells); each
     * default returns TALLOW_ENOTSUP. */
    /* Validates options as start would, without starting anything: 0 or a negative error
     * (message set on ctx). */
    int (*check)(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts);
    /* Applies new options to a running instance without dropping its work (SIGHUP). On an
     * error the instance keeps its configuration. */
    int (*reload)(void *inst, const tallow_kv *opts, size_t nopts);
    /* Stops taking new work and ends what cannot finish by itself (SIGTERM); what runs goes on.
     * Returns how much still runs (>= 0), then stats tell. */
    int (*drain)(void *inst);
} tallow_service_ops;

TALLOW_API const tallow_service_ops *tallow_service_find(tallow_ctx *ctx, const char *name,
                                                         void **plugin_state);

#endif
