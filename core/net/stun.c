/* core/net/stun.c — the STUN codec (RFC 8489): strict parsing, address attributes, FINGERPRINT
 * (CRC-32) and short-term MESSAGE-INTEGRITY (HMAC-SHA1 from GnuTLS), and a builder. Pure: no
 * sockets, no allocation. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <string.h>
#include <tallow/error.h>
#include <tallow/stun.h>

#define ATTR_HDR 4
#define MI_LEN 20
#define FP_LEN 4

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

TALLOW_API uint32_t tallow_crc32(const uint8_t *buf, size_t len)
{
    /* Bitwise, reflected polynomial 0xEDB88320: STUN messages are small, a table buys nothing. */
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

TALLOW_API int tallow_stun_is_stun(const uint8_t *buf, size_t len)
{
    if (!buf || len < TALLOW_STUN_HEADER_LEN) return 0;
    if (buf[0] & 0xC0) return 0;
    if (rd32(buf + 4) != TALLOW_STUN_MAGIC) return 0;
    size_t mlen = rd16(buf + 2);
    return (mlen & 3) == 0 && mlen == len - TALLOW_STUN_HEADER_LEN;
}

TALLOW_API int tallow_stun_parse(const uint8_t *buf, size_t len, tallow_stun_msg *out)
{
    if (!out) return TALLOW_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!buf || len < TALLOW_STUN_HEADER_LEN) return TALLOW_ETRUNC;
    if ((buf[0] & 0xC0) || rd32(buf + 4) != TALLOW_STUN_MAGIC) return TALLOW_EBADMSG;
    size_t mlen = rd16(buf + 2);
    if (mlen & 3) return TALLOW_EBADMSG;
    if (mlen > len - TALLOW_STUN_HEADER_LEN) return TALLOW_ETRUNC;
    if (mlen < len - TALLOW_STUN_HEADER_LEN) return TALLOW_EBADMSG; /* trailing bytes */

    size_t mi = 0, fp = 0;
    for (size_t pos = TALLOW_STUN_HEADER_LEN; pos < len;) {
        if (len - pos < ATTR_HDR) return TALLOW_ETRUNC;
        uint16_t type = rd16(buf + pos);
        size_t alen = rd16(buf + pos + 2);
        if (pad4(alen) > len - pos - ATTR_HDR) return TALLOW_ETRUNC;
        if (fp) return TALLOW_EBADMSG; /* FINGERPRINT must be last */
        if (type == TALLOW_STUN_ATTR_FINGERPRINT) {
            if (alen != FP_LEN) return TALLOW_EBADMSG;
            fp = pos;
        } else if (type == TALLOW_STUN_ATTR_MESSAGE_INTEGRITY && !mi) {
            if (alen != MI_LEN) return TALLOW_EBADMSG;
            mi = pos;
        }
        pos += ATTR_HDR + pad4(alen);
    }

    uint16_t t = rd16(buf);
    out->buf = buf;
    out->len = len;
    out->type = t;
    out->method = (uint16_t)((t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2));
    out->cls = (uint8_t)(((t & 0x0010) >> 4) | ((t & 0x0100) >> 7));
    memcpy(out->txid, buf + 8, TALLOW_STUN_TXID_LEN);
    out->integrity_off = mi;
    out->fingerprint_off = fp;
    return 0;
}

TALLOW_API int tallow_stun_attr_next(const tallow_stun_msg *m, size_t *pos, uint16_t *type,
                                     tallow_bytes *value)
{
    if (!m || !m->buf || !pos) return 0;
    size_t p = *pos ? *pos : TALLOW_STUN_HEADER_LEN;
    while (p + ATTR_HDR <= m->len) {
        uint16_t t = rd16(m->buf + p);
        size_t alen = rd16(m->buf + p + 2);
        size_t next = p + ATTR_HDR + pad4(alen);
        if (next > m->len) break;
        int reachable =
            !m->integrity_off || p <= m->integrity_off || t == TALLOW_STUN_ATTR_FINGERPRINT;
        if (reachable) {
            if (type) *type = t;
            if (value) {
                value->ptr = m->buf + p + ATTR_HDR;
                value->len = alen;
            }
            *pos = next;
            return 1;
        }
        p = next;
    }
    *pos = m->len;
    return 0;
}

