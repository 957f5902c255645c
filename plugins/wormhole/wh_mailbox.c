/* plugins/wormhole/wh_mailbox.c — the mailbox client as magic-wormhole 0.12.0 and
 * wormhole-william speak it: bind, allocate or claim, open, add "pake" (SPAKE2), add "version"
 * (the first SecretBox phase: a wrong code fails here), then numbered phases. The server echoes
 * our own adds (ignored by side) and may repeat messages (deduplicated by phase). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/common.h>
#include <tallow/error.h>

#include "wh.h"

#define VERSION_BODY "{\"app_versions\": {}}"

static int fail(wh_conn *c, int rc, const char *fmt, const char *arg)
{
    snprintf(c->err, sizeof(c->err), fmt, arg ? arg : "");
    return rc;
}

static int send_cmd(wh_conn *c, json_t *obj, int64_t deadline)
{
    uint8_t id[2];
    char idhex[5];
    randombytes_buf(id, 2);
    wh_hex(idhex, id, 2);
    json_object_set_new(obj, "id", json_string(idhex));
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s) return TALLOW_ENOMEM;
    int rc = wh_ws_send(&c->ws, s, strlen(s), deadline);
    free(s);
    if (rc) return fail(c, rc, "lost the mailbox server: %s", tallow_strerror(rc));
    return 0;
}

static int release(wh_conn *c, int64_t deadline)
{
    if (c->released || !c->nameplate) return 0;
    c->released = 1;
    return send_cmd(c, json_pack("{s:s,s:s}", "type", "release", "nameplate", c->nameplate),
                    deadline);
}

/* Reads server messages until one of type want arrives (*got, owned by the caller) or, with
 * want == NULL, until the peer's phase is in the inbox. */
static int pump(wh_conn *c, const char *want, json_t **got, const char *phase, int64_t deadline)
{
    for (;;) {
        if (!want && phase && json_object_get(c->inbox, phase)) return 0;
        const char *m;
        size_t len;
        int rc = wh_ws_recv(&c->ws, &m, &len, deadline);
        if (rc == TALLOW_ETIMEOUT)
            return fail(c, rc, "timed out waiting for %s", want ? want : "the other side");
        if (rc) return fail(c, rc, "lost the mailbox server: %s", tallow_strerror(rc));
        json_t *j = json_loadb(m, len, 0, NULL);
        const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
        if (!type) {
            json_decref(j);
            return fail(c, TALLOW_EPROTO,
                        "the mailbox server sent something that is not a message%s", NULL);
        }
        if (strcmp(type, "error") == 0) {
            const char *e = json_string_value(json_object_get(j, "error"));
            if (e && strcmp(e, "crowded") == 0) {
                json_decref(j);
                return fail(c, TALLOW_EROOMFULL,
                            "this code is already used by two others (the mailbox says crowded)%s",
                            NULL);
            }
            char buf[200];
            snprintf(buf, sizeof(buf), "%s", e ? e : "?");
            json_decref(j);
            return fail(c, TALLOW_ERELAY, "the mailbox server said: %s", buf);
        }
        if (strcmp(type, "welcome") == 0) {
            json_t *w = json_object_get(j, "welcome");
            const char *e = json_string_value(json_object_get(w, "error"));
            if (e) {
                char buf[200];
                snprintf(buf, sizeof(buf), "%s", e);
                json_decref(j);
                return fail(c, TALLOW_ERELAY, "the mailbox server refuses us: %s", buf);
            }
        } else if (strcmp(type, "message") == 0) {
            const char *side = json_string_value(json_object_get(j, "side"));
            const char *ph = json_string_value(json_object_get(j, "phase"));
            const char *body = json_string_value(json_object_get(j, "body"));
            if (side && ph && body && strcmp(side, c->side) != 0) {
                if (!c->peer_side) c->peer_side = strdup(side);
                if (c->peer_side && strcmp(side, c->peer_side) == 0 &&
                    !json_object_get(c->inbox, ph))
                    json_object_set_new(c->inbox, ph, json_string(body));
                rc = release(c, deadline);
                if (rc) {
                    json_decref(j);
                    return rc;
                }
            }
        } else if (want && strcmp(type, want) == 0) {
            *got = j;
            return 0;
        }
        json_decref(j);
    }
}

int wh_conn_open(wh_conn *c, const char *url, int64_t deadline)
{
    memset(c, 0, sizeof(*c));
    c->ws.fd = -1;
    uint8_t side[5];
    randombytes_buf(side, sizeof(side));
    wh_hex(c->side, side, sizeof(side));
    c->inbox = json_object();
    int rc = wh_ws_connect(&c->ws, url, deadline, c->err, sizeof(c->err));
    if (rc) return rc;
    return send_cmd(c,
                    json_pack("{s:s,s:s,s:s,s:[s,s]}", "type", "bind", "appid", WH_APPID, "side",
                              c->side, "client_version", "tallow", TALLOW_VERSION),
                    deadline);
}

