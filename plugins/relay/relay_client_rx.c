/* plugins/relay/relay_client_rx.c — the relay client's room protocol: the RoomJoin it sends
 * (with its resume proof), and what it does with received frames: peer data goes to on_frame
 * (borrowed from the input buffer, no copy), control messages move the channel's state (ready,
 * room events, refusals mapped to error codes) through relay_cl_up. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "relay_cl.h"

/* Element i of this channel's hash chain: H^(RELAY_CHAIN_LEN - i)(seed); i = 0 is the anchor. */
static void chain_elem(const relay_cl *cl, uint32_t i, uint8_t out[32])
{
    memcpy(out, cl->chain_seed, 32);
    for (uint32_t k = i; k < RELAY_CHAIN_LEN; k++)
        crypto_generichash(out, 32, out, 32, NULL, 0);
}

/* Writes the RoomJoin straight to the fresh socket, ahead of any queued data. */
int relay_cl_send_join(relay_cl *cl)
{
    uint8_t buf[RELAY_CTRL_MAX], anchor[32], proof[32];
    int resuming = cl->paired && !cl->fresh_join;
    if (!resuming) {
        if (cl->paired) { /* a failover relay: a new chain; nothing shown to the old relay counts
                             here */
            randombytes_buf(cl->chain_seed, sizeof cl->chain_seed);
            cl->chain_next = 1;
        }
        chain_elem(cl, 0, anchor);
    } else {
        if (cl->chain_next >= RELAY_CHAIN_LEN) return TALLOW_ECLOSED; /* resumed too often */
        chain_elem(cl, cl->chain_next++, proof); /* each attempt spends one: never shown twice */
    }
    tallow_msg_RoomJoin j = {
        .room = {cl->room, cl->room_len},
        .password = {(const uint8_t *)cl->password, cl->password ? strlen(cl->password) : 0},
        .version = RELAY_PROTO_VERSION,
        .capacity = cl->capacity,
        .resume_token = {cl->token, resuming ? cl->token_len : 0},
        .creator = cl->initiator ? 1u : 0u,
        .resume_anchor = {anchor, resuming ? 0 : 32},
        .resume_proof = {proof, resuming ? 32 : 0},
        .slot = relay_cl_fo_slot(cl),
    };
    int n = relay_ctrl_frame(&tallow_msgtype_RoomJoin, &j, buf, sizeof buf);
    if (n < 0) return n;
    ssize_t w = relay_cl_write(cl, buf, (size_t)n);
    if (w != n) return w < 0 ? -errno : TALLOW_ECLOSED; /* a fresh socket takes 100 bytes */
    cl->state = CL_JOINING;
    cl->last_rx = cl->last_drain = tallow_loop_now(cl->loop);
    cl->ping_at = 0;
    relay_cl_update(cl);
    return 0;
}

void relay_cl_room_event(relay_cl *cl, uint32_t type, const void *msg)
{
    tallow_channel *ch = cl->ch;
    if (!ch || !ch->ev->on_room) return;
    cl->depth++;
    ch->ev->on_room(ch, type, msg, ch->ev_ud);
    cl->depth--;
}

static void str_of(const tallow_bytes *b, char *out, size_t cap)
{
    size_t n = b->len < cap - 1 ? b->len : cap - 1;
    if (n) memcpy(out, b->ptr, n); /* an absent reason has no pointer at all */
    out[n] = 0;
}

/* After a failover the relay numbers the pair anew; the user keeps the first relay's numbers:
 * ours is cl->peer_index, the other's the other of 1 and 2. */
static uint32_t user_index(const relay_cl *cl, uint32_t relay_index)
{
    if (!cl->fo_real || cl->capacity > 2) return relay_index;
    return relay_index == cl->fo_real ? cl->peer_index : (cl->peer_index == 1 ? 2 : 1);
}

/* A group room's RoomJoined on a failover relay (relay_client_fo.c): the relay must have given
 * back our slot, else it is not used at all (the next relay of the room, or the end). Nothing is
 * reported up: each peer's return is its own PeerJoinedRoom, which follows. */
