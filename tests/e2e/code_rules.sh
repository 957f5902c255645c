#!/usr/bin/env bash
# e2e code rules: codes with fewer than 2 secret words are refused with a clear message (a
# generated one with --words 1, a given one-word --code, a one-word code typed by a receiver),
# and a receiver whose sender has not come yet says so instead of a blank screen.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
msg="at least 2 secret words"

rc=0; timeout 10 "$T" send --words 1 --text hello >"$E2E_TMP/w1.out" 2>"$E2E_TMP/w1.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "send --words 1 exited $rc"
grep -q "between 2 and 8" "$E2E_TMP/w1.err" || { show "$E2E_TMP/w1.err"; fail "no clear message for --words 1"; }

rc=0; timeout 10 "$T" send --code 7-apple --text hello >"$E2E_TMP/c1.out" 2>"$E2E_TMP/c1.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "send --code 7-apple exited $rc"
grep -qF "$msg" "$E2E_TMP/c1.err" || { show "$E2E_TMP/c1.err"; fail "no clear message for a one-word --code"; }

rc=0; timeout 10 "$T" receive --yes -o "$E2E_TMP" 7-apple >"$E2E_TMP/r1.out" 2>"$E2E_TMP/r1.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "receive 7-apple exited $rc"
grep -qF "$msg" "$E2E_TMP/r1.err" || { show "$E2E_TMP/r1.err"; fail "no clear message for a one-word code at the receiver"; }
grep -q "7-apple" "$RELAY_LOG" && fail "the relay log names the code"

# nobody sends on this number: the receiver says it is waiting (then the timeout ends it)
rc=0; timeout 4 "$T" receive --yes -o "$E2E_TMP" 9-nobody-sends-this >"$E2E_TMP/wait.out" 2>"$E2E_TMP/wait.err" || rc=$?
[ $rc = 124 ] || { show "$E2E_TMP/wait.err"; fail "a receiver without a sender exited $rc instead of waiting"; }
grep -q "Waiting for the sender" "$E2E_TMP/wait.err" || { show "$E2E_TMP/wait.err"; fail "the waiting receiver said nothing"; }
# two senders that drew the same number: the second is told at once (the room takes one
# creator), and the first still pairs with its receiver
printf 'first\n' > "$E2E_TMP/one.txt"
timeout 20 "$T" send --code 11-first-sender-words "$E2E_TMP/one.txt" >"$E2E_TMP/s1.out" 2>"$E2E_TMP/s1.err" &
S1=$!; track $S1
# (the waiting receiver above made the first room: this sender's is the second)
for i in $(seq 200); do [ "$(grep -c "created" "$RELAY_LOG")" -ge 2 ] && break; sleep 0.05; done
[ "$(grep -c "created" "$RELAY_LOG")" -ge 2 ] || fail "the first sender's room was never created"
rc=0; timeout 10 "$T" send --code 11-second-sender-words --text hi >"$E2E_TMP/s2.out" 2>"$E2E_TMP/s2.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a second sender on the same number exited $rc"
grep -q "number is in use by another sender" "$E2E_TMP/s2.err" || { show "$E2E_TMP/s2.err"; fail "no clear message for a number in use"; }
mkdir -p "$E2E_TMP/d1"
run_recv r1 20 --yes -o "$E2E_TMP/d1" 11-first-sender-words
[ "$RECV_RC" = 0 ] || { show "$E2E_TMP/r1.recv.err"; fail "the first sender's receiver failed"; }
cmp "$E2E_TMP/one.txt" "$E2E_TMP/d1/one.txt" || fail "wrong bytes"
ok "one-word codes refused at both ends, --words 1 refused, a waiting receiver says so, a number in use is refused"