int wh_conn_allocate(wh_conn *c, int nwords, int64_t deadline)
{
    int rc = send_cmd(c, json_pack("{s:s}", "type", "allocate"), deadline);
    json_t *j = NULL;
    if (!rc) rc = pump(c, "allocated", &j, NULL, deadline);
    if (rc) return rc;
    const char *np = json_string_value(json_object_get(j, "nameplate"));
    if (!np || !*np) {
        json_decref(j);
        return fail(c, TALLOW_EPROTO, "the mailbox server allocated no nameplate%s", NULL);
    }
    size_t cap = strlen(np) + 1 + (size_t)nwords * 16 + 1;
    char *code = malloc(cap);
    if (!code) {
        json_decref(j);
        return TALLOW_ENOMEM;
    }
    strcpy(code, np);
    for (int i = 0; i < nwords; i++) {
        strcat(code, "-");
        strcat(code, wh_word(i, randombytes_uniform(256)));
    }
    c->nameplate = strdup(np);
    c->code = code;
    json_decref(j);
    return c->nameplate ? 0 : TALLOW_ENOMEM;
}

int wh_conn_set_code(wh_conn *c, const char *code)
{
    const char *dash = strchr(code, '-');
    if (!dash || dash == code || !dash[1])
        return fail(c, TALLOW_EINVAL, "'%s' is not a wormhole code (NUMBER-WORD-WORD)", code);
    for (const char *p = code; p < dash; p++)
        if (*p < '0' || *p > '9')
            return fail(c, TALLOW_EINVAL, "'%s' is not a wormhole code (NUMBER-WORD-WORD)", code);
    c->code = strdup(code);
    c->nameplate = strndup(code, (size_t)(dash - code));
    return c->code && c->nameplate ? 0 : TALLOW_ENOMEM;
}

static int add_phase(wh_conn *c, const char *phase, const uint8_t *body, size_t len,
                     int64_t deadline)
{
    char *hex = malloc(len * 2 + 1);
    if (!hex) return TALLOW_ENOMEM;
    wh_hex(hex, body, len);
    json_t *o = json_pack("{s:s,s:s,s:s}", "type", "add", "phase", phase, "body", hex);
    free(hex);
    return send_cmd(c, o, deadline);
}

static int add_sealed(wh_conn *c, const char *phase, const char *text, int64_t deadline)
{
    uint8_t k[32];
    size_t len = strlen(text);
    uint8_t *box = malloc(len + WH_BOX_OVERHEAD);
    if (!box) return TALLOW_ENOMEM;
    wh_phase_key(k, c->key, c->side, phase);
    wh_box_seal(box, (const uint8_t *)text, len, k);
    sodium_memzero(k, sizeof(k));
    int rc = add_phase(c, phase, box, len + WH_BOX_OVERHEAD, deadline);
    free(box);
    return rc;
}

/* The peer's phase, opened: *out (malloc'd, NUL-terminated) or < 0 when it does not decrypt. */
static int open_phase(wh_conn *c, const char *phase, char **out, size_t *outlen)
{
    const char *hex = json_string_value(json_object_get(c->inbox, phase));
    size_t hl = hex ? strlen(hex) : 0, bl = 0;
    uint8_t *box = malloc(hl / 2 + 1);
    char *pt = malloc(hl / 2 + 1);
    int rc = box && pt ? TALLOW_ECRYPTO : TALLOW_ENOMEM;
    if (box && pt && hex && wh_unhex(box, hl / 2 + 1, hex, &bl) == 0 && bl >= WH_BOX_OVERHEAD) {
        uint8_t k[32];
        wh_phase_key(k, c->key, c->peer_side, phase);
        rc = wh_box_open((uint8_t *)pt, box, bl, k);
        sodium_memzero(k, sizeof(k));
        if (rc == 0) {
            pt[bl - WH_BOX_OVERHEAD] = 0;
            *out = pt;
            *outlen = bl - WH_BOX_OVERHEAD;
            pt = NULL;
        }
    }
    free(box);
    free(pt);
    return rc;
}

int wh_conn_claim(wh_conn *c, int64_t deadline)
{
    if (c->mailbox) return 0;
    json_t *j = NULL;
    int rc =
        send_cmd(c, json_pack("{s:s,s:s}", "type", "claim", "nameplate", c->nameplate), deadline);
    if (!rc) rc = pump(c, "claimed", &j, NULL, deadline);
    if (rc) return rc;
    const char *mb = json_string_value(json_object_get(j, "mailbox"));
    c->mailbox = mb ? strdup(mb) : NULL;
    json_decref(j);
    if (!c->mailbox) return fail(c, TALLOW_EPROTO, "the mailbox server gave no mailbox%s", NULL);
    return send_cmd(c, json_pack("{s:s,s:s}", "type", "open", "mailbox", c->mailbox), deadline);
}

