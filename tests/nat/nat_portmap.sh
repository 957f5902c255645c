#!/bin/sh
# nat_portmap.sh MODE — both peers behind symmetric NATs (MASQUERADE --random-fully), where
# without help every check fails (nat_symmetric). NAT A runs miniupnpd, the Debian UPnP IGD /
# NAT-PMP / PCP daemon:
#   upnp | natpmp | pcp  the sender asks with that one protocol (TALLOW_PORTMAP); the gateway
#                        grants a mapping, the sender offers it as a "mapped" candidate, the
#                        transfer goes direct; the mapping is renewed (forced every 50 ms: well
#                        before a 20 MB transfer on these links ends) and is gone from the
#                        gateway once the sender exits.
#   none                 NAT A's gateway runs no mapping service: the plugin gives up within its
#                        bound and the transfer completes on the relay.
#   sigint               natpmp; the sender is interrupted (SIGINT) mid-session, the receiver
#                        waiting at its accept question, once the mapping was renewed (the
#                        session stays up, so this check does not race the transfer): the
#                        mapping is deleted before it exits.
#   nop2p                miniupnpd runs, the sender says --no-p2p: not one packet reaches the
#                        gateway's mapping ports (tcpdump on its LAN side), relay only.
. "$(dirname "$0")/nat_lib.sh"
MODE=${1:?mode}
build_nat --random-fully
SIZE=20000000
OPTS=""
case $MODE in
upnp) start_miniupnpd $NA 10.1.0.0/24 yes no ;;
natpmp | pcp | nop2p | sigint) start_miniupnpd $NA 10.1.0.0/24 no yes ;;
none) ;;
*) fail "unknown mode $MODE" ;;
esac
case $MODE in
upnp | natpmp | pcp) export TALLOW_PORTMAP=$MODE TALLOW_PORTMAP_RENEW_MS=50 ;;
nop2p)
    OPTS=--no-p2p
    ip netns exec $NA tcpdump -l -n -i lan "udp port 5351 or udp port 1900 or (tcp and dst host 10.1.0.1)" \
        > "$W/tcpdump.txt" 2> "$W/tcpdump.log" &
    for i in $(seq 50); do grep -q "listening on" "$W/tcpdump.log" && break; sleep 0.1; done
    ;;
esac
# tallow's pid in namespace NS
tallow_pid() { for p in $(ip netns pids "$1"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = tallow ] && echo $p; done; }
if [ "$MODE" = sigint ]; then
    head -c $SIZE /dev/urandom > "$W/f.bin"
    # a background job of a script starts with SIGINT ignored: give it back its default
    TALLOW_PORTMAP=natpmp TALLOW_PORTMAP_RENEW_MS=200 TALLOW_LOG=debug ip netns exec $HA env --default-signal=INT "$T" send --relay "$RELAY" \
        --code 43-portmap-mode-river "$W/f.bin" > /dev/null 2> "$W/send.log" &
    sp=$!
    # the receiver waits at its accept question (no --yes, a silent stdin): the session stays up
    mkfifo "$W/in"
    exec 3<> "$W/in"
    TALLOW_LOG=debug ip netns exec $HB "$T" receive --relay "$RELAY" -o "$W" \
        43-portmap-mode-river < "$W/in" > "$W/recv.txt" 2> "$W/recv.log" &
    for i in $(seq 100); do grep -q "gather-portmap: mapped" "$W/send.log" && break; sleep 0.05; done
    grep -q "gather-portmap: mapped" "$W/send.log" || fail "no mapping"
    [ "$(mapped_rules $NA)" -ge 1 ] || fail "the gateway holds no mapping"
    for i in $(seq 100); do grep -q "gather-portmap: renewed via natpmp" "$W/send.log" && break; sleep 0.05; done
    grep -q "gather-portmap: renewed via natpmp" "$W/send.log" || fail "the mapping was never renewed in 5 s"
    kill -INT $(tallow_pid $HA)
    rc=0
    wait $sp || rc=$?
    kill -KILL $(tallow_pid $HB) 2> /dev/null || true
    [ $rc -ne 0 ] || fail "the interrupted sender exited 0"
    grep -q "signal 2: deleting the port mappings" "$W/send.log" || fail "no deletion on SIGINT"
    [ "$(mapped_rules $NA)" = 0 ] || fail "the gateway still holds the mapping after SIGINT"
    echo "sigint: the mapping was renewed; the sender exited $rc and the gateway holds no mapping"
    exit 0
fi
transfer $SIZE 43-portmap-mode-river $OPTS
fwd=$(relay_forwarded)
case $MODE in
upnp | natpmp | pcp)
    grep -q "gather-portmap: mapped 198.51.100.2:[0-9]* via $MODE" "$W/send.log" ||
        fail "no $MODE mapping"
    grep -q "peer offers mapped 198.51.100.2:" "$W/recv.log" || fail "the receiver got no mapped candidate"
    [ "$(final_path "$W/send.json" sent)" = direct ] || fail "sender did not go direct"
    [ "$(final_path "$W/recv.json" received)" = direct ] || fail "receiver did not go direct"
    [ "$fwd" -lt $SIZE ] || fail "relay forwarded $fwd bytes of $SIZE"
    grep -q "gather-portmap: renewed via $MODE" "$W/send.log" || fail "the mapping was never renewed"
    grep -q "gather-portmap: deleted the $MODE mapping" "$W/send.log" || fail "no deletion logged"
    n=1
    for i in $(seq 20); do n=$(mapped_rules $NA); [ "$n" = 0 ] && break; sleep 0.1; done
    [ "$n" = 0 ] || fail "the gateway still holds $n mapping(s) after the sender exited"
    echo "$MODE: $(grep -h 'gather-portmap: mapped' "$W/send.log" | sed 's/^tallow: [a-z]*: //');" \
        "$(grep -h 'direct path up' "$W/send.log" | sed 's/^tallow: [a-z]*: //')"
    ;;
none | nop2p)
    [ "$(final_path "$W/send.json" sent)" = relay ] || fail "sender did not report relay"
    [ "$fwd" -ge $SIZE ] || fail "relay forwarded only $fwd of $SIZE bytes"
    ;;
esac
if [ "$MODE" = none ]; then
    line=$(grep -h "gather-portmap: no mapping after" "$W/send.log") || fail "the plugin never gave up"
    ms=$(echo "$line" | sed 's/.*no mapping after \([0-9]*\) ms.*/\1/')
    [ "$ms" -le 1600 ] || fail "gave up only after $ms ms"
    echo "none: $line"
fi
if [ "$MODE" = nop2p ]; then
    sleep 0.3
    grep -q "gather-portmap" "$W/send.log" && fail "the plugin ran under --no-p2p"
    n=$(grep -c . "$W/tcpdump.txt" || true)
    [ "$n" = 0 ] || fail "$n packets reached the gateway's mapping service under --no-p2p"
    echo "nop2p: no packet to the gateway's mapping ports; relay carried $fwd bytes"
fi
