/* tests/core/test_room.c — rooms of more than two peers (core/session/room.c) over a fake relay
 * channel that records what is sent and into which the test plays the relay's events: a virtual
 * channel per other peer (the lower index starts the pair's handshake), targeted sends, frames
 * routed to the sender's channel only, peers leaving and a newcomer taking the slot, our own
 * connection dropping and coming back (every pair hears it), a pair room's one peer, control ops
 * declined, and closing: every channel still open ends, and the room's memory goes with the last
 * one. room.c is compiled into this file for its internals (the room is built around the fake). */
#include "../../core/session/room.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static tallow_ctx *ctx;

/* ---- the fake relay channel */
static uint32_t me_index = 1, me_peers = 1, me_capacity = 4;
static uint32_t sent_to[16];
static uint8_t sent_byte[16];
static size_t nsent;
static size_t relay_queued = 123;

static int fr_send(tallow_channel *ch, uint32_t to, const uint8_t *f, size_t len)
{
    (void)ch;
    assert_true(nsent < 16 && len >= 1);
    sent_to[nsent] = to;
    sent_byte[nsent++] = f[0];
    return 0;
}
static void fr_info(tallow_channel *ch, tallow_channel_info *info)
{
    (void)ch;
    info->peer_index = me_index;
    info->peers = me_peers;
    info->capacity = me_capacity;
    info->path = "fake relay";
}
static size_t fr_queued(tallow_channel *ch)
{
    (void)ch;
    return relay_queued;
}
static int fr_control(tallow_channel *ch, int op, void *arg)
{
    (void)ch;
    (void)op;
    (void)arg;
    return TALLOW_ENOTSUP;
}
static void fr_close(tallow_channel *ch)
{
    (void)ch;
}
/* not registered, so it carries the optional slots the host would otherwise fill */
static const tallow_transport_ops fake_relay_ops = {.name = "fakerelay",
                                                    .send = fr_send,
                                                    .close = fr_close,
                                                    .get_info = fr_info,
                                                    .queued = fr_queued,
                                                    .control = fr_control};

/* ---- the room's user: the virtual channels it was given, and what each one heard */
typedef struct peer {
    tallow_channel *ch;
    uint32_t index;
    int initiator;
    int frames, closed, closed_err;
    uint8_t last_byte;
    uint32_t rooms[8];
    size_t nrooms;
} peer;
static peer peers[8];
static size_t npeers;
static int room_closed, room_closed_err;

static void p_frame(tallow_channel *ch, uint32_t from, const uint8_t *d, size_t len, void *ud)
{
    peer *p = ud;
    (void)from;
    assert_ptr_equal(ch, p->ch);
    assert_true(len >= 1);
    p->frames++;
    p->last_byte = d[0];
}
static void p_room(tallow_channel *ch, uint32_t type, const void *msg, void *ud)
{
    peer *p = ud;
    (void)ch;
    (void)msg;
    assert_true(p->nrooms < 8);
    p->rooms[p->nrooms++] = type;
}
static void p_closed(tallow_channel *ch, int err, void *ud)
{
    peer *p = ud;
    (void)ch;
    p->closed++;
    p->closed_err = err;
}
static const tallow_channel_events peer_events = {
    .on_frame = p_frame, .on_room = p_room, .on_closed = p_closed};

static void on_peer(tallow__room *r, tallow_channel *ch, uint32_t index, int initiator, void *ud)
{
    (void)r;
    (void)ud;
    assert_true(npeers < 8);
    peer *p = &peers[npeers++];
    memset(p, 0, sizeof *p);
    p->ch = ch;
    p->index = index;
    p->initiator = initiator;
    ch->ev = &peer_events;
    ch->ev_ud = p;
}
static void on_room_closed(tallow__room *r, int err, void *ud)
{
    (void)r;
    (void)ud;
    room_closed++;
    room_closed_err = err;
}
static const tallow__room_cbs room_cbs = {.on_peer = on_peer, .on_closed = on_room_closed};

static tallow__room *room;
static tallow_channel *relay;

