#!/bin/sh
# relay_reconnect.sh — a transfer survives its relay connections being cut mid-way: the relay
# transport reconnects with its resume token, the session moves to fresh keys, and the transfer
# resynchronises from the receiver's position. Needs root (ss -K destroys the sockets).
set -eu
T=${TALLOW_BIN:?}
W=$(mktemp -d /tmp/tallow-reconnect.XXXXXX)
RP=""
cleanup() { [ -n "$RP" ] && kill "$RP" 2>/dev/null; pkill -P $$ 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT INT TERM
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root for ss -K"; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/src" "$W/dst"
head -c 400000000 /dev/urandom > "$W/src/big.bin"
TALLOW_LOG=info "$T" relay --listen 127.0.0.1:$PORT 2> "$W/relay.log" &
RP=$!
for i in $(seq 50); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done
export TALLOW_RELAY=127.0.0.1:$PORT
CODE=21-reconnect-river-stone
TALLOW_LOG=info timeout 120 "$T" send --json --code $CODE "$W/src/big.bin" > "$W/send.json" 2> "$W/send.log" &
SP=$!
TALLOW_LOG=info timeout 120 "$T" receive --yes --json -o "$W/dst" $CODE > "$W/recv.json" 2> "$W/recv.log" &
RCP=$!

# cut every client connection to the relay once some data has arrived
cut=0
for i in $(seq 400); do
    sz=$(stat -c %s "$W"/dst/.big.bin.*.tallow-part 2>/dev/null || echo 0)
    if [ "$sz" -gt 40000000 ]; then
        ss -K dst 127.0.0.1 dport = :$PORT >/dev/null 2>&1 || true
        cut=1
        break
    fi
    sleep 0.02
done
wait $SP || { echo "FAIL: sender exited non-zero"; cat "$W/send.log"; exit 1; }
wait $RCP || { echo "FAIL: receiver exited non-zero"; cat "$W/recv.log"; exit 1; }
[ $cut = 1 ] || { echo "FAIL: the transfer finished before the connections could be cut"; exit 1; }
cmp "$W/src/big.bin" "$W/dst/big.bin"
grep -q "interrupted; resuming" "$W/send.log" "$W/recv.log" || {
    echo "FAIL: no reconnection happened"; cat "$W/send.log" "$W/recv.log"; exit 1; }
ls -a "$W/dst" | grep -q tallow-part && { echo "FAIL: stray partial file"; exit 1; }
echo "reconnect ok: $(grep -h '"event":"sent"' "$W/send.json")"
