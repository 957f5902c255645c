/* core/lua/lua_dns.c — `tallow.dns`: SRV lookups through the system resolver (libresolv's
 * res_nquery and ns_parserr; nothing of DNS is parsed by hand). Used by tallow.relays to find a
 * relay fleet from `--relay example.org`: `_tallow._tcp.example.org`. The lookup blocks (it runs
 * once, before a session is opened) and is bounded by the resolver's timeout and retries. */
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

#include "lua_rt.h"

/* tallow.dns.srv(name) -> { {target=, port=, priority=, weight=}, ... } (in answer order; an
 * empty table when the name exists but has no SRV record) | nil, message, code
 * (TALLOW_ENOTFOUND: no such name; TALLOW_ETIMEOUT: no answer; TALLOW_EPROTO: a malformed
 * answer). A lone target "." (RFC 2782: the service is decidedly not offered) comes back as
 * {target = "."}. */
static int l_srv(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    struct __res_state st;
    memset(&st, 0, sizeof st);
    if (res_ninit(&st) != 0) return tallow__lua_fail(L, TALLOW_ENOTFOUND, "resolver unavailable");
    st.retrans = 2; /* seconds per try; the default 5 s x 2 tries is long for a command line */
    st.retry = 2;
    unsigned char ans[8192];
    int n = res_nquery(&st, name, ns_c_in, ns_t_srv, ans, sizeof ans);
    int herr = st.res_h_errno;
    res_nclose(&st);
    if (n < 0) {
        if (herr == HOST_NOT_FOUND) return tallow__lua_fail(L, TALLOW_ENOTFOUND, "no such name");
        if (herr == NO_DATA) {
            lua_newtable(L);
            return 1;
        }
        return tallow__lua_fail(L, TALLOW_ETIMEOUT, "no answer from the DNS resolver");
    }
    ns_msg msg;
    if (ns_initparse(ans, n, &msg) < 0)
        return tallow__lua_fail(L, TALLOW_EPROTO, "malformed DNS answer");
    lua_newtable(L);
    int count = ns_msg_count(msg, ns_s_an), out = 0;
    for (int i = 0; i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            return tallow__lua_fail(L, TALLOW_EPROTO, "malformed DNS answer");
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in) continue; /* CNAMEs */
        const unsigned char *rd = ns_rr_rdata(rr);
        if (ns_rr_rdlen(rr) < 7) return tallow__lua_fail(L, TALLOW_EPROTO, "malformed SRV record");
        char target[NS_MAXDNAME];
        if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, target, sizeof target) < 0)
            return tallow__lua_fail(L, TALLOW_EPROTO, "malformed SRV target");
        lua_createtable(L, 0, 4);
        lua_pushstring(L, target[0] ? target : ".");
        lua_setfield(L, -2, "target");
        lua_pushinteger(L, ns_get16(rd + 4));
        lua_setfield(L, -2, "port");
        lua_pushinteger(L, ns_get16(rd));
        lua_setfield(L, -2, "priority");
        lua_pushinteger(L, ns_get16(rd + 2));
        lua_setfield(L, -2, "weight");
        lua_rawseti(L, -2, ++out);
    }
    return 1;
}

static const luaL_Reg funcs[] = {{"srv", l_srv}, {NULL, NULL}};

int luaopen_tallow_dns(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