static int setup(void **state)
{
    (void)state;
    ctx = tallow_ctx_new();
    assert_non_null(ctx);
    tallow_ctx_set_log_level(ctx, TALLOW_LOG_ERROR);
    me_index = 1;
    me_peers = 1;
    me_capacity = 4;
    nsent = npeers = 0;
    room_closed = 0;
    room = calloc(1, sizeof *room);
    relay = calloc(1, sizeof *relay); /* freed by tallow_channel_close */
    assert_non_null(room);
    assert_non_null(relay);
    relay->ops = &fake_relay_ops;
    relay->ctx = ctx;
    relay->ev = &relay_events;
    relay->ev_ud = room;
    room->ctx = ctx;
    room->cbs = &room_cbs;
    room->relay = relay;
    snprintf(room->path, sizeof room->path, "fake relay (room)");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (room) tallow__room_close(room);
    for (size_t i = 0; i < npeers; i++)
        tallow_channel_close(peers[i].ch); /* the last one frees the room */
    room = NULL;
    tallow_ctx_free(ctx);
    return 0;
}

static void joined(uint32_t index)
{
    tallow_msg_PeerJoinedRoom j = {.peer_index = index};
    me_peers++;
    relay->ev->on_room(relay, TALLOW_MSG_PeerJoinedRoom, &j, relay->ev_ud);
}

static void frame_from(uint32_t from, uint8_t b)
{
    relay->ev->on_frame(relay, from, &b, 1, relay->ev_ud);
}

static void test_peers_sends_and_routing(void **state)
{
    (void)state;
    relay->ev->on_ready(relay, relay->ev_ud); /* a multi room announces nobody at once */
    assert_int_equal(npeers, 0);
    joined(2);
    joined(3);
    joined(1); /* ourselves: no channel */
    assert_int_equal(npeers, 2);
    assert_int_equal(peers[0].index, 2);
    assert_int_equal(peers[1].index, 3);
    assert_true(peers[0].initiator && peers[1].initiator); /* index 1 starts every handshake */
    /* a virtual channel's send is a targeted send to its peer */
    uint8_t b = 0x42;
    assert_int_equal(tallow_channel_send(peers[1].ch, 0, &b, 1), 0);
    assert_int_equal(nsent, 1);
    assert_int_equal(sent_to[0], 3);
    assert_int_equal(sent_byte[0], 0x42);
    /* frames go to the sender's channel only; an unknown sender's are dropped */
    frame_from(2, 7);
    frame_from(9, 8);
    assert_int_equal(peers[0].frames, 1);
    assert_int_equal(peers[0].last_byte, 7);
    assert_int_equal(peers[1].frames, 0);
    /* info and queue come from the relay, the path names the room */
    tallow_channel_info info;
    tallow_channel_get_info(peers[0].ch, &info);
    assert_string_equal(info.path, "fake relay (room)");
    assert_int_equal(info.peer_index, 1);
    assert_int_equal(peers[0].ch->ops->queued(peers[0].ch), relay_queued);
    /* leaving is the room's business: a session's leave request on one pair is declined */
    assert_int_equal(peers[0].ch->ops->control(peers[0].ch, TALLOW_CTL_LEAVE, (void *)"x"),
                     -ENOTSUP);
    assert_int_equal(nsent, 1);
}

static void test_leave_and_newcomer(void **state)
{
    (void)state;
    me_index = 2; /* we joined second: peer 1 starts our handshake, we start peer 3's */
    joined(1);
    joined(3);
    assert_false(peers[0].initiator);
    assert_true(peers[1].initiator);
    tallow_msg_PeerLeftRoom l = {.peer_index = 3};
    relay->ev->on_room(relay, TALLOW_MSG_PeerLeftRoom, &l, relay->ev_ud);
    assert_int_equal(peers[1].closed, 1);
    assert_int_equal(peers[1].closed_err, 0);
    uint8_t b = 1;
    assert_int_equal(tallow_channel_send(peers[1].ch, 0, &b, 1), TALLOW_ECLOSED);
    frame_from(3, 5); /* nobody listens on the old channel */
    assert_int_equal(peers[1].frames, 0);
    /* a newcomer in slot 3: a new channel, a new handshake */
    joined(3);
    assert_int_equal(npeers, 3);
    assert_ptr_not_equal(peers[2].ch, peers[1].ch);
    frame_from(3, 6);
    assert_int_equal(peers[2].frames, 1);
    assert_int_equal(peers[1].frames, 0);
}

