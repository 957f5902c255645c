#!/bin/bash
# tests/workflows/sync.sh — `tallow sync`: a tree of 1,000 files synced once, then 10 changed,
# 5 deleted and 5 added: the second sync moves only those 20 (both reports say so), --delete
# removes the 5, and the trees are identical (diff -r). Removal never follows a symlink out.
. "$(dirname "$0")/sync_lib.sh"

SRC=$TMP/src DST=$TMP/dst
mkdir -p "$SRC" "$DST" "$TMP/outside"
for d in $(seq 0 9); do
    mkdir -p "$SRC/d$d/sub"
    for f in $(seq 0 89); do echo "file $d/$f" >"$SRC/d$d/f$f.txt"; done
    for f in $(seq 0 9); do head -c $((f * 1000)) /dev/urandom >"$SRC/d$d/sub/r$f.bin"; done
done
mkdir -p "$SRC/empty"
[ "$(find "$SRC" -type f | wc -l)" -eq 1000 ] || fail "fixture is not 1000 files"
start_relay

# 1. first sync: everything is new
t0=$(date +%s.%N)
sync_round
t1=$(date +%s.%N)
grep -q "sent 0 changed, 1000 new; deleted 0" "$TMP/sync-s.log" || fail "first sync report"
grep -q "received 0 changed, 1000 new; deleted 0" "$TMP/sync-r.log" || fail "first receive report"
diff -r "$SRC" "$DST" >/dev/null || fail "trees differ after the first sync"
[ -d "$DST/empty" ] || fail "empty folder not created"
[ ! -e "$DST/src" ] || fail "the sender's folder name was prefixed"
echo "first sync: 1000 files in $(echo "$t1 - $t0" | bc) s ($(echo "1000 / ($t1 - $t0)" | bc) files/s, session setup included)"

# 2. change 10 (size changes), delete 5, add 5 (one in a new folder)
for f in $(seq 0 9); do echo "changed" >>"$SRC/d1/f$f.txt"; done
rm "$SRC"/d2/f{0,1,2,3,4}.txt
for f in 0 1 2 3; do echo "new $f" >"$SRC/d3/new$f.txt"; done
mkdir -p "$SRC/fresh" && echo "fresh" >"$SRC/fresh/n.txt"
# a symlink on the receiver pointing outside: never followed, never removed through
echo keep >"$TMP/outside/precious"
ln -s "$TMP/outside" "$DST/d4/link"

t0=$(date +%s.%N)
sync_round --delete
t1=$(date +%s.%N)
cat "$TMP/sync-s.log" "$TMP/sync-r.log"
grep -q "sent 10 changed, 5 new; deleted 5" "$TMP/sync-s.log" || fail "second sync report"
grep -q "received 10 changed, 5 new; deleted 5" "$TMP/sync-r.log" || fail "second receive report"
[ -f "$TMP/outside/precious" ] || fail "a file outside the folder was removed"
rm "$DST/d4/link"
diff -r "$SRC" "$DST" || fail "trees differ after the second sync"
echo "second sync (20 changes in 1000): $(echo "$t1 - $t0" | bc) s"

# 3. nothing changed: nothing moves
sync_round --delete
grep -q "sent 0 changed, 0 new; deleted 0" "$TMP/sync-s.log" || fail "idle sync report"
grep -q "(0 B over" "$TMP/sync-s.log" || fail "idle sync moved bytes"

# 4. without --delete, extra files on the receiver stay; a type change (file -> folder) is applied
echo extra >"$DST/extra.txt"
rm "$SRC/d5/f0.txt" && mkdir "$SRC/d5/f0.txt" && echo inner >"$SRC/d5/f0.txt/inner"
sync_round
grep -q "sent 0 changed, 1 new; deleted 1" "$TMP/sync-s.log" || fail "type-change report: $(cat "$TMP/sync-s.log")"
[ -f "$DST/extra.txt" ] || fail "extra file removed without --delete"
[ "$(cat "$DST/d5/f0.txt/inner")" = inner ] || fail "type change not applied"
rm "$DST/extra.txt"
diff -r "$SRC" "$DST" || fail "trees differ after the type change"

# 5. a sender that pairs and then says nothing: the receiver gives up after TALLOW_OFFER_TIMEOUT
code=$(new_code)
cat >"$TMP/silent.lua" <<'LUA'
local tallow = require "tallow"
local s = assert(tallow.session.open { code = os.getenv("TALLOW_CODE"), relay = os.getenv("TALLOW_RELAY"),
    initiator = true, p2p = false })
s:recv(20) -- returns when the receiver leaves
LUA
bg silent env TALLOW_CODE="$code" "$T" run "$TMP/silent.lua"
spid=$LAST_PID
t0=$SECONDS
bg sync-r env TALLOW_OFFER_TIMEOUT=2 "$T" sync --receive "$code" "$DST"
wait_pid 20 "$LAST_PID"
[ "$WAIT_RC" -ne 0 ] || fail "the receiver of a silent sender exited 0"
grep -q "the sender sent nothing for 2 s; giving up" "$TMP/sync-r.log" || fail "no clear message for a silent sender"
[ $((SECONDS - t0)) -lt 15 ] || fail "the receiver waited $((SECONDS - t0)) s for a silent sender"
wait_pid 25 "$spid"
echo PASS
