/* plugins/relay/relay_room.c — the relay's rooms: joining (limits, password, resume), parsing
 * what a connection sends (control messages, peer data frames), departures, timeouts. Short
 * data frames are forwarded in place from the sender's input buffer: runs of frames with the
 * same destinations go out in one writev, and are copied only into a destination queue that the
 * socket did not take. Longer ones are streamed (relay_stream.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_srv.h"

static relay_room *room_find(relay_srv *s, const uint8_t *id, size_t len, uint64_t h)
{
    for (relay_hnode *n = relay_htab_first(&s->rooms_by_id, h); n; n = n->next) {
        relay_room *r = (relay_room *)n;
        if (n->hash == h && r->idlen == len && memcmp(r->id, id, len) == 0) return r;
    }
    return NULL;
}

static void room_send_all(relay_room *r, relay_conn *except, const tallow_msg_type *t,
                          const void *msg)
{
    for (uint32_t i = 0; i < r->capacity; i++) {
        relay_conn *o = r->slots[i].conn;
        if (o && o != except) relay_conn_ctrl(o, t, msg);
    }
}

/* Multi rooms: everyone hears the new count after a join or a departure. */
static void send_count(relay_room *r)
{
    if (r->capacity == 2) return;
    tallow_msg_RoomPeerCount m = {r->live, r->capacity};
    room_send_all(r, NULL, &tallow_msgtype_RoomPeerCount, &m);
}

static void refuse(relay_conn *c, const char *reason)
{
    relay_count_refusal(c->srv, reason);
    tallow_msg_RoomLeave m = {.reason = {(const uint8_t *)reason, strlen(reason)}};
    relay_conn_close_after(c, &tallow_msgtype_RoomLeave, &m);
}

static void room_free_later(relay_srv *s, relay_room *r)
{
    r->dead = 1;
    relay_htab_del(&s->rooms_by_id, &r->node);
    if (r->prev)
        r->prev->next = r->next;
    else
        s->rooms = r->next;
    if (r->next) r->next->prev = r->prev;
    if (r->ip) r->ip->rooms--;
    relay_ip_put(s, r->ip);
    r->ip = NULL;
    s->nrooms--;
    r->link = s->grave_rooms;
    s->grave_rooms = r;
}

void relay_room_close(relay_room *r, const char *why, int leave)
{
    if (r->dead) return;
    relay_srv *s = r->srv;
    r->dead = 1; /* members taken down meanwhile (a cut stream) just leave their slot */
    uint64_t now = tallow_loop_now(s->loop);
    RELAY_LOG(s, TALLOW_LOG_INFO, "room %s closed (%s): %llu bytes forwarded, %llu dropped, %.1f s",
              r->tag, why, (unsigned long long)r->bytes, (unsigned long long)r->dropped,
              (double)(now - r->created) / 1000.0);
    tallow_msg_RoomLeave m = {.reason = {(const uint8_t *)why, strlen(why)}};
    for (uint32_t i = 0; i < r->capacity; i++) {
        relay_conn *o = r->slots[i].conn;
        r->slots[i].conn = NULL;
        r->slots[i].used = 0;
        if (!o) continue;
        o->room = NULL;
        relay_conn_close_after(o, leave ? &tallow_msgtype_RoomLeave : NULL, &m);
    }
    r->live = r->used = 0;
    room_free_later(s, r);
}

void relay_room_detach(relay_conn *c, const char *why, int grace)
{
    relay_room *r = c->room;
    if (!r) return;
    relay_srv *s = c->srv;
    relay_slot *sl = &r->slots[c->index - 1];
    c->room = NULL;
    sl->conn = NULL;
    r->live--;
    if (r->dead) return; /* the room is being closed */
    int pair = r->capacity == 2;
    if (grace && r->paired && s->lim.grace_ms > 0) {
        sl->grace_until = tallow_loop_now(s->loop) + s->lim.grace_ms;
        RELAY_LOG(s, TALLOW_LOG_INFO, "room %s peer %u disconnected, slot held %.1f s for resume",
                  r->tag, c->index, (double)s->lim.grace_ms / 1000.0);
        tallow_msg_PeerDeparted m = {
            c->index,
            {(const uint8_t *)RELAY_R_RECONNECTING, strlen(RELAY_R_RECONNECTING)},
            r->live};
        room_send_all(r, NULL, &tallow_msgtype_PeerDeparted, &m);
        send_count(r);
        relay_stream_unblock(r);
        return;
    }
    sl->used = 0;
    r->used--;
    if (r->paired) {
        tallow_msg_PeerDeparted m = {c->index, {(const uint8_t *)why, strlen(why)}, r->live};
        if (pair) {
            room_send_all(r, NULL, &tallow_msgtype_PeerDeparted, &m);
            relay_room_close(r, why, 0);
            return;
        }
        tallow_msg_PeerLeftRoom pl = {c->index, r->live};
        room_send_all(r, NULL, &tallow_msgtype_PeerLeftRoom, &pl);
        send_count(r);
    }
    if (r->used == 0)
        relay_room_close(r, why, 0);
    else
        relay_stream_unblock(r);
}

