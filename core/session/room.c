/* core/session/room.c — rooms of more than two peers: one relay channel (TALLOW_CHANNEL_ROOM), one
 * virtual channel per other peer. A virtual channel's send is a targeted send to its peer; the
 * relay's frames are handed to the virtual channel of the peer that sent them; the relay's room
 * events become the per-pair events a session expects (PeerDeparted "reconnecting", PeerArrived,
 * RoomJoined after our own resume, on_closed when the peer leaves). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "room.h"

typedef struct vchan vchan;

struct tallow__room {
    tallow_ctx *ctx;
    tallow_channel *relay;
    const tallow__room_cbs *cbs;
    void *ud;
    vchan *peers;
    int closed_by_user;
    int closed_reported;
    int in_callback;
    char path[340];
};

struct vchan {
    tallow_channel base;
    tallow__room *room; /* NULL once the room is closed */
    uint32_t peer;
    int gone; /* on_closed reported */
    vchan *next;
};

static void room_maybe_free(tallow__room *r)
{
    if (r->closed_by_user && !r->peers && !r->in_callback) free(r);
}

/* ---- the virtual channel's transport ops */

static void v_unlink(vchan *v)
{
    tallow__room *r = v->room;
    if (!r) return;
    for (vchan **pp = &r->peers; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    v->room = NULL;
}

static int v_send(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len)
{
    vchan *v = (vchan *)ch;
    (void)to; /* a virtual channel has one peer */
    if (!v->room || !v->room->relay || v->gone) return TALLOW_ECLOSED;
    return tallow_channel_send(v->room->relay, v->peer, frame, len);
}

static void v_close(tallow_channel *ch)
{
    vchan *v = (vchan *)ch;
    tallow__room *r = v->room;
    v_unlink(v);
    if (r) room_maybe_free(r);
}

static void v_get_info(tallow_channel *ch, tallow_channel_info *info)
{
    vchan *v = (vchan *)ch;
    if (!v->room || !v->room->relay) return;
    tallow_channel_get_info(v->room->relay, info);
    info->path = v->room->path;
}

static size_t v_queued(tallow_channel *ch)
{
    vchan *v = (vchan *)ch;
    return v->room && v->room->relay ? tallow_channel_queued(v->room->relay) : 0;
}

/* Leaving is the room's business (tallow__room_close), not one peer's session's. */
static int v_control(tallow_channel *ch, int op, void *arg)
{
    (void)ch;
    (void)op;
    (void)arg;
    return TALLOW_ENOTSUP;
}

static const tallow_transport_ops vchan_ops = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = sizeof(tallow_transport_ops),
    .name = "room",
    .instance_size = sizeof(vchan),
    .send = v_send,
    .close = v_close,
    .get_info = v_get_info,
    .queued = v_queued,
    .control = v_control,
};

/* ---- relay channel events */

static vchan *find(tallow__room *r, uint32_t peer)
{
    for (vchan *v = r->peers; v; v = v->next)
        if (v->peer == peer) return v;
    return NULL;
}

static void v_closed(vchan *v, int err)
{
    if (v->gone) return;
    v->gone = 1;
    if (v->base.ev && v->base.ev->on_closed) v->base.ev->on_closed(&v->base, err, v->base.ev_ud);
}

static void v_room_event(vchan *v, uint32_t type, const void *msg)
{
    if (!v->gone && v->base.ev && v->base.ev->on_room)
        v->base.ev->on_room(&v->base, type, msg, v->base.ev_ud);
}

static void add_peer(tallow__room *r, uint32_t peer)
{
    tallow_channel_info me;
    tallow_channel_get_info(r->relay, &me);
    if (peer == 0 || peer == me.peer_index) return;
    vchan *v = find(r, peer);
    if (v && v->gone) { /* a new peer in a slot whose previous holder left */
        v_unlink(v);
        v = NULL;
    }
    if (v) { /* it came back after a dropped connection */
        tallow_msg_PeerArrived a = {peer, me.peers};
        v_room_event(v, TALLOW_MSG_PeerArrived, &a);
        return;
    }
    v = calloc(1, sizeof(*v));
    if (!v) {
        tallow_ctx_log(r->ctx, TALLOW_LOG_WARN, "room: out of memory for peer %u", peer);
        return;
    }
    v->base.ops = &vchan_ops;
    v->base.ctx = r->ctx;
    v->base.loop = tallow_ctx_loop(r->ctx);
    v->room = r;
    v->peer = peer;
    v->next = r->peers;
    r->peers = v;
    r->cbs->on_peer(r, &v->base, peer, me.peer_index < peer, r->ud);
}

static void r_ready(tallow_channel *ch, void *ud)
{
    tallow__room *r = ud;
    tallow_channel_info info;
    tallow_channel_get_info(ch, &info);
    /* a pair room announces nobody: the other peer is simply there */
    if (info.capacity <= 2) add_peer(r, info.peer_index == 1 ? 2 : 1);
}

