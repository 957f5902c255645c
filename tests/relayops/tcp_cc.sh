#!/bin/sh
# tcp_cc.sh — the relay and its clients name their TCP congestion control rather than inherit
# the machine's: BBR towards a peer elsewhere, CUBIC towards a peer on the same machine (no
# queue for BBR to keep short; its pacing timer would cost a quarter of the relay's CPU). In a
# network namespace of its own whose default is set to reno (so neither name can come from the
# default), with 198.51.100.7 on its loopback device (an address that is not 127/8): a transfer
# through a relay reached at 127.0.0.1, then one through 198.51.100.7, each receiver stopped
# with SIGSTOP mid-way while `ss -tin` reads the algorithm of every connection to the relay
# port (both ends). Then TALLOW_TCP_CC=reno (an operator's choice) wins over both. Needs root.
set -eu
unset TALLOW_TCP_CC
T=${TALLOW_BIN:?}
[ "$(id -u)" = 0 ] || { echo "FAIL: tcp_cc needs root (ip netns)"; exit 1; }
N=trcc$$
W=$(mktemp -d /tmp/tallow-tcpcc.XXXXXX)
cleanup() {
    set +e
    for p in $(ip netns pids $N 2>/dev/null); do kill -9 $p 2>/dev/null; done
    ip netns del $N 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$W"/*.log "$W"/ss.*; do [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done
    exit 1
}
ip netns add $N || fail "ip netns does not work here"
X="ip netns exec $N"
ip -n $N link set lo up
ip -n $N addr add 198.51.100.7/32 dev lo
$X sysctl -qw net.ipv4.tcp_congestion_control=reno || fail "cannot set the namespace's default"
$X sysctl -qw net.ipv4.tcp_allowed_congestion_control="reno cubic bbr" 2>/dev/null || true
$X sh -c 'grep -qw bbr /proc/sys/net/ipv4/tcp_available_congestion_control' ||
    $X modprobe tcp_bbr 2>/dev/null || true
$X sh -c 'grep -qw bbr /proc/sys/net/ipv4/tcp_available_congestion_control' ||
    fail "the kernel has no BBR (modprobe tcp_bbr)"
head -c 100000000 /dev/urandom > "$W/big.bin"
P=4433
$X env -u TALLOW_TCP_CC "$T" relay --listen 0.0.0.0:$P > "$W/relay.log" 2>&1 &
for i in $(seq 100); do $X ss -ltn | grep -q ":$P " && break; sleep 0.05; done
$X ss -ltn | grep -q ":$P " || fail "the relay did not start"

# run ADDR WANT [ENV]: one transfer through the relay at ADDR; every connection to or from the
# relay port must use WANT.
run() {
    addr=$1 want=$2
    rm -rf "$W/dst"; mkdir "$W/dst"
    $X env ${3:-} TALLOW_NO_P2P=1 TALLOW_RELAY=$addr:$P "$T" send --code 7-tcp-cc "$W/big.bin" \
        > "$W/send.log" 2>&1 &
    sp=$!
    $X env ${3:-} TALLOW_NO_P2P=1 TALLOW_RELAY=$addr:$P "$T" receive --yes -o "$W/dst" 7-tcp-cc \
        > "$W/recv.log" 2>&1 &
    rp=$!
    got=""
    for i in $(seq 200); do # up to 10 s for the data to flow
        if [ "$(du -sb "$W/dst" | cut -f1)" -gt 1000000 ]; then
            kill -STOP $rp
            $X ss -tinH "( sport = :$P or dport = :$P )" > "$W/ss.$want"
            kill -CONT $rp
            got=1
            break
        fi
        sleep 0.05
    done
    [ -n "$got" ] || fail "no data flowed through $addr"
    wait $rp || fail "receive through $addr failed"
    wait $sp || fail "send through $addr failed"
    cmp -s "$W/big.bin" "$W/dst/big.bin" || fail "the file through $addr differs"
    # ss -ti prints each connection's line then its details line (with the algorithm's name)
    n=$(grep -c ESTAB "$W/ss.$want" || true)
    [ "$n" -ge 4 ] || fail "expected 4 connection ends to the relay through $addr, saw $n"
    k=$(grep -Ec "(^|[[:space:]])$want[[:space:]]" "$W/ss.$want" || true)
    [ "$k" = "$n" ] || fail "through $addr: $k of $n connection ends use $want"
    echo "ok: through $addr all $n connection ends use $want"
}
run 127.0.0.1 cubic
run 198.51.100.7 bbr
kill $(ip netns pids $N) 2>/dev/null || true
sleep 0.3
$X env TALLOW_TCP_CC=reno "$T" relay --listen 0.0.0.0:$P > "$W/relay.log" 2>&1 &
for i in $(seq 100); do $X ss -ltn | grep -q ":$P " && break; sleep 0.05; done
run 198.51.100.7 reno TALLOW_TCP_CC=reno
echo "PASS tcp_cc"
