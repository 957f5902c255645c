#!/bin/sh
# nat_hard.sh [hard|easy] — host A behind a symmetric NAT (MASQUERADE --random-fully: a new
# random port per destination), host B behind a port-preserving one. No --stun: the relay
# announces its second STUN port (3479) when they join, so each asks the relay's two ports and
# learns its own NAT's mapping behaviour. A (the hard
# side) opens 256 sockets towards B's mapping, B probes random ports of A's address; the
# transfer must go direct through the pair a probe found. The argument says which side sends
# (controls the negotiation): "hard" (A sends, default) or "easy" (B sends).
. "$(dirname "$0")/nat_lib.sh"
WHO=${1:-hard}
if [ "$WHO" = hard ]; then build_nat --random-fully ""; else build_nat "" --random-fully; fi
# count the check datagrams (56 bytes of UDP payload: IP length 84) each NAT lets out
for ns in $NA $NB; do
    ip netns exec $ns iptables -I FORWARD 1 -i lan -o wan -p udp -m length --length 84
done
checks_out() { ip netns exec "$1" iptables -L FORWARD -v -x -n | awk '/length 84/ { print $1; exit }'; }
SIZE=20000000
transfer $SIZE 44-hard-nat-river
[ "$(final_path "$W/send.json" sent)" = direct ] || fail "sender did not go direct"
[ "$(final_path "$W/recv.json" received)" = direct ] || fail "receiver did not go direct"
fwd=$(relay_forwarded)
[ "$fwd" -lt $SIZE ] || fail "relay forwarded $fwd bytes of $SIZE"
if [ "$WHO" = hard ]; then HARDLOG=$W/send.log EASYLOG=$W/recv.log; else HARDLOG=$W/recv.log EASYLOG=$W/send.log; fi
grep -q "our NAT maps per destination" "$HARDLOG" || fail "the hard side did not learn its NAT's mapping"
grep -q "our NAT maps endpoint-independently" "$EASYLOG" || fail "the easy side did not learn its NAT's mapping"
grep -q "birthday punching, hard side" "$HARDLOG" || fail "A did not find itself the hard side"
grep -q "birthday punching, easy side" "$EASYLOG" || fail "B did not find itself the easy side"
# QUIC runs on the birthday socket whose mapped port a probe found. The hard side's endpoint has
# one more mapped port of the same kind (its ordinary check towards the easy side opened it), so
# about one run in 257 a probe finds that one: then the hard side nominates its endpoint's pair.
if ! grep -q "(birthday socket)" "$HARDLOG"; then
    grep -q "birthday probe answered" "$EASYLOG" && grep -q "p2p: nominated .*; opening QUIC" "$HARDLOG" ||
        fail "QUIC did not run on a birthday socket (nor on the endpoint's mapping a probe found)"
fi
sent=$(grep -h "birthday probe answered" "$EASYLOG" | sed 's/.*after \([0-9]*\) probes.*/\1/' | head -n 1)
[ -z "$sent" ] || [ "$sent" -le 2000 ] || fail "$sent probes"
if [ "$WHO" = hard ]; then HARDNS=$NA EASYNS=$NB; else HARDNS=$NB EASYNS=$NA; fi
nh=$(checks_out $HARDNS) ne=$(checks_out $EASYNS)
# the hard side: one check from each of 256 sockets, plus ordinary checks; the easy side at most
# 2,000 probes plus ordinary checks (a few dozen)
[ "$nh" -ge 256 ] || fail "the hard side's NAT let out only $nh checks (256 sockets?)"
[ "$nh" -le 400 ] || fail "the hard side's NAT let out $nh checks"
[ "$ne" -le 2100 ] || fail "the easy side's NAT let out $ne checks (bound 2,000 probes)"
echo "hard NAT ($WHO sends): checks out of the hard NAT $nh, of the easy NAT $ne;"
echo "hard NAT ($WHO sends): $(grep -h 'direct path up' "$W/send.log" | sed 's/^tallow: [a-z]*: //');" \
    "probes before the hit: ${sent:-none (the hard side's check got through first)}"