static void fo_group_joined(relay_cl *cl, const tallow_msg_RoomJoined *j)
{
    if (j->slot != cl->peer_index || j->peer_index != cl->peer_index ||
        j->capacity != cl->capacity) {
        char why[200];
        snprintf(why, sizeof why,
                 "relay did not give back peer %u's slot in the group room (a relay from "
                 "before group failover)",
                 cl->peer_index);
        if (!cl->up->failover(cl, why)) cl->up->fail(cl, TALLOW_ECLOSED, why);
        return;
    }
    cl->fresh_join = 0;
    cl->peers = j->peers;
    cl->stun_port2 = j->stun_port2 <= 65535 ? (uint16_t)j->stun_port2 : 0;
    if (j->resume_token.len == RELAY_TOKEN_LEN) {
        memcpy(cl->token, j->resume_token.ptr, RELAY_TOKEN_LEN);
        cl->token_len = RELAY_TOKEN_LEN;
    }
    /* a receiver of `send --to-many` waits for the sender; the others for a second peer */
    if (relay_cl_pair_in_multi(cl) || cl->peers < 2) {
        cl->state = CL_WAITING; /* fo_wait: nothing goes out meanwhile */
        return;
    }
    cl->fo_wait = 0;
    cl->up->ready(cl);
}

void relay_cl_fo_expire(relay_cl *cl)
{
    uint32_t peer;
    while (cl->ch && cl->state == CL_READY && (peer = relay_cl_fo_take_missing(cl)) != 0) {
        cl->host_pl->host->log(cl->host_pl->host, TALLOW_LOG_INFO,
                               "relay %s: peer %u did not come back to the room after the failover",
                               cl->hostport, peer);
        tallow_msg_PeerLeftRoom m = {peer, cl->peers};
        relay_cl_room_event(cl, TALLOW_MSG_PeerLeftRoom, &m);
    }
}

static int refusal_code(relay_cl *cl, const char *reason)
{
    if (strcmp(reason, RELAY_R_FULL) == 0) return TALLOW_EROOMFULL;
    if (strcmp(reason, RELAY_R_HANDSHAKE) == 0) return TALLOW_ECODE;
    if (cl->paired) return TALLOW_ECLOSED;
    return TALLOW_ERELAY;
}

/* A Pong for our Ping of sent_us: an RTT sample. */
static void pong(relay_cl *cl, uint64_t sent_us)
{
    uint64_t now_us = tallow_now_ns() / 1000u;
    if (sent_us && sent_us <= now_us) cl->rtt_us = now_us - sent_us;
    cl->ping_at = 0;
}

