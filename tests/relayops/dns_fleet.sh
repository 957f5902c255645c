#!/bin/sh
# dns_fleet.sh — `--relay example.org` finds a relay fleet through DNS SRV records. In a network
# namespace of its own (addresses of 198.51.100.0/24 on its loopback; /etc/netns/NAME/resolv.conf points the
# system resolver at dnsmasq there), dnsmasq publishes
#   _tallow._tcp.example.org  SRV 10 60 4433 r1.example.org   (198.51.100.11)
#                             SRV 10 40 4433 r2.example.org   (198.51.100.12)
#                             SRV 20  5 4433 r3.example.org   (198.51.100.13, the backup)
# and three real relays listen there. Checks: the resolver's answer (via tallow.dns) is what was
# published; pairs given only "example.org" meet on the first relay of their room's order (the
# same on both sides, the one whose log shows the room paired), both priority-10 relays carry
# rooms and the backup none; with r1 and r2 stopped every pair meets on r3; a name without SRV
# records is still a plain host on the default port. Needs root; fails loudly without it.
set -eu
T=${TALLOW_BIN:?}
[ "$(id -u)" = 0 ] || { echo "FAIL: dns_fleet needs root (ip netns)"; exit 1; }
command -v dnsmasq >/dev/null || { echo "FAIL: dnsmasq is missing (Debian dnsmasq-base; make deps)"; exit 1; }
N=trd$$
W=$(mktemp -d /tmp/tallow-dnsfleet.XXXXXX)
cleanup() {
    set +e
    for p in $(ip netns pids $N 2>/dev/null); do kill $p 2>/dev/null; done
    sleep 0.2
    for p in $(ip netns pids $N 2>/dev/null); do kill -9 $p 2>/dev/null; done
    ip netns del $N 2>/dev/null
    rm -rf /etc/netns/$N "$W"
}
trap cleanup EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$W"/*.log "$W"/*.json "$W"/*.err; do [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done
    exit 1
}
ip netns add $N || fail "ip netns does not work here"
mkdir -p /etc/netns/$N
echo "nameserver 198.51.100.53" > /etc/netns/$N/resolv.conf
ip -n $N link set lo up
for a in 53 11 12 13; do ip -n $N addr add 198.51.100.$a/32 dev lo; done
X="ip netns exec $N"

$X dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --user=root \
    --listen-address=198.51.100.53 --bind-interfaces --local=/example.org/ --pid-file= --log-queries --log-facility=- \
    --srv-host=_tallow._tcp.example.org,r1.example.org,4433,10,60 \
    --srv-host=_tallow._tcp.example.org,r2.example.org,4433,10,40 \
    --srv-host=_tallow._tcp.example.org,r3.example.org,4433,20,5 \
    --host-record=r1.example.org,198.51.100.11 --host-record=r2.example.org,198.51.100.12 \
    --host-record=r3.example.org,198.51.100.13 --host-record=plain.example.org,198.51.100.13 \
    2> "$W/dnsmasq.log" &
RPIDS=""
for i in 1 2 3; do
    TALLOW_LOG=info $X "$T" relay --listen 198.51.100.1$i:4433 2> "$W/relay$i.log" &
    RPIDS="$RPIDS $!"
done
for i in $(seq 50); do
    n=$($X ss -ltn | grep -c '198.51.100.1[123]:4433' || true)
    u=$($X ss -lun | grep -c '198.51.100.53:53' || true)
    [ "$n" = 3 ] && [ "$u" -ge 1 ] && break
    sleep 0.1
done
[ "$n" = 3 ] && [ "$u" -ge 1 ] || fail "relays or dnsmasq did not come up"

# 1. the system resolver's answer, as tallow.dns reads it
cat > "$W/srv.lua" <<'LUA'
local recs = assert(require("tallow.dns").srv(arg[1]))
table.sort(recs, function(a, b) return a.target < b.target end)
for _, r in ipairs(recs) do print(r.target, r.port, r.priority, r.weight) end
LUA
$X "$T" run "$W/srv.lua" _tallow._tcp.example.org > "$W/srv.txt" 2>&1 || fail "SRV lookup failed: $(cat "$W/srv.txt")"
printf 'r1.example.org\t4433\t10\t60\nr2.example.org\t4433\t10\t40\nr3.example.org\t4433\t20\t5\n' > "$W/srv.want"
cmp -s "$W/srv.txt" "$W/srv.want" || fail "SRV answer: $(cat "$W/srv.txt")"
grep -q 'query\[SRV\] _tallow._tcp.example.org' "$W/dnsmasq.log" || fail "dnsmasq saw no SRV query"