static void test_reconnection_events(void **state)
{
    (void)state;
    joined(2);
    joined(3);
    static const char why[] = "reconnecting";
    /* our own connection dropped: every pair hears it, and that we are back */
    tallow_msg_PeerDeparted d = {1, {(const uint8_t *)why, sizeof why - 1}, 1};
    relay->ev->on_room(relay, TALLOW_MSG_PeerDeparted, &d, relay->ev_ud);
    tallow_msg_RoomJoined j = {1, 3, {NULL, 0}, 4, 0, 0};
    relay->ev->on_room(relay, TALLOW_MSG_RoomJoined, &j, relay->ev_ud);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(peers[i].nrooms, 2);
        assert_int_equal(peers[i].rooms[0], TALLOW_MSG_PeerDeparted);
        assert_int_equal(peers[i].rooms[1], TALLOW_MSG_RoomJoined);
    }
    /* one peer's connection dropped: only its pair hears it */
    d.peer_index = 3;
    relay->ev->on_room(relay, TALLOW_MSG_PeerDeparted, &d, relay->ev_ud);
    assert_int_equal(peers[0].nrooms, 2);
    assert_int_equal(peers[1].nrooms, 3);
}

static void test_pair_room(void **state)
{
    (void)state;
    me_capacity = 2;
    me_index = 2;
    relay->ev->on_ready(relay, relay->ev_ud); /* the other peer is simply there */
    assert_int_equal(npeers, 1);
    assert_int_equal(peers[0].index, 1);
    assert_false(peers[0].initiator);
    /* it comes back after a dropped connection: the same channel hears PeerArrived */
    tallow_msg_PeerArrived a = {1, 2};
    relay->ev->on_room(relay, TALLOW_MSG_PeerArrived, &a, relay->ev_ud);
    assert_int_equal(npeers, 1);
    assert_int_equal(peers[0].nrooms, 1);
    assert_int_equal(peers[0].rooms[0], TALLOW_MSG_PeerArrived);
}

static void test_close(void **state)
{
    (void)state;
    joined(2);
    joined(3);
    tallow_channel_close(peers[0].ch); /* the user is done with one pair */
    peers[0].ch = NULL;
    tallow__room_close(room);
    room = NULL;
    assert_int_equal(peers[0].closed, 0); /* closed by its user: no event */
    assert_int_equal(peers[1].closed, 1);
    assert_int_equal(peers[1].closed_err, TALLOW_ECLOSED);
    assert_int_equal(room_closed, 0); /* closed by its user: no event */
    uint8_t b = 1;
    assert_int_equal(tallow_channel_send(peers[1].ch, 0, &b, 1), TALLOW_ECLOSED);
    /* teardown closes peers[1]: the room's memory goes then (ASan would see a leak or a double
     * free) */
    memmove(&peers[0], &peers[1], sizeof peers[0]);
    npeers = 1;
}

static void test_relay_closed(void **state)
{
    (void)state;
    joined(2);
    joined(3);
    relay->ev->on_closed(relay, TALLOW_ERELAY, relay->ev_ud);
    assert_int_equal(peers[0].closed, 1);
    assert_int_equal(peers[1].closed, 1);
    assert_int_equal(peers[1].closed_err, TALLOW_ERELAY);
    assert_int_equal(room_closed, 1);
    assert_int_equal(room_closed_err, TALLOW_ERELAY);
    relay->ev->on_closed(relay, TALLOW_ERELAY, relay->ev_ud);
    assert_int_equal(room_closed, 1); /* once */
    assert_int_equal(peers[0].closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peers_sends_and_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_and_newcomer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnection_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pair_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_closed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