TALLOW_API int tallow_stun_attr_find(const tallow_stun_msg *m, uint16_t type, tallow_bytes *value)
{
    size_t pos = 0;
    uint16_t t;
    tallow_bytes v;
    while (tallow_stun_attr_next(m, &pos, &t, &v)) {
        if (t == type) {
            if (value) *value = v;
            return 0;
        }
    }
    return TALLOW_ENOTFOUND;
}

TALLOW_API int tallow_stun_addr_decode(const tallow_stun_msg *m, tallow_bytes value, int xored,
                                       struct sockaddr_storage *out, socklen_t *out_len)
{
    if (!m || !out || !out_len || !value.ptr) return TALLOW_EINVAL;
    memset(out, 0, sizeof(*out));
    *out_len = 0;
    if (value.len < 4) return TALLOW_EBADMSG;
    uint8_t family = value.ptr[1];
    uint16_t port = rd16(value.ptr + 2);
    uint8_t mask[16];
    wr32(mask, TALLOW_STUN_MAGIC);
    memcpy(mask + 4, m->txid, TALLOW_STUN_TXID_LEN);
    if (xored) port ^= (uint16_t)(TALLOW_STUN_MAGIC >> 16);

    if (family == 0x01 && value.len == 8) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        uint8_t a[4];
        for (int i = 0; i < 4; i++)
            a[i] = (uint8_t)(value.ptr[4 + i] ^ (xored ? mask[i] : 0));
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, a, 4);
        *out_len = sizeof(*in);
        return 0;
    }
    if (family == 0x02 && value.len == 20) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        uint8_t a[16];
        for (int i = 0; i < 16; i++)
            a[i] = (uint8_t)(value.ptr[4 + i] ^ (xored ? mask[i] : 0));
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, a, 16);
        *out_len = sizeof(*in6);
        return 0;
    }
    return TALLOW_EBADMSG;
}

TALLOW_API int tallow_stun_mapped_address(const tallow_stun_msg *m, struct sockaddr_storage *out,
                                          socklen_t *out_len)
{
    tallow_bytes v;
    if (tallow_stun_attr_find(m, TALLOW_STUN_ATTR_XOR_MAPPED_ADDRESS, &v) == 0)
        return tallow_stun_addr_decode(m, v, 1, out, out_len);
    if (tallow_stun_attr_find(m, TALLOW_STUN_ATTR_MAPPED_ADDRESS, &v) == 0)
        return tallow_stun_addr_decode(m, v, 0, out, out_len);
    return TALLOW_ENOTFOUND;
}

TALLOW_API int tallow_stun_check_fingerprint(const tallow_stun_msg *m)
{
    if (!m || !m->buf) return TALLOW_EINVAL;
    if (!m->fingerprint_off) return TALLOW_ENOTFOUND;
    uint32_t want = tallow_crc32(m->buf, m->fingerprint_off) ^ TALLOW_STUN_FINGERPRINT_XOR;
    return rd32(m->buf + m->fingerprint_off + ATTR_HDR) == want ? 0 : TALLOW_EBADMSG;
}

/* HMAC-SHA1 over buf[0..mi_off) as if the header's length ended right after the
 * MESSAGE-INTEGRITY attribute at mi_off (RFC 8489 §14.5). */
static int integrity_hmac(const uint8_t *buf, size_t mi_off, const uint8_t *key, size_t keylen,
                          uint8_t digest[MI_LEN])
{
    uint8_t hdr[TALLOW_STUN_HEADER_LEN];
    gnutls_hmac_hd_t h;
    memcpy(hdr, buf, sizeof(hdr));
    wr16(hdr + 2, (uint16_t)(mi_off + ATTR_HDR + MI_LEN - TALLOW_STUN_HEADER_LEN));
    if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA1, key, keylen) < 0) return TALLOW_ECRYPTO;
    int rc = gnutls_hmac(h, hdr, sizeof(hdr));
    if (rc >= 0 && mi_off > TALLOW_STUN_HEADER_LEN)
        rc = gnutls_hmac(h, buf + TALLOW_STUN_HEADER_LEN, mi_off - TALLOW_STUN_HEADER_LEN);
    gnutls_hmac_deinit(h, digest);
    return rc < 0 ? TALLOW_ECRYPTO : 0;
}

