#!/bin/sh
# rooms.sh — rooms of more than two peers, keys per pair: `send --to-many 3` to three plain
# `tallow receive CODE` processes (identical bytes for all), and a four-peer group chat in
# which every line reaches the three others.
. "$(dirname "$0")/lib.sh"
start_relay

# ---- one sender, three receivers
mkdir -p "$W/src"
head -c 3000000 /dev/urandom > "$W/src/data.bin"
CODE=32-rooms-harbor-violet
timeout 60 "$T" send --code $CODE --to-many 3 "$W/src/data.bin" > "$W/send.out" 2> "$W/send.err" &
S=$!; track $S
# the side that makes the code creates the room (a joiner first would make a pair room)
wait_grep 10 "created (capacity 4)" "$W/relay.log"
RS=""
for i in 1 2 3; do
    mkdir -p "$W/r$i"
    (cd "$W/r$i" && exec timeout 60 "$T" receive --yes $CODE > "$W/recv$i.out" 2> "$W/recv$i.err") &
    p=$!; track $p; RS="$RS $p"
done
wait_exit 60 $S "send --to-many"
i=0
for p in $RS; do i=$((i + 1)); wait_exit 30 $p "receiver $i"; done
for i in 1 2 3; do
    cmp "$W/src/data.bin" "$W/r$i/data.bin" || fail "receiver $i got different bytes"
done
[ "$(grep -c "^Sent 1 file" "$W/send.err")" = 3 ] || fail "the sender did not report three transfers"
grep -q "capacity 4" "$W/relay.log" || fail "the relay did not see a room of 4"

# ---- a group chat of four
CODE=33-rooms-meadow-copper
for n in a b c d; do mkfifo "$W/$n.in"; done
"$T" chat --code $CODE --capacity 4 < "$W/a.in" > "$W/a.out" 2> "$W/a.err" &
A=$!; track $A
exec 3> "$W/a.in"
wait_grep 10 "created (capacity 4)" "$W/relay.log" 2
"$T" chat $CODE < "$W/b.in" > "$W/b.out" 2> "$W/b.err" &
B=$!; track $B
exec 4> "$W/b.in"
"$T" chat $CODE < "$W/c.in" > "$W/c.out" 2> "$W/c.err" &
C=$!; track $C
exec 5> "$W/c.in"
"$T" chat $CODE < "$W/d.in" > "$W/d.out" 2> "$W/d.err" &
D=$!; track $D
exec 6> "$W/d.in"
for n in a b c d; do wait_grep 20 " joined" "$W/$n.err" 3; done

echo "line from a" >&3
echo "line from b" >&4
echo "line from c" >&5
echo "line from d" >&6
for n in a b c d; do
    for m in a b c d; do
        [ $n = $m ] && continue
        wait_grep 10 ": line from $m" "$W/$n.out"
    done
    [ "$(wc -l < "$W/$n.out")" = 3 ] || fail "$n printed other than 3 lines"
done

# leaving: /quit for some, end of input for the others; all exit 0
echo "/quit" >&3
exec 3>&-
wait_exit 10 $A "chat a"
for n in b c d; do wait_grep 10 "peer 1 left" "$W/$n.err"; done
echo "/quit" >&4
exec 4>&- 5>&- 6>&-
wait_exit 10 $B "chat b"
wait_exit 10 $C "chat c (end of input)"
wait_exit 10 $D "chat d (end of input)"
echo "rooms ok"
