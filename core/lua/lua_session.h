/* core/lua/lua_session.h — the Lua session object, shared by lua_session.c (messages) and
 * lua_transfer.c (file transfers on the same session). */
#ifndef TALLOW_LUA_SESSION_H
#define TALLOW_LUA_SESSION_H

#include "lua_rt.h"
#include "offer_parts.h"
#include "session.h"

typedef struct tallow__lsession tallow__lsession;

struct tallow__lsession {
    tallow__lrt *rt;
    tallow__session *s;
    int ready, closed, status;
    struct qmsg *head, *tail;
    size_t queued, queued_bytes; /* messages waiting for s:recv, and their bytes */
    size_t dropped;              /* messages dropped since the queue was last full */
    tallow__offer_parts parts;   /* a FileOffer arriving in parts */
    tallow__waiter open_w, recv_w, send_w;
    int open_waiting, recv_waiting, send_waiting;
    tallow_timer *recv_timer;
    /* s:direct() waiting for the direct-path attempt to settle */
    tallow__waiter path_w;
    int path_waiting;
    tallow_timer *path_timer;
    /* a transfer running on this session gets session events too */
    void (*on_event)(tallow__lsession *ls, void *ud);
    void *event_ud;
};

/* Pushes a new session object running on ch, an open and ready channel (a room's virtual
 * channel); on success the session owns ch. On error nothing is pushed and ch stays the
 * caller's. The session is ready once ls->ready (or failed: ls->closed). */
int tallow__lsession_new_on(lua_State *L, tallow_channel *ch, const tallow__session_params *p,
                            tallow__lsession **out);
int tallow__lsession_open_k(lua_State *L, int status, lua_KContext kctx);
/* Adds the transfer methods (send_files, receive_files, reject) to the methods table on top. */
void tallow__lsession_add_methods(lua_State *L);
/* lua_transfer.c's functions of the tallow.session module table: tallow.session.manifest,
 * .offer_conflicts and .cancel_all. */
int tallow__lua_manifest(lua_State *L);
int tallow__lua_offer_conflicts(lua_State *L);
int tallow__lua_cancel_all(lua_State *L);

#endif
