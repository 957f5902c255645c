/* tallow/error.h — error codes. 0 is success, negative is an error, positive a count where a
 * function documents one. One convention, as libuv's UV_E*: a code that names an OS error IS that
 * -errno (TALLOW_EINVAL == -EINVAL, TALLOW_ETIMEOUT == -ETIMEDOUT, ...), so a -errno from a system
 * call and the tallow code compare equal; tallow's own codes live below -1000. All are defined once
 * in TALLOW_ERRNO_MAP, which also generates tallow_strerror() and tallow_err_name(). Append only:
 * a code never changes its number (the -errno ones changed once, from the -10xx numbers listed in
 * TALLOW_ERRNO_LEGACY, which the wire keeps: see tallow_err_to_wire). */
#ifndef TALLOW_ERROR_H
#define TALLOW_ERROR_H

#include <errno.h>

#include "common.h"

/* XX(name, number, message) */
#define TALLOW_ERRNO_MAP(XX)                                                                       \
    XX(EINVAL, -EINVAL, "invalid argument")                                                        \
    XX(ENOMEM, -ENOMEM, "out of memory")                                                           \
    XX(ETRUNC, -1003, "message truncated")                                                         \
    XX(EBADMSG, -EBADMSG, "malformed message")                                                     \
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
    XX(EPROTO, -EPROTO, "protocol violation by the peer")                                          \
    XX(EPEERGONE, -1018, "the peer went away")                                                     \
    XX(EREJECTED, -1019, "the peer declined")                                                      \
    XX(ETIMEOUT, -ETIMEDOUT, "timed out")                                                          \
    XX(EUNSAFEPATH, -1021, "unsafe path refused")                                                  \
    XX(EEXIST, -EEXIST, "destination exists (use --overwrite)")                                    \
    XX(EHASH, -1023, "integrity check failed: data differs from what the sender hashed")           \
    XX(ERELAY, -1024, "relay refused the request")                                                 \
    XX(EROOMFULL, -1025, "room is full")                                                           \
    XX(ECLOSED, -1026, "connection closed")                                                        \
    XX(EVERSION, -1027, "incompatible protocol version")                                           \
    XX(EAGAIN, -EAGAIN, "try again later (backpressure)")                                          \
    XX(ENOSPACE, -ENOSPC, "no space left on the destination")                                      \
    XX(ECANCELED, -ECANCELED, "canceled")                                                          \
    XX(ENOTSUP, -ENOTSUP, "not supported")

/* The numbers the -errno codes had in tallow 0.1, which peers put on the wire (TransferError.code,
 * FileAccept.refused, HandshakeFailed.code): XX(name, legacy number). */
#define TALLOW_ERRNO_LEGACY(XX)                                                                    \
    XX(EINVAL, -1001)                                                                              \
    XX(ENOMEM, -1002)                                                                              \
    XX(EBADMSG, -1004)                                                                             \
    XX(EPROTO, -1017)                                                                              \
    XX(ETIMEOUT, -1020)                                                                            \
    XX(EEXIST, -1022)                                                                              \
    XX(EAGAIN, -1028)                                                                              \
    XX(ENOSPACE, -1029)                                                                            \
    XX(ECANCELED, -1030)

enum tallow_errno {
#define TALLOW__ERR_ENUM(name, num, msg) TALLOW_##name = (num),
    TALLOW_ERRNO_MAP(TALLOW__ERR_ENUM)
#undef TALLOW__ERR_ENUM
};

/* Human message for any code (tallow's, -errno, or a legacy number). Returns a static string;
 * never NULL. */
TALLOW_API const char *tallow_strerror(int err);
/* Symbolic name ("TALLOW_ETRUNC", "ENOENT", ...; a legacy number gets its code's name). Returns
 * a static string; never NULL. */
TALLOW_API const char *tallow_err_name(int err);
/* An error code as it goes on the wire: the legacy number for the codes that had one (so peers of
 * every version understand it), the code itself otherwise. */
TALLOW_API int64_t tallow_err_to_wire(int err);
/* An error code read from the wire (any version's): the code it names, legacy numbers
 * translated. A number outside the error range (>= 0 or below -1999) gives TALLOW_EPROTO. */
TALLOW_API int tallow_err_from_wire(int64_t code);

#endif
