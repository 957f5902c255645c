#!/bin/sh
# one_guess.sh — one guess per code, in every command that would otherwise go on by itself: a
# watching sender, a group-chat room and a sync sender each meet one receiver with a wrong code
# and end, non-zero, saying "code mismatch" (watch: "not retrying"), within a bound; the wrong
# receivers end non-zero too. Before, watch printed "retrying in 5 s" and waited for the next
# guess, and a room handed each guesser a fresh try.
. "$(dirname "$0")/rooms_lib.sh"
start_relay
mkdir -p "$W/src" "$W/dst"
echo data > "$W/src/f.txt"
MSG="code mismatch"

# wait_fail SECONDS PID NAME: the process ends within the bound with a non-zero status
wait_fail() {
    _n=$(( $1 * 20 ))
    while kill -0 "$2" 2>/dev/null && [ $_n -gt 0 ]; do sleep 0.05; _n=$((_n - 1)); done
    kill -0 "$2" 2>/dev/null && fail "$3 still running after $1 s (it should have stopped)"
    _st=0; wait "$2" || _st=$?
    [ $_st != 0 ] || fail "$3 exited 0"
}

# ---- watch
"$T" watch --code 41-guess-maple-otter "$W/src" > "$W/ws.out" 2> "$W/ws.err" &
WS=$!; track $WS
wait_grep 10 "created" "$W/relay.log"
"$T" watch --receive 41-guess-wrong-otter "$W/dst" > "$W/wr.out" 2> "$W/wr.err" &
WR=$!; track $WR
wait_fail 15 $WS "watch sender"
wait_fail 15 $WR "watch receiver with the wrong code"
grep -qF "$MSG" "$W/ws.err" || fail "watch sender did not say '$MSG'"
grep -qF "not retrying" "$W/ws.err" || fail "watch sender did not say it stops"
grep -q "retrying in" "$W/ws.err" && fail "watch sender offered another try"
[ -z "$(ls -A "$W/dst")" ] || fail "the wrong receiver got files"

# ---- a group chat room: the first wrong joiner burns it
mkfifo "$W/a.in"
"$T" chat --code 42-guess-cedar-lynx --capacity 3 < "$W/a.in" > "$W/ca.out" 2> "$W/ca.err" &
CA=$!; track $CA
exec 3> "$W/a.in"
wait_grep 10 "created (capacity 3)" "$W/relay.log"
"$T" chat 42-guess-wrong-lynx < /dev/null > "$W/cb.out" 2> "$W/cb.err" &
CB=$!; track $CB
wait_fail 15 $CA "chat room creator"
wait_fail 15 $CB "chat joiner with the wrong code"
exec 3>&-
grep -qF "$MSG" "$W/ca.err" || fail "chat creator did not say '$MSG'"
grep -qF "takes no one else" "$W/ca.err" || fail "chat creator did not say the room is closed"

# ---- sync
"$T" sync --code 43-guess-birch-heron "$W/src" > "$W/ss.out" 2> "$W/ss.err" &
SS=$!; track $SS
"$T" sync --receive 43-guess-wrong-heron "$W/dst" > "$W/sr.out" 2> "$W/sr.err" &
SR=$!; track $SR
wait_fail 15 $SS "sync sender"
wait_fail 15 $SR "sync receiver with the wrong code"
grep -qF "$MSG" "$W/ss.err" || fail "sync sender did not say '$MSG'"
[ -z "$(ls -A "$W/dst")" ] || fail "the wrong sync receiver got files"
echo "one guess ok: watch, a chat room and sync stop at the first wrong code"
