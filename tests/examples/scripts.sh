#!/bin/bash
# tests/examples/scripts.sh — the example workflow scripts do their jobs against a real relay:
# send-to-many (two receivers, one code each), nightly-sync (both sides, and a peer that never
# comes: exit 3 within --wait), push-build (pushes after the build settles, ignores *.o, the
# receiver is the stock `tallow watch --receive`).
. "$(dirname "$0")/../workflows/sync_lib.sh"
EX=${TALLOW_SOURCE_DIR:?}/examples/scripts
start_relay
mkdir -p "$TMP/tree/sub" "$TMP/r1" "$TMP/r2"
echo a >"$TMP/tree/a.txt"
head -c 300000 /dev/urandom >"$TMP/tree/sub/b.bin"

# send-to-many: two receivers
bg many "$T" run "$EX/send-to-many.lua" -n 2 --codes "$TMP/codes" "$TMP/tree"
MPID=$LAST_PID
wait_for 10 "codes file" test -s "$TMP/codes"
wait_for 5 "two codes" test "$(wc -l <"$TMP/codes")" -eq 2
bg recv1 "$T" receive -y -o "$TMP/r1" "$(sed -n 1p "$TMP/codes")"
bg recv2 "$T" receive -y -o "$TMP/r2" "$(sed -n 2p "$TMP/codes")"
wait_pid 60 "$MPID"; [ "$WAIT_RC" -eq 0 ] || fail "send-to-many exited $WAIT_RC"
diff -r "$TMP/tree" "$TMP/r1/tree" || fail "receiver 1 differs"
diff -r "$TMP/tree" "$TMP/r2/tree" || fail "receiver 2 differs"
grep -q "2 of 2 receivers got everything" "$TMP/many.log" || fail "send-to-many report"

# nightly-sync: both sides with a fixed code from the environment
export TALLOW_CODE=$(new_code)
bg night-s "$T" run "$EX/nightly-sync.lua" --delete "$TMP/tree"
SPID=$LAST_PID
bg night-r "$T" run "$EX/nightly-sync.lua" --receive "$TMP/nightly"
RPID=$LAST_PID
wait_pid 60 "$RPID"; [ "$WAIT_RC" -eq 0 ] || fail "nightly receiver exited $WAIT_RC"
wait_pid 30 "$SPID"; [ "$WAIT_RC" -eq 0 ] || fail "nightly sender exited $WAIT_RC"
grep -q "sent 0 changed, 2 new; deleted 0" "$TMP/night-s.log" || fail "nightly sender log"
grep -q "received 0 changed, 2 new; deleted 0" "$TMP/night-r.log" || fail "nightly receiver log"
diff -r "$TMP/tree" "$TMP/nightly" || fail "nightly mirror differs"
# nobody on the other side: gives up after --wait with status 3
export TALLOW_CODE=$(new_code)
bg night-alone "$T" run "$EX/nightly-sync.lua" --wait 0.02 --receive "$TMP/nightly"
wait_pid 20 "$LAST_PID"; [ "$WAIT_RC" -eq 3 ] || fail "a lonely nightly-sync exited $WAIT_RC, not 3"
unset TALLOW_CODE

# push-build: the stock watch receiver; a "build" writes files, one ignored
mkdir -p "$TMP/out" "$TMP/site"
echo v1 >"$TMP/out/index.html"
CODE=$(new_code)
bg pb "$T" run "$EX/push-build.lua" --code "$CODE" --settle 0.3 --ignore '%.o$' "$TMP/out"
bg pb-r "$T" watch --receive "$CODE" "$TMP/site"
wait_for 15 "first push" cmp -s "$TMP/out/index.html" "$TMP/site/index.html"
mkdir -p "$TMP/out/assets"
for i in 1 2 3; do echo "asset $i" >"$TMP/out/assets/a$i.css"; sleep 0.05; done
echo junk >"$TMP/out/assets/main.o"
echo v2 >"$TMP/out/index.html"
wait_for 15 "push after the build" cmp -s "$TMP/out/index.html" "$TMP/site/index.html"
wait_for 5 "assets pushed" cmp -s "$TMP/out/assets/a3.css" "$TMP/site/assets/a3.css"
[ ! -e "$TMP/site/assets/main.o" ] || fail "an ignored file was pushed"
echo PASS
