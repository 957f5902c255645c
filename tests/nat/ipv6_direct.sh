#!/bin/sh
# ipv6_direct.sh — two hosts whose only path to each other is IPv6, on two prefixes routed by
# one router (which runs the relay, reachable from both over IPv4 and IPv6). The router does not
# forward IPv4, so the peers' IPv4 candidates fail and the transfer goes direct over IPv6, once
# with the relay given by its IPv4 address and once by its IPv6 address. Then the router forwards
# IPv4 too: both families work, and the IPv6 pair still wins (global IPv6 ranks first).
#
#   router (ns R): 10.61.1.1/24 2001:db8:1::1/64 towards A, 10.61.2.1/24 2001:db8:2::1/64 towards B
#   host A (ns HA): 10.61.1.2/24 2001:db8:1::2/64      host B (ns HB): 10.61.2.2/24 2001:db8:2::2/64
. "$(dirname "$0")/nat_lib.sh"
need_root
R=tn$ID-r6
for ns in $R $HA $HB; do mkns $ns; done
for ns in $R $HA $HB; do ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=0 \
    net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0; done
ip netns exec $R sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=1
link $HA eth0 10.61.1.2/24 $R pa 10.61.1.1/24
link $HB eth0 10.61.2.2/24 $R pb 10.61.2.1/24
for x in "$HA eth0 2001:db8:1::2/64" "$R pa 2001:db8:1::1/64" "$HB eth0 2001:db8:2::2/64" \
    "$R pb 2001:db8:2::1/64"; do
    set -- $x
    ip netns exec $1 sysctl -qw net.ipv6.conf.$2.disable_ipv6=0
    ip -n $1 addr add $3 dev $2 nodad
done
# the relay answers STUN from one unbound socket: make its replies to B leave from the address B
# asked (10.61.1.1, 2001:db8:1::1), as on a single-homed server (see nat_lib.sh)
ip -n $R route replace 10.61.2.0/24 dev pb src 10.61.1.1
ip -n $R -6 route replace 2001:db8:2::/64 dev pb proto kernel metric 256 src 2001:db8:1::1
ip -n $HA route add default via 10.61.1.1
ip -n $HB route add default via 10.61.2.1
ip -n $HA -6 route add default via 2001:db8:1::1
ip -n $HB -6 route add default via 2001:db8:2::1
[ "$(ip netns exec $R sysctl -n net.ipv4.ip_forward)" = 0 ] || fail "the router forwards IPv4"
# A UDP datagram from A reaches B over IPv4 (the router forwards IPv4 now).
udp4_probe() {
    ip netns exec $HB timeout 5 python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.61.2.2", 9999)); s.recvfrom(16); print("ok")' > "$W/probe.txt" &
    pp=$!
    sleep 0.3
    ip netns exec $HA python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b"x", ("10.61.2.2", 9999)) for i in range(3)]'
    wait $pp || true
    grep -q ok "$W/probe.txt" || fail "A does not reach B over IPv4 with forwarding on"
}

# dual-stack relay on [::]: TCP and STUN for both families
start_relay $R "[::]"
SIZE=20000000
n=0
for RELAY in 10.61.1.1:$RELAY_PORT "[2001:db8:1::1]:$RELAY_PORT" 10.61.1.1:$RELAY_PORT; do
    n=$((n + 1))
    [ $n = 3 ] && { ip netns exec $R sysctl -qw net.ipv4.ip_forward=1; udp4_probe; }
    transfer $SIZE 6$n-lan-direct-river
    [ "$(final_path "$W/send.json" sent)" = direct ] || fail "sender did not go direct (relay $RELAY)"
    [ "$(final_path "$W/recv.json" received)" = direct ] || fail "receiver did not go direct (relay $RELAY)"
    grep -q "direct path up to \[2001:db8:2::2\]:" "$W/send.log" ||
        fail "sender not direct to B's IPv6 address (relay $RELAY)"
    grep -q "direct path up to \[2001:db8:1::2\]:" "$W/recv.log" ||
        fail "receiver not direct to A's IPv6 address (relay $RELAY)"
    grep -q "p2p: peer offers host 10.61.2.2:" "$W/send.log" ||
        fail "B's IPv4 host candidate was not offered (relay $RELAY)"
    fwd=$(relay_forwarded $n)
    [ $((fwd * 100)) -lt $SIZE ] || fail "relay forwarded $fwd of $SIZE bytes (>= 1%, relay $RELAY)"
    echo "IPv6 (relay $RELAY$([ $n = 3 ] && echo ', IPv4 forwarded too')): relay forwarded $fwd of $SIZE bytes;" \
        "$(grep -h 'direct path up' "$W/send.log" | sed 's/^tallow: info: //')"
done