TALLOW_API int tallow_stun_check_integrity(const tallow_stun_msg *m, const uint8_t *key,
                                           size_t keylen)
{
    uint8_t digest[MI_LEN];
    if (!m || !m->buf || (!key && keylen)) return TALLOW_EINVAL;
    if (!m->integrity_off) return TALLOW_ENOTFOUND;
    if (integrity_hmac(m->buf, m->integrity_off, key, keylen, digest) < 0) return TALLOW_ECRYPTO;
    /* Constant time: the comparison must not tell an attacker how many bytes matched. */
    const uint8_t *got = m->buf + m->integrity_off + ATTR_HDR;
    uint8_t diff = 0;
    for (size_t i = 0; i < MI_LEN; i++)
        diff |= (uint8_t)(got[i] ^ digest[i]);
    return diff == 0 ? 0 : TALLOW_ECRYPTO;
}

/* ---- builder */

static int bfail(tallow_stun_builder *b, int err)
{
    if (!b->err) b->err = err;
    return b->err;
}

/* Reserves an attribute of alen value bytes (zero padding included) and returns its value
 * pointer, or NULL with b->err set. Keeps the header length current. */
static uint8_t *battr(tallow_stun_builder *b, uint16_t type, size_t alen)
{
    if (b->err) return NULL;
    if (b->sealed || alen > 0xFFFF) {
        bfail(b, TALLOW_EINVAL);
        return NULL;
    }
    size_t total = ATTR_HDR + pad4(alen);
    if (total > b->cap - b->len || b->len + total - TALLOW_STUN_HEADER_LEN > 0xFFFF) {
        bfail(b, TALLOW_ETOOBIG);
        return NULL;
    }
    uint8_t *p = b->buf + b->len;
    wr16(p, type);
    wr16(p + 2, (uint16_t)alen);
    memset(p + ATTR_HDR, 0, pad4(alen));
    b->len += total;
    wr16(b->buf + 2, (uint16_t)(b->len - TALLOW_STUN_HEADER_LEN));
    return p + ATTR_HDR;
}

TALLOW_API int tallow_stun_build_begin(tallow_stun_builder *b, uint8_t *buf, size_t cap,
                                       uint16_t method, uint8_t cls, const uint8_t *txid)
{
    if (!b) return TALLOW_EINVAL;
    memset(b, 0, sizeof(*b));
    b->buf = buf;
    b->cap = cap;
    if (!buf || !txid || method > 0xFFF || cls > 3) return bfail(b, TALLOW_EINVAL);
    if (cap < TALLOW_STUN_HEADER_LEN) return bfail(b, TALLOW_ETOOBIG);
    uint16_t t = (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) |
                            ((method & 0x0F80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7));
    wr16(buf, t);
    wr16(buf + 2, 0);
    wr32(buf + 4, TALLOW_STUN_MAGIC);
    memcpy(buf + 8, txid, TALLOW_STUN_TXID_LEN);
    b->len = TALLOW_STUN_HEADER_LEN;
    return 0;
}

TALLOW_API int tallow_stun_build_attr(tallow_stun_builder *b, uint16_t type, const void *value,
                                      size_t len)
{
    if (!b) return TALLOW_EINVAL;
    if (!value && len) return bfail(b, TALLOW_EINVAL);
    uint8_t *p = battr(b, type, len);
    if (!p) return b->err;
    if (len) memcpy(p, value, len);
    return 0;
}

