#!/bin/sh
# End-to-end transfer under valgrind (CTest label `valgrind`): a relay on loopback, then a sender
# and a receiver of a small file, both under memcheck (any error, or a definite leak, fails).
# Checks both exit statuses and that the received bytes are identical.
#   valgrind_transfer.sh BUILD_DIR
set -u
T=$(cd "$1" && pwd)/bin/tallow
CODE=12-apple-banana-cherry
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tallow-vg.XXXXXX")
relay_pid=
cleanup() {
    [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "valgrind_transfer: $*" >&2
    for f in "$tmp"/*.log "$tmp"/*.out; do
        [ -s "$f" ] && { echo "---- $f"; tail -n 60 "$f"; }
    done
    exit 1
}

head -c 200000 /dev/urandom >"$tmp/small.bin"
mkdir "$tmp/dest"

# a free port: try a few, the relay exits at once when it cannot listen
port=
for i in 1 2 3 4 5 6 7 8; do
    p=$((20000 + ($$ * 31 + i * 4099) % 40000))
    "$T" relay --listen "127.0.0.1:$p" >"$tmp/relay.out" 2>&1 &
    relay_pid=$!
    n=0
    while [ $n -lt 50 ]; do
        grep -q "listening" "$tmp/relay.out" 2>/dev/null && break
        kill -0 "$relay_pid" 2>/dev/null || break
        sleep 0.1
        n=$((n + 1))
    done
    if grep -q "listening" "$tmp/relay.out" && kill -0 "$relay_pid" 2>/dev/null; then
        port=$p
        break
    fi
    kill "$relay_pid" 2>/dev/null
    wait "$relay_pid" 2>/dev/null
    relay_pid=
done
[ -n "$port" ] || fail "no relay could listen"

VG="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite"
export TALLOW_RELAY="127.0.0.1:$port"
(cd "$tmp" && timeout 150 $VG --log-file="$tmp/send-vg.log" "$T" send --code "$CODE" small.bin \
    >"$tmp/send.out" 2>&1; echo $? >"$tmp/send.rc") &
send_pid=$!
timeout 150 $VG --log-file="$tmp/recv-vg.log" "$T" receive --yes -o "$tmp/dest" "$CODE" \
    >"$tmp/recv.out" 2>&1
recv_rc=$?
wait "$send_pid"
send_rc=$(cat "$tmp/send.rc")
[ "$send_rc" = 0 ] || fail "sender exited with $send_rc"
[ "$recv_rc" = 0 ] || fail "receiver exited with $recv_rc"
cmp "$tmp/small.bin" "$tmp/dest/small.bin" || fail "received bytes differ"
grep -h "ERROR SUMMARY" "$tmp/send-vg.log" "$tmp/recv-vg.log"
echo "valgrind_transfer: ok (port $port)"