cat > "$W/order.lua" <<'LUA'
local o = assert(require("tallow.relays").order(arg[1], arg[2]))
print(table.concat(o, " "))
LUA
# pair CODE: sender and receiver given only "example.org"; prints the relay they met on
pair() {
    mkdir -p "$W/src" "$W/dst-$1"
    echo "$1" > "$W/src/f-$1.txt"
    $X timeout 30 "$T" send --json --no-p2p --relay example.org --code "$1" "$W/src/f-$1.txt" \
        > "$W/s-$1.json" 2> "$W/s-$1.err" &
    sp=$!
    $X timeout 30 "$T" receive --json --no-p2p --yes --relay example.org -o "$W/dst-$1" "$1" \
        > "$W/r-$1.json" 2> "$W/r-$1.err" || fail "receiver $1: $(cat "$W/r-$1.err")"
    wait $sp || fail "sender $1: $(cat "$W/s-$1.err")"
    cmp -s "$W/src/f-$1.txt" "$W/dst-$1/f-$1.txt" || fail "pair $1: content differs"
    ps=$(grep -o '"path":"relay [^"]*"' "$W/s-$1.json" | head -1 | sed 's/.*relay \(.*\)"/\1/')
    pr=$(grep -o '"path":"relay [^"]*"' "$W/r-$1.json" | head -1 | sed 's/.*relay \(.*\)"/\1/')
    [ -n "$ps" ] && [ "$ps" = "$pr" ] || fail "pair $1 met on different relays: '$ps' / '$pr'"
    echo "$ps"
}

# 2. eight pairs: each meets on its room's first relay; r3 (priority 20) carries none
used=""
for k in 1 2 3 4 5 6 7 8; do
    code="$k$k-apple-river-stone"
    order=$($X "$T" run "$W/order.lua" example.org "$code")
    set -- $order
    [ $# = 3 ] && [ "$3" = r3.example.org:4433 ] || fail "order for $code: $order (the backup must be last)"
    got=$(pair "$code")
    [ "$got" = "$1" ] || fail "pair $code met on $got, its order is $order"
    used="$used $got"
done
c1=$(grep -c 'room .* paired' "$W/relay1.log" || true)
c2=$(grep -c 'room .* paired' "$W/relay2.log" || true)
c3=$(grep -c 'room .* paired' "$W/relay3.log" || true)
echo "8 pairs through example.org: r1 paired $c1 rooms, r2 $c2, r3 $c3"
[ $((c1 + c2)) = 8 ] && [ "$c3" = 0 ] || fail "rooms on the wrong relays (r1 $c1, r2 $c2, r3 $c3)"
[ "$c1" -gt 0 ] && [ "$c2" -gt 0 ] || fail "one priority-10 relay carried nothing"

# 3. r1 and r2 down: the backup (priority 20) takes every room
set -- $RPIDS
kill $1 $2
wait $1 $2 2>/dev/null || true
for k in 1 2 3; do
    got=$(pair "9$k-maple-cloud-river")
    [ "$got" = r3.example.org:4433 ] || fail "with r1, r2 down a pair met on $got"
done
echo "r1 and r2 stopped: 3 pairs met on the backup r3"

# 4. a name with no SRV records is a plain host on the default port (r3 is 198.51.100.13:4433)
$X timeout 30 "$T" send --no-p2p --relay plain.example.org --code 5-stone-apple-maple --text hello \
    > /dev/null 2> "$W/plain-s.err" &
sp=$!
out=$($X timeout 30 "$T" receive --no-p2p --yes --relay plain.example.org 5-stone-apple-maple 2> "$W/plain-r.err") ||
    fail "plain host: $(cat "$W/plain-r.err")"
wait $sp || fail "plain host sender"
echo "$out" | grep -q hello || fail "plain host: text not received ($out)"
echo "dns_fleet ok"
