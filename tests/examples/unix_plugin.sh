#!/bin/bash
# tests/examples/unix_plugin.sh — the example transport plugin, the way a user would build it:
# `make install PREFIX=$tmp/prefix` (a build of its own, so the test's build tree is left alone),
# then `make -C examples/plugins/unix` with pkg-config pointing there, out of the source tree.
# The runner loads it (--plugin PATH, then TALLOW_PLUGIN_PATH) and it carries real transfers
# (a 20 MB file, a folder sync) over a Unix socket; the bytes must be identical. The example
# punching strategy (examples/plugins/portguess) builds the same way and loads.
. "$(dirname "$0")/../workflows/sync_lib.sh"
SRCDIR=${TALLOW_SOURCE_DIR:?}

# 1. install into a prefix, from a build directory of the test's own
make -C "$SRCDIR" install PREFIX="$TMP/prefix" BUILD="$TMP/build" >"$TMP/install.log" 2>&1 ||
    fail "make install PREFIX=... failed"
[ -f "$TMP/prefix/lib/pkgconfig/tallow.pc" ] || fail "no tallow.pc installed"
[ -f "$TMP/prefix/include/tallow/transport.h" ] || fail "no headers installed"

# 2. build the plugin out of tree: a copy of the example folder, only the installed tallow
cp -r "$SRCDIR/examples/plugins/unix" "$TMP/unix-plugin"
rm -f "$TMP/unix-plugin/unix.so"
make -C "$TMP/unix-plugin" PKG_CONFIG_PATH="$TMP/prefix/lib/pkgconfig" >"$TMP/plugin-build.log" 2>&1 ||
    fail "out-of-tree plugin build failed"
grep -q -- "-I$TMP/prefix/include" "$TMP/plugin-build.log" || fail "plugin not built against the installed headers"
PLUGIN=$TMP/unix-plugin/unix.so
[ -f "$PLUGIN" ] || fail "no unix.so"

# 3. a real transfer over it: --plugin PATH on both sides
head -c 20000000 /dev/urandom >"$TMP/big.bin"
mkdir -p "$TMP/out"
SOCK=$TMP/meet.sock
CODE=$(new_code)
bg send "$T" send --plugin "$PLUGIN" --transport unix --relay "$SOCK" --code "$CODE" "$TMP/big.bin"
SPID=$LAST_PID
bg recv "$T" receive --plugin "$PLUGIN" --transport unix --relay "$SOCK" -y -o "$TMP/out" "$CODE"
RPID=$LAST_PID
wait_pid 60 "$RPID"; [ "$WAIT_RC" -eq 0 ] || fail "receiver exited $WAIT_RC"
wait_pid 30 "$SPID"; [ "$WAIT_RC" -eq 0 ] || fail "sender exited $WAIT_RC"
cmp "$TMP/big.bin" "$TMP/out/big.bin" || fail "bytes differ"
[ ! -e "$SOCK" ] || fail "socket file left behind"
cat "$TMP/send.log" "$TMP/recv.log"

# 4. loaded from TALLOW_PLUGIN_PATH instead, carrying a folder sync
mkdir -p "$TMP/plugdir" "$TMP/tree/a/b" "$TMP/mirror"
cp "$PLUGIN" "$TMP/plugdir/"
for i in $(seq 1 50); do echo "n $i" >"$TMP/tree/a/b/f$i"; done
CODE=$(new_code)
TALLOW_PLUGIN_PATH=$TMP/plugdir bg sync-s "$T" sync --transport unix --relay "$SOCK" --code "$CODE" "$TMP/tree"
SPID=$LAST_PID
TALLOW_PLUGIN_PATH=$TMP/plugdir bg sync-r "$T" sync --receive --transport unix --relay "$SOCK" "$CODE" "$TMP/mirror"
RPID=$LAST_PID
wait_pid 60 "$RPID"; [ "$WAIT_RC" -eq 0 ] || fail "sync receiver exited $WAIT_RC"
wait_pid 30 "$SPID"; [ "$WAIT_RC" -eq 0 ] || fail "sync sender exited $WAIT_RC"
grep -q "sent 0 changed, 50 new" "$TMP/sync-s.log" || fail "sync report over unix"
diff -r "$TMP/tree" "$TMP/mirror" || fail "trees differ after a sync over the unix transport"

# 5. the example punching strategy, built out of tree the same way; loading it runs its init,
# which registers the strategy (a refused registration fails the load)
cp -r "$SRCDIR/examples/plugins/portguess" "$TMP/portguess"
rm -f "$TMP/portguess/portguess.so"
make -C "$TMP/portguess" PKG_CONFIG_PATH="$TMP/prefix/lib/pkgconfig" >"$TMP/pg-build.log" 2>&1 ||
    fail "out-of-tree strategy build failed"
grep -q -- "-I$TMP/prefix/include" "$TMP/pg-build.log" || fail "strategy not built against the installed headers"
cat >"$TMP/pg.lua" <<EOF
local tallow = require "tallow"
assert(tallow.plugins.load("$TMP/portguess/portguess.so"))
for _, p in ipairs(tallow.plugins.list()) do
    if p.name == "punch-portguess" then print("loaded " .. p.name) end
end
EOF
"$T" run "$TMP/pg.lua" >"$TMP/pg-run.log" 2>&1 || fail "tallow run could not load the strategy"
grep -q "loaded punch-portguess" "$TMP/pg-run.log" || fail "the strategy plugin is not listed"
echo PASS
