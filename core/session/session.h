/* core/session/session.h — the session: a channel to the peer (relay first, maybe direct later),
 * the PAKE handshake on it, then every message sealed with AEAD. Frames on a channel: 0x00 then a
 * registry message (plaintext: handshake messages only); 0x01 | varint epoch | AEAD(session key)
 * for every other message; 0x02 | varint epoch | varint transfer_id | AEAD(its key) for the
 * messages of one transfer; 0x03 the session's control records. Each key has its own record
 * counter (the nonce), and the transports keep order, so a replayed, dropped or reordered record
 * fails to open. On the direct (QUIC) path the same kinds carry 0x80 (sealed into the header, so a
 * frame is taken only on its own path), and a transfer record there (0x82) is not sealed: QUIC's
 * TLS 1.3, keyed from the same PAKE, protects it, and its record number travels in the header
 * and is checked as strictly (session_int.h). */
#ifndef TALLOW_SESSION_H
#define TALLOW_SESSION_H

#include <tallow/tallow.h>

#include "crypto.h"

typedef struct tallow__session tallow__session;

typedef struct tallow__session_cbs {
    /* Handshake finished (0) or failed (TALLOW_ECODE, TALLOW_ECLOSED, ...). Once. */
    void (*on_ready)(tallow__session *s, int status, void *ud);
    /* A decrypted, decoded message; borrowed for the call. */
    void (*on_message)(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud);
    /* tallow__session_send returned 1 earlier and the path drained. */
    void (*on_writable)(tallow__session *s, void *ud);
    /* The session is over (0: orderly). After on_ready. Once. */
    void (*on_closed)(tallow__session *s, int err, void *ud);
    /* The direct-path attempt settled: direct 1 (the session now sends over it) or 0 (it
     * stays on the relay). At most once; never when no attempt was made. */
    void (*on_path)(tallow__session *s, int direct, void *ud);
} tallow__session_cbs;

typedef struct tallow__session_params {
    const char *transport; /* "relay" unless a plugin transport is chosen */
    const char *address;   /* relay "host:port" (or the transport's address) */
    const char *code;      /* the whole code phrase; copied and wiped */
    const char *password;  /* relay password or NULL */
    int initiator;         /* 1: sends HandshakeInit (the side that made the code) */
    uint32_t capacity;     /* room size (2 = pair) */
    /* Direct path, read by the path owner (the negotiator) only: 1 to attempt it after the
     * handshake (pairs only; policy no_p2p still forbids it); STUN servers "host:port,..." (NULL:
     * the one the transport's service runs, TALLOW_CTL_STUN_SERVER); how long the attempt may
     * take (0: 5 s). */
    int p2p;
    const char *stun;
    uint32_t p2p_timeout_ms;
    const char *failover; /* relays to move to if this one dies after pairing (room order) */
    /* The owner of a second path (core/session/session_path.h; the negotiator: tallow__neg_owner),
     * or NULL. Messages it claims never reach on_message, with or without an attempt. */
    const struct tallow__path_owner *path_owner;
} tallow__session_params;

/* A handler sees a message before the session's user; it returns 1 if it consumed it. */
typedef int (*tallow__session_filter)(tallow__session *s, const tallow_msg_type *t, const void *msg,
                                      void *ud);

int tallow__session_open(tallow_ctx *ctx, const tallow__session_params *p,
                         const tallow__session_cbs *cbs, void *ud, tallow__session **out);
/* The same on a channel that is already open and ready (a room's virtual channel,
 * core/session/room.c): the session takes the channel's events over and owns the channel on success
 * (closing it with the session); on error the channel stays the caller's. The handshake starts at
 * once (the initiator's first message goes out from inside this call; no callback runs). */
int tallow__session_open_on(tallow_ctx *ctx, tallow_channel *ch, const tallow__session_params *p,
                            const tallow__session_cbs *cbs, void *ud, tallow__session **out);
/* Seals and sends one message under the session key. 0, 1 (sent; above high water: wait for
 * on_writable before sending more), or a negative error. */
int tallow__session_send(tallow__session *s, const tallow_msg_type *t, const void *msg);
/* Same under the key of transfer `tid` (derived on first use). */
int tallow__session_send_tx(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                            const void *msg);
/* Zero-copy sending of one BYTES field (a Chunk's data): msg is the message as it will be sent,
 * except that field->ptr is not read yet (field->len is). Returns where in the session's sealing
 * buffer the field's bytes will sit once msg is encoded for transfer `tid`, or NULL if the frame
 * would be too large. The caller fills that spot, sets field->ptr to it and calls
 * tallow__session_send_tx(s, tid, t, msg) with msg unchanged otherwise, before any other send on
 * this session: the bytes are then encoded and sealed where they are, not copied. */
uint8_t *tallow__session_tx_spot(tallow__session *s, uint64_t tid, const tallow_msg_type *t,
                                 const void *msg, const tallow_bytes *field);
/* Seals m[0..len) as it is (any bytes, not necessarily a valid message) under the key of transfer
 * `tid`: for test peers that must send what the engine never would. Same returns. */
int tallow__session_send_raw_tx(tallow__session *s, uint64_t tid, const uint8_t *m, size_t len);
/* The handler table, keyed by message id: each decrypted message goes to the handler of its id,
 * else to the catch-all entry (TALLOW__SESSION_ANY), and when neither consumed it, to on_message.
 * One handler per id: a second replaces the first; f NULL removes the entry. 0 or
 * TALLOW_ENOMEM. */
#define TALLOW__SESSION_ANY UINT32_MAX
int tallow__session_on(tallow__session *s, uint32_t id, tallow__session_filter f, void *ud);
/* The catch-all entry (a running transfer's filter): tallow__session_on(s, ANY, f, ud). */
void tallow__session_set_filter(tallow__session *s, tallow__session_filter f, void *ud);
/* Called after the relay path came back from a reconnection (frames in flight may be lost):
 * the transfer resynchronises from the receiver's position. */
void tallow__session_set_resync(tallow__session *s, void (*fn)(void *ud), void *ud);
/* The same for a hook that owns ud (a finished transfer's record): the session calls
 * free_ud(ud) when the hook is replaced (any set_resync*) and when the session closes. */
void tallow__session_set_resync_owned(tallow__session *s, void (*fn)(void *ud), void *ud,
                                      void (*free_ud)(void *ud));
/* While a message is being delivered (filter, on_message): the transfer id whose key sealed it,
 * or TALLOW__SESSION_KEY for the session key. A transfer accepts its messages only under its own
 * key, so a peer cannot pass one transfer's messages off under another's. */
#define TALLOW__SESSION_KEY UINT64_MAX
uint64_t tallow__session_rx_key(const tallow__session *s);
/* Bytes queued in the active path and not yet on the network. */
size_t tallow__session_queued(tallow__session *s);
void tallow__session_info(tallow__session *s, tallow_channel_info *info);
const tallow__keys *tallow__session_keys(tallow__session *s);
int tallow__session_is_initiator(tallow__session *s);
tallow_ctx *tallow__session_ctx(tallow__session *s);
/* Closes the channel(s) and frees the session; no callback afterwards. */
void tallow__session_close(tallow__session *s);

#endif
