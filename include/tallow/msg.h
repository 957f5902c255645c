/* tallow/msg.h — the message registry and the one generic codec.
 *
 * Every wire message is a registered type: a stable numeric id, a name, and a table of fields.
 * A message lives in C as a plain struct; each field descriptor names its tag, kind and offset.
 * Wire form:  varint type | varint body_len | body,  body = fields as  varint (tag<<3 | wire)
 * followed by a varint (wire 0) or a varint length and bytes (wire 2). Unknown tags are skipped;
 * missing fields decode as zero/empty; the frame must be consumed exactly, so any truncation
 * fails. Core ids 0..38 are fixed (see core/msg_types.h); plugins register from 0x8000 up. */
#ifndef TALLOW_MSG_H
#define TALLOW_MSG_H

#include "common.h"

enum tallow_field_kind {
    TALLOW_F_U64 = 1, /* uint64_t, varint */
    TALLOW_F_I64,     /* int64_t, zigzag varint */
    TALLOW_F_BOOL,    /* uint8_t (0/1), varint */
    TALLOW_F_U32,     /* uint32_t, varint, rejects values above UINT32_MAX */
    TALLOW_F_BYTES,   /* tallow_bytes, length-delimited; decode borrows from the input */
    TALLOW_F_STR,     /* tallow_bytes, must be valid UTF-8 without NUL */
};

typedef struct tallow_field {
    uint32_t tag;     /* 1.. ; never reused within a type */
    const char *name; /* for Lua tables and logs */
    uint8_t kind;     /* enum tallow_field_kind */
    uint16_t offset;  /* offsetof in the message struct */
} tallow_field;

typedef struct tallow_msg_type {
    uint32_t id;
    const char *name;
    uint32_t struct_size; /* sizeof the C struct */
    uint32_t nfields;
    const tallow_field *fields; /* borrowed: must outlive the registry */
} tallow_msg_type;

/* Largest frame the codec accepts (bytes). */
#define TALLOW_MSG_MAX_FRAME (16u * 1024u * 1024u)

/* Creates a registry holding every core type. NULL on failure. Caller frees. */
TALLOW_API tallow_registry *tallow_registry_new(void);
TALLOW_API void tallow_registry_free(tallow_registry *reg);
/* Registers a type; the descriptor is borrowed. 0, TALLOW_EDUPTYPE (id or name taken) or
 * TALLOW_EINVAL (bad descriptor). */
TALLOW_API int tallow_registry_add(tallow_registry *reg, const tallow_msg_type *type);
/* Borrowed descriptor or NULL. */
TALLOW_API const tallow_msg_type *tallow_registry_find(const tallow_registry *reg, uint32_t id);
TALLOW_API const tallow_msg_type *tallow_registry_find_name(const tallow_registry *reg,
                                                            const char *name);
/* Calls fn for every registered type in id order. */
TALLOW_API void tallow_registry_foreach(const tallow_registry *reg,
                                        void (*fn)(const tallow_msg_type *t, void *ud), void *ud);

/* Bytes needed to encode msg (a struct of type t). */
TALLOW_API size_t tallow_msg_encoded_size(const tallow_msg_type *t, const void *msg);
/* Encodes msg into out[cap]. Returns the length (> 0) or TALLOW_ETOOBIG if cap is too small.
 * A BYTES/STR field whose ptr already points where its bytes go in out is left in place (no
 * copy); any other overlap between a field and out is not allowed. */
TALLOW_API int tallow_msg_encode(const tallow_msg_type *t, const void *msg, uint8_t *out,
                                 size_t cap);
/* Reads the type id of a frame without decoding it. 0 or TALLOW_ETRUNC / TALLOW_EBADMSG. */
TALLOW_API int tallow_msg_peek_type(const uint8_t *buf, size_t len, uint32_t *type_out);
/* Decodes a whole frame into out (a zeroed struct of the frame's type, out_size bytes).
 * BYTES/STR fields borrow from buf. Returns 0 and sets *type_out, or TALLOW_ETRUNC,
 * TALLOW_EBADMSG, TALLOW_EUNKTYPE, TALLOW_ETOOBIG; on error out is zeroed. */
TALLOW_API int tallow_msg_decode(const tallow_registry *reg, const uint8_t *buf, size_t len,
                                 const tallow_msg_type **type_out, void *out, size_t out_size);

/* Varint helpers shared by the codec and plugins' own framings. put returns bytes written
 * (1..10); get returns bytes read, or TALLOW_ETRUNC / TALLOW_EBADMSG. */
TALLOW_API size_t tallow_varint_put(uint8_t *out, uint64_t v);
TALLOW_API int tallow_varint_get(const uint8_t *buf, size_t len, uint64_t *v);
TALLOW_API size_t tallow_varint_size(uint64_t v);

#endif
