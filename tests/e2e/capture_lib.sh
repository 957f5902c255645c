# tests/e2e/capture_lib.sh — what the wire-capture tests share (sourced after lib.sh): a file full
# of a known marker, a tcpdump capture on loopback that is complete when stopped, and the checks
# that nothing readable of a transfer is in it.

# marker_file PATH MARKER: 4 MiB, the marker on every line, with a few random bytes so that
# compression would not help
marker_file() {
    local f=$1 marker=$2 i
    for i in $(seq 1 2000); do printf '%s %s\n' "$marker" "$i"; done >"$E2E_TMP/lines"
    while [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -lt $((4 * 1024 * 1024)) ]; do
        cat "$E2E_TMP/lines" >>"$f"
        head -c 4096 /dev/urandom >>"$f"
    done
}

# capture_start FILTER: tcpdump on lo into $PCAP (each packet written at once); sets PCAP, TD
capture_start() {
    command -v tcpdump >/dev/null || fail "tcpdump is not installed"
    PCAP=$E2E_TMP/wire.pcap
    tcpdump -i lo -U --immediate-mode -n -s 0 -B 262144 -w "$PCAP" "$1" 2>"$E2E_TMP/tcpdump.err" &
    TD=$!
    track "$TD"
    wait_for 10 grep -q "listening on" "$E2E_TMP/tcpdump.err" ||
        { show "$E2E_TMP/tcpdump.err"; fail "tcpdump did not start"; }
}

# capture_stop SIZE: waits until the capture stops growing (tcpdump drops what it has not written
# when interrupted; 3 looks 0.2 s apart with no change, at most 10 s), stops tcpdump, and fails
# when it dropped packets or holds fewer bytes than SIZE
capture_stop() {
    local size=$1 prev=-1 same=0 cur i
    for i in $(seq 50); do
        cur=$(stat -c %s "$PCAP")
        if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
        [ "$same" -ge 3 ] && break
        prev=$cur
        sleep 0.2
    done
    kill -INT "$TD"
    wait_pid 10 "$TD"
    [ "$WAIT_RC" -eq 0 ] || { show "$E2E_TMP/tcpdump.err"; fail "tcpdump exited $WAIT_RC"; }
    local dropped bytes packets
    dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$E2E_TMP/tcpdump.err")
    [ "${dropped:-0}" -eq 0 ] ||
        { show "$E2E_TMP/tcpdump.err"; fail "tcpdump dropped $dropped packets: the capture is incomplete"; }
    bytes=$(stat -c %s "$PCAP")
    packets=$(tcpdump -r "$PCAP" -n 2>/dev/null | wc -l)
    note "capture: $packets packets, $bytes bytes for a $size-byte file"
    [ "$packets" -gt 100 ] || fail "capture holds only $packets packets"
    [ "$bytes" -ge "$size" ] ||
        fail "capture ($bytes B) is smaller than the file ($size B): not everything was captured"
}

# capture_clean WHERE CONTROL MARKER MARKER_PREFIX NAME CODE: the control (plaintext sent during
# the capture) is found, so the capture and grep work; none of the rest is
capture_clean() {
    local where=$1 control=$2 marker=$3 prefix=$4 name=$5 code=$6 w
    grep -aqF "$control" "$PCAP" || fail "control: the plaintext marker is not in the capture (capture/grep broken)"
    ok "control: plaintext sent during the capture is visible in it"
    ! grep -aqF "$marker" "$PCAP" || fail "the file's contents (marker) are visible $where"
    ! grep -aqF "$prefix" "$PCAP" || fail "part of the marker is visible $where"
    ! grep -aqF "$name" "$PCAP" || fail "the file name is visible $where"
    ! grep -aqF "$code" "$PCAP" || fail "the code phrase is visible $where"
    for w in $(echo "$code" | tr '-' ' ' | cut -d' ' -f2-); do
        ! grep -aqF -- "-$w" "$PCAP" || fail "a code word ($w) is visible $where"
    done
    ok "$where: neither marker, file name nor code phrase"
}
