#!/bin/sh
# chat_cuts.sh — a chat session whose relay connections are all cut 300 times (ss -K on the
# relay's port) keeps working: after every cut one line goes across (directions alternate) and
# must arrive, in order, with nothing lost and no error. Before 64-bit epochs the 256th
# reconnection brought an epoch's keys back at record 0, and lines were silently lost after
# about 100 cuts. Needs root (ss -K destroys the sockets).
. "$(dirname "$0")/../workflows/rooms_lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root for ss -K"
CUTS=${CUTS:-300}
start_relay
CODE=32-chat-ember-willow
mkfifo "$W/a.in" "$W/b.in"
TALLOW_LOG=info "$T" chat --code $CODE < "$W/a.in" > "$W/a.out" 2> "$W/a.err" &
A=$!; track $A
exec 3> "$W/a.in"
TALLOW_LOG=info "$T" chat $CODE < "$W/b.in" > "$W/b.out" 2> "$W/b.err" &
B=$!; track $B
exec 4> "$W/b.in"
wait_grep 10 "* peer joined" "$W/a.err"
wait_grep 10 "* peer joined" "$W/b.err"
echo "before the cuts" >&3
wait_grep 10 "peer: before the cuts" "$W/b.out"

i=1
while [ $i -le $CUTS ]; do
    # both connections: each side reconnects with its resume token and the session re-keys
    ss -K dst 127.0.0.1 dport = :$RELAY_PORT > /dev/null 2>&1 || fail "ss -K failed"
    if [ $((i % 2)) = 0 ]; then
        echo "line $i from A" >&3
        wait_grep 20 "peer: line $i from A" "$W/b.out"
    else
        echo "line $i from B" >&4
        wait_grep 20 "peer: line $i from B" "$W/a.out"
    fi
    kill -0 $A 2>/dev/null || fail "chat A ended after cut $i"
    kill -0 $B 2>/dev/null || fail "chat B ended after cut $i"
    i=$((i + 1))
done
resumed=$(grep -c "resumed" "$W/relay.log" || true)
[ "$resumed" -ge "$CUTS" ] || fail "the relay saw only $resumed resumptions for $CUTS cuts"
# every line arrived once, in order
[ "$(grep -c '^peer: line ' "$W/a.out")" = $(( (CUTS + 1) / 2 )) ] || fail "A got a line twice or lost one"
[ "$(grep -c '^peer: line ' "$W/b.out")" = $(( CUTS / 2 )) ] || fail "B got a line twice or lost one"
echo "after the cuts" >&3
wait_grep 10 "peer: after the cuts" "$W/b.out"
echo "/quit" >&3
wait_exit 10 $A "chat A"
wait_exit 10 $B "chat B"
exec 3>&- 4>&-
echo "chat survived $CUTS cuts ($resumed resumptions)"