static void control(relay_cl *cl, const uint8_t *p, size_t len)
{
    tallow_msg_any m;
    const tallow_msg_type *t = NULL;
    char reason[160];
    memset(&m, 0, sizeof m);
    if (tallow_msg_decode(tallow_ctx_registry(cl->ctx), p, len, &t, &m, sizeof m) < 0) {
        cl->up->fail(cl, TALLOW_EPROTO, "malformed control message");
        return;
    }
    switch (t->id) {
    case TALLOW_MSG_RoomJoined: {
        if (cl->state != CL_JOINING) {
            cl->up->fail(cl, TALLOW_EPROTO, "unexpected RoomJoined");
            return;
        }
        if (cl->paired && cl->fresh_join && cl->capacity > 2) {
            fo_group_joined(cl, &m.RoomJoined);
            return;
        }
        if (cl->paired && (cl->fresh_join || cl->fo_real))
            cl->fo_real = m.RoomJoined.peer_index; /* a failover relay: keep peer_index */
        else
            cl->peer_index = m.RoomJoined.peer_index;
        m.RoomJoined.peer_index = user_index(cl, m.RoomJoined.peer_index);
        cl->peers = m.RoomJoined.peers;
        if (m.RoomJoined.capacity >= 2) cl->capacity = m.RoomJoined.capacity;
        /* this relay's (a failover relay's replaces the last one's) */
        cl->stun_port2 = m.RoomJoined.stun_port2 <= 65535 ? (uint16_t)m.RoomJoined.stun_port2 : 0;
        if (m.RoomJoined.resume_token.len == RELAY_TOKEN_LEN) {
            memcpy(cl->token, m.RoomJoined.resume_token.ptr, RELAY_TOKEN_LEN);
            cl->token_len = RELAY_TOKEN_LEN;
        }
        if (cl->paired && cl->fresh_join) { /* a failover relay: the room is new here */
            cl->fresh_join = 0;
            if (cl->peers < 2) {
                cl->state = CL_WAITING; /* fo_wait: nothing goes out until the peer is here */
                return;
            }
            cl->fo_wait = 0;
            cl->up->ready(cl);
            relay_cl_room_event(cl, TALLOW_MSG_RoomJoined, &m.RoomJoined);
        } else if (cl->paired) { /* resumed */
            cl->up->ready(cl);
            relay_cl_room_event(cl, TALLOW_MSG_RoomJoined, &m.RoomJoined);
        } else if (cl->peers >= 2) {
            cl->up->ready(cl);
        } else {
            cl->state = CL_WAITING;
        }
        return;
    }
    case TALLOW_MSG_PeerArrived:
        cl->peers = m.PeerArrived.peers;
        m.PeerArrived.peer_index = user_index(cl, m.PeerArrived.peer_index);
        if (!cl->paired) {
            cl->up->ready(cl);
            return;
        }
        if (cl->fo_wait) { /* the peer found us on the failover relay */
            cl->fo_wait = 0;
            cl->up->ready(cl);
        }
        relay_cl_room_event(cl, t->id, &m.PeerArrived);
        return;
    case TALLOW_MSG_PeerJoinedRoom:
        cl->peers = m.PeerJoinedRoom.peers;
        if (relay_cl_pair_in_multi(cl)) {
            /* only the creator matters; its return after a drop is a PeerArrived */
            if (m.PeerJoinedRoom.peer_index != RELAY_CREATOR) return;
            if (!cl->paired && cl->state == CL_WAITING) {
                cl->up->ready(cl);
                return;
            }
            if (cl->fo_wait && cl->state == CL_WAITING) { /* the sender, on the failover relay */
                cl->fo_wait = 0;
                cl->up->ready(cl);
            }
            tallow_msg_PeerArrived a = {RELAY_CREATOR, cl->peers};
            relay_cl_room_event(cl, TALLOW_MSG_PeerArrived, &a);
            return;
        }
        relay_cl_fo_member(cl, m.PeerJoinedRoom.peer_index, 1);
        if (!cl->paired && cl->peers >= 2 && cl->state == CL_WAITING) cl->up->ready(cl);
        if (cl->fo_wait && cl->state == CL_WAITING) { /* a second peer on the failover relay */
            cl->fo_wait = 0;
            cl->up->ready(cl);
        }
        relay_cl_room_event(cl, t->id, &m.PeerJoinedRoom);
        return;
    case TALLOW_MSG_PeerLeftRoom:
        cl->peers = m.PeerLeftRoom.peers;
        if (relay_cl_pair_in_multi(cl)) {
            if (m.PeerLeftRoom.peer_index != RELAY_CREATOR) return;
            cl->up->fail(cl, 0, "the peer left");
            return;
        }
        relay_cl_fo_member(cl, m.PeerLeftRoom.peer_index, 0);
        relay_cl_room_event(cl, t->id, &m.PeerLeftRoom);
        return;
    case TALLOW_MSG_RoomPeerCount: /* the room's real capacity is the creator's */
        cl->peers = m.RoomPeerCount.peers;
        if (m.RoomPeerCount.capacity >= 2) cl->capacity = m.RoomPeerCount.capacity;
        if (cl->capacity <= 2 || relay_cl_pair_in_multi(cl)) return;
        relay_cl_room_event(cl, t->id, &m.RoomPeerCount);
        return;
    case TALLOW_MSG_PeerDeparted:
        cl->peers = m.PeerDeparted.peers;
        m.PeerDeparted.peer_index = user_index(cl, m.PeerDeparted.peer_index);
        str_of(&m.PeerDeparted.reason, reason, sizeof reason);
        if (relay_cl_pair_in_multi(cl) && m.PeerDeparted.peer_index != RELAY_CREATOR &&
            m.PeerDeparted.peer_index != cl->peer_index)
            return; /* another member of the room: none of this channel's business */
        if (cl->capacity > 2 || strcmp(reason, RELAY_R_RECONNECTING) == 0) {
            relay_cl_room_event(cl, t->id, &m.PeerDeparted);
            return;
        }
        cl->up->fail(cl, strcmp(reason, RELAY_R_LEFT) == 0 ? 0 : TALLOW_EPEERGONE,
                     strcmp(reason, RELAY_R_LEFT) == 0 ? "the peer left" : "the peer is gone");
        return;
    case TALLOW_MSG_RoomLeave:
        str_of(&m.RoomLeave.reason, reason, sizeof reason);
        /* a relay that lost the room (restarted) or is going away: the next one, if any */
        if (cl->paired &&
            (strcmp(reason, RELAY_R_RESUME) == 0 || strcmp(reason, RELAY_R_SHUTDOWN) == 0) &&
            cl->up->failover(cl, reason))
            return;
        cl->up->fail(cl, refusal_code(cl, reason), reason);
        return;
    case TALLOW_MSG_VersionReject: {
        char why[320];
        str_of(&m.VersionReject.reason, reason, sizeof reason);
        snprintf(why, sizeof why,
                 "incompatible versions: the relay speaks protocol %u, this tallow %u (%s)",
                 m.VersionReject.version, RELAY_PROTO_VERSION, reason);
        cl->up->fail(cl, TALLOW_EVERSION, why);
        return;
    }
    case TALLOW_MSG_Pong:
        pong(cl, m.Pong.time);
        return;
    default: /* types a newer relay may add */
        return;
    }
}

