#!/bin/sh
# lan_jumbo.sh — one LAN segment with 9000-byte frames: QUIC sends datagrams as large as the
# route MTU allows (8972 bytes); when a switch port drops what exceeds 1500 bytes although both
# hosts' interfaces say 9000 (a black hole), it goes back to 1452 and the file arrives.
. "$(dirname "$0")/nat_lib.sh"
build_lan
for l in "$HA eth0" "$HB eth0" "$LAN pa" "$LAN pb" "$LAN br0"; do
    set -- $l
    ip -n "$1" link set dev "$2" mtu 9000
done
SIZE=30000000
transfer $SIZE 46-lan-jumbo-river
[ "$(final_path "$W/send.json" sent)" = direct ] || fail "sender did not go direct"
grep -q "direct 10.9.0.3:[0-9]*: datagrams of 8972 bytes" "$W/send.log" ||
    fail "no 8972-byte datagrams towards B"
grep -q "went unacknowledged" "$W/send.log" && fail "large datagrams lost on a clean segment"
fwd=$(relay_forwarded)
[ $((fwd * 100)) -lt $SIZE ] || fail "relay forwarded $fwd of $SIZE bytes (>= 1%)"

# the black hole: B drops every frame over 1500 bytes without an ICMP error, while both
# interfaces still say 9000. A segments its UDP_SEGMENT batches itself (veth would otherwise
# carry them whole, and the length match would see the batch, not the datagrams).
ip -n $HA link set dev eth0 gso_max_segs 1
ip netns exec $HB iptables -A INPUT -p udp -m length --length 1501:65535 -j DROP
transfer $SIZE 47-lan-jumbo-river
[ "$(final_path "$W/send.json" sent)" = direct ] || fail "sender did not stay direct"
grep -q "datagrams of 8972 bytes went unacknowledged; back to 1452" "$W/send.log" ||
    fail "no fallback from large datagrams"
fwd=$(relay_forwarded 2)
[ $((fwd * 100)) -lt $SIZE ] || fail "relay forwarded $fwd of $SIZE bytes (>= 1%) after the fallback"
echo "jumbo LAN: $(grep -h 'datagrams of' "$W/send.log" | sed 's/^tallow: [a-z]*: //' | tr '\n' ' ')"
