/* core/base/msg.c — the one generic codec: varints, tagged fields, exact-length frames. Every
 * length read from the wire is checked against what remains; nothing is trusted. */
#include <string.h>

#include <tallow/error.h>
#include <tallow/msg.h>

#include "msg_int.h"
#include "registry.h"

#define WIRE_VARINT 0
#define WIRE_LEN 2

TALLOW_API size_t tallow_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

TALLOW_API size_t tallow_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

TALLOW_API int tallow_varint_get(const uint8_t *buf, size_t len, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < 10; i++) {
        if (i >= len) return TALLOW_ETRUNC;
        uint8_t b = buf[i];
        if (i == 9 && b > 1) return TALLOW_EBADMSG; /* beyond 64 bits */
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i > 0 && b == 0) return TALLOW_EBADMSG; /* non-minimal encoding */
            *v = r;
            return (int)(i + 1);
        }
    }
    return TALLOW_EBADMSG;
}

static int field_wire(uint8_t kind)
{
    return (kind == TALLOW_F_BYTES || kind == TALLOW_F_STR) ? WIRE_LEN : WIRE_VARINT;
}

static uint64_t field_scalar(const tallow_field *f, const void *msg)
{
    const uint8_t *p = (const uint8_t *)msg + f->offset;
    uint64_t u;
    int64_t s;
    uint32_t u32;
    switch (f->kind) {
    case TALLOW_F_U64:
        memcpy(&u, p, 8);
        return u;
    case TALLOW_F_I64:
        memcpy(&s, p, 8);
        return ((uint64_t)s << 1) ^ (uint64_t)(s >> 63);
    case TALLOW_F_U32:
        memcpy(&u32, p, 4);
        return u32;
    case TALLOW_F_BOOL:
        return *p ? 1 : 0;
    default:
        return 0;
    }
}

/* Fields equal to zero / empty are not written: they decode to the same value. */
static int field_present(const tallow_field *f, const void *msg)
{
    if (field_wire(f->kind) == WIRE_LEN) {
        const tallow_bytes *b = (const tallow_bytes *)((const uint8_t *)msg + f->offset);
        return b->len > 0;
    }
    return field_scalar(f, msg) != 0;
}

static size_t body_size(const tallow_msg_type *t, const void *msg)
{
    size_t n = 0;
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        if (!field_present(f, msg)) continue;
        n += tallow_varint_size((uint64_t)f->tag << 3);
        if (field_wire(f->kind) == WIRE_LEN) {
            const tallow_bytes *b = (const tallow_bytes *)((const uint8_t *)msg + f->offset);
            n += tallow_varint_size(b->len) + b->len;
        } else {
            n += tallow_varint_size(field_scalar(f, msg));
        }
    }
    return n;
}

TALLOW_API size_t tallow_msg_encoded_size(const tallow_msg_type *t, const void *msg)
{
    size_t body = body_size(t, msg);
    return tallow_varint_size(t->id) + tallow_varint_size(body) + body;
}

TALLOW_API int tallow_msg_encode(const tallow_msg_type *t, const void *msg, uint8_t *out,
                                 size_t cap)
{
    size_t body = body_size(t, msg);
    size_t total = tallow_varint_size(t->id) + tallow_varint_size(body) + body;
    if (total > cap || total > TALLOW_MSG_MAX_FRAME) return TALLOW_ETOOBIG;
    size_t n = tallow_varint_put(out, t->id);
    n += tallow_varint_put(out + n, body);
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        if (!field_present(f, msg)) continue;
        int wire = field_wire(f->kind);
        n += tallow_varint_put(out + n, ((uint64_t)f->tag << 3) | (uint64_t)wire);
        if (wire == WIRE_LEN) {
            const tallow_bytes *b = (const tallow_bytes *)((const uint8_t *)msg + f->offset);
            n += tallow_varint_put(out + n, b->len);
            if (b->len && b->ptr != out + n) memcpy(out + n, b->ptr, b->len); /* else in place */
            n += b->len;
        } else {
            n += tallow_varint_put(out + n, field_scalar(f, msg));
        }
    }
    return (int)n;
}

size_t tallow__msg_bytes_offset(const tallow_msg_type *t, const void *msg,
                                const tallow_bytes *field)
{
    size_t body = body_size(t, msg);
    size_t n = tallow_varint_size(t->id) + tallow_varint_size(body);
    size_t want = (size_t)((const uint8_t *)field - (const uint8_t *)msg);
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        int wire = field_wire(f->kind);
        if (f->offset == want && wire == WIRE_LEN)
            return n + tallow_varint_size(((uint64_t)f->tag << 3) | (uint64_t)wire) +
                   tallow_varint_size(field->len);
        if (!field_present(f, msg)) continue;
        n += tallow_varint_size((uint64_t)f->tag << 3);
        if (wire == WIRE_LEN) {
            const tallow_bytes *b = (const tallow_bytes *)((const uint8_t *)msg + f->offset);
            n += tallow_varint_size(b->len) + b->len;
        } else {
            n += tallow_varint_size(field_scalar(f, msg));
        }
    }
    return SIZE_MAX;
}