void relay_cl_frames(relay_cl *cl)
{
    relay_inbuf *b = &cl->in;
    while (cl->ch && cl->state >= CL_JOINING && cl->state != CL_CLOSED) {
        size_t live = b->end - b->start;
        if (live < 4) break;
        const uint8_t *f = b->buf + b->start;
        uint32_t L = relay_get32(f);
        if (L == 0 || L > RELAY_CL_MAX_FRAME) {
            cl->up->fail(cl, TALLOW_EPROTO, "bad frame length from the relay");
            return;
        }
        if (live < 4 + (size_t)L) break;
        b->start += 4 + (size_t)L; /* the buffer stays put until the next read */
        cl->recv += 4 + (size_t)L;
        const uint8_t *p = f + RELAY_HDR;
        size_t plen = L - 1;
        uint32_t from = 0;
        switch (f[4]) {
        case RELAY_CH_CTRL:
            control(cl, p, plen);
            continue;
        case RELAY_CH_TARGET:
            if (plen < 4) {
                cl->up->fail(cl, TALLOW_EPROTO, "short targeted frame");
                return;
            }
            from = relay_get32(p);
            p += 4;
            plen -= 4;
            /* fall through */
        case RELAY_CH_DATA:
            if (cl->state != CL_READY) continue; /* not ours yet: a stale frame */
            if (relay_cl_pair_in_multi(cl) && (f[4] != RELAY_CH_TARGET || from != RELAY_CREATOR))
                continue; /* a pair channel hears the room's creator only */
            if (cl->room_aware && f[4] == RELAY_CH_DATA && cl->capacity <= 2)
                from = cl->peer_index == 1 ? 2 : 1; /* the other peer of the pair */
            if (!cl->ch->ev->on_frame) continue;
            cl->depth++;
            cl->ch->ev->on_frame(cl->ch, from, p, plen, cl->ch->ev_ud);
            cl->depth--;
            continue;
        default:
            cl->up->fail(cl, TALLOW_EPROTO, "unknown channel from the relay");
            return;
        }
    }
    if (b->start == b->end) b->start = b->end = 0;
}
