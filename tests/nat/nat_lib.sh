# nat_lib.sh — sourced by the NAT tests: builds a small internet in network namespaces and
# removes it again. Every name carries this shell's pid, so tests may run side by side.
#
#   internet (ns I): 198.51.100.1/24 towards NAT A, 203.0.113.1/24 towards NAT B; runs the relay
#   NAT A (ns NA):   wan 198.51.100.2/24, lan 10.1.0.1/24     host A (ns HA): 10.1.0.2/24
#   NAT B (ns NB):   wan 203.0.113.2/24,  lan 10.2.0.1/24     host B (ns HB): 10.2.0.2/24
#
# Each NAT masquerades on its WAN side and drops NEW inbound connections to itself and through
# it (so a punched packet that arrives before our own went out creates no conntrack entry that
# would take the mapped port). Only addresses inside these namespaces are ever used.
set -eu
T=${TALLOW_BIN:?}
ID=$$
I=tn$ID-inet NA=tn$ID-nata NB=tn$ID-natb HA=tn$ID-hosta HB=tn$ID-hostb LAN=tn$ID-lan
NSES=""
W=$(mktemp -d /tmp/tallow-nat.XXXXXX)
RELAY_PORT=3478

nat_cleanup() {
    set +e
    for ns in $NSES; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    done
    sleep 0.2
    for ns in $NSES; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    # NAT_KEEP=DIR keeps the logs of the last run there (debugging)
    [ -z "${NAT_KEEP:-}" ] || { rm -rf "$NAT_KEEP"; cp -r "$W" "$NAT_KEEP"; }
    rm -rf "$W"
}
trap nat_cleanup EXIT INT TERM

