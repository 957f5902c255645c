/* core/session/session_int.h — the session's private state, shared by its two halves: session.c
 * (pairing, the handshake, the channels' events, the services of session_path.h) and
 * session_record.c (the record layer: keys, epochs, sealing, opening, the handler table). Not for
 * other files. */
#ifndef TALLOW_SESSION_INT_H
#define TALLOW_SESSION_INT_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session_path.h"

#define KIND_PLAIN 0
#define KIND_SEALED 1
#define KIND_TRANSFER 2
/* 3 | varint epoch | AEAD(session key): the session's own control record, 1 byte op + le64 */
#define KIND_CTRL 3
/* A frame sent on the path owner's channel (the direct QUIC path) has KIND_DIRECT set in its kind
 * byte (which is part of the sealed header): a frame is accepted only on the path its kind names.
 * 0x81 and 0x83 are sealed as 1 and 3. 0x82 | varint epoch | varint transfer_id | varint record
 * number | message: a transfer record NOT sealed (QUIC's TLS 1.3 keys, from the PAKE, protect it);
 * its number is the one its transfer key's nonce would have been, checked like an AEAD's. */
#define KIND_DIRECT 0x80
/* 4 | varint probe id | 1 byte: 1 on the probe's last frame | filler: a relay probe, on the relay
 * only, between peers that both set TALLOW__FEAT_PROBE. Not sealed: it carries nothing but its
 * length (the path owner measures how fast the relay delivers it, session_path.h). */
#define KIND_PROBE 4
#define CTRL_ACK 1    /* "I have delivered N of your messages": the sender may forget them */
#define CTRL_RESEND 2 /* "the messages that follow are my numbers N, N+1, ..." */
#define ACK_EVERY 32  /* delivered session messages between two acks */
/* Session-key messages kept for sending again after a reconnection lost them in flight. */
#define RETX_MAX 256
#define RETX_BYTES (1u << 20)
#define RETX_ONE (64u * 1024u)
#define SESSION_MAX_FRAME (2u * 1024u * 1024u)
#define TX_KEYS 8          /* a cache of keys; the record numbers of every id live in ids_* */
#define IDS_MAX (1u << 20) /* transfer ids with records in one epoch and direction */
/* Rekey by volume: a new epoch (fresh session and transfer keys) once one epoch sealed 2^24
 * records or 2^34 bytes (16 GiB), whichever comes first: within TLS 1.3's bound for AES-GCM
 * (RFC 8446 5.5: 2^24.5 full-size records per key) for any mix of keys in the epoch. */
#define REKEY_RECORDS (1ull << 24)
#define REKEY_BYTES (1ull << 34)

enum { ST_PAIRING, ST_HANDSHAKE, ST_READY, ST_FAILED };

typedef struct tx_key {
    uint64_t id;
    int used;
    uint64_t stamp;
    tallow__aead aead;
} tx_key;

/* The next record number of every transfer id used in one epoch and direction (open
 * addressing; no deletion: the table empties when the epoch changes). */
typedef struct id_ent {
    uint64_t id, seq;
    int used;
} id_ent;
typedef struct id_tab {
    id_ent *e;
    size_t cap, n;
} id_tab;

/* One entry of the handler table. */
typedef struct tallow__session_handler {
    uint32_t id; /* a message id, or TALLOW__SESSION_ANY */
    tallow__session_filter fn;
    void *ud;
} tallow__session_handler;

struct tallow__session {
    tallow_ctx *ctx;
    tallow_channel *relay;  /* the first channel (whatever transport) */
    tallow_channel *path;   /* where sends go: relay, or the path owner's channel */
    tallow_channel *direct; /* the owner's direct channel (set_direct, use_channel) */
    const tallow__session_cbs *cbs;
    void *ud;
    tallow__session_handler *handlers;
    size_t nhandlers;
    int state;
    int initiator;
    int peer_sealed;        /* a sealed frame from the peer opened: plaintext is over */
    tallow_timer *hs_timer; /* bounds the handshake (TALLOW_HANDSHAKE_TIMEOUT, s) */
    int ready_reported;
    int closed_reported;
    tallow__hs hs;
    tallow__keys keys;
    tallow__aead tx, rx;
    tx_key txk[TX_KEYS], rxk[TX_KEYS];
    id_tab tx_ids, rx_ids;
    uint64_t tx_epoch, rx_epoch;
    uint64_t tx_recs, tx_bytes;          /* sealed in the current tx epoch */
    uint64_t rekey_records, rekey_bytes; /* REKEY_* (tests lower them) */
    uint8_t base_tx[32], base_rx[32];    /* transfer bases of the current epochs */
    int resync_pending; /* a reconnection happened: old-epoch frames may have gaps */
    /* session-key messages: numbered from 0 in each direction, across epochs */
    uint64_t tx_count, rx_count, rx_skip;
    struct retx {
        uint8_t *m;
        size_t len;
    } retx[RETX_MAX]; /* tx numbers tx_count - retx_n .. tx_count - 1, oldest at retx_head */
    size_t retx_head, retx_n, retx_bytes;
    uint64_t retx_lost; /* numbers not kept (too large): sent once */
    void (*resync)(void *ud);
    void *resync_ud;
    void (*resync_free)(void *ud); /* the hook owns resync_ud: freed when replaced or at close */
    uint64_t stamp;
    uint8_t *buf;        /* sealing scratch */
    uint8_t *rbuf;       /* opening scratch */
    uint64_t rx_key_tid; /* key of the message being delivered: a transfer id or SESSION_KEY */
    /* the owner of a second path (session_path.h), attached at open */
    const struct tallow__path_owner *owner;
    void *owner_st;
};

/* session.c */
void tallow__sess_fail(tallow__session *s, int err);
/* A plaintext (kind 0) frame's message: the handshake. */
void tallow__sess_on_plain(tallow__session *s, const uint8_t *m, size_t len);

/* session_record.c */
/* One frame from the peer, any kind: opened, checked and dispatched. direct: 1 if it arrived on
 * the owner's direct channel, 0 on the first channel (relay). */
void tallow__sess_process(tallow__session *s, int direct, const uint8_t *data, size_t len);
/* New keys for one direction (tx 1: sending) at epoch. */
void tallow__sess_enter_epoch(tallow__session *s, int tx, uint64_t epoch);
/* Every kept session message again behind CTRL_RESEND (none: nothing to do). */
void tallow__sess_resend_kept(tallow__session *s);
/* Wipes and frees the record layer's keys, tables and kept messages. */
void tallow__sess_record_free(tallow__session *s);

#endif