void relay_room_sweep(relay_srv *s, uint64_t now)
{
    relay_room *next;
    for (relay_room *r = s->rooms; r; r = next) {
        next = r->next;
        if (!r->paired && now - r->created >= s->lim.unpaired_timeout_ms) {
            relay_count_limit(s, RL_UNPAIRED_TIMEOUT);
            relay_room_close(r, RELAY_R_TIMEOUT, 1);
            continue;
        }
        if (r->paired && now - r->last_active >= s->lim.room_timeout_ms) {
            relay_count_limit(s, RL_ROOM_TIMEOUT);
            relay_room_close(r, RELAY_R_TIMEOUT, 1);
            continue;
        }
        for (uint32_t i = 0; i < r->capacity && !r->dead; i++) {
            relay_slot *sl = &r->slots[i];
            if (!sl->used || sl->conn || now < sl->grace_until) continue;
            sl->used = 0;
            r->used--;
            if (r->capacity == 2) {
                tallow_msg_PeerDeparted m = {i + 1, {(const uint8_t *)RELAY_R_GONE, 4}, r->live};
                room_send_all(r, NULL, &tallow_msgtype_PeerDeparted, &m);
                relay_room_close(r, RELAY_R_GONE, 0);
            } else {
                tallow_msg_PeerLeftRoom m = {i + 1, r->live};
                room_send_all(r, NULL, &tallow_msgtype_PeerLeftRoom, &m);
                send_count(r);
                if (r->used == 0) relay_room_close(r, RELAY_R_GONE, 0);
            }
        }
    }
}

/* ---- joining */

static int password_ok(relay_srv *s, const tallow_bytes *pw)
{
    if (!s->password) return 1;
    uint8_t a[32], b[32];
    crypto_generichash(a, 32, (const uint8_t *)s->password, strlen(s->password), NULL, 0);
    crypto_generichash(b, 32, pw->ptr, pw->len, NULL, 0);
    return sodium_memcmp(a, b, 32) == 0;
}

/* RoomJoined, then RoomPeerCount with the room's real capacity (the creator's), then in multi
 * rooms who else is there; the others hear of the newcomer. */
static void announce(relay_room *r, relay_conn *c, const uint8_t *token, uint32_t slot)
{
    tallow_msg_RoomJoined j = {.peers = r->live,
                               .peer_index = c->index,
                               .resume_token = {token, RELAY_TOKEN_LEN},
                               .capacity = r->capacity,
                               .stun_port2 = c->srv->stun_port2,
                               .slot = slot};
    relay_conn_ctrl(c, &tallow_msgtype_RoomJoined, &j);
    tallow_msg_RoomPeerCount n = {r->live, r->capacity};
    relay_conn_ctrl(c, &tallow_msgtype_RoomPeerCount, &n);
    if (r->capacity == 2) {
        tallow_msg_PeerArrived a = {c->index, r->live};
        room_send_all(r, c, &tallow_msgtype_PeerArrived, &a);
        return;
    }
    for (uint32_t i = 0; i < r->capacity; i++) {
        relay_conn *o = r->slots[i].conn;
        if (!o || o == c) continue;
        tallow_msg_PeerJoinedRoom mine = {o->index, r->live};
        relay_conn_ctrl(c, &tallow_msgtype_PeerJoinedRoom, &mine);
        tallow_msg_PeerJoinedRoom theirs = {c->index, r->live};
        relay_conn_ctrl(o, &tallow_msgtype_PeerJoinedRoom, &theirs);
        relay_conn_ctrl(o, &tallow_msgtype_RoomPeerCount, &n);
    }
}