int wh_conn_pair(wh_conn *c, int64_t deadline)
{
    int rc = wh_conn_claim(c, deadline);
    if (rc) return rc;

    uint8_t msg[WH_SPAKE2_MSG_LEN];
    if (wh_spake2_start(&c->sp, (const uint8_t *)c->code, strlen(c->code),
                        (const uint8_t *)WH_APPID, strlen(WH_APPID), NULL, msg) != 0)
        return fail(c, TALLOW_ECRYPTO, "SPAKE2 failed to start%s", NULL);
    char mhex[2 * WH_SPAKE2_MSG_LEN + 1];
    wh_hex(mhex, msg, sizeof(msg));
    json_t *pk = json_pack("{s:s}", "pake_v1", mhex);
    char *pks = json_dumps(pk, JSON_COMPACT);
    json_decref(pk);
    if (!pks) return TALLOW_ENOMEM;
    rc = add_phase(c, "pake", (const uint8_t *)pks, strlen(pks), deadline);
    free(pks);
    if (!rc) rc = pump(c, NULL, NULL, "pake", deadline);
    if (rc) return rc;

    /* the peer's pake: hex(JSON {"pake_v1": hex(msg)}) */
    const char *bhex = json_string_value(json_object_get(c->inbox, "pake"));
    uint8_t body[512], peer[64];
    size_t bl = 0, pl = 0;
    json_t *pj = NULL;
    if (wh_unhex(body, sizeof(body) - 1, bhex, &bl) == 0)
        pj = json_loadb((char *)body, bl, 0, NULL);
    const char *phex = json_string_value(json_object_get(pj, "pake_v1"));
    int ok = phex && wh_unhex(peer, sizeof(peer), phex, &pl) == 0 &&
             wh_spake2_finish(&c->sp, peer, pl, c->key) == 0;
    json_decref(pj);
    if (!ok) {
        wh_conn_close(c, "scary");
        return fail(c, TALLOW_ECODE, "%s", tallow_strerror(TALLOW_ECODE));
    }
    c->have_key = 1;
    rc = add_sealed(c, "version", VERSION_BODY, deadline);
    if (!rc) rc = pump(c, NULL, NULL, "version", deadline);
    if (rc) return rc;
    char *v = NULL;
    size_t vl = 0;
    if (open_phase(c, "version", &v, &vl) != 0) {
        wh_conn_close(c, "scary");
        return fail(c, TALLOW_ECODE, "%s", tallow_strerror(TALLOW_ECODE));
    }
    free(v);
    return 0;
}

int wh_conn_send(wh_conn *c, json_t *obj, int64_t deadline)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s) return TALLOW_ENOMEM;
    char phase[16];
    snprintf(phase, sizeof(phase), "%u", c->out_phase++);
    int rc = add_sealed(c, phase, s, deadline);
    sodium_memzero(s, strlen(s));
    free(s);
    return rc;
}

int wh_conn_recv(wh_conn *c, json_t **obj, int64_t deadline)
{
    char phase[16];
    snprintf(phase, sizeof(phase), "%u", c->in_phase);
    int rc = pump(c, NULL, NULL, phase, deadline);
    if (rc) return rc;
    char *pt = NULL;
    size_t len = 0;
    if (open_phase(c, phase, &pt, &len) != 0) {
        wh_conn_close(c, "scary");
        return fail(c, TALLOW_ECRYPTO, "phase %s from the other side does not decrypt", phase);
    }
    c->in_phase++;
    json_object_del(c->inbox, phase);
    *obj = json_loadb(pt, len, 0, NULL);
    sodium_memzero(pt, len);
    free(pt);
    if (!*obj || !json_is_object(*obj)) {
        json_decref(*obj);
        *obj = NULL;
        return fail(c, TALLOW_EPROTO, "phase %s from the other side is not a JSON object", phase);
    }
    return 0;
}

void wh_conn_verifier(const wh_conn *c, char out[65])
{
    uint8_t v[32];
    wh_derive(v, c->key, "wormhole:verifier");
    wh_hex(out, v, 32);
}

void wh_conn_close(wh_conn *c, const char *mood)
{
    if (c->closed || c->ws.fd < 0) return;
    c->closed = 1;
    int64_t deadline = wh_now_ms() + 3000;
    release(c, deadline);
    if (c->mailbox &&
        send_cmd(c,
                 json_pack("{s:s,s:s,s:s}", "type", "close", "mailbox", c->mailbox, "mood", mood),
                 deadline) == 0) {
        json_t *j = NULL;
        char keep[WH_ERRLEN];
        memcpy(keep, c->err, sizeof(keep));
        if (pump(c, "closed", &j, NULL, deadline) == 0) json_decref(j);
        memcpy(c->err, keep, sizeof(keep));
    }
    wh_ws_close(&c->ws);
}

void wh_conn_free(wh_conn *c)
{
    wh_conn_close(c, "lonely");
    wh_ws_close(&c->ws);
    free(c->code);
    free(c->nameplate);
    free(c->mailbox);
    free(c->peer_side);
    json_decref(c->inbox);
    sodium_memzero(c->key, sizeof(c->key));
    sodium_memzero(&c->sp, sizeof(c->sp));
    memset(c, 0, sizeof(*c));
    c->ws.fd = -1;
}
