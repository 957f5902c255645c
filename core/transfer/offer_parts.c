/* core/transfer/offer_parts.c — joins the parts of a FileOffer whose manifest did not fit one frame
 * (see offer_parts.h). Nothing is allocated for what the peer only claims: the buffer doubles as
 * bytes arrive, within TALLOW__MANIFEST_MAX_BYTES. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "offer_parts.h"

void tallow__offer_parts_reset(tallow__offer_parts *p)
{
    free(p->buf);
    memset(p, 0, sizeof *p);
}

static int refuse(tallow__offer_parts *p, int rc, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int refuse(tallow__offer_parts *p, int rc, char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    tallow__offer_parts_reset(p);
    return rc;
}

int tallow__offer_parts_add(tallow__offer_parts *p, const tallow_msg_FileOffer *m, uint64_t key,
                            tallow_msg_FileOffer *out, char *why, size_t whylen)
{
    if (why && whylen) why[0] = '\0';
    if (m->count > TALLOW__MANIFEST_MAX_ENTRIES)
        return refuse(p, TALLOW_ETOOBIG, why, whylen, "%llu entries: more than %u in one offer",
                      (unsigned long long)m->count, TALLOW__MANIFEST_MAX_ENTRIES);
    if (!p->active) {
        if (!m->more) { /* the usual case: the whole offer in one message */
            *out = *m;
            return 1;
        }
        p->active = 1;
        p->len = 0;
        p->key = key;
        p->head = *m;
        p->head.manifest = (tallow_bytes){NULL, 0};
    } else if (m->transfer_id != p->head.transfer_id) {
        return refuse(p, TALLOW_EPROTO, why, whylen,
                      "offer %llu came in parts and offer %llu "
                      "began before its last part",
                      (unsigned long long)p->head.transfer_id, (unsigned long long)m->transfer_id);
    } else if (key != p->key || m->kind != p->head.kind || m->count != p->head.count ||
               m->total_size != p->head.total_size) {
        return refuse(p, TALLOW_EPROTO, why, whylen,
                      "a part of offer %llu came under another key or with another header",
                      (unsigned long long)p->head.transfer_id);
    }
    if (m->manifest.len > TALLOW__MANIFEST_MAX_BYTES - p->len)
        return refuse(p, TALLOW_ETOOBIG, why, whylen, "a manifest of more than %u bytes",
                      TALLOW__MANIFEST_MAX_BYTES);
    if (p->len + m->manifest.len > p->cap) {
        size_t cap = p->cap ? p->cap : 64u * 1024u;
        while (cap < p->len + m->manifest.len)
            cap *= 2;
        if (cap > TALLOW__MANIFEST_MAX_BYTES) cap = TALLOW__MANIFEST_MAX_BYTES;
        uint8_t *nb = realloc(p->buf, cap);
        if (!nb) return refuse(p, TALLOW_ENOMEM, why, whylen, "out of memory");
        p->buf = nb;
        p->cap = cap;
    }
    if (m->manifest.len) memcpy(p->buf + p->len, m->manifest.ptr, m->manifest.len);
    p->len += m->manifest.len;
    if (m->more) return 0;
    *out = p->head;
    out->manifest = (tallow_bytes){p->buf, p->len};
    out->more = 0;
    p->active = 0; /* the buffer stays until the next call or reset */
    return 1;
}
