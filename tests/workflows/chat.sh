#!/bin/sh
# chat.sh — two `tallow chat` peers through a relay, driven through fifos: lines go both ways,
# escape sequences and bidi overrides arrive neutralised, /quit ends both sides with status 0.
. "$(dirname "$0")/lib.sh"
start_relay
CODE=31-chat-lantern-pebble
mkfifo "$W/a.in" "$W/b.in"

"$T" chat --code $CODE < "$W/a.in" > "$W/a.out" 2> "$W/a.err" &
A=$!; track $A
exec 3> "$W/a.in"
"$T" chat $CODE < "$W/b.in" > "$W/b.out" 2> "$W/b.err" &
B=$!; track $B
exec 4> "$W/b.in"
wait_grep 10 "* peer joined" "$W/a.err"
wait_grep 10 "* peer joined" "$W/b.err"

echo "hello from A" >&3
wait_grep 10 "peer: hello from A" "$W/b.out"
echo "hello from B" >&4
wait_grep 10 "peer: hello from B" "$W/a.out"
printf '\033[31mred\033[0m and \342\200\256evil\a\n' >&3
printf 'more from B\n' >&4
wait_grep 10 "peer: \\x1b[31mred\\x1b[0m and \\u{202e}evil\\x07" "$W/b.out"
wait_grep 10 "peer: more from B" "$W/a.out"
if LC_ALL=C grep -q "$(printf '\033')" "$W/b.out"; then fail "a raw ESC byte reached the output"; fi
if LC_ALL=C grep -q "$(printf '\342\200\256')" "$W/b.out"; then fail "a raw bidi override reached the output"; fi
if LC_ALL=C grep -q "$(printf '\a')" "$W/b.out"; then fail "a raw BEL reached the output"; fi

echo "/quit" >&3
wait_exit 10 $A "chat A"
wait_exit 10 $B "chat B (peer quit)"
grep -qF "* peer left" "$W/b.err" || fail "B was not told that A left"
exec 3>&- 4>&-
echo "chat ok"
