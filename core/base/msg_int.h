/* core/base/msg_int.h — msg.c's helpers for the core (not installed): where a field's bytes sit in
 * an encoding, for the session's zero-copy sends. */
#ifndef TALLOW_MSG_INT_H
#define TALLOW_MSG_INT_H

#include <tallow/tallow.h>

/* Offset of a BYTES field's bytes (field points into msg) within msg's encoding, or SIZE_MAX. */
size_t tallow__msg_bytes_offset(const tallow_msg_type *t, const void *msg,
                                const tallow_bytes *field);

#endif
