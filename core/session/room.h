/* core/session/room.h — a room of more than two peers over ONE relay channel, with keys per pair:
 * every other peer of the room gets a virtual channel (a tallow_channel whose frames are the
 * relay's targeted frames to and from that peer), and the owner runs a normal session on each
 * (tallow__session_open_on), so every pair does its own PAKE and has its own keys.
 *
 * Who starts a pair's handshake: the lower peer index. The side that makes the code creates the
 * room and so has index 1; plain two-peer clients that join a multi room talk to index 1 only
 * (see TALLOW_CHANNEL_ROOM), which is how `tallow receive CODE` works against `send --to-many`. */
#ifndef TALLOW_ROOM_H
#define TALLOW_ROOM_H

#include <tallow/tallow.h>

typedef struct tallow__room tallow__room;

typedef struct tallow__room_params {
    const char *transport; /* "relay" unless given */
    const char *address;   /* relay host:port */
    const char *failover;  /* relays to move to if this one dies after pairing */
    const char *code;      /* the code phrase: only its room id is used here */
    const char *password;  /* relay password or NULL */
    uint32_t capacity;     /* peers in all when this side creates the room; 0: join any */
} tallow__room_params;

typedef struct tallow__room_cbs {
    /* A peer is in the room: ch is a ready virtual channel to it, the callee's from now on
     * (tallow_channel_close releases it). initiator: this side starts the pair's handshake. */
    void (*on_peer)(tallow__room *r, tallow_channel *ch, uint32_t peer_index, int initiator,
                    void *ud);
    /* The relay channel is gone (every virtual channel got on_closed first). Once. */
    void (*on_closed)(tallow__room *r, int err, void *ud);
} tallow__room_cbs;

/* Opens the relay channel. 0 or a negative error (no callback then). */
int tallow__room_open(tallow_ctx *ctx, const tallow__room_params *p, const tallow__room_cbs *cbs,
                      void *ud, tallow__room **out);
/* This peer's index, the room's peer count and capacity, the relay path. */
void tallow__room_info(tallow__room *r, tallow_channel_info *info);
/* Leaves the room: the relay connection ends now; virtual channels still open report
 * on_closed(TALLOW_ECLOSED) from inside this call and fail their sends; the room's own callbacks
 * never run again. The memory goes once the last virtual channel is closed. */
void tallow__room_close(tallow__room *r);

#endif
