/* plugins/wormhole/wh.h — the wormhole plugin's insides: a minimal RFC 6455 client, the mailbox
 * client (bind, allocate/claim, open, add, release, close; SPAKE2 and SecretBox phases), the
 * transit connection (direct and relay, records) and the Lua face. Everything blocks with a
 * deadline in poll(); the Lua face runs it between the script's own waits. */
#ifndef WH_H
#define WH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "wh_crypto.h"

#define WH_DEFAULT_RELAY "ws://relay.magic-wormhole.io:4000/v1"
#define WH_DEFAULT_TRANSIT "tcp:transit.magic-wormhole.io:4001"
#define WH_ERRLEN 256

struct lua_State;
int wh_lua_open(void *plugin_state, struct lua_State *L);
const char *wh_word(int position, unsigned byte);
int64_t wh_now_ms(void);

/* ---- TCP helpers (wh_ws.c) */
/* Connects to host:port before deadline (ms, wh_now_ms clock). fd or -errno / TALLOW_ETIMEOUT. */
int wh_tcp_connect(const char *host, const char *port, int64_t deadline);
/* Writes all of buf before the deadline. 0 or an error. */
int wh_write_all(int fd, const void *buf, size_t len, int64_t deadline);

/* ---- WebSocket (wh_ws.c) */
typedef struct wh_ws {
    int fd;
    void *tls;   /* gnutls_session_t for wss://, else NULL */
    void *cred;  /* its gnutls_certificate_credentials_t */
    uint8_t *in; /* received, not yet parsed */
    size_t inlen, incap;
    char *msg; /* the message being assembled / last returned */
    size_t msglen;
} wh_ws;

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455's GUID)). */
void wh_ws_accept_value(const char *key, char out[40]);
/* ws://HOST[:PORT]/PATH, or wss:// (GnuTLS; the system's trust store, plus the PEM file named by
 * TALLOW_WORMHOLE_CA when set). */
int wh_ws_connect(wh_ws *ws, const char *url, int64_t deadline, char *err, size_t errlen);
int wh_ws_send(wh_ws *ws, const char *text, size_t len, int64_t deadline);
/* Next text (or binary) message; *out borrowed until the next call. 0, TALLOW_ETIMEOUT,
 * TALLOW_ECLOSED or TALLOW_EPROTO. Answers pings. */
int wh_ws_recv(wh_ws *ws, const char **out, size_t *len, int64_t deadline);
void wh_ws_close(wh_ws *ws);

/* ---- the mailbox (wh_mailbox.c) */
typedef struct wh_conn {
    wh_ws ws;
    char side[11];
    char *code, *nameplate, *mailbox;
    wh_spake2 sp;
    uint8_t key[32];
    int have_key, released, closed;
    unsigned out_phase; /* next numeric phase we send */
    unsigned in_phase;  /* next numeric phase we expect from the peer */
    char *peer_side;
    json_t *inbox; /* peer messages not consumed yet: {phase: body-hex} */
    char err[WH_ERRLEN];
} wh_conn;

/* Connects and binds. 0 or an error (message in c->err). */
int wh_conn_open(wh_conn *c, const char *url, int64_t deadline);
/* Allocates a nameplate and makes a code of it and nwords PGP words (c->code). */
int wh_conn_allocate(wh_conn *c, int nwords, int64_t deadline);
/* Uses a code the user gave: claims its nameplate. */
int wh_conn_set_code(wh_conn *c, const char *code);
/* Claims the nameplate and opens its mailbox (done by wh_conn_pair when not yet). */
int wh_conn_claim(wh_conn *c, int64_t deadline);
/* Claims the nameplate, opens the mailbox, runs SPAKE2 and the version phase. TALLOW_ECODE when
 * the peer's version does not decrypt (wrong code). */
