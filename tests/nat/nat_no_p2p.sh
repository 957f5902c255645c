#!/bin/sh
# nat_no_p2p.sh — --no-p2p behind port-preserving NATs: the transfer completes over the relay,
# and counting rules on each NAT see not one UDP datagram from its host: none towards the other
# NAT, no STUN to the relay. A direct run first proves the same rules do count.
. "$(dirname "$0")/nat_lib.sh"
build_nat ""
# count what the host behind each NAT sends: UDP to the other NAT, STUN (UDP to the relay's
# port), and UDP of any kind
count_rules() { # ns other_nat_wan
    ip netns exec "$1" iptables -I FORWARD 1 -i lan -p udp -m comment --comment cnt_udp_any
    ip netns exec "$1" iptables -I FORWARD 1 -i lan -p udp -d 198.51.100.1 --dport $RELAY_PORT -m comment --comment cnt_stun
    ip netns exec "$1" iptables -I FORWARD 1 -i lan -p udp -d "$2" -m comment --comment cnt_peer
}
count() { # ns name -> packets
    ip netns exec "$1" iptables -L FORWARD -v -x -n | awk -v c="/* $2 */" 'index($0, c) { print $1 }'
}
zero() { for ns in $NA $NB; do ip netns exec $ns iptables -Z FORWARD; done; }
count_rules $NA 203.0.113.2
count_rules $NB 198.51.100.2

# the rules count: a run with the direct path on sees peer and STUN datagrams
transfer 2000000 43-nat-count-river
[ "$(count $NA cnt_peer)" -gt 0 ] && [ "$(count $NB cnt_peer)" -gt 0 ] || fail "counting rules saw no direct traffic"
[ "$(count $NA cnt_stun)" -gt 0 ] || fail "counting rules saw no STUN"
zero

SIZE=10000000
transfer $SIZE 44-nat-relay-only-river --no-p2p
[ "$(final_path "$W/send.json" sent)" = relay ] || fail "sender did not report relay"
[ "$(final_path "$W/recv.json" received)" = relay ] || fail "receiver did not report relay"
for ns in $NA $NB; do
    for c in cnt_peer cnt_stun cnt_udp_any; do
        n=$(count $ns $c)
        [ "$n" = 0 ] || fail "$ns: $c counted $n packets with --no-p2p"
    done
done
fwd=$(relay_forwarded 2)
[ "$fwd" -ge $SIZE ] || fail "relay forwarded only $fwd of $SIZE bytes"
echo "--no-p2p: relay forwarded $fwd bytes; UDP from the hosts: 0 to the other NAT, 0 STUN, 0 in all"
