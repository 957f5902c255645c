/* tallow/stun.h — the STUN codec (RFC 8489) shared by the stun discovery plugin and the relay's
 * STUN responder: a strict parser, attribute readers, a small builder, FINGERPRINT and
 * short-term MESSAGE-INTEGRITY (HMAC-SHA1). No I/O here: bytes in, bytes out. */
#ifndef TALLOW_STUN_H
#define TALLOW_STUN_H

#include "common.h"
#include <sys/socket.h>

#define TALLOW_STUN_HEADER_LEN 20
#define TALLOW_STUN_MAGIC 0x2112A442u
#define TALLOW_STUN_TXID_LEN 12
#define TALLOW_STUN_FINGERPRINT_XOR 0x5354554Eu

/* Methods and classes (the message type is built from both). */
#define TALLOW_STUN_BINDING 0x001
enum tallow_stun_class {
    TALLOW_STUN_REQUEST = 0,
    TALLOW_STUN_INDICATION = 1,
    TALLOW_STUN_SUCCESS = 2,
    TALLOW_STUN_ERROR = 3,
};

/* Attribute types. */
#define TALLOW_STUN_ATTR_MAPPED_ADDRESS 0x0001
#define TALLOW_STUN_ATTR_USERNAME 0x0006
#define TALLOW_STUN_ATTR_MESSAGE_INTEGRITY 0x0008
#define TALLOW_STUN_ATTR_ERROR_CODE 0x0009
#define TALLOW_STUN_ATTR_UNKNOWN_ATTRIBUTES 0x000A
#define TALLOW_STUN_ATTR_REALM 0x0014
#define TALLOW_STUN_ATTR_NONCE 0x0015
#define TALLOW_STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020
#define TALLOW_STUN_ATTR_PRIORITY 0x0024
#define TALLOW_STUN_ATTR_USE_CANDIDATE 0x0025
#define TALLOW_STUN_ATTR_SOFTWARE 0x8022
#define TALLOW_STUN_ATTR_ALTERNATE_SERVER 0x8023
#define TALLOW_STUN_ATTR_FINGERPRINT 0x8028
#define TALLOW_STUN_ATTR_ICE_CONTROLLED 0x8029
#define TALLOW_STUN_ATTR_ICE_CONTROLLING 0x802A
#define TALLOW_STUN_ATTR_RESPONSE_ORIGIN 0x802B

/* A parsed message. Everything points into the datagram given to tallow_stun_parse, which must
 * outlive the struct. */
typedef struct tallow_stun_msg {
    const uint8_t *buf; /* the whole message (borrowed) */
    size_t len;         /* 20 + attribute bytes */
    uint16_t type;      /* raw message type */
    uint16_t method;    /* e.g. TALLOW_STUN_BINDING */
    uint8_t cls;        /* enum tallow_stun_class */
    uint8_t txid[TALLOW_STUN_TXID_LEN];
    size_t integrity_off;   /* offset of the MESSAGE-INTEGRITY attribute header, 0 if absent */
    size_t fingerprint_off; /* offset of the FINGERPRINT attribute header, 0 if absent */
} tallow_stun_msg;

/* 1 if buf looks like a STUN message (top two bits 0, magic cookie, length field a multiple of 4
 * equal to len - 20), else 0. Cheap: meant for demultiplexing a shared socket. */
TALLOW_API int tallow_stun_is_stun(const uint8_t *buf, size_t len);

/* Parses and checks a whole message: the header as tallow_stun_is_stun, every attribute inside
 * the message, MESSAGE-INTEGRITY exactly 20 bytes, FINGERPRINT exactly 4 bytes and last.
 * Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are bounds-checked, then ignored.
 * Does not verify FINGERPRINT or integrity (see below). Returns 0, or TALLOW_ETRUNC (shorter
 * than a header or than its length field says, or an attribute runs past the end) or
 * TALLOW_EBADMSG. On error *out is zeroed. */
TALLOW_API int tallow_stun_parse(const uint8_t *buf, size_t len, tallow_stun_msg *out);

/* Finds the first attribute of a type (attributes after MESSAGE-INTEGRITY other than
 * FINGERPRINT are not reachable, as RFC 8489 asks). On success *value borrows from the message.
 * Returns 0 or TALLOW_ENOTFOUND. */
TALLOW_API int tallow_stun_attr_find(const tallow_stun_msg *m, uint16_t type, tallow_bytes *value);

/* Walks the attributes: start with *pos = 0; returns 1 and fills type/value (borrowed) while
 * there is one, 0 at the end. Same reachability as tallow_stun_attr_find. */
TALLOW_API int tallow_stun_attr_next(const tallow_stun_msg *m, size_t *pos, uint16_t *type,
                                     tallow_bytes *value);

