#!/bin/sh
# nat_cut.sh — the direct path dies mid-transfer (NAT A starts dropping all UDP): once the
# sender's QUIC link hears nothing for 3 RTTs + 0.8 s with data in flight (the quic plugin's
# watchdog; QUIC's own idle timeout is 30 s) the session goes back to the relay under fresh keys,
# the transfer resynchronises from the receiver's position and the file arrives intact.
. "$(dirname "$0")/nat_lib.sh"
build_nat ""
SIZE=300000000
mkdir -p "$W/src" "$W/dst"
head -c $SIZE /dev/zero > "$W/src/f.bin"
( rc=0; TALLOW_LOG=info ip netns exec $HA timeout 120 "$T" send --relay "$RELAY" --json \
    --code 46-cut-direct-river "$W/src/f.bin" > "$W/send.json" 2> "$W/send.log" || rc=$?
  echo $rc > "$W/send.rc" ) &
sp=$!
( rc=0; TALLOW_LOG=info ip netns exec $HB timeout 120 "$T" receive --relay "$RELAY" --yes --json \
    -o "$W/dst" 46-cut-direct-river > "$W/recv.json" 2> "$W/recv.log" || rc=$?
  echo $rc > "$W/recv.rc" ) &
rp=$!
for i in $(seq 100); do
    grep -q "direct path up" "$W/send.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "direct path up" "$W/send.log" || fail "never went direct"
sleep 0.5
ip netns exec $NA iptables -I FORWARD 1 -p udp -j DROP
wait $sp || true
wait $rp || true
[ "$(cat "$W/send.rc")" = 0 ] || fail "sender exited $(cat "$W/send.rc")"
[ "$(cat "$W/recv.rc")" = 0 ] || fail "receiver exited $(cat "$W/recv.rc")"
cmp "$W/src/f.bin" "$W/dst/f.bin" || fail "the file differs"
grep -q "direct path lost" "$W/send.log" || fail "the sender never noticed the cut"
grep -q "with .* bytes in flight .*: path dead" "$W/send.log" ||
    fail "the cut was not found by the dead-path watchdog (QUIC's idle timeout instead?)"
[ "$(final_path "$W/send.json" sent)" = relay ] || fail "sender did not end on the relay"
fwd=$(relay_forwarded)
[ "$fwd" -gt 0 ] && [ "$fwd" -lt $((SIZE + SIZE / 10)) ] || fail "relay forwarded $fwd bytes"
echo "direct path cut mid-transfer: finished over the relay ($fwd bytes forwarded after the cut);" \
    "$(grep -h 'path dead' "$W/send.log" | sed 's/^tallow: warning: //')"
