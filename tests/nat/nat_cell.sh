#!/bin/sh
# nat_cell.sh TYPE_A TYPE_B — one cell of the NAT matrix: host A (sender, controlling) behind a
# NAT of TYPE_A, host B (receiver) behind TYPE_B, the relay and a second STUN responder on the
# internet between them; a 1 MB transfer. Prints one line:
#   RESULT direct <ours-theirs candidate kinds> <ms until the direct path was up>
#   RESULT relay <why the direct path failed>
# and exits 0 when the transfer itself completed intact (either path). Types (RFC 4787 terms):
#   eif      endpoint-independent mapping and filtering (full cone; port preserving)
#   adf      endpoint-independent mapping, address-dependent filtering (restricted cone)
#   apdf     endpoint-independent mapping, address-and-port-dependent filtering (port-restricted)
#   edm      address-and-port-dependent mapping, random ports (symmetric, --random-fully), APDF
#   upnp     edm, with miniupnpd on the NAT granting UPnP / NAT-PMP / PCP mappings
#   cgnat    a port-restricted home NAT behind a port-restricted carrier NAT in 100.64.0.0/10
#   blocked  apdf, and a firewall that drops all UDP
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
RELAY=198.51.100.1:$RELAY_PORT
start_relay $I 0.0.0.0
start_stun2

# side NAT HOST HOME_NS N TYPE: the LAN behind NAT (10.N.0.0/24), or for cgnat the carrier
# LAN 100.64.N.0/24 with a home NAT (HOME_NS) and its LAN 10.N.0.0/24 behind it
side() {
    nx=$1 hx=$2 cg=$3 n=$4 t=$5
    if [ "$t" = cgnat ]; then
        mkns $cg
        link $cg wan 100.64.$n.2/24 $nx lan 100.64.$n.1/24
        link $hx eth0 10.$n.0.2/24 $cg lan 10.$n.0.1/24
        ip -n $cg route add default via 100.64.$n.1
        nat $cg ""
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
    apdf | cgnat) nat $nx "" ;;
    edm) nat $nx --random-fully ;;
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
side $NA $HA $CA 1 $TA
side $NB $HB $CB 2 $TB
transfer 1000000 46-matrix-cell-river $STUN2
line=$(grep '"event":"path"' "$W/send.json")
path=$(echo "$line" | sed 's/.*"path":"\([a-z]*\)".*/\1/')
if [ "$path" = direct ]; then
    echo "RESULT direct $(echo "$line" | sed 's/.*"candidates":"\([a-z-]*\)".*/\1/')" \
        "$(echo "$line" | sed 's/.*"direct_ms":\([0-9]*\).*/\1/')"
else
    echo "RESULT relay $(echo "$line" | sed 's/.*"direct_failed":"\([^"]*\)".*/\1/')"
fi
