#!/bin/sh
# nat_cell.sh TYPE_A TYPE_B — one cell of the NAT matrix: host A (sender, controlling) behind a
# NAT of TYPE_A, host B (receiver) behind TYPE_B, the relay and a second STUN responder on the
# internet between them; a 1 MB transfer. Prints one line:
#   RESULT direct <ours-theirs candidate kinds> <ms until the direct path was up> <probes> <pred>
#   RESULT relay <ms from pairing until the relay was chosen> <why the direct path failed>
# (probes: birthday probes the easy side sent before one was answered, "-" when none were; pred:
# "predicted" when the easy side probed the ports that follow the hard side's, "-" if not) and
# exits 0 when the transfer itself completed intact (either path). Types (RFC 4787 terms):
#   eif       endpoint-independent mapping and filtering (full cone; port preserving)
#   adf       endpoint-independent mapping, address-dependent filtering (restricted cone)
#   apdf      endpoint-independent mapping, address-and-port-dependent filtering (port-restricted)
#   edm       address-and-port-dependent mapping, random ports (symmetric, --random-fully), APDF
#   seq       address-and-port-dependent mapping, ports handed out in sequence (nat_lib.sh
#             seq_rules: each new UDP flow gets the next of 40000-40999), APDF
#   upnp      edm, with miniupnpd on the NAT granting UPnP / NAT-PMP / PCP mappings
#   cgnat     a port-restricted home NAT behind a port-restricted carrier NAT in 100.64.0.0/10
#   hairpin   apdf that hairpins: a packet from the LAN to the NAT's public address and a port
#             it maps goes back in to the host holding that port, from the sender's public
#             address and port (RFC 4787 REQ-9). hairpin-hairpin puts A and B behind this one
#             NAT on two LAN segments it does not route between (a guest network, client
#             isolation), so the hairpin is their only direct path.
#   nohairpin apdf that does not hairpin. nohairpin-nohairpin puts A and B behind this one NAT on
#             one LAN segment: their direct path is host to host.
#   v6fw      IPv6 only (2001:db8::/32), no NAT, behind a stateful firewall: inbound only
#             ESTABLISHED,RELATED, everything NEW from the WAN dropped. The relay is asked over
#             IPv6; an IPv4-only peer can meet it only through the relay.
#   blocked   apdf, and a firewall that drops all UDP
. "$(dirname "$0")/nat_lib.sh"
TA=${1:?type A} TB=${2:?type B}
need_root
CA=tn$ID-cga CB=tn$ID-cgb
for ns in $I $NA $NB $HA $HB; do mkns $ns; done
ip netns exec $I sysctl -qw net.ipv4.ip_forward=1
link $NA wan 198.51.100.2/24 $I ta 198.51.100.1/24
link $NB wan 203.0.113.2/24 $I tb 203.0.113.1/24
ip -n $I route replace 203.0.113.0/24 dev tb src 198.51.100.1
ip -n $NA route add default via 198.51.100.1
ip -n $NB route add default via 203.0.113.1
RELAY=198.51.100.1:$RELAY_PORT RELAY6="[2001:db8:ff01::1]:$RELAY_PORT"
# the internet speaks IPv6 too (for v6fw): 2001:db8:ff0N::/64 towards NAT N
v6on() {
    for x in "$@"; do
        ip netns exec ${x%%:*} sysctl -qw net.ipv6.conf.all.disable_ipv6=0 \
            net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.${x#*:}.disable_ipv6=0
    done
}
v6on $I:ta $I:tb $I:lo
ip netns exec $I sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n $I addr add 2001:db8:ff01::1/64 dev ta nodad
ip -n $I addr add 2001:db8:ff02::1/64 dev tb nodad
start_relay $I "[::]"
start_stun2 "[::]"
STUN4="--stun $RELAY --stun ${RELAY%:*}:3479"
STUN6="--stun $RELAY6 --stun ${RELAY6%:*}:3479"
OPTS_A=$STUN4 OPTS_B=$STUN4

# hairpin_rules NAT PUBLIC_ADDR "LO:HI:HOST ...": a UDP packet from a LAN to PUBLIC_ADDR and a
# port in LO-HI goes to HOST (each host's ephemeral ports are set to its range, and the NAT
# preserves ports), leaving the NAT from PUBLIC_ADDR and the sender's own port
hairpin_rules() {
    for r in $3; do
        h=${r##*:} lh=${r%:*}
        ip netns exec $1 iptables -t nat -A PREROUTING -i lan+ -d $2 -p udp --dport $lh \
            -j DNAT --to-destination $h
    done
    ip netns exec $1 iptables -t nat -A POSTROUTING -o lan+ -m conntrack --ctstate DNAT \
        -s 10.0.0.0/8 -j SNAT --to-source $2
}

# side NAT HOST HOME_NS N TYPE PUBLIC_ADDR: the LAN behind NAT (10.N.0.0/24), or for cgnat the
# carrier LAN 100.64.N.0/24 with a home NAT (HOME_NS) and its LAN 10.N.0.0/24 behind it
side() {
    nx=$1 hx=$2 cg=$3 n=$4 t=$5 pub=$6
    if [ "$t" = cgnat ]; then
        mkns $cg
        link $cg wan 100.64.$n.2/24 $nx lan 100.64.$n.1/24
        link $hx eth0 10.$n.0.2/24 $cg lan 10.$n.0.1/24
        ip -n $cg route add default via 100.64.$n.1
        nat $cg ""
    elif [ "$t" = v6fw ]; then
        v6on $nx:wan $nx:lo $hx:lo
        ip -n $nx addr add 2001:db8:ff0$n::2/64 dev wan nodad
        ip -n $hx link add eth0 type veth peer name lan netns $nx
        v6on $hx:eth0 $nx:lan
        ip -n $hx addr add 2001:db8:$n::2/64 dev eth0 nodad
        ip -n $nx addr add 2001:db8:$n::1/64 dev lan nodad
        ip -n $hx link set eth0 up
        ip -n $nx link set lan up
        ip -n $hx -6 route add default via 2001:db8:$n::1
        ip -n $nx -6 route add default via 2001:db8:ff0$n::1
        ip -n $I -6 route add 2001:db8:$n::/64 via 2001:db8:ff0$n::2
        # the relay's STUN replies leave from the address asked (as for IPv4 above)
        [ $n = 1 ] || ip -n $I -6 route replace 2001:db8:$n::/64 via 2001:db8:ff0$n::2 \
            src 2001:db8:ff01::1
        ip netns exec $nx sysctl -qw net.ipv6.conf.all.forwarding=1
        x6="ip netns exec $nx ip6tables"
        $x6 -A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
        $x6 -A FORWARD -i wan -j DROP
        $x6 -A INPUT -i wan -p udp -m conntrack --ctstate NEW -j DROP
        if [ $n = 1 ]; then RELAY_A=$RELAY6 OPTS_A=$STUN6; else RELAY_B=$RELAY6 OPTS_B=$STUN6; fi
        return 0
    else
        link $hx eth0 10.$n.0.2/24 $nx lan 10.$n.0.1/24
    fi
    ip -n $hx route add default via 10.$n.0.1
    x="ip netns exec $nx iptables"
    case $t in
    eif | adf)
        nat $nx ""
        # inbound UDP goes to the one host, port for port (the mapping is port preserving)
        $x -t nat -A PREROUTING -i wan -p udp -j DNAT --to-destination 10.$n.0.2
        if [ $t = eif ]; then
            $x -I FORWARD -i wan -p udp -j ACCEPT
        else
            $x -I FORWARD -o wan -m recent --name out --set --rdest
            $x -I FORWARD -i wan -p udp -m recent --name out --rcheck --rsource -j ACCEPT
        fi
        ;;
    apdf | cgnat | nohairpin) nat $nx "" ;;
    hairpin)
        nat $nx ""
        hairpin_rules $nx $pub "1024:65535:10.$n.0.2"
        ;;
    edm) nat $nx --random-fully ;;
    seq) nat $nx seq:$pub ;;
    upnp)
        nat $nx --random-fully
        start_miniupnpd $nx 10.$n.0.0/24 yes yes
        ;;
    blocked)
        nat $nx ""
        $x -I FORWARD -p udp -j DROP
        ;;
    *) fail "unknown NAT type $t" ;;
    esac
}