fail() {
    echo "FAIL: $*"
    for f in "$W"/*.log "$W"/*.json "$W"/*.txt; do [ -f "$f" ] && { echo "== $f"; tail -n 40 "$f"; }; done
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || { echo "FAIL: the NAT tests need root (ip netns, iptables)"; exit 1; }
    ip netns add "tn$ID-probe" || { echo "FAIL: ip netns does not work here"; exit 1; }
    ip netns del "tn$ID-probe"
    command -v iptables >/dev/null || { echo "FAIL: iptables is missing"; exit 1; }
}

mkns() {
    ip netns add "$1"
    NSES="$NSES $1"
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
}

# link NS1 IF1 ADDR1/24 NS2 IF2 ADDR2/24
link() {
    ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$4" addr add "$6" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}

# seq_rules NS N BASE ADDR: sequential port allocation for UDP. Linux itself has none: SNAT to a
# port range without --random keeps the source port when it is in the range, else picks one
# port per source socket (hashed) and keeps it for every destination, i.e. endpoint-independent
# (tried on 6.18: 8 destinations from one socket all got the same port, 3 sockets got 3 random
# ports). So the NAT is built from N rules of the nth statistic: rule k sees the new UDP flows
# rules 0..k-1 did not take and takes every (N-k)-th of them, so new flow i gets BASE + i mod N
# whatever its destination (the nat table sees only a flow's first packet): a new port per
# destination, handed out in sequence (RFC 4787 endpoint-dependent mapping, sequential).
seq_rules() {
    {
        echo "*nat"
        k=0
        while [ $k -lt "$2" ]; do
            echo "-A POSTROUTING -o wan -p udp -m statistic --mode nth --every $(($2 - k))" \
                "--packet 0 -j SNAT --to-source $4:$(($3 + k))"
            k=$((k + 1))
        done
        echo COMMIT
    } | ip netns exec "$1" iptables-restore --noflush
}

# nat NS MODE: MODE "" (port-preserving), "--random-fully" (symmetric, random ports) or
# "seq:ADDR" (symmetric, ports in sequence from ADDR:40000, see seq_rules)
nat() {
    ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
    case $2 in
    seq:*) seq_rules "$1" 1000 40000 "${2#seq:}"; set -- "$1" "" ;;
    esac
    ip netns exec "$1" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE $2
    ip netns exec "$1" iptables -A INPUT -i wan -m conntrack --ctstate NEW -j DROP
    # a port forwarded on request (DNAT by miniupnpd) passes, as on a home router
    ip netns exec "$1" iptables -A FORWARD -i wan -m conntrack --ctstate NEW \
        -m conntrack ! --ctstate DNAT -j DROP
}

# start_miniupnpd NS LAN_CIDR UPNP(yes|no) NATPMP(yes|no): the Debian daemon (legacy iptables
# backend) as the NAT's port-mapping service; it learns its external address by STUN from the
# relay (it refuses to be told a documentation address). NAT-PMP and PCP share its switch.
start_miniupnpd() {
    command -v miniupnpd >/dev/null || fail "miniupnpd is missing (make deps)"
    command -v iptables-legacy >/dev/null || fail "iptables-legacy is missing"
    # the router's own traffic (miniupnpd's STUN) leaves unNATed, as on a real router; else it
    # sees its own random ports and calls itself "behind a symmetric NAT"
    wanip=$(ip -n "$1" -4 -o addr show dev wan | sed 's/.* inet \([0-9.]*\).*/\1/')
    ip netns exec "$1" iptables -t nat -I POSTROUTING -o wan -s "$wanip" -j ACCEPT
    x="ip netns exec $1 iptables-legacy"
    $x -t nat -N MINIUPNPD
    $x -t nat -A PREROUTING -i wan -j MINIUPNPD
    $x -t nat -N MINIUPNPD-POSTROUTING
    $x -t nat -A POSTROUTING -o wan -j MINIUPNPD-POSTROUTING
    $x -t filter -N MINIUPNPD
    $x -t filter -A FORWARD -i wan ! -o wan -j MINIUPNPD
    cat > "$W/miniupnpd-$1.conf" <<EOC
ext_ifname=wan
listening_ip=lan
port=0
enable_upnp=$3
enable_natpmp=$4
ext_perform_stun=yes
ext_stun_host=${RELAY%:*}
ext_stun_port=${RELAY#*:}
secure_mode=yes
system_uptime=yes
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
allow 1024-65535 $2 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOC
    ip netns exec "$1" /usr/sbin/miniupnpd -d -f "$W/miniupnpd-$1.conf" -P "$W/miniupnpd-$1.pid" \
        > "$W/miniupnpd-$1.log" 2>&1 &
    for i in $(seq 50); do
        grep -q -E "Listening for NAT-PMP|HTTP listening on port" "$W/miniupnpd-$1.log" && \
            { sleep 0.2; return 0; }
        sleep 0.1
    done
    fail "miniupnpd did not start"
}

# The UDP port forwards miniupnpd holds in NS (legacy nat table, chain MINIUPNPD).
mapped_rules() { ip netns exec "$1" iptables-legacy -t nat -S MINIUPNPD | grep -c -- "-p udp" || true; }

# build_nat MODE [MODE_B]: the two-NAT internet (NAT B as MODE_B when given), relay started in it
build_nat() {
    need_root
    for ns in $I $NA $NB $HA $HB; do mkns $ns; done
    ip netns exec $I sysctl -qw net.ipv4.ip_forward=1
    link $NA wan 198.51.100.2/24 $I ta 198.51.100.1/24
    link $NB wan 203.0.113.2/24 $I tb 203.0.113.1/24
    link $HA eth0 10.1.0.2/24 $NA lan 10.1.0.1/24
    link $HB eth0 10.2.0.2/24 $NB lan 10.2.0.1/24
    # the relay answers STUN from one unbound socket: make its replies to B leave from the
    # address B asked (198.51.100.1), as on a single-homed server
    ip -n $I route replace 203.0.113.0/24 dev tb src 198.51.100.1
    ip -n $NA route add default via 198.51.100.1
    ip -n $NB route add default via 203.0.113.1
    ip -n $HA route add default via 10.1.0.1
    ip -n $HB route add default via 10.2.0.1
    nat $NA "$1"
    nat $NB "${2-$1}"
    RELAY=198.51.100.1:$RELAY_PORT
    start_relay $I 0.0.0.0
}

# build_lan: one segment (a bridge in ns LAN, which also runs the relay), hosts A and B on it
build_lan() {
    need_root
    for ns in $LAN $HA $HB; do mkns $ns; done
    ip -n $LAN link add br0 type bridge
    ip -n $LAN addr add 10.9.0.1/24 dev br0
    ip -n $LAN link set br0 up
    link $HA eth0 10.9.0.2/24 $LAN pa 10.9.0.254/32
    link $HB eth0 10.9.0.3/24 $LAN pb 10.9.0.253/32
    ip -n $LAN addr flush dev pa
    ip -n $LAN addr flush dev pb
    ip -n $LAN link set pa master br0
    ip -n $LAN link set pb master br0
    RELAY=10.9.0.1:$RELAY_PORT
    start_relay $LAN 10.9.0.1
}

start_relay() {
    TALLOW_LOG=info ip netns exec "$1" "$T" relay --listen "$2:$RELAY_PORT" 2> "$W/relay.log" &
    for i in $(seq 50); do
        ip netns exec "$1" ss -ltn | grep -q ":$RELAY_PORT " && return 0
        sleep 0.1
    done
    fail "relay did not start"
}

# A second relay on port 3479 of the internet namespace: a second STUN server, so each peer can
# compare the mappings two destinations see (its NAT's mapping behaviour). Sets STUN2 to the
# --stun options naming both.
start_stun2() {
    TALLOW_LOG=info ip netns exec $I "$T" relay --listen "${1:-0.0.0.0}:3479" 2> "$W/relay2.log" &
    for i in $(seq 50); do
        ip netns exec $I ss -ltn | grep -q ":3479 " && break
        sleep 0.1
    done
    STUN2="--stun $RELAY --stun ${RELAY%:*}:3479"
}

# Prefixes each line with a timestamp (seconds since the epoch, with nanoseconds).
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done; }

