#!/usr/bin/env bash
# e2e resume: a 200 MiB transfer; the receiver is SIGKILLed around the middle (watching the size
# of its .tallow-part file). Rerunning both into the same destination completes byte-identical
# and moves less than 60% of the file over the wire (sender's --json "sent" event and the relay's
# own count of forwarded bytes). No .tallow-part file is left.
# Loopback moves ~400 MB/s, so when it can (root), the test runs in a private network namespace
# whose loopback is rate-limited with tc; the product runs unchanged.
set -eu
if [ -z "${E2E_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    export E2E_IN_NETNS=1
    exec unshare -n bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
if [ -n "${E2E_IN_NETNS:-}" ]; then
    ip link set lo up
    tc qdisc add dev lo root tbf rate 1gbit burst 1mb latency 200ms
    note "private netns, loopback limited to 1 Gbit/s"
else
    note "no netns: running unthrottled"
fi
# a short resume grace, so the relay tells the sender soon that the receiver is gone for good
start_relay --grace 2

size=$((200 * 1024 * 1024))
src=$E2E_TMP/src dest=$E2E_TMP/dest
mkdir -p "$src" "$dest"
mkrand "$src/big.bin" "$size"

part_size() {
    local p
    p=$(find "$dest" -maxdepth 1 -name '.big.bin.*.tallow-part' | head -n 1)
    [ -n "$p" ] && stat -c %s "$p" || echo 0
}

# ---- first run: kill the receiver when the part file passes 50%
start_send run1 --json "$src/big.bin"
"$T" receive --yes -o "$dest" "$CODE" </dev/null >"$E2E_TMP/run1.recv.out" 2>"$E2E_TMP/run1.recv.err" &
RECV_PID=$!
track "$RECV_PID"
lo=$((size * 50 / 100))
deadline=$(( $(date +%s) + 45 ))
killed_at=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    s=$(part_size)
    if [ "$s" -ge "$lo" ]; then
        kill -9 "$RECV_PID"
        killed_at=$s
        break
    fi
    kill -0 "$RECV_PID" 2>/dev/null || break
done
kill -9 "$RECV_PID" 2>/dev/null || true   # bounded: the deadline also ends it
[ "$killed_at" -gt 0 ] || { show "$E2E_TMP/run1.recv.err"; fail "receiver ended before the part file reached 50%"; }
wait "$RECV_PID" 2>/dev/null || true
after=$(part_size)
pct=$((after * 100 / size))
note "receiver killed with the part file at $((killed_at * 100 / size))% (now $pct% on disk)"
[ "$after" -gt 0 ] && [ "$after" -lt "$size" ] || fail "no partial file after the kill (size $after)"
[ ! -e "$dest/big.bin" ] || fail "the final file exists after an interrupted transfer"

# the sender notices the lost peer and fails (bounded); if it hangs, that is reported, then killed
if wait_for 30 sh -c "! kill -0 $SEND_PID"; then
    rc1=0; wait "$SEND_PID" || rc1=$?
    [ "$rc1" -ne 0 ] || { show "$E2E_TMP/run1.send.out"; show "$E2E_TMP/run1.send.err"; fail "sender exited 0 although the receiver was killed"; }
    ok "sender exited $rc1 after the receiver died: $(tail -n 1 "$E2E_TMP/run1.send.err")"
else
    kill -9 "$SEND_PID"; wait "$SEND_PID" 2>/dev/null || true
    fail "sender still running 30 s after the receiver was killed"
fi
fwd1=$(relay_forwarded)

# ---- second run into the same destination
start_send run2 --json "$src/big.bin"
run_recv run2 60 --yes --json -o "$dest" "$CODE"
finish_send run2 60
both_ok run2
cmp "$src/big.bin" "$dest/big.bin" || fail "resumed file differs"
[ -z "$(find "$dest" -name '*.tallow-part')" ] || { ls -la "$dest"; fail "stray .tallow-part left"; }
ok "resumed file is byte-identical; no .tallow-part left"

wire=$(json_field "$E2E_TMP/run2.send.out" sent wire_bytes)
resumed=$(json_field "$E2E_TMP/run2.send.out" sent resumed)
wait_for 10 sh -c "[ \$(grep -c 'bytes forwarded' '$RELAY_LOG') -ge 2 ]" || true
fwd2=$(( $(relay_forwarded) - fwd1 ))
note "rerun: wire_bytes=$wire ($((wire * 100 / size))%), resumed=$resumed, relay forwarded $fwd2 B ($((fwd2 * 100 / size))%)"
[ -n "$wire" ] && [ "$wire" -gt 0 ] || fail "no wire_bytes in the sender's sent event"
[ "$((wire + resumed))" -eq "$size" ] || fail "wire_bytes + resumed ($wire + $resumed) != size"
[ "$wire" -lt $((size * 60 / 100)) ] || fail "rerun sent $wire bytes: not less than 60% of the file"
[ "$fwd2" -gt 0 ] || { show "$RELAY_LOG"; fail "relay log shows no bytes for the rerun"; }
[ "$fwd2" -lt $((size * 60 / 100)) ] || fail "relay forwarded $fwd2 bytes for the rerun: not less than 60%"
ok "rerun moved $((wire * 100 / size))% of the file (sender) / $((fwd2 * 100 / size))% (relay)"
