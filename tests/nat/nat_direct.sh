#!/bin/sh
# nat_direct.sh — both peers behind port-preserving NATs (plain MASQUERADE): the checks punch
# through, the transfer goes direct on both sides, and the relay forwards < 1% of the file.
. "$(dirname "$0")/nat_lib.sh"
build_nat ""
SIZE=30000000
transfer $SIZE 41-nat-direct-river
[ "$(final_path "$W/send.json" sent)" = direct ] || fail "sender did not go direct"
[ "$(final_path "$W/recv.json" received)" = direct ] || fail "receiver did not go direct"
fwd=$(relay_forwarded)
[ -n "$fwd" ] || fail "no forwarded count in the relay log"
[ $((fwd * 100)) -lt $SIZE ] || fail "relay forwarded $fwd of $SIZE bytes (>= 1%)"
grep -q "direct path up to 203.0.113.2:" "$W/send.log" || fail "not direct to NAT B's mapping"
t0=$(grep '"event":"paired"' "$W/send.json" | cut -d' ' -f1)
t1=$(grep '"event":"path"' "$W/send.json" | cut -d' ' -f1)
echo "direct through two NATs: relay forwarded $fwd of $SIZE bytes;" \
    "pairing to direct $(echo "$t1 - $t0" | bc) s; $(grep -h 'direct path up' "$W/send.log" | sed 's/^tallow: info: //')"
