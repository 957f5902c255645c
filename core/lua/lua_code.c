/* core/lua/lua_code.c — `tallow.code`: generate and normalise code phrases; the room id (hex) and a
 * keyed hash, for choosing a relay among several. The room id and the PAKE are derived in C from
 * the code; scripts never need to hash the code themselves. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "crypto.h"
#include "lua_rt.h"

/* tallow.code.generate([nwords]) -> "7-word-word-word" */
static int l_generate(lua_State *L)
{
    lua_Integer n = luaL_optinteger(L, 1, 3);
    luaL_argcheck(L, n >= 2 && n <= 8, 1,
                  "between 2 and 8 words (one word is one guess in 2048: too easy)");
    char code[TALLOW__CODE_MAX];
    int rc = tallow__code_generate(code, sizeof(code), (unsigned)n);
    if (rc < 0) return tallow__lua_fail(L, rc, NULL);
    lua_pushstring(L, code);
    return 1;
}

/* tallow.code.normalize(s) -> canonical code | nil, message, code */
static int l_normalize(lua_State *L)
{
    char code[TALLOW__CODE_MAX];
    int rc = tallow__code_normalize(luaL_checkstring(L, 1), code, sizeof(code));
    if (rc < 0)
        return tallow__lua_fail(L, rc, "malformed code phrase (expected NUMBER-word-word-...)");
    lua_pushstring(L, code);
    return 1;
}

/* tallow.code.room_id(code) -> 64 hex digits: the room id the relay sees (salted hash of part of
 * the code, never the code) | nil, message, code. Used to pick a relay among several. */
static int l_room_id(lua_State *L)
{
    uint8_t room[32];
    char hex[2 * sizeof room + 1];
    int rc = tallow__code_room_id(luaL_checkstring(L, 1), room);
    if (rc < 0)
        return tallow__lua_fail(L, rc, "malformed code phrase (expected NUMBER-word-word-...)");
    lua_pushstring(L, sodium_bin2hex(hex, sizeof hex, room, sizeof room));
    return 1;
}

/* tallow.code.hash(data [, key]) -> 64 hex digits of BLAKE2b-256(data), keyed when key is given
 * (16 to 64 bytes). Rendezvous hashing of rooms over relays uses it. */
static int l_hash(lua_State *L)
{
    size_t n, klen = 0;
    const char *data = luaL_checklstring(L, 1, &n);
    const char *key = luaL_optlstring(L, 2, NULL, &klen);
    luaL_argcheck(L,
                  !key || (klen >= crypto_generichash_KEYBYTES_MIN &&
                           klen <= crypto_generichash_KEYBYTES_MAX),
                  2, "16 to 64 bytes");
    uint8_t h[32];
    char hex[2 * sizeof h + 1];
    crypto_generichash(h, sizeof h, (const uint8_t *)data, n, (const uint8_t *)key, klen);
    lua_pushstring(L, sodium_bin2hex(hex, sizeof hex, h, sizeof h));
    return 1;
}

/* tallow.code.words([prefix]) -> the code-phrase words that start with prefix (all without),
 * in the word list's order: what tab completion offers. */
static int l_words(lua_State *L)
{
    const char *prefix = luaL_optstring(L, 1, "");
    size_t plen = strlen(prefix), n = tallow__wordlist_count();
    lua_newtable(L);
    lua_Integer k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *w = tallow__wordlist_get(i);
        if (strncmp(w, prefix, plen) == 0) {
            lua_pushstring(L, w);
            lua_rawseti(L, -2, ++k);
        }
    }
    return 1;
}

/* The completion of the last word of line[0..len) (after its last '-'), as wormhole does: a
 * single match is completed and followed by '-'; several extend to their common prefix, and a
 * second Tab lists them. Returns the new length. */
static size_t complete_word(char *line, size_t len, size_t cap, int list)
{
    size_t start = len;
    while (start > 0 && line[start - 1] != '-')
        start--;
    if (start == 0) return len; /* still the number */
    const char *prefix = line + start;
    size_t plen = len - start, n = tallow__wordlist_count(), matches = 0, common = 0;
    const char *first = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *w = tallow__wordlist_get(i);
        if (strncmp(w, prefix, plen) != 0) continue;
        if (!first) {
            first = w;
            common = strlen(w);
        } else {
            size_t c = 0;
            while (c < common && w[c] == first[c])
                c++;
            common = c;
        }
        matches++;
    }
    if (!matches) return len;
    if (list && matches > 1 && common == plen) {
        fputs("\r\n", stderr);
        size_t shown = 0;
        for (size_t i = 0; i < n && shown < 60; i++) {
            const char *w = tallow__wordlist_get(i);
            if (strncmp(w, prefix, plen) == 0) fprintf(stderr, "%s%s", shown++ ? "  " : "", w);
        }
        fputs(matches > shown ? "  ...\r\n" : "\r\n", stderr);
        return len;
    }
    for (size_t c = plen; c < common && len + 1 < cap; c++)
        line[len++] = first[c];
    if (matches == 1 && len + 1 < cap) line[len++] = '-';
    return len;
}

/* tallow.code.prompt(prompt) -> the line typed | nil at end of input. Reads a code phrase from
 * the terminal on stdin with Tab completing the words (a second Tab lists the candidates);
 * Backspace, Ctrl-U, Enter, Ctrl-D; Ctrl-C returns nil, "cancelled", "TALLOW_ECANCELED". Blocks: it
 * is asked before anything else runs. Falls back to a plain line read when stdin is not a terminal.
 */
static int l_prompt(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "Enter the code phrase: ");
    char line[TALLOW__CODE_MAX];
    size_t len = 0;
    struct termios old, raw;
    fputs(prompt, stderr);
    fflush(stderr);
    if (!isatty(0) || tcgetattr(0, &old) != 0) {
        if (!fgets(line, sizeof line, stdin)) return 0;
        line[strcspn(line, "\r\n")] = 0;
        lua_pushstring(L, line);
        return 1;
    }
    raw = old;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &raw);
    int last_tab = 0, done = 0, eof = 0, sig = 0;
    while (!done) {
        unsigned char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            eof = 1;
            break;
        }
        int tab = 0;
        if (c == '\r' || c == '\n') {
            done = 1;
        } else if (c == 4) { /* Ctrl-D */
            if (len == 0) eof = 1;
            done = eof;
        } else if (c == 3) { /* Ctrl-C */
            sig = 1;
            break;
        } else if (c == 127 || c == 8) {
            if (len) len--;
        } else if (c == 21) { /* Ctrl-U */
            len = 0;
        } else if (c == '\t') {
            tab = 1;
            len = complete_word(line, len, sizeof line, last_tab);
        } else if (c >= 0x20 && c < 0x7f && len + 1 < sizeof line) {
            line[len++] = (char)c;
        }
        last_tab = tab;
        line[len] = 0;
        fprintf(stderr, "\r%s%.*s\033[K", prompt, (int)len, line);
        fflush(stderr);
    }
    tcsetattr(0, TCSANOW, &old);
    fputs("\r\n", stderr);
    if (sig) return tallow__lua_fail(L, TALLOW_ECANCELED, "cancelled");
    if (eof) return 0;
    line[len] = 0;
    lua_pushstring(L, line);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"generate", l_generate}, {"normalize", l_normalize}, {"room_id", l_room_id}, {"hash", l_hash},
    {"words", l_words},       {"prompt", l_prompt},       {NULL, NULL},
};

int luaopen_tallow_code(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
