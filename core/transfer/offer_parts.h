/* core/transfer/offer_parts.h — joining a FileOffer that came in parts (its manifest larger than
 * one frame): the parts share a transfer id, a key and a header, all but the last carry more = 1.
 * The peer is not trusted: the buffer grows with the bytes that actually arrived, up to
 * TALLOW__MANIFEST_MAX_BYTES, and a count above TALLOW__MANIFEST_MAX_ENTRIES is refused at the
 * first part. */
#ifndef TALLOW_OFFER_PARTS_H
#define TALLOW_OFFER_PARTS_H

#include <tallow/messages.h>

typedef struct tallow__offer_parts {
    int active;                /* a first part came, the last did not yet */
    uint64_t key;              /* the key the first part came under */
    tallow_msg_FileOffer head; /* its header (manifest unused) */
    uint8_t *buf;              /* the manifest so far (owned) */
    size_t len, cap;
} tallow__offer_parts;

/* Feeds one received FileOffer m (borrowed), which came under key `key`. Returns 0 (a part was
 * kept; more follow), 1 (the offer is whole: *out is m itself when it came in one piece, else the
 * joined offer, whose manifest points into p and stays valid until the next call or reset), or
 * an error, after which p is empty again: TALLOW_ETOOBIG (count or bytes above the bounds),
 * TALLOW_EPROTO (a part of another offer, or under another key, or a changed header),
 * TALLOW_ENOMEM. A detail for the user goes to why (NUL-terminated, cut at whylen). */
int tallow__offer_parts_add(tallow__offer_parts *p, const tallow_msg_FileOffer *m, uint64_t key,
                            tallow_msg_FileOffer *out, char *why, size_t whylen);
/* Forgets any partial offer and frees its buffer. */
void tallow__offer_parts_reset(tallow__offer_parts *p);

#endif