/* slot: the slot a failover join asked for (and got), echoed in RoomJoined; 0 for the others. */
static void attach(relay_room *r, relay_conn *c, uint32_t idx, int resumed, uint32_t slot)
{
    relay_srv *s = c->srv;
    if (resumed) RELAY_LOG(s, TALLOW_LOG_INFO, "room %s peer %u resumed", r->tag, idx + 1);
    if (resumed) s->ctr.reconnections++;
    r->slots[idx].conn = c;
    r->live++;
    c->room = r;
    c->index = idx + 1;
    c->state = RC_JOINED;
    announce(r, c, r->slots[idx].token, slot);
    if (r->live >= 2 && !r->paired) {
        r->paired = 1;
        s->ctr.rooms_paired_total++;
        r->paired_at = r->last_active = tallow_loop_now(s->loop);
        RELAY_LOG(s, TALLOW_LOG_INFO, "room %s paired after %.1f s", r->tag,
                  (double)(r->paired_at - r->created) / 1000.0);
    }
}

/* The resume proof is a preimage (within RELAY_CHAIN_SKIP hashes) of the slot's anchor. */
static int chain_ok(relay_slot *sl, const tallow_bytes *proof)
{
    if (!sl->has_anchor) return 1; /* a client that committed to nothing: the token alone */
    if (proof->len != 32) return 0;
    uint8_t x[32];
    memcpy(x, proof->ptr, 32);
    for (int k = 0; k < RELAY_CHAIN_SKIP; k++) {
        crypto_generichash(x, 32, x, 32, NULL, 0);
        if (sodium_memcmp(x, sl->anchor, 32) == 0) {
            memcpy(sl->anchor, proof->ptr, 32);
            return 1;
        }
    }
    return 0;
}

static void join_resume(relay_conn *c, const tallow_msg_RoomJoin *j, relay_room *r)
{
    if (r && j->resume_token.len == RELAY_TOKEN_LEN) {
        for (uint32_t i = 0; i < r->capacity; i++) {
            relay_slot *sl = &r->slots[i];
            if (!sl->used || sodium_memcmp(sl->token, j->resume_token.ptr, RELAY_TOKEN_LEN) != 0)
                continue;
            if (!chain_ok(sl, &j->resume_proof)) break; /* the token alone is not enough */
            if (sl->conn) { /* the old connection is not known dead yet: replace it */
                relay_conn *old = sl->conn;
                old->room = NULL;
                sl->conn = NULL;
                r->live--;
                relay_conn_kill(old, RELAY_R_GONE, 0);
                tallow_msg_PeerDeparted m = {
                    i + 1,
                    {(const uint8_t *)RELAY_R_RECONNECTING, strlen(RELAY_R_RECONNECTING)},
                    r->live};
                room_send_all(r, NULL, &tallow_msgtype_PeerDeparted, &m); /* same story */
            }
            attach(r, c, i, 1, 0);
            return;
        }
    }
    refuse(c, RELAY_R_RESUME);
}