# one_nat TYPE: A and B both behind NAT A. hairpin: on two LAN segments (lan 10.1.0.0/24, lan2
# 10.2.0.0/24) the NAT does not route between, reachable only through the hairpin; nohairpin: on
# one segment (a bridge), host to host.
one_nat() {
    x="ip netns exec $NA iptables"
    nat $NA ""
    if [ $1 = hairpin ]; then
        link $HA eth0 10.1.0.2/24 $NA lan 10.1.0.1/24
        link $HB eth0 10.2.0.2/24 $NA lan2 10.2.0.1/24
        ip -n $HA route add default via 10.1.0.1
        ip -n $HB route add default via 10.2.0.1
        $x -A FORWARD -i lan+ -o lan+ -m conntrack ! --ctstate DNAT -j DROP
        ip netns exec $HA sysctl -qw net.ipv4.ip_local_port_range="20000 29999"
        ip netns exec $HB sysctl -qw net.ipv4.ip_local_port_range="30000 39999"
        hairpin_rules $NA 198.51.100.2 "20000:29999:10.1.0.2 30000:39999:10.2.0.2"
    else
        ip -n $NA link add lan type bridge
        ip -n $NA addr add 10.1.0.1/24 dev lan
        ip -n $NA link set lan up
        link $HA eth0 10.1.0.2/24 $NA pa 10.1.0.254/32
        link $HB eth0 10.1.0.3/24 $NA pb 10.1.0.253/32
        for p in pa pb; do
            ip -n $NA addr flush dev $p
            ip -n $NA link set $p master lan
        done
        ip -n $HA route add default via 10.1.0.1
        ip -n $HB route add default via 10.1.0.1
    fi
}

