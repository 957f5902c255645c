#!/bin/sh
# lan_direct.sh — both hosts on one LAN segment, no NAT: the direct path comes up over the host
# candidates and the relay forwards < 1% of the file.
. "$(dirname "$0")/nat_lib.sh"
build_lan
SIZE=30000000
transfer $SIZE 45-lan-direct-river
[ "$(final_path "$W/send.json" sent)" = direct ] || fail "sender did not go direct"
[ "$(final_path "$W/recv.json" received)" = direct ] || fail "receiver did not go direct"
grep -q "direct path up to 10.9.0.3:" "$W/send.log" || fail "not direct to B's host candidate"
fwd=$(relay_forwarded)
[ $((fwd * 100)) -lt $SIZE ] || fail "relay forwarded $fwd of $SIZE bytes (>= 1%)"
echo "LAN: direct over host candidates; relay forwarded $fwd of $SIZE bytes;" \
    "$(grep -h 'direct path up' "$W/send.log" | sed 's/^tallow: info: //')"