static void join(relay_conn *c, const tallow_msg_RoomJoin *j)
{
    relay_srv *s = c->srv;
    if (c->state != RC_PENDING) {
        refuse(c, RELAY_R_PROTO);
        return;
    }
    if (!relay_join_allow(s, c->ip)) {
        refuse(c, RELAY_R_JOINRATE);
        return;
    }
    if (j->version != RELAY_PROTO_VERSION) {
        relay_count_refused(s, RR_VERSION);
        char why[120];
        int n = snprintf(why, sizeof why,
                         RELAY_R_VERSION " %u (this relay speaks %u): use the same tallow release",
                         j->version, RELAY_PROTO_VERSION);
        tallow_msg_VersionReject v = {RELAY_PROTO_VERSION, {(const uint8_t *)why, (size_t)n}};
        relay_conn_close_after(c, &tallow_msgtype_VersionReject, &v);
        return;
    }
    if (!password_ok(s, &j->password)) {
        refuse(c, RELAY_R_PASSWORD);
        return;
    }
    if (j->room.len == 0 || j->room.len > RELAY_ROOM_MAX) {
        refuse(c, RELAY_R_PROTO);
        return;
    }
    uint64_t h = relay_hash(s, j->room.ptr, j->room.len);
    relay_room *r = room_find(s, j->room.ptr, j->room.len, h);
    if (j->resume_token.len > 0) {
        join_resume(c, j, r);
        return;
    }
    uint32_t cap = j->capacity <= 2 ? 2 : j->capacity;
    if (!r) {
        if (cap > s->lim.max_peers) {
            refuse(c, RELAY_R_CAPACITY);
            return;
        }
        if (s->nrooms >= s->lim.max_rooms) {
            refuse(c, RELAY_R_ROOMS);
            return;
        }
        if (c->ip->rooms >= s->lim.max_rooms_per_ip) {
            refuse(c, RELAY_R_IPROOMS);
            return;
        }
        r = calloc(1, sizeof *r + cap * sizeof(relay_slot));
        if (!r) {
            refuse(c, "relay out of memory");
            return;
        }
        memcpy(r->id, j->room.ptr, j->room.len);
        r->idlen = j->room.len;
        relay_room_tag(r->id, r->idlen, r->tag);
        r->capacity = cap;
        r->srv = s;
        r->node.hash = h;
        if (relay_htab_add(&s->rooms_by_id, &r->node) < 0) {
            free(r);
            refuse(c, "relay out of memory");
            return;
        }
        r->ip = c->ip;
        c->ip->rooms++;
        r->created = r->last_active = tallow_loop_now(s->loop);
        r->next = s->rooms;
        if (s->rooms) s->rooms->prev = r;
        s->rooms = r;
        s->nrooms++;
        s->rooms_total++;
        RELAY_LOG(s, TALLOW_LOG_INFO, "room %s created (capacity %u)", r->tag, cap);
    }
    if (j->creator && r->has_creator && r->used > 0) {
        refuse(c, RELAY_R_TAKEN);
        return;
    }
    if (j->creator) r->has_creator = 1;
    uint32_t idx = r->capacity;
    if (j->slot) {
        /* a failover join into a group room: its slot on the room's previous relay, so that
         * every peer keeps its number (the sessions above re-authenticate: a wrong slot only
         * makes a session fail to open, never deliver another peer's data) */
        if (cap != r->capacity || j->slot > r->capacity || r->slots[j->slot - 1].used) {
            refuse(c, RELAY_R_SLOT);
            return;
        }
        idx = j->slot - 1;
        r->kept_slots = 1;
    } else if (r->used < r->capacity && r->kept_slots) {
        /* a fresh join after a failover: from the top, the low slots are the returning peers' */
        for (idx = r->capacity; idx > 0 && r->slots[idx - 1].used; idx--) {
        }
        idx = idx ? idx - 1 : r->capacity;
    } else if (r->used < r->capacity) {
        for (idx = 0; idx < r->capacity && r->slots[idx].used; idx++) {
        }
    }
    if (idx == r->capacity) {
        refuse(c, RELAY_R_FULL);
        return;
    }
    r->slots[idx].used = 1;
    r->used++;
    randombytes_buf(r->slots[idx].token, RELAY_TOKEN_LEN);
    r->slots[idx].has_anchor = j->resume_anchor.len == 32;
    if (r->slots[idx].has_anchor) memcpy(r->slots[idx].anchor, j->resume_anchor.ptr, 32);
    attach(r, c, idx, 0, j->slot);
}

/* ---- frames */

static void control(relay_conn *c, const uint8_t *p, size_t len)
{
    relay_srv *s = c->srv;
    tallow_msg_any m;
    const tallow_msg_type *t = NULL;
    memset(&m, 0, sizeof m);
    if (tallow_msg_decode(s->reg, p, len, &t, &m, sizeof m) < 0) {
        refuse(c, RELAY_R_PROTO);
        return;
    }
    switch (t->id) {
    case TALLOW_MSG_RoomJoin:
        join(c, &m.RoomJoin);
        return;
    case TALLOW_MSG_Ping: {
        tallow_msg_Pong pong = {m.Ping.seq, m.Ping.time};
        relay_conn_ctrl(c, &tallow_msgtype_Pong, &pong);
        return;
    }
    case TALLOW_MSG_RoomLeave: {
        relay_room *r = c->room;
        const tallow_bytes *why = &m.RoomLeave.reason;
        if (r && why->len == strlen(RELAY_R_HANDSHAKE) &&
            memcmp(why->ptr, RELAY_R_HANDSHAKE, why->len) == 0) {
            relay_room_close(r, RELAY_R_HANDSHAKE, 1);
            return;
        }
        relay_room_detach(c, RELAY_R_LEFT, 0);
        relay_conn_close_after(c, NULL, NULL);
        return;
    }
    default:
        refuse(c, RELAY_R_PROTO);
        return;
    }
}

