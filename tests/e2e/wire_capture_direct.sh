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
. "$(dirname "$0")/capture_lib.sh"
unset TALLOW_NO_P2P  # lib.sh keeps the others on the relay: this one is about the direct path
start_relay

marker="TALLOW-E2E-DMARKER-$RANDOM$RANDOM-plaintext"
control="TALLOW-E2E-DCONTROL-$RANDOM$RANDOM-plaintext"
name="distinctive-direct-$RANDOM$RANDOM.secret"
f=$E2E_TMP/$name
marker_file "$f" "$marker"
size=$(stat -c %s "$f")
capture_start "udp or tcp port $RELAY_PORT"

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

capture_stop "$size"
capture_clean "on the direct path" "$control" "$marker" "TALLOW-E2E-DMARKER" "$name" "$code"
