#!/bin/sh
# nat_cut.sh — the direct path dies mid-transfer (NAT A starts dropping all UDP): once the
# sender's QUIC link hears nothing for 3 RTTs + 0.6 s with data in flight (the quic plugin's
# watchdog; QUIC's own idle timeout is 30 s) the session goes back to the relay under fresh keys,
# the transfer resynchronises from the receiver's position and the file arrives intact. Prints
# (a figure, not a gate) how long after the cut the sender gave the path up and the receiver's
# file grew again past its size at that moment: its first whole chunk (256 KiB) over the relay,
# which on a long link takes the relay connection's TCP slow start (about 5 RTTs from idle).
# CUT_LINK="RTT LOSS RATE" (e.g. "100 0 unlimited") puts tests/wan/link.sh's link on NAT A first.
. "$(dirname "$0")/nat_lib.sh"
build_nat ""
if [ -n "${CUT_LINK:-}" ]; then
    # shellcheck disable=SC2086 # three words
    LINK_NS=$NA TALLOW_BIN=$T "$(dirname "$0")/../wan/link.sh" $CUT_LINK > /dev/null ||
        fail "link.sh $CUT_LINK"
fi
SIZE=300000000
mkdir -p "$W/src" "$W/dst"
head -c $SIZE /dev/zero > "$W/src/f.bin"
( rc=0; TALLOW_LOG=${CUT_LOG:-info} ip netns exec $HA timeout 120 "$T" send --relay "$RELAY" --json \
    --code 46-cut-direct-river "$W/src/f.bin" > "$W/send.json" 2> "$W/send.log" || rc=$?
  echo $rc > "$W/send.rc" ) &
sp=$!
( rc=0; TALLOW_LOG=${CUT_LOG:-info} ip netns exec $HB timeout 120 "$T" receive --relay "$RELAY" --yes --json \
    -o "$W/dst" 46-cut-direct-river > "$W/recv.json" 2> "$W/recv.log" || rc=$?
  echo $rc > "$W/recv.rc" ) &
rp=$!
for i in $(seq 100); do
    grep -q "direct path up" "$W/send.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "direct path up" "$W/send.log" || fail "never went direct"
sleep 0.5
part_size() { stat -c %s "$W"/dst/.f.bin.*.tallow-part 2> /dev/null || echo 0; }
ms_since() { echo "$(date +%s%N) $1" | awk '{printf "%d", ($1 - $2) / 1e6}'; }
t0=$(date +%s%N)
ip netns exec $NA iptables -I FORWARD 1 -p udp -j DROP
lost_ms=- relay_ms=- grow_from=
for i in $(seq 1000); do # at most about 10 s; the transfer goes on meanwhile
    if [ -z "$grow_from" ] && grep -q "direct path lost" "$W/send.log"; then
        lost_ms=$(ms_since $t0)
        grow_from=$(($(part_size) + 1))
    fi
    if [ -n "$grow_from" ]; then
        sz=$(part_size)
        [ "$sz" -ge "$grow_from" ] && { relay_ms=$(ms_since $t0); break; }
        [ -e "$W/dst/f.bin" ] && break
    fi
    sleep 0.01
done
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
echo "direct path cut mid-transfer: given up ${lost_ms} ms after the cut, first chunk written from" \
    "the relay after ${relay_ms} ms; finished over the relay ($fwd bytes forwarded after the cut);" \
    "$(grep -h 'path dead' "$W/send.log" | sed 's/^tallow: warning: //')"
