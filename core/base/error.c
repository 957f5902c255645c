/* core/base/error.c — tallow_strerror() and tallow_err_name(), generated from TALLOW_ERRNO_MAP, and
 * the wire form of a code (the legacy numbers of TALLOW_ERRNO_LEGACY). */
#include <string.h>
#include <tallow/error.h>

/* A legacy number (tallow 0.1's -10xx of a code that is now -errno) as today's code; any other
 * number unchanged. */
static int from_legacy(int err)
{
    switch (err) {
#define TALLOW__ERR_LEGACY(name, num)                                                              \
    case num:                                                                                      \
        return TALLOW_##name;
        TALLOW_ERRNO_LEGACY(TALLOW__ERR_LEGACY)
#undef TALLOW__ERR_LEGACY
    default:
        return err;
    }
}

TALLOW_API const char *tallow_strerror(int err)
{
    switch (from_legacy(err)) {
#define TALLOW__ERR_MSG(name, num, msg)                                                            \
    case num:                                                                                      \
        return msg;
        TALLOW_ERRNO_MAP(TALLOW__ERR_MSG)
#undef TALLOW__ERR_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -1000) return strerror(-err);
    return "unknown error";
}

TALLOW_API const char *tallow_err_name(int err)
{
    switch (from_legacy(err)) {
#define TALLOW__ERR_NAME(name, num, msg)                                                           \
    case num:                                                                                      \
        return "TALLOW_" #name;
        TALLOW_ERRNO_MAP(TALLOW__ERR_NAME)
#undef TALLOW__ERR_NAME
    case 0:
        return "OK";
    default:
        break;
    }
    if (err < 0 && err > -1000) {
        const char *n = strerrorname_np(-err);
        return n ? n : "EUNKNOWN";
    }
    return "EUNKNOWN";
}

TALLOW_API int64_t tallow_err_to_wire(int err)
{
    switch (err) {
#define TALLOW__ERR_WIRE(name, num)                                                                \
    case TALLOW_##name:                                                                            \
        return num;
        TALLOW_ERRNO_LEGACY(TALLOW__ERR_WIRE)
#undef TALLOW__ERR_WIRE
    default:
        return err;
    }
}

TALLOW_API int tallow_err_from_wire(int64_t code)
{
    if (code >= 0 || code <= -2000) return TALLOW_EPROTO;
    return from_legacy((int)code);
}