TALLOW_API int tallow_msg_peek_type(const uint8_t *buf, size_t len, uint32_t *type_out)
{
    uint64_t id;
    int n = tallow_varint_get(buf, len, &id);
    if (n < 0) return n;
    if (id > UINT32_MAX) return TALLOW_EBADMSG;
    *type_out = (uint32_t)id;
    return 0;
}

static int utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n > len) return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n;
    }
    return 1;
}

static const tallow_field *find_field(const tallow_msg_type *t, uint32_t tag)
{
    for (uint32_t i = 0; i < t->nfields; i++)
        if (t->fields[i].tag == tag) return &t->fields[i];
    return NULL;
}

static int store_scalar(const tallow_field *f, void *msg, uint64_t v)
{
    uint8_t *p = (uint8_t *)msg + f->offset;
    int64_t s;
    uint32_t u32;
    switch (f->kind) {
    case TALLOW_F_U64:
        memcpy(p, &v, 8);
        return 0;
    case TALLOW_F_I64:
        s = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
        memcpy(p, &s, 8);
        return 0;
    case TALLOW_F_U32:
        if (v > UINT32_MAX) return TALLOW_EBADMSG;
        u32 = (uint32_t)v;
        memcpy(p, &u32, 4);
        return 0;
    case TALLOW_F_BOOL:
        if (v > 1) return TALLOW_EBADMSG;
        *p = (uint8_t)v;
        return 0;
    default:
        return TALLOW_EBADMSG;
    }
}

/* Decodes a body of exactly len bytes into msg (already zeroed). */
static int decode_body(const tallow_msg_type *t, const uint8_t *p, size_t len, void *msg)
{
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, v;
        int n = tallow_varint_get(p + pos, len - pos, &key);
        if (n < 0) return n;
        pos += (size_t)n;
        uint64_t tag = key >> 3;
        int wire = (int)(key & 7);
        if (tag == 0 || tag > UINT32_MAX) return TALLOW_EBADMSG;
        if (wire != WIRE_VARINT && wire != WIRE_LEN) return TALLOW_EBADMSG;
        n = tallow_varint_get(p + pos, len - pos, &v);
        if (n < 0) return n;
        pos += (size_t)n;
        if (wire == WIRE_LEN && v > len - pos) return TALLOW_ETRUNC;
        const tallow_field *f = find_field(t, (uint32_t)tag);
        if (f) {
            if (field_wire(f->kind) != wire) return TALLOW_EBADMSG;
            if (wire == WIRE_LEN) {
                if (f->kind == TALLOW_F_STR && !utf8_valid(p + pos, (size_t)v))
                    return TALLOW_EBADMSG;
                tallow_bytes *b = (tallow_bytes *)((uint8_t *)msg + f->offset);
                b->ptr = p + pos;
                b->len = (size_t)v;
            } else {
                int rc = store_scalar(f, msg, v);
                if (rc < 0) return rc;
            }
        }
        if (wire == WIRE_LEN) pos += (size_t)v; /* unknown fields are skipped */
    }
    return 0;
}

/* Registry lookups live in registry.c. */

TALLOW_API int tallow_msg_decode(const tallow_registry *reg, const uint8_t *buf, size_t len,
                                 const tallow_msg_type **type_out, void *out, size_t out_size)
{
    uint64_t id, body;
    int rc;
    memset(out, 0, out_size);
    if (len > TALLOW_MSG_MAX_FRAME) return TALLOW_ETOOBIG;
    int n = tallow_varint_get(buf, len, &id);
    if (n < 0) return n;
    size_t pos = (size_t)n;
    n = tallow_varint_get(buf + pos, len - pos, &body);
    if (n < 0) return n;
    pos += (size_t)n;
    if (body > len - pos) return TALLOW_ETRUNC;
    if (body < len - pos) return TALLOW_EBADMSG; /* trailing bytes */
    const tallow_msg_type *t = id <= UINT32_MAX ? tallow__registry_lookup(reg, (uint32_t)id) : NULL;
    if (!t) return TALLOW_EUNKTYPE;
    if (t->struct_size > out_size) return TALLOW_ETOOBIG;
    rc = decode_body(t, buf + pos, (size_t)body, out);
    if (rc < 0) {
        memset(out, 0, out_size);
        return rc;
    }
    if (type_out) *type_out = t;
    return 0;
}
