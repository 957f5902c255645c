#!/usr/bin/env bash
# e2e wire capture of the direct path: tcpdump records UDP on loopback (and the relay's port: a
# transfer may begin there before QUIC is up) during a direct transfer
# (QUIC, --allow-loopback) of a file full of a known marker. On the direct path the session no
# longer seals file data a second time (QUIC's TLS 1.3 alone encrypts it), so this is what shows
# that nothing of it travels in clear: neither the marker, the file name nor the code phrase may
# be in the capture. Control: a plaintext marker sent over UDP on loopback in the same capture must
# be found, no packet may be dropped, and the capture must hold at least the file's size.
set -eu
. "$(dirname "$0")/lib.sh"
command -v tcpdump >/dev/null || fail "tcpdump is not installed"
unset TALLOW_NO_P2P  # lib.sh keeps the others on the relay: this one is about the direct path
start_relay

marker="TALLOW-E2E-DMARKER-$RANDOM$RANDOM-plaintext"
control="TALLOW-E2E-DCONTROL-$RANDOM$RANDOM-plaintext"
name="distinctive-direct-$RANDOM$RANDOM.secret"
f=$E2E_TMP/$name
for i in $(seq 1 2000); do printf '%s %s\n' "$marker" "$i"; done >"$E2E_TMP/lines"
while [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -lt $((4 * 1024 * 1024)) ]; do
    cat "$E2E_TMP/lines" >>"$f"
    head -c 4096 /dev/urandom >>"$f"
done
size=$(stat -c %s "$f")

pcap=$E2E_TMP/wire.pcap
tcpdump -i lo -U --immediate-mode -n -s 0 -B 262144 -w "$pcap" "udp or tcp port $RELAY_PORT" 2>"$E2E_TMP/tcpdump.err" &
TD=$!
track "$TD"
wait_for 10 grep -q "listening on" "$E2E_TMP/tcpdump.err" || { show "$E2E_TMP/tcpdump.err"; fail "tcpdump did not start"; }

# control: the same marker construction in plaintext over UDP on loopback (nobody listens)
printf '%s\n' "$control" >"/dev/udp/127.0.0.1/9" || true

dest=$E2E_TMP/dest
mkdir "$dest"
cd "$E2E_TMP"
start_send wire --json --allow-loopback "$name"
code=$CODE
run_recv wire 30 --json --allow-loopback --yes -o "$dest" "$code"
finish_send wire 30
both_ok wire
cmp "$f" "$dest/$name" || fail "file differs"
grep -q '"path":"direct"' "$E2E_TMP/wire.recv.out" || { show "$E2E_TMP/wire.recv.out"; fail "the transfer did not go direct"; }

# tcpdump drops what it has not written yet when interrupted: wait until the capture stops
# growing (3 looks 0.2 s apart with no change; at most 10 s)
prev=-1 same=0
for i in $(seq 50); do
    cur=$(stat -c %s "$pcap")
    if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
    [ "$same" -ge 3 ] && break
    prev=$cur
    sleep 0.2
done
kill -INT "$TD"
wait_pid 10 "$TD"
[ "$WAIT_RC" -eq 0 ] || { show "$E2E_TMP/tcpdump.err"; fail "tcpdump exited $WAIT_RC"; }
dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$E2E_TMP/tcpdump.err")
[ "${dropped:-0}" -eq 0 ] || { show "$E2E_TMP/tcpdump.err"; fail "tcpdump dropped $dropped packets: the capture is incomplete"; }
bytes=$(stat -c %s "$pcap")
note "capture: $bytes bytes for a $size-byte file; code $code"
[ "$bytes" -ge "$size" ] || fail "capture ($bytes B) is smaller than the file ($size B): not everything was captured"

grep -aqF "$control" "$pcap" || fail "control: the plaintext marker is not in the capture (capture/grep broken)"
ok "control: plaintext UDP on loopback is visible in the capture"
! grep -aqF "$marker" "$pcap" || fail "the file's contents (marker) are visible on the direct path"
! grep -aqF "TALLOW-E2E-DMARKER" "$pcap" || fail "part of the marker is visible on the direct path"
! grep -aqF "$name" "$pcap" || fail "the file name is visible on the direct path"
! grep -aqF "$code" "$pcap" || fail "the code phrase is visible on the direct path"
ok "direct path: neither marker, file name nor code phrase on the wire"
