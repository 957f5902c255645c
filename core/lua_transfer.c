/* core/lua_transfer.c — file transfer methods on a Lua session (placeholder until the transfer
 * engine lands). */
#include "lua_session.h"

void tallow__lsession_add_methods(lua_State *L)
{
    (void)L;
}
