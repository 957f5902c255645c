#!/bin/sh
# loopback_direct.sh — two peers on one machine with --allow-loopback: the negotiator brings the
# direct path up, the transfer reports "direct" on both sides, the file arrives intact and the
# relay forwards less than 1% of its bytes. Then the same with --no-p2p: all through the relay.
set -eu
T=${TALLOW_BIN:?}
W=$(mktemp -d /tmp/tallow-loopdirect.XXXXXX)
RP=""
cleanup() { [ -n "$RP" ] && kill "$RP" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; for f in "$W"/*.log "$W"/*.json; do echo "== $f"; cat "$f"; done; exit 1; }

SIZE=20000000
mkdir -p "$W/src" "$W/dst1" "$W/dst2"
head -c $SIZE /dev/urandom > "$W/src/f.bin"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TALLOW_LOG=info "$T" relay --listen 127.0.0.1:$PORT 2> "$W/relay.log" &
RP=$!
for i in $(seq 50); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done
export TALLOW_RELAY=127.0.0.1:$PORT

# forwarded bytes of the n-th closed room in the relay log (waits for the line)
forwarded() {
    for i in $(seq 50); do
        n=$(grep -c "closed .*bytes forwarded" "$W/relay.log" || true)
        [ "$n" -ge "$1" ] && break
        sleep 0.1
    done
    grep "closed .*bytes forwarded" "$W/relay.log" | sed -n "$1p" | sed 's/.*: \([0-9]*\) bytes forwarded.*/\1/'
}

run() { # $1 tag, $2 code, then extra options (RECV_OPTS: the receiver's own)
    tag=$1 code=$2; shift 2
    mkdir -p "$W/dst$tag"
    TALLOW_LOG=info timeout 60 "$T" send "$@" --json --code "$code" "$W/src/f.bin" \
        > "$W/send-$tag.json" 2> "$W/send-$tag.log" &
    sp=$!
    TALLOW_LOG=info timeout 60 "$T" receive "$@" ${RECV_OPTS:-} --yes --json -o "$W/dst$tag" "$code" \
        > "$W/recv-$tag.json" 2> "$W/recv-$tag.log" || fail "$tag: receiver exited non-zero"
    wait $sp || fail "$tag: sender exited non-zero"
    cmp "$W/src/f.bin" "$W/dst$tag/f.bin" || fail "$tag: file differs"
}

run 1 31-loop-direct-stone --allow-loopback
grep -q '"event":"sent".*"path":"direct"' "$W/send-1.json" || fail "sender did not report direct"
grep -q '"event":"received".*"path":"direct"' "$W/recv-1.json" || fail "receiver did not report direct"
grep -q "direct path up" "$W/send-1.log" || fail "no direct path in the sender's log"
fwd=$(forwarded 1)
[ -n "$fwd" ] || fail "no forwarded count in the relay log"
[ $((fwd * 100)) -lt $SIZE ] || fail "relay forwarded $fwd bytes of $SIZE (>= 1%)"
echo "direct: relay forwarded $fwd of $SIZE bytes; $(grep -h 'direct path up' "$W/send-1.log")"

run 2 32-loop-relay-stone --allow-loopback --no-p2p
grep -q '"event":"sent".*"path":"relay"' "$W/send-2.json" || fail "--no-p2p sender did not report relay"
grep -q '"event":"received".*"path":"relay"' "$W/recv-2.json" || fail "--no-p2p receiver did not report relay"
grep -qi "p2p\|direct path" "$W/send-2.log" "$W/recv-2.log" && fail "--no-p2p still negotiated"
fwd=$(forwarded 2)
[ "$fwd" -ge $SIZE ] || fail "--no-p2p: relay forwarded only $fwd bytes"
echo "no-p2p: relay forwarded $fwd bytes"

RECV_OPTS=--no-p2p run 3 33-loop-mixed-stone --allow-loopback
grep -q '"event":"sent".*"path":"relay"' "$W/send-3.json" || fail "mixed: sender did not stay on the relay"
grep -q "the peer gave up: not allowed by the peer's policy" "$W/send-3.log" || fail "mixed: the sender was not told"
grep -q "direct path failed after [0-9]\{1,3\} ms" "$W/send-3.log" || fail "mixed: the sender took a second or more to give up"
echo "mixed: $(grep -h 'direct path failed' "$W/send-3.log" | sed 's/^tallow: info: //')"

# A script that does not wait: the transfer starts on the relay and moves to direct mid-way.
head -c 300000000 /dev/zero > "$W/src/big.bin"
mkdir -p "$W/dst4"
TALLOW_LOG=info timeout 60 "$T" run "$(dirname "$0")/midway.lua" send "$TALLOW_RELAY" 34-loop-midway-stone \
    "$W/src/big.bin" --allow-loopback > "$W/send-4.txt" 2> "$W/send-4.log" &
sp=$!
TALLOW_LOG=info timeout 60 "$T" run "$(dirname "$0")/midway.lua" receive "$TALLOW_RELAY" 34-loop-midway-stone \
    "$W/dst4" --allow-loopback > "$W/recv-4.txt" 2> "$W/recv-4.log" || fail "midway: receiver failed"
wait $sp || fail "midway: sender failed"
cmp "$W/src/big.bin" "$W/dst4/big.bin" || fail "midway: file differs"
grep -q "path direct" "$W/send-4.txt" || fail "midway: sender did not end direct"
grep -q "path direct" "$W/recv-4.txt" || fail "midway: receiver did not end direct"
fwd=$(forwarded 4)
[ "$fwd" -gt 1000000 ] || fail "midway: the transfer did not start on the relay ($fwd bytes forwarded)"
[ "$fwd" -lt 300000000 ] || fail "midway: everything went through the relay"
echo "midway: $fwd of 300000000 bytes through the relay before the switch"