# fw_check N: the stateful firewall of side N (v6fw) really drops what the host did not ask for:
# datagrams from the internet to the host's address do not arrive, answers to the host's own do
fw_check() {
    h=$HA; [ $1 = 1 ] || h=$HB
    ip netns exec $h timeout 4 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", 9999)); s.settimeout(1.5)
try: s.recvfrom(16); print("unasked arrived")
except socket.timeout: print("unasked dropped")
s.sendto(b"q", ("2001:db8:ff0'$1'::1", 9998))
try: s.recvfrom(16); print("answer arrived")
except socket.timeout: print("answer dropped")' > "$W/fw.txt" &
    fp=$!
    ip netns exec $I timeout 4 python3 -c '
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("2001:db8:ff0'$1'::1", 9998))
time.sleep(0.3)
for i in range(3): s.sendto(b"x", ("2001:db8:'$1'::2", 9999))
s.settimeout(3); d, a = s.recvfrom(16); s.sendto(b"y", a)' 2> /dev/null
    wait $fp || true
    grep -q "unasked dropped" "$W/fw.txt" || fail "v6fw: the firewall let an unasked datagram in"
    grep -q "answer arrived" "$W/fw.txt" || fail "v6fw: the firewall dropped an answer"
}

case "$TA $TB" in
"hairpin hairpin" | "nohairpin nohairpin") one_nat $TA ;;
*)
    side $NA $HA $CA 1 $TA 198.51.100.2
    side $NB $HB $CB 2 $TB 203.0.113.2
    ;;
esac
[ $TA != v6fw ] || fw_check 1
[ $TB != v6fw ] || fw_check 2
transfer 1000000 46-matrix-cell-river
line=$(grep '"event":"path"' "$W/send.json")
path=$(echo "$line" | sed 's/.*"path":"\([a-z]*\)".*/\1/')
if [ "$path" = direct ]; then
    probes=$(grep -h "birthday probe answered" "$W/send.log" "$W/recv.log" |
        sed 's/.*after \([0-9]*\) probes.*/\1/' | head -n 1)
    # "predicted": the easy side probed the ports after the hard side's, as allocated in sequence
    pred=-
    grep -q "sequential ports" "$W/send.log" "$W/recv.log" && pred=predicted
    echo "RESULT direct $(echo "$line" | sed 's/.*"candidates":"\([a-z-]*\)".*/\1/')" \
        "$(echo "$line" | sed 's/.*"direct_ms":\([0-9]*\).*/\1/') ${probes:--} $pred"
else
    # the JSON lines carry the time they were written (nat_lib.sh stamp)
    t0=$(grep '"event":"paired"' "$W/send.json" | cut -d' ' -f1)
    t1=$(echo "$line" | cut -d' ' -f1)
    echo "RESULT relay $(echo "($t1 - $t0) * 1000 / 1" | bc)" \
        "$(echo "$line" | sed -n 's/.*"direct_failed":"\([^"]*\)".*/\1/p')"
fi
