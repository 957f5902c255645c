#!/bin/sh
# nat_slow_udp.sh — a direct path far slower than the relay goes back to the relay. NAT A polices
# UDP (iptables hashlimit: 300 packets/s, GRO batches counting once; the rest dropped) while TCP goes
# unshaped, as on a network that throttles UDP. The direct path still comes up (the checks and
# the QUIC handshake fit in the allowance), then carries the transfer slowly; after 10 s of that
# the sender times the relay with a probe (filler on the relay, answered over the direct path),
# finds it faster and leaves the direct path; the transfer resynchronises over the relay and the
# file arrives intact. Prints (a figure, not a gate) when the sender went back and the whole time.
. "$(dirname "$0")/nat_lib.sh"
build_nat ""
ip netns exec $NA iptables -I FORWARD 1 -p udp -m hashlimit --hashlimit-above 300/sec \
    --hashlimit-burst 60 --hashlimit-name slowudp -j DROP || fail "no hashlimit match in iptables"
SIZE=80000000
t0=$(date +%s%N)
transfer $SIZE 47-slow-direct-river
ms=$(echo "$(date +%s%N) $t0" | awk '{printf "%d", ($1 - $2) / 1e6}')
grep -q "direct path up" "$W/send.log" || fail "the direct path never came up (the policer too strict?)"
grep -q "back to the relay" "$W/send.log" || fail "the sender never went back to the relay"
grep -q "the peer left the direct path\|the peer closed the direct path" "$W/recv.log" ||
    fail "the receiver was not told"
[ "$(final_path "$W/send.json" sent)" = relay ] || fail "sender did not end on the relay"
[ "$(final_path "$W/recv.json" received)" = relay ] || fail "receiver did not end on the relay"
fwd=$(relay_forwarded)
[ "$fwd" -gt $((SIZE / 2)) ] || fail "the relay forwarded only $fwd bytes"
echo "UDP policed to 300 packets/s: $(grep -h 'back to the relay' "$W/send.log" | sed 's/^tallow: //');" \
    "80 MB in $ms ms, $fwd bytes through the relay"