static void r_frame(tallow_channel *ch, uint32_t from, const uint8_t *data, size_t len, void *ud)
{
    tallow__room *r = ud;
    vchan *v = find(r, from);
    if (!v || v->gone || !v->base.ev || !v->base.ev->on_frame) return; /* nobody listens */
    v->base.ev->on_frame(&v->base, 0, data, len, v->base.ev_ud);
}

static void r_writable(tallow_channel *ch, void *ud)
{
    tallow__room *r = ud;
    r->in_callback++;
    for (vchan *v = r->peers, *next; v; v = next) {
        next = v->next;
        if (!v->gone && v->base.ev && v->base.ev->on_writable)
            v->base.ev->on_writable(&v->base, v->base.ev_ud);
        if (!r->relay) break;
    }
    r->in_callback--;
}

static void r_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    tallow__room *r = ud;
    tallow_channel_info me;
    tallow_channel_get_info(ch, &me);
    r->in_callback++;
    switch (type) {
    case TALLOW_MSG_PeerJoinedRoom:
        add_peer(r, ((const tallow_msg_PeerJoinedRoom *)msg)->peer_index);
        break;
    case TALLOW_MSG_PeerArrived: /* pair rooms: the other came back */
        add_peer(r, ((const tallow_msg_PeerArrived *)msg)->peer_index);
        break;
    case TALLOW_MSG_PeerLeftRoom: {
        vchan *v = find(r, ((const tallow_msg_PeerLeftRoom *)msg)->peer_index);
        if (v) {
            v_closed(v, 0);
            v_unlink(v); /* its slot may go to a newcomer */
        }
        break;
    }
    case TALLOW_MSG_PeerDeparted: {
        const tallow_msg_PeerDeparted *d = msg;
        if (d->peer_index == me.peer_index) { /* our own connection dropped: everyone's */
            for (vchan *v = r->peers; v; v = v->next)
                v_room_event(v, type, msg);
        } else {
            vchan *v = find(r, d->peer_index);
            if (v) v_room_event(v, type, msg);
        }
        break;
    }
    case TALLOW_MSG_RoomJoined: /* we are back */
        for (vchan *v = r->peers; v; v = v->next)
            v_room_event(v, type, msg);
        break;
    default:
        break;
    }
    r->in_callback--;
}

static void r_closed(tallow_channel *ch, int err, void *ud)
{
    tallow__room *r = ud;
    r->in_callback++;
    for (vchan *v = r->peers, *next; v; v = next) {
        next = v->next;
        v_closed(v, err);
    }
    if (!r->closed_reported && !r->closed_by_user) {
        r->closed_reported = 1;
        if (r->cbs->on_closed) r->cbs->on_closed(r, err, r->ud);
    }
    r->in_callback--;
}

static const tallow_channel_events relay_events = {
    .on_ready = r_ready,
    .on_frame = r_frame,
    .on_writable = r_writable,
    .on_room = r_room,
    .on_closed = r_closed,
};

int tallow__room_open(tallow_ctx *ctx, const tallow__room_params *p, const tallow__room_cbs *cbs,
                      void *ud, tallow__room **out)
{
    uint8_t room[32];
    int rc = tallow__code_room_id(p->code, room);
    if (rc < 0) {
        tallow_ctx_set_error(ctx, "malformed code phrase (expected NUMBER-word-word-...)");
        return rc;
    }
    tallow__room *r = calloc(1, sizeof(*r));
    if (!r) return TALLOW_ENOMEM;
    r->ctx = ctx;
    r->cbs = cbs;
    r->ud = ud;
    tallow_channel_params cp =
        TALLOW_CHANNEL_PARAMS_INIT(.address = p->address, .room = room, .room_len = sizeof(room),
                                   .password = p->password, .capacity = p->capacity,
                                   .initiator = p->capacity != 0,
                                   .proxy = tallow_policy_proxy(tallow_ctx_policy(ctx)),
                                   .flags = TALLOW_CHANNEL_ROOM, .failover = p->failover);
    rc = tallow_channel_open(ctx, p->transport ? p->transport : "relay", &cp, &relay_events, r,
                             &r->relay);
    if (rc < 0) {
        free(r);
        return rc;
    }
    tallow_channel_info info;
    tallow_channel_get_info(r->relay, &info);
    snprintf(r->path, sizeof(r->path), "%s (room)", info.path ? info.path : "relay");
    *out = r;
    return 0;
}

void tallow__room_info(tallow__room *r, tallow_channel_info *info)
{
    memset(info, 0, sizeof(*info));
    if (r->relay) tallow_channel_get_info(r->relay, info);
}

void tallow__room_close(tallow__room *r)
{
    if (!r) return;
    r->closed_by_user = 1;
    if (r->relay) tallow_channel_close(r->relay);
    r->relay = NULL;
    /* sessions still open on it end now (their sends already fail) */
    r->in_callback++;
    for (vchan *v = r->peers, *next; v; v = next) {
        next = v->next;
        v_closed(v, TALLOW_ECLOSED);
    }
    r->in_callback--;
    room_maybe_free(r);
}
