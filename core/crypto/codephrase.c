/* core/crypto/codephrase.c — code phrases "N-word-word-word": generation from the word list,
 * normalization of what a user typed, and the room id the relay sees: a hash of the number
 * alone (the nameplate, not secret), so no word of the code ever leaves the machine; every word
 * goes into CPace, and a code needs TALLOW__CODE_MIN_WORDS of them. */
#include "crypto.h"
#include <stdio.h>
#include <string.h>

int tallow__code_generate(char *out, size_t cap, unsigned nwords)
{
    if (!out || nwords < TALLOW__CODE_MIN_WORDS || nwords > 8) return TALLOW_EINVAL;
    if (sodium_init() < 0) return TALLOW_ECRYPTO;
    int n = snprintf(out, cap, "%u", (unsigned)randombytes_uniform(1000));
    if (n < 0 || (size_t)n >= cap) goto toobig;
    size_t pos = (size_t)n;
    for (unsigned i = 0; i < nwords; i++) {
        const char *w =
            tallow__wordlist_get(randombytes_uniform((uint32_t)tallow__wordlist_count()));
        size_t wl = strlen(w);
        if (pos + 1 + wl + 1 > cap) goto toobig;
        out[pos++] = '-';
        memcpy(out + pos, w, wl);
        pos += wl;
    }
    out[pos] = '\0';
    return 0;
toobig:
    if (cap) out[0] = '\0';
    return TALLOW_ETOOBIG;
}

static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '_' ||
           c == '-';
}

int tallow__code_normalize(const char *in, char *out, size_t cap)
{
    if (!in || !out || cap == 0) return TALLOW_EINVAL;
    char buf[TALLOW__CODE_MAX];
    size_t pos = 0, tok = 0, toklen = 0;
    int rc = TALLOW_EINVAL;
    const char *p = in;

    while (*p && is_sep(*p))
        p++;
    /* The number: digits only, leading zeros dropped so "007" and "7" meet. */
    unsigned num = 0;
    size_t ndig = 0;
    for (; *p >= '0' && *p <= '9'; p++, ndig++) {
        num = num * 10 + (unsigned)(*p - '0');
        if (num > 999) goto out;
    }
    if (ndig == 0 || !is_sep(*p)) goto out;
    pos = (size_t)snprintf(buf, sizeof buf, "%u", num);
    /* Words: runs of ASCII letters, any run of separators between them becomes one '-'. */
    for (;;) {
        while (*p && is_sep(*p))
            p++;
        if (!*p) break;
        if (++tok > TALLOW__CODE_MAX_WORDS || pos + 2 >= sizeof buf) goto out;
        buf[pos++] = '-';
        for (toklen = 0; *p && !is_sep(*p); p++) {
            char c = *p;
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c < 'a' || c > 'z') goto out;
            if (++toklen > TALLOW__CODE_MAX_WORDLEN || pos + 1 >= sizeof buf) goto out;
            buf[pos++] = c;
        }
    }
    if (tok == 0) goto out;
    buf[pos] = '\0';
    if (pos + 1 > cap) {
        rc = TALLOW_ETOOBIG;
        goto out;
    }
    memcpy(out, buf, pos + 1);
    rc = 0;
out:
    sodium_memzero(buf, sizeof buf);
    if (rc < 0) out[0] = '\0';
    return rc;
}

int tallow__code_words(const char *code)
{
    char norm[TALLOW__CODE_MAX];
    int rc = tallow__code_normalize(code, norm, sizeof norm);
    if (rc < 0) return rc == TALLOW_ETOOBIG ? TALLOW_EINVAL : rc;
    int n = 0;
    for (const char *p = norm; *p; p++)
        n += *p == '-';
    sodium_memzero(norm, sizeof norm);
    return n;
}

int tallow__code_room_id(const char *code, uint8_t room[32])
{
    static const uint8_t salt[] = "tallow-nameplate-v2"; /* fixed, public */
    char norm[TALLOW__CODE_MAX];
    if (!room) return TALLOW_EINVAL;
    if (sodium_init() < 0) return TALLOW_ECRYPTO;
    int rc = tallow__code_normalize(code, norm, sizeof norm);
    if (rc < 0) return rc == TALLOW_ETOOBIG ? TALLOW_EINVAL : rc;
    /* the nameplate: "N", cut at the first '-' (normalize guarantees one) */
    char *dash = strchr(norm, '-');
    size_t len = dash ? (size_t)(dash - norm) : strlen(norm);
    crypto_generichash_state st;
    uint8_t lenle[8];
    for (int i = 0; i < 8; i++)
        lenle[i] = (uint8_t)((uint64_t)len >> (8 * i));
    crypto_generichash_init(&st, salt, sizeof salt - 1, 32);
    crypto_generichash_update(&st, lenle, sizeof lenle);
    crypto_generichash_update(&st, (const uint8_t *)norm, len);
    crypto_generichash_final(&st, room, 32);
    sodium_memzero(norm, sizeof norm);
    sodium_memzero(&st, sizeof st);
    return 0;
}
