#!/bin/sh
# multirelay.sh — two relays, 100 sender/receiver pairs given the relay list in different orders
# (--relay on one side, TALLOW_RELAYS on the other). Every pair must meet and transfer, both
# relays must carry rooms (counted from their TALLOW_LOG=info room events), and each room must
# have been opened on exactly one relay. Then 10 pairs with a third, dead relay in the list (5 of
# them rooms that hash to it): they move on to their next relay, on both sides alike.
set -eu
T=${TALLOW_BIN:?}
W=$(mktemp -d /tmp/tallow-multirelay.XXXXXX)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT INT TERM

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(freeport); PB=$(freeport); PDEAD=$(freeport)
A=127.0.0.1:$PA B=127.0.0.1:$PB DEAD=127.0.0.1:$PDEAD
for r in A B; do
    eval addr=\$$r
    TALLOW_LOG=info "$T" relay --listen "$addr" 2> "$W/relay$r.log" &
    PIDS="$PIDS $!"
done
for p in $PA $PB; do
    for i in $(seq 50); do ss -ltn | grep -q ":$p " && break; sleep 0.1; done
done
unset TALLOW_RELAY TALLOW_RELAYS

# pair N LIST_SENDER LIST_RECEIVER: one transfer of a small file; fails the test if it does not arrive
pair() {
    n=$1
    mkdir -p "$W/src$n" "$W/dst$n"
    echo "pair $n $(date +%s%N)" > "$W/src$n/f.txt"
    code="$n-multi-relay-pair"
    timeout 30 "$T" send --json --no-p2p --relay "$2" --code "$code" "$W/src$n/f.txt" \
        > "$W/s$n.json" 2> "$W/s$n.err" &
    sp=$!
    TALLOW_RELAYS="$3" timeout 30 "$T" receive --json --no-p2p --yes -o "$W/dst$n" "$code" \
        > "$W/r$n.json" 2> "$W/r$n.err" || { echo "FAIL: receiver $n"; cat "$W/r$n.err" "$W/s$n.err"; return 1; }
    wait $sp || { echo "FAIL: sender $n"; cat "$W/s$n.err"; return 1; }
    cmp -s "$W/src$n/f.txt" "$W/dst$n/f.txt" || { echo "FAIL: pair $n: content differs"; return 1; }
    ps=$(grep -o '"path":"relay [^"]*"' "$W/s$n.json" | head -1)
    pr=$(grep -o '"path":"relay [^"]*"' "$W/r$n.json" | head -1)
    [ -n "$ps" ] && [ "$ps" = "$pr" ] || { echo "FAIL: pair $n met on different relays: $ps / $pr"; return 1; }
}

# batches of 20 pairs in flight at once (within the relays' per-address limits)
fail=0
for batch in 0 1 2 3 4; do
    bp=""
    for k in $(seq 1 20); do
        n=$((batch * 20 + k))
        pair $n "$A,$B" "$B, $A" > "$W/pair$n.out" 2>&1 &
        bp="$bp $!"
    done
    for p in $bp; do wait $p || fail=1; done
done
cat "$W"/pair*.out
[ $fail = 0 ] || { echo "FAIL: some pairs did not complete"; exit 1; }

ra=$(grep -c "room .* paired" "$W/relayA.log" || true)
rb=$(grep -c "room .* paired" "$W/relayB.log" || true)
echo "100 pairs complete: relay A paired $ra rooms, relay B paired $rb rooms"
[ $((ra + rb)) -eq 100 ] || { echo "FAIL: expected 100 paired rooms in all, got $((ra + rb))"; exit 1; }
[ "$ra" -gt 0 ] && [ "$rb" -gt 0 ] || { echo "FAIL: one relay carried no room"; exit 1; }
# no room was opened on both relays (room tags are per relay, but each pair must create one room)
ca=$(grep -c "room .* created" "$W/relayA.log" || true)
cb=$(grep -c "room .* created" "$W/relayB.log" || true)
[ "$ca" -eq "$ra" ] && [ "$cb" -eq "$rb" ] || { echo "FAIL: rooms created without a pair (A $ca/$ra, B $cb/$rb)"; exit 1; }

# failover: a dead relay listed. Pick codes whose best relay is the dead one (and a few whose is
# not): both sides must skip it and meet on their common second choice.
printf 'local r = require "tallow.relays"\nlocal dead, live = 0, 0\nfor n = 101, 400 do\n  local c = n .. "-multi-relay-pair"\n  local best = r.pick(arg[1], c) == arg[2]\n  if (best and dead < 5) or (not best and live < 5) then\n    print(n)\n    if best then dead = dead + 1 else live = live + 1 end\n  end\nend\n' > "$W/codes.lua"
NS=$("$T" run "$W/codes.lua" "$A,$B,$DEAD" "$DEAD")
for n in $NS; do
    pair $n "$A,$B,$DEAD" "$DEAD,$B,$A" || exit 1
done
moved=0
for n in $NS; do grep -q "\"relay\":\"$DEAD\"" "$W/s$n.json" && moved=$((moved + 1)); done
[ "$moved" -ge 1 ] || { echo "FAIL: no pair had the dead relay first"; exit 1; }
echo "$(echo $NS | wc -w) pairs with a dead relay listed complete ($moved of them had it first and moved on)"
echo "multirelay ok"