# transfer SIZE CODE [options...]: sender in host A, receiver in host B; waits for both. RELAY_A /
# RELAY_B (default RELAY) and OPTS_A / OPTS_B (more options) may differ per side.
transfer() {
    size=$1 code=$2; shift 2
    rm -rf "$W/src" "$W/dst" "$W/send.rc" "$W/recv.rc"
    mkdir -p "$W/src" "$W/dst"
    head -c "$size" /dev/urandom > "$W/src/f.bin"
    ( rc=0; TALLOW_LOG=debug ip netns exec $HA timeout 60 "$T" send --relay "${RELAY_A:-$RELAY}" ${OPTS_A:-} "$@" --json \
        --code "$code" "$W/src/f.bin" 2> "$W/send.log" || rc=$?; echo $rc > "$W/send.rc" ) \
        | stamp > "$W/send.json" &
    sp=$!
    ( rc=0; TALLOW_LOG=debug ip netns exec $HB timeout 60 "$T" receive --relay "${RELAY_B:-$RELAY}" ${OPTS_B:-} "$@" --yes \
        --json -o "$W/dst" "$code" 2> "$W/recv.log" || rc=$?; echo $rc > "$W/recv.rc" ) \
        | stamp > "$W/recv.json"
    wait $sp || true
    [ "$(cat "$W/send.rc" 2>/dev/null)" = 0 ] || fail "sender exited $(cat "$W/send.rc" 2>/dev/null)"
    [ "$(cat "$W/recv.rc" 2>/dev/null)" = 0 ] || fail "receiver exited $(cat "$W/recv.rc" 2>/dev/null)"
    cmp "$W/src/f.bin" "$W/dst/f.bin" || fail "the file differs"
}

# Bytes the relay forwarded in its N-th closed room (default 1; waits up to 5 s for the line).
relay_forwarded() {
    n=${1:-1}
    for i in $(seq 50); do
        [ "$(grep -ac "closed .*bytes forwarded" "$W/relay.log")" -ge "$n" ] && break
        sleep 0.1
    done
    grep -a "closed .*bytes forwarded" "$W/relay.log" | sed -n "${n}p" | sed 's/.*: \([0-9]*\) bytes forwarded.*/\1/'
}

# final_path FILE EVENT: the path field of the final event
final_path() { grep "\"event\":\"$2\"" "$1" | sed 's/.*"path":"\([a-z]*\)".*/\1/'; }