TALLOW_API int tallow_stun_build_addr(tallow_stun_builder *b, uint16_t type, int xored,
                                      const struct sockaddr *sa, socklen_t len)
{
    if (!b) return TALLOW_EINVAL;
    if (b->err) return b->err;
    uint8_t mask[16], addr[16];
    uint16_t port;
    size_t alen;
    uint8_t family;
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        port = ntohs(in.sin_port);
        memcpy(addr, &in.sin_addr, 4);
        alen = 4;
        family = 0x01;
    } else if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        port = ntohs(in6.sin6_port);
        memcpy(addr, &in6.sin6_addr, 16);
        alen = 16;
        family = 0x02;
    } else {
        return bfail(b, TALLOW_EINVAL);
    }
    wr32(mask, TALLOW_STUN_MAGIC);
    memcpy(mask + 4, b->buf + 8, TALLOW_STUN_TXID_LEN);
    uint8_t *p = battr(b, type, 4 + alen);
    if (!p) return b->err;
    p[0] = 0;
    p[1] = family;
    wr16(p + 2, xored ? (uint16_t)(port ^ (TALLOW_STUN_MAGIC >> 16)) : port);
    for (size_t i = 0; i < alen; i++)
        p[4 + i] = (uint8_t)(addr[i] ^ (xored ? mask[i] : 0));
    return 0;
}

TALLOW_API int tallow_stun_build_integrity(tallow_stun_builder *b, const uint8_t *key,
                                           size_t keylen)
{
    if (!b) return TALLOW_EINVAL;
    if (!key && keylen) return bfail(b, TALLOW_EINVAL);
    size_t mi_off = b->len;
    uint8_t *p = battr(b, TALLOW_STUN_ATTR_MESSAGE_INTEGRITY, MI_LEN);
    if (!p) return b->err;
    if (integrity_hmac(b->buf, mi_off, key, keylen, p) < 0) return bfail(b, TALLOW_ECRYPTO);
    return 0;
}

TALLOW_API int tallow_stun_build_fingerprint(tallow_stun_builder *b)
{
    if (!b) return TALLOW_EINVAL;
    size_t fp_off = b->len;
    uint8_t *p = battr(b, TALLOW_STUN_ATTR_FINGERPRINT, FP_LEN);
    if (!p) return b->err;
    /* battr already set the header length to include this attribute, as the CRC requires. */
    wr32(p, tallow_crc32(b->buf, fp_off) ^ TALLOW_STUN_FINGERPRINT_XOR);
    b->sealed = 1;
    return 0;
}

TALLOW_API int tallow_stun_build_finish(tallow_stun_builder *b)
{
    if (!b) return TALLOW_EINVAL;
    return b->err ? b->err : (int)b->len;
}

TALLOW_API int tallow_stun_binding_request(uint8_t *buf, size_t cap, const uint8_t *txid)
{
    tallow_stun_builder b;
    tallow_stun_build_begin(&b, buf, cap, TALLOW_STUN_BINDING, TALLOW_STUN_REQUEST, txid);
    tallow_stun_build_fingerprint(&b);
    return tallow_stun_build_finish(&b);
}

TALLOW_API int tallow_stun_binding_response(uint8_t *buf, size_t cap, const uint8_t *txid,
                                            const struct sockaddr *mapped, socklen_t mapped_len,
                                            const char *software)
{
    tallow_stun_builder b;
    tallow_stun_build_begin(&b, buf, cap, TALLOW_STUN_BINDING, TALLOW_STUN_SUCCESS, txid);
    tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_XOR_MAPPED_ADDRESS, 1, mapped, mapped_len);
    tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_MAPPED_ADDRESS, 0, mapped, mapped_len);
    if (software) tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_SOFTWARE, software, strlen(software));
    tallow_stun_build_fingerprint(&b);
    return tallow_stun_build_finish(&b);
}

TALLOW_API int tallow_stun_answer_binding(const uint8_t *req, size_t req_len,
                                          const struct sockaddr *from, socklen_t from_len,
                                          const char *software, uint8_t *out, size_t cap)
{
    tallow_stun_msg m;
    int rc = tallow_stun_parse(req, req_len, &m);
    if (rc < 0) return rc;
    if (m.method != TALLOW_STUN_BINDING || m.cls != TALLOW_STUN_REQUEST) return TALLOW_EBADMSG;
    if (m.fingerprint_off && tallow_stun_check_fingerprint(&m) != 0) return TALLOW_EBADMSG;
    return tallow_stun_binding_response(out, cap, m.txid, from, from_len, software);
}
