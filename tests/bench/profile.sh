#!/bin/sh
# tests/bench/profile.sh [BUILD] — where a relay-path transfer spends its time: one 1 GiB
# (PROFILE_SIZE_MB) transfer with the relay, the sender and the receiver each under
# `perf record -g` (Debian linux-perf), then the top self-cost symbols of each process and the
# split between user code, libraries and the kernel. Output in $PROFILE_DIR (/tmp/tallow-profile).
set -eu
BUILD=${1:-build}
T="$(cd "$BUILD" && pwd)/bin/tallow"
export TALLOW_LUA_DIR="${TALLOW_LUA_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/lua}"
W=${PROFILE_DIR:-/tmp/tallow-profile}
MBS=${PROFILE_SIZE_MB:-1024}
FREQ=${PROFILE_FREQ:-2000}
FLAGS=${PROFILE_FLAGS:---no-p2p}   # --allow-loopback: profile the direct QUIC path instead
CG=${PROFILE_CALLGRAPH:-fp}   # fp (-g) or dwarf (better stacks through libraries without frame pointers; use a smaller file)
command -v perf >/dev/null || { echo "profile: needs perf (apt-get install linux-perf)" >&2; exit 1; }
mkdir -p "$W"
rm -rf "$W/dst" && mkdir -p "$W/dst"
[ "$(stat -c %s "$W/src.bin" 2>/dev/null || echo 0)" = $((MBS * 1048576)) ] ||
    head -c $((MBS * 1048576)) /dev/urandom > "$W/src.bin"
cat "$W/src.bin" > /dev/null
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RP=""
cleanup() { [ -n "$RP" ] && kill -INT "$RP" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

perf record -q -F "$FREQ" --call-graph "$CG" -o "$W/relay.data" -- "$T" relay --listen 127.0.0.1:$PORT 2> "$W/relay.log" &
RP=$!
for i in $(seq 100); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done
export TALLOW_RELAY=127.0.0.1:$PORT
CODE=42-profile-apple-banana
perf record -q -F "$FREQ" --call-graph "$CG" -o "$W/send.data" -- "$T" send --json $FLAGS --code $CODE "$W/src.bin" \
    > "$W/send.json" 2> "$W/send.log" &
SP=$!
perf record -q -F "$FREQ" --call-graph "$CG" -o "$W/recv.data" -- "$T" receive --json $FLAGS --yes -o "$W/dst" $CODE \
    > "$W/recv.json" 2> "$W/recv.log"
wait $SP
kill -INT $RP; wait $RP || true; RP=""
cmp "$W/src.bin" "$W/dst/src.bin"
grep -h '"event":"sent"' "$W/send.json"
grep -h '"event":"received"' "$W/recv.json"
for p in send recv relay; do
    echo
    echo "=== $p: top symbols by self time"
    perf report -i "$W/$p.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -v '^#' | grep '%' | grep -v '^ *|' | grep -v -- '--' | head -${PROFILE_TOP:-20}
    echo "--- $p: by object"
    perf report -i "$W/$p.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep '%' |
        grep -v '^ *|' | grep -v -- '--' | head -8
done
