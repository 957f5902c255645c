/* tallow/common.h — export macro, forward declarations and small shared types.
 * Included by every other public header. */
#ifndef TALLOW_COMMON_H
#define TALLOW_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(TALLOW_BUILDING_LIB)
#define TALLOW_API __attribute__((visibility("default")))
#else
#define TALLOW_API
#endif

#define TALLOW_VERSION "0.1.0"

typedef struct tallow_ctx tallow_ctx;
typedef struct tallow_loop tallow_loop;
typedef struct tallow_registry tallow_registry;
typedef struct tallow_policy tallow_policy;
typedef struct tallow_host tallow_host;

/* A borrowed byte range: valid only as long as the buffer it points into. */
typedef struct tallow_bytes {
    const uint8_t *ptr;
    size_t len;
} tallow_bytes;

/* Log levels for tallow_host.log and tallow_ctx_log. */
enum tallow_log_level { TALLOW_LOG_ERROR, TALLOW_LOG_WARN, TALLOW_LOG_INFO, TALLOW_LOG_DEBUG };

#endif