void relay_conn_process(relay_conn *c)
{
    relay_srv *s = c->srv;
    relay_inbuf *b = &c->in;
    size_t run_start = 0, run_len = 0;
    uint32_t run_to = 0;
    while (!c->paused && (c->state == RC_PENDING || c->state == RC_JOINED) && !RELAY_STREAMING(c)) {
        size_t avail = b->end - b->start;
        if (avail < 4) break;
        uint8_t *f = b->buf + b->start;
        uint32_t L = relay_get32(f);
        /* before its room is paired a connection may only send control messages: a silent
         * connection must not make the relay hold a max-frame buffer for it */
        int small_only = c->state == RC_PENDING || !c->room || !c->room->paired;
        if (L == 0 || L > s->lim.max_frame || (small_only && L > RELAY_CTRL_MAX + 1) ||
            (avail >= RELAY_HDR && f[4] == RELAY_CH_CTRL && L > RELAY_CTRL_MAX + 1)) {
            if (run_len) relay_forward(c, b->buf + run_start, run_len, run_to, 0);
            run_len = 0;
            relay_room_detach(c, RELAY_R_PROTO, 0);
            refuse(c, RELAY_R_FRAME);
            return;
        }
        if (avail < RELAY_HDR) break;
        uint8_t ch = f[4];
        size_t whole = 4 + (size_t)L;
        if (ch == RELAY_CH_CTRL) {
            if (avail < whole) break;
            if (run_len) relay_forward(c, b->buf + run_start, run_len, run_to, 0);
            run_len = 0;
            if (relay_conn_queued(c) >= s->lim.high_water) { /* answers pile up: it does not read */
                c->paused = 1;
                break;
            }
            b->start += whole;
            control(c, f + RELAY_HDR, L - 1);
            continue;
        }
        /* a short frame is forwarded whole; a longer one as soon as its header is here */
        if (avail < whole && whole <= s->in_cap) break;
        if (ch == RELAY_CH_TARGET && L >= 5 && avail < RELAY_TGT_HDR) break;
        uint32_t to = 0;
        const char *err = NULL;
        if (c->state != RC_JOINED || !c->room)
            err = RELAY_R_PROTO;
        else if (!c->room->paired)
            err = RELAY_R_NOPEER;
        else if (ch == RELAY_CH_TARGET) {
            if (L < 5)
                err = RELAY_R_PROTO;
            else
                to = relay_get32(f + RELAY_HDR);
        } else if (ch != RELAY_CH_DATA)
            err = RELAY_R_PROTO;
        if (err) {
            if (run_len) relay_forward(c, b->buf + run_start, run_len, run_to, 0);
            relay_room_detach(c, RELAY_R_PROTO, 0);
            refuse(c, err);
            return;
        }
        int stream = avail < whole;
        size_t take = stream ? avail : whole;
        if (ch == RELAY_CH_TARGET &&
            (to == 0 || to > c->room->capacity || to == c->index || !c->room->slots[to - 1].used)) {
            c->room->dropped += take; /* nobody there: drop (a streamed rest too) */
            s->dropped += take;
            if (run_len) relay_forward(c, b->buf + run_start, run_len, run_to, 0);
            run_len = 0;
            b->start += take;
            if (stream) {
                c->left = whole - take;
                c->bigmode = 1;
            }
            continue;
        }
        if (run_len && to != run_to) {
            relay_forward(c, b->buf + run_start, run_len, run_to, 0);
            run_len = 0;
            if (c->state != RC_JOINED || !c->room) break;
        }
        if (relay_blocked(c, to)) {
            relay_count_limit(s, RL_QUEUE_HIGH);
            c->paused = 1;
            break;
        }
        if (stream && run_len) { /* the run first: this frame's start may go by the pipe */
            relay_forward(c, b->buf + run_start, run_len, run_to, 0);
            run_len = 0;
            continue;
        }
        if (ch == RELAY_CH_TARGET) relay_put32(f + RELAY_HDR, c->index); /* tell who sent it */
        b->start += take;
        c->bigmode = stream;
        if (stream) { /* its destinations now wait for the rest */
            c->left = whole - take;
            relay_stream_start(c, f, take, to);
            break;
        }
        if (!run_len) {
            run_start = b->start - take;
            run_to = to;
        }
        run_len += take;
    }
    if (run_len && c->room) relay_forward(c, b->buf + run_start, run_len, run_to, 0);
    if (b->start == b->end) b->start = b->end = 0;
    if (c->state == RC_PENDING || c->state == RC_JOINED) relay_conn_update(c);
}
