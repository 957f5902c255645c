/* core/error.c — tallow_strerror() and tallow_err_name(), generated from TALLOW_ERRNO_MAP. */
#include <string.h>
#include <tallow/error.h>

TALLOW_API const char *tallow_strerror(int err)
{
    switch (err) {
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
    switch (err) {
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
