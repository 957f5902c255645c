/* tallow/error.h — error codes. 0 is success, negative is an error, positive a count where a
 * function documents one. OS errors travel as -errno; tallow's own codes live below -1000 and are
 * defined once in TALLOW_ERRNO_MAP, which also generates tallow_strerror() and tallow_err_name().
 * Append only: a code never changes its number. */
#ifndef TALLOW_ERROR_H
#define TALLOW_ERROR_H

#include "common.h"

/* XX(name, number, message) */
#define TALLOW_ERRNO_MAP(XX)                                                                       \
    XX(EINVAL, -1001, "invalid argument")                                                          \
    XX(ENOMEM, -1002, "out of memory")                                                             \
    XX(ETRUNC, -1003, "message truncated")                                                         \
    XX(EBADMSG, -1004, "malformed message")                                                        \
    XX(EUNKTYPE, -1005, "unknown message type")                                                    \
    XX(ETOOBIG, -1006, "value or frame too large")                                                 \
    XX(EDUPTYPE, -1007, "message type already registered")                                         \
    XX(ENOTFOUND, -1008, "not found")                                                              \
    XX(EPLUGNOFILE, -1009, "plugin file not found")                                                \
    XX(EPLUGNOENTRY, -1010, "plugin has no entry point")                                           \
    XX(EPLUGABI, -1011, "plugin ABI mismatch")                                                     \
    XX(EPLUGDUP, -1012, "a plugin with this name is already loaded")                               \
    XX(EPLUGINIT, -1013, "plugin init failed")                                                     \
    XX(EPOLICY, -1014, "forbidden by policy")                                                      \
    XX(ECODE, -1015, "code mismatch, or someone tried to guess it")                                \
    XX(ECRYPTO, -1016, "decryption failed: frame forged, replayed or corrupted")                   \
    XX(EPROTO, -1017, "protocol violation by the peer")                                            \
    XX(EPEERGONE, -1018, "the peer went away")                                                     \
    XX(EREJECTED, -1019, "the peer declined")                                                      \
    XX(ETIMEOUT, -1020, "timed out")                                                               \
    XX(EUNSAFEPATH, -1021, "unsafe path refused")                                                  \
    XX(EEXIST, -1022, "destination exists (use --overwrite)")                                      \
    XX(EHASH, -1023, "integrity check failed: data differs from what the sender hashed")           \
    XX(ERELAY, -1024, "relay refused the request")                                                 \
    XX(EROOMFULL, -1025, "room is full")                                                           \
    XX(ECLOSED, -1026, "connection closed")                                                        \
    XX(EVERSION, -1027, "incompatible protocol version")                                           \
    XX(EAGAIN, -1028, "try again later (backpressure)")                                            \
    XX(ENOSPACE, -1029, "no space left on the destination")                                        \
    XX(ECANCELED, -1030, "canceled")

enum tallow_errno {
#define TALLOW__ERR_ENUM(name, num, msg) TALLOW_##name = (num),
    TALLOW_ERRNO_MAP(TALLOW__ERR_ENUM)
#undef TALLOW__ERR_ENUM
};

/* Human message for any code (tallow's or -errno). Returns a static string; never NULL. */
TALLOW_API const char *tallow_strerror(int err);
/* Symbolic name ("TALLOW_ETRUNC", "ENOENT", ...). Returns a static string; never NULL. */
TALLOW_API const char *tallow_err_name(int err);

#endif