/* Reads XOR-MAPPED-ADDRESS (xored = 1) or MAPPED-ADDRESS (xored = 0) encoding from an attribute
 * value into *out. Returns 0 or TALLOW_EBADMSG (bad family or length). */
TALLOW_API int tallow_stun_addr_decode(const tallow_stun_msg *m, tallow_bytes value, int xored,
                                       struct sockaddr_storage *out, socklen_t *out_len);

/* The mapped address of a Binding response: XOR-MAPPED-ADDRESS if present, else MAPPED-ADDRESS.
 * Returns 0, TALLOW_ENOTFOUND (neither present) or TALLOW_EBADMSG. */
TALLOW_API int tallow_stun_mapped_address(const tallow_stun_msg *m, struct sockaddr_storage *out,
                                          socklen_t *out_len);

/* Verifies FINGERPRINT. Returns 0 (matches), TALLOW_ENOTFOUND (absent) or TALLOW_EBADMSG
 * (mismatch). */
TALLOW_API int tallow_stun_check_fingerprint(const tallow_stun_msg *m);

/* Verifies short-term MESSAGE-INTEGRITY (HMAC-SHA1) with key (the password bytes; borrowed).
 * Returns 0, TALLOW_ENOTFOUND (absent) or TALLOW_ECRYPTO (mismatch). */
TALLOW_API int tallow_stun_check_integrity(const tallow_stun_msg *m, const uint8_t *key,
                                           size_t keylen);

/* CRC-32 (ISO-HDLC, as zlib and STUN use) of len bytes. */
TALLOW_API uint32_t tallow_crc32(const uint8_t *buf, size_t len);

/* Builder: writes into a caller buffer. Each add call returns 0, or TALLOW_ETOOBIG when the
 * buffer is too small / TALLOW_EINVAL on bad input; the first error sticks, later calls do
 * nothing, and tallow_stun_build_finish reports it. Attribute padding is zero bytes. */
typedef struct tallow_stun_builder {
    uint8_t *buf; /* borrowed */
    size_t cap;
    size_t len;
    int err;
    int sealed; /* FINGERPRINT written: nothing may follow */
} tallow_stun_builder;

/* Starts a message of method and class with the given 12-byte transaction id. */
TALLOW_API int tallow_stun_build_begin(tallow_stun_builder *b, uint8_t *buf, size_t cap,
                                       uint16_t method, uint8_t cls, const uint8_t *txid);
/* Appends an attribute with raw value bytes (copied). */
TALLOW_API int tallow_stun_build_attr(tallow_stun_builder *b, uint16_t type, const void *value,
                                      size_t len);
/* Appends an address attribute (MAPPED-ADDRESS style, or XOR-ed when xored = 1). */
TALLOW_API int tallow_stun_build_addr(tallow_stun_builder *b, uint16_t type, int xored,
                                      const struct sockaddr *sa, socklen_t len);
/* Appends MESSAGE-INTEGRITY (HMAC-SHA1 with key, borrowed). */
TALLOW_API int tallow_stun_build_integrity(tallow_stun_builder *b, const uint8_t *key,
                                           size_t keylen);
/* Appends FINGERPRINT; must be the last attribute. */
TALLOW_API int tallow_stun_build_fingerprint(tallow_stun_builder *b);
/* Returns the message length, or the first error met while building. */
TALLOW_API int tallow_stun_build_finish(tallow_stun_builder *b);

/* A Binding request with FINGERPRINT. Returns its length (28) or TALLOW_ETOOBIG. */
TALLOW_API int tallow_stun_binding_request(uint8_t *buf, size_t cap, const uint8_t *txid);

/* A Binding success response for txid reporting mapped: XOR-MAPPED-ADDRESS, MAPPED-ADDRESS,
 * SOFTWARE (if software is not NULL) and FINGERPRINT. Returns its length, TALLOW_ETOOBIG or
 * TALLOW_EINVAL (mapped is not IPv4/IPv6). */
TALLOW_API int tallow_stun_binding_response(uint8_t *buf, size_t cap, const uint8_t *txid,
                                            const struct sockaddr *mapped, socklen_t mapped_len,
                                            const char *software);

/* The whole Binding responder of a STUN server (the relay's): if req is a well-formed Binding
 * request (and its FINGERPRINT, when present, matches), writes into out the success response
 * tallow_stun_binding_response builds for from, with the request's transaction id. Returns the
 * response length; TALLOW_EBADMSG / TALLOW_ETRUNC when req is not such a request (drop it
 * silently: never answer garbage); TALLOW_ETOOBIG or TALLOW_EINVAL as the builder does. */
TALLOW_API int tallow_stun_answer_binding(const uint8_t *req, size_t req_len,
                                          const struct sockaddr *from, socklen_t from_len,
                                          const char *software, uint8_t *out, size_t cap);

#endif
