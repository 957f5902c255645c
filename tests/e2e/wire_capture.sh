#!/usr/bin/env bash
# e2e wire capture: tcpdump records the relay port during a transfer of a file full of a known
# marker, under a distinctive name. Neither the marker, the file name nor the code phrase may
# appear in the capture. Control: a plaintext marker sent to the same port in the same capture
# must be found, no packet may be dropped and the capture must hold at least the file's size —
# so the test would fail if the transfer were readable.
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/capture_lib.sh"
start_relay

marker="TALLOW-E2E-MARKER-$RANDOM$RANDOM-plaintext"
control="TALLOW-E2E-CONTROL-$RANDOM$RANDOM-plaintext"
name="distinctive-name-$RANDOM$RANDOM.secret"
f=$E2E_TMP/$name
marker_file "$f" "$marker"
size=$(stat -c %s "$f")
capture_start "tcp port $RELAY_PORT"

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

capture_stop "$size"
capture_clean "on the wire" "$control" "$marker" "TALLOW-E2E-MARKER" "$name" "$code"
