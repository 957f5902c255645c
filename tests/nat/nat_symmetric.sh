#!/bin/sh
# nat_symmetric.sh — both peers behind symmetric NATs (MASQUERADE --random-fully): every check
# fails, the negotiator gives up within its bound, and the transfer completes over the relay
# with its first data byte less than 6 s after pairing.
. "$(dirname "$0")/nat_lib.sh"
build_nat --random-fully
SIZE=20000000
transfer $SIZE 42-nat-symmetric-river
[ "$(final_path "$W/send.json" sent)" = relay ] || fail "sender did not report relay"
[ "$(final_path "$W/recv.json" received)" = relay ] || fail "receiver did not report relay"
grep -q "direct path failed" "$W/send.log" || fail "the sender never gave up on the direct path"
for f in send recv; do
    grep '"event":"path"' "$W/$f.json" | grep -q '"direct_failed":"[^"]' || fail "$f: no direct_failed reason in --json"
done
fwd=$(relay_forwarded)
[ "$fwd" -ge $SIZE ] || fail "relay forwarded only $fwd of $SIZE bytes"
t0=$(grep '"event":"paired"' "$W/send.json" | cut -d' ' -f1)
t1=$(grep -E '"event":"(progress|done)"' "$W/recv.json" | grep -v '"bytes":0,' | head -n 1 | cut -d' ' -f1)
[ -n "$t0" ] && [ -n "$t1" ] || fail "missing events"
dt=$(echo "$t1 - $t0" | bc)
[ "$(echo "$dt < 6" | bc)" = 1 ] || fail "first data byte $dt s after pairing (>= 6 s)"
echo "symmetric NATs: fell back to the relay; first data $dt s after pairing;" \
    "$(grep -h 'direct path failed' "$W/send.log" | sed 's/^tallow: info: //')"
