#!/usr/bin/env bash
# e2e wire capture: tcpdump records the relay port during a transfer of a file full of a known
# marker, under a distinctive name. Neither the marker, the file name nor the code phrase may
# appear in the capture. Control: a plaintext marker sent to the same port in the same capture
# must be found, no packet may be dropped and the capture must hold at least the file's size —
# so the test would fail if the transfer were readable.
set -eu
. "$(dirname "$0")/lib.sh"
command -v tcpdump >/dev/null || fail "tcpdump is not installed"
start_relay

marker="TALLOW-E2E-MARKER-$RANDOM$RANDOM-plaintext"
control="TALLOW-E2E-CONTROL-$RANDOM$RANDOM-plaintext"
name="distinctive-name-$RANDOM$RANDOM.secret"
f=$E2E_TMP/$name
# 4 MiB: the marker on every line, with a few random bytes so compression would not help
for i in $(seq 1 2000); do printf '%s %s\n' "$marker" "$i"; done >"$E2E_TMP/lines"
while [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -lt $((4 * 1024 * 1024)) ]; do
    cat "$E2E_TMP/lines" >>"$f"
    head -c 4096 /dev/urandom >>"$f"
done
size=$(stat -c %s "$f")

pcap=$E2E_TMP/wire.pcap
tcpdump -i lo -U -n -s 0 -B 131072 -w "$pcap" "tcp port $RELAY_PORT" 2>"$E2E_TMP/tcpdump.err" &
TD=$!
track "$TD"
wait_for 10 grep -q "listening on" "$E2E_TMP/tcpdump.err" || { show "$E2E_TMP/tcpdump.err"; fail "tcpdump did not start"; }

# control: the same marker construction in plaintext to the relay port (the relay drops it)
exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT"
printf '%s\n' "$control" >&3
sleep 0.2
exec 3>&-

dest=$E2E_TMP/dest
mkdir "$dest"
cd "$E2E_TMP"   # send by a bare name: the only place it could leak is the manifest
start_send wire --json "$name"
code=$CODE
run_recv wire 30 --yes -o "$dest" "$code"
finish_send wire 30
both_ok wire
cmp "$f" "$dest/$name" || fail "file differs"

sleep 0.3
kill -INT "$TD"
wait_pid 10 "$TD"
[ "$WAIT_RC" -eq 0 ] || { show "$E2E_TMP/tcpdump.err"; fail "tcpdump exited $WAIT_RC"; }
dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$E2E_TMP/tcpdump.err")
[ "${dropped:-0}" -eq 0 ] || { show "$E2E_TMP/tcpdump.err"; fail "tcpdump dropped $dropped packets: the capture is incomplete"; }
packets=$(tcpdump -r "$pcap" -n 2>/dev/null | wc -l)
bytes=$(stat -c %s "$pcap")
note "capture: $packets packets, $bytes bytes for a $size-byte file; code $code"
[ "$packets" -gt 100 ] || fail "capture holds only $packets packets"
[ "$bytes" -ge "$size" ] || fail "capture ($bytes B) is smaller than the file ($size B): not everything was captured"

grep -aqF "$control" "$pcap" || fail "control: the plaintext marker is not in the capture (capture/grep broken)"
ok "control: plaintext sent to the relay port is visible in the capture"
! grep -aqF "$marker" "$pcap" || fail "the file's contents (marker) are visible on the wire"
! grep -aqF "TALLOW-E2E-MARKER" "$pcap" || fail "part of the marker is visible on the wire"
! grep -aqF "$name" "$pcap" || fail "the file name is visible on the wire"
! grep -aqF "$code" "$pcap" || fail "the code phrase is visible on the wire"
for w in $(echo "$code" | tr '-' ' ' | cut -d' ' -f2-); do
    ! grep -aqF -- "-$w" "$pcap" || fail "a code word ($w) is visible on the wire"
done
ok "neither marker, file name nor code phrase on the wire"
