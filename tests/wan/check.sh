#!/bin/sh
# check.sh — the short WAN check of `make test` (no timing gate): on the two-NAT topology with
# the link emulator on NAT A (tests/wan/link.sh), three cells. In each, the round trip really
# carries the delay (ping from host A to the relay is at least the RTT asked), and a file crosses
# the link both direct (QUIC; the relay forwards < 10 % of it) and through the relay (--no-p2p),
# intact. The second cell also has random loss, which the delay line must count.
. "$(dirname "$0")/../nat/nat_lib.sh"
LINK=$(dirname "$0")/link.sh
command -v ping >/dev/null || fail "ping is missing (iputils-ping)"
build_nat ""
export LINK_NS=$NA

SIZE=3000000
ROOM=0
cell() { # RTT LOSS RATE CODE-PREFIX
    "$LINK" "$1" "$2" "$3" || fail "link.sh $1 $2 $3"
    # delay: the fastest of 5 pings must still take the whole RTT
    min=$(ip netns exec $HA ping -n -c 5 -i 0.2 -W 3 198.51.100.1 |
        sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/.*|\1|p')
    [ -n "$min" ] || fail "no ping through the emulated link"
    awk -v m="$min" -v r="$1" 'BEGIN { exit !(m + 0 >= r * 0.98) }' ||
        fail "ping min $min ms through a ${1} ms link: the delay line is not in the path"
    transfer $SIZE "$4-direct-wan-river"
    [ "$(final_path "$W/recv.json" received)" = direct ] || fail "$1 ms/$2 %: not direct"
    ROOM=$((ROOM + 2))
    fwd=$(relay_forwarded $((ROOM - 1)))
    [ -n "$fwd" ] || fail "no forwarded count in the relay log"
    [ $((fwd * 10)) -lt $SIZE ] || fail "$1 ms/$2 %: relay forwarded $fwd of $SIZE bytes direct"
    transfer $SIZE "$4-relay-wan-river" --no-p2p
    [ "$(final_path "$W/recv.json" received)" = relay ] || fail "$1 ms/$2 %: --no-p2p not on the relay"
    echo "cell $1 ms, $2 %, $3: ping min $min ms; direct and relay transfers intact"
}
cell 40 0 50mbit 61
cell 100 1 unlimited 62
"$LINK" clear # the delay line prints its counts as it stops
grep -a "delayline:" /tmp/tallow-link-$NA.log | tail -n 1
awk '/delayline: .* dropped/ { if ($5 + 0 == 0) exit 1 }' /tmp/tallow-link-$NA.log ||
    fail "1 % loss cell: the delay line dropped nothing"
# a round trip longer than the connectivity checks' 200 ms retry interval (answers to earlier
# tries must still count)
cell 250 0 unlimited 63
"$LINK" clear
rm -f /tmp/tallow-link-$NA.log
echo "wan_check: ok"