int wh_conn_pair(wh_conn *c, int64_t deadline);
/* Encrypts obj (stolen) as the next numeric phase and adds it. */
int wh_conn_send(wh_conn *c, json_t *obj, int64_t deadline);
/* The peer's next numeric phase, decrypted and parsed (*obj owned by the caller). */
int wh_conn_recv(wh_conn *c, json_t **obj, int64_t deadline);
/* Releases, closes the mailbox with mood ("happy", "lonely", "scary", "errory") and the socket. */
void wh_conn_close(wh_conn *c, const char *mood);
void wh_conn_free(wh_conn *c);
/* The verifier both sides can compare (64 hex chars + NUL). */
void wh_conn_verifier(const wh_conn *c, char out[65]);

/* ---- transit (wh_transit.c) */
typedef struct wh_transit {
    int sender;
    int no_p2p;
    int listen_fd;
    uint16_t port;
    char side16[17];
    char *relay_host, *relay_port; /* our transit relay, or NULL */
    uint8_t tk[32], send_key[32], recv_key[32];
    uint64_t send_ctr, recv_ctr;
    int fd;
    const char *path; /* "direct" or "relay" */
    uint8_t *rec;     /* last record read */
    size_t reccap;
    char err[WH_ERRLEN];
} wh_transit;

/* Listens (unless no_p2p) and remembers the relay ("tcp:HOST:PORT" or "HOST:PORT"; NULL or ""
 * for none). */
int wh_transit_init(wh_transit *t, int sender, const char *relay, int no_p2p);
/* {"transit": {"abilities-v1": [...], "hints-v1": [...]}} (new reference). */
json_t *wh_transit_message(const wh_transit *t);
/* Connects to the peer (its "transit" object) and our relay, does the handshakes; the sender
 * picks the first that completes ("go"). 0 or an error. */
int wh_transit_connect(wh_transit *t, const uint8_t key[32], json_t *peer_transit,
                       int64_t deadline);
int wh_transit_send(wh_transit *t, const uint8_t *data, size_t len, int64_t deadline);
/* One record, decrypted: *out borrowed until the next call. The nonce must be the next counter. */
int wh_transit_recv(wh_transit *t, const uint8_t **out, size_t *len, int64_t deadline);
void wh_transit_free(wh_transit *t);

/* ---- the file-transfer app on top (wh_app.c) */
typedef struct wh_session {
    wh_conn c;
    wh_transit t;
    int have_t;
    char *transit_relay;
    int no_p2p;
    int progress; /* 0 none, 1 bar, 2 json */
    json_t *peer_transit;
    json_t *offer; /* the "offer" object the sender made */
    uint64_t bytes, files, wire;
    double seconds;
    const char *path; /* "direct" or "relay" */
    json_t *notices;  /* what was refused, and why (strings) */
    char err[WH_ERRLEN];
} wh_session;

int wh_send_text(wh_session *s, const char *text, size_t len);
/* A file, or a directory as a zip (wh_zip.c). */
int wh_send_path(wh_session *s, const char *path);
/* Waits for the sender's offer (s->offer). */
int wh_get_offer(wh_session *s, int64_t deadline);
/* Accepts s->offer into dest; the text is returned in *text (malloc'd) for a text offer. */
int wh_accept(wh_session *s, const char *dest, int overwrite, char **text, size_t *textlen);
int wh_reject(wh_session *s, const char *why);
void wh_session_free(wh_session *s);

/* The receiver's temporary files (wh_part.c, used by wh_app.c and wh_zip.c): creates
 * ".NAME.N.wormhole-part" in dirfd exclusively, never through a symlink: fd or -errno. */
int wh_open_part(int dirfd, const char *name, char *part, size_t cap);

/* Directory support (wh_zip.c): zip dir into zippath (unix modes kept, empty folders too); and
 * unpack the zip at zipfd into destfd with receive's path rules. Both fill err. */
int wh_zip_dir(const char *dir, const char *zippath, uint64_t *numfiles, uint64_t *numbytes,
               char *err, size_t errlen);
int wh_unzip(int zipfd, int destfd, int overwrite, uint64_t max_bytes, json_t *notices,
             uint64_t *files, uint64_t *bytes, char *err, size_t errlen);

#endif
