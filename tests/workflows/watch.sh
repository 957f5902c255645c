#!/bin/bash
# tests/workflows/watch.sh — `tallow watch`: creating, modifying, renaming and deleting files
# (also in a new sub-folder, and a renamed folder) on the sender shows up on the receiver; then
# the relay goes away, changes happen meanwhile, and after it is back both sides reconnect and
# catch up with a full sync. Every wait is a bounded poll.
. "$(dirname "$0")/sync_lib.sh"

SRC=$TMP/src DST=$TMP/dst
mkdir -p "$SRC/old" "$DST"
echo one >"$SRC/one.txt"
echo stale >"$SRC/old/stale.txt"
echo extra >"$DST/extra.txt" # the receiver becomes a mirror: this goes
start_relay
CODE=$(new_code)
bg watch-s "$T" watch --debounce 100 --code "$CODE" "$SRC"
bg watch-r "$T" watch --receive "$CODE" "$DST"

same() { cmp -s "$SRC/$1" "$DST/$1"; }
gone() { [ ! -e "$DST/$1" ] && [ ! -L "$DST/$1" ]; }
has() { [ "$(cat "$DST/$1" 2>/dev/null)" = "$2" ]; }

wait_for 15 "initial sync" same one.txt
wait_for 5 "initial sync removes extras" gone extra.txt
same old/stale.txt || fail "initial sync missed old/stale.txt"

# create
echo two >"$SRC/two.txt"
wait_for 10 "create two.txt" same two.txt
# modify (same size, new content: mtime differs)
echo 'ONE' >"$SRC/one.txt"
wait_for 10 "modify one.txt" has one.txt ONE
# append
echo more >>"$SRC/two.txt"
wait_for 10 "append to two.txt" same two.txt
# rename
mv "$SRC/two.txt" "$SRC/deux.txt"
wait_for 10 "rename: new name" same deux.txt
wait_for 10 "rename: old name gone" gone two.txt
# delete
rm "$SRC/one.txt"
wait_for 10 "delete one.txt" gone one.txt
# a new sub-folder, with files written right away and a bit later
mkdir -p "$SRC/new/deep/er"
echo a >"$SRC/new/deep/er/a.txt"
wait_for 10 "file in a new sub-folder" same new/deep/er/a.txt
echo b >"$SRC/new/deep/b.txt"
wait_for 10 "later file in the new sub-folder (watch added)" same new/deep/b.txt
mv "$SRC/new/deep/b.txt" "$SRC/new/deep/er/b2.txt"
wait_for 10 "rename inside the new sub-folder" same new/deep/er/b2.txt
wait_for 10 "rename inside: old gone" gone new/deep/b.txt
# rename a folder, then write inside it under its new name
mv "$SRC/new" "$SRC/renamed"
wait_for 10 "renamed folder arrives" same renamed/deep/er/a.txt
wait_for 10 "renamed folder: old name gone" gone new
echo c >"$SRC/renamed/deep/c.txt"
wait_for 10 "file in the renamed folder" same renamed/deep/c.txt
# delete a whole folder
rm -r "$SRC/old"
wait_for 10 "folder removed" gone old
diff -r "$SRC" "$DST" || fail "trees differ"

# the relay goes away; changes meanwhile; it comes back on the same port: catch up
kill -INT "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null  # INT: at once (TERM would drain)
echo offline >"$SRC/offline.txt"
rm "$SRC/deux.txt"
port=${TALLOW_RELAY##*:}
sleep 0.5
bg relay2 "$T" relay --listen "127.0.0.1:$port"
wait_for 30 "catch-up after reconnect" same offline.txt
wait_for 10 "removal made while offline" gone deux.txt
grep -q "reconnecting" "$TMP/watch-s.log" || fail "sender did not report the reconnect"
grep -q "reconnecting" "$TMP/watch-r.log" || fail "receiver did not report the reconnect"
diff -r "$SRC" "$DST" || fail "trees differ after the reconnect"
cat "$TMP/watch-s.log" "$TMP/watch-r.log"
echo PASS
