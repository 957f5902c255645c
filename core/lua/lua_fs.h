/* core/lua/lua_fs.h — folder manifests relative to a base directory, shared by `tallow.fs`
 * (core/lua/lua_fs.c) and s:send_files{base=, only=} (core/lua/lua_transfer.c), and the folder
 * watcher of `tallow.fs` (core/lua/lua_watch.c). */
#ifndef TALLOW_LUA_FS_H
#define TALLOW_LUA_FS_H

#include <lua.h>

#include "fsutil.h"

/* Builds the manifest of the contents of directory base, with paths relative to base (base's
 * own name is not part of any path: "a/b.txt", not "base/a/b.txt"). When only is non-NULL, keeps
 * the nonly listed relative paths, everything under the listed directories, and the directories
 * on the way to them (so that they exist on the receiver); listed paths that do not exist are
 * ignored. Symlinks and special files are skipped, never followed (warn gets them, may be NULL).
 * Fills *out (free with tallow__manifest_free). 0, -errno, TALLOW_EINVAL (base is not a
 * directory, or is a symlink), TALLOW_ENOMEM. */
int tallow__fs_manifest(const char *base, const char *const *only, size_t nonly,
                        tallow__manifest_warn_fn warn, void *ud, tallow__manifest *out);

/* tallow.fs.watch(dir) -> watcher | nil, message, code (core/lua/lua_watch.c). */
int tallow__lua_fs_watch(lua_State *L);
/* Registers the watcher's metatable "tallow.fswatch" (next, close, __gc, __close, __tostring);
 * called by luaopen_tallow_fs. */
void tallow__lua_watch_meta(lua_State *L);

#endif
