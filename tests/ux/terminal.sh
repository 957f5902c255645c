#!/usr/bin/env bash
# ux item 8: in a 60-column terminal the progress bar wrapped into hundreds of lines; errors
# landed on the bar's line; the rate counted the time spent waiting for the answer. Now the bar
# is fitted to the terminal and redrawn in place (no escape codes when stderr is not a
# terminal), an error starts on a fresh line, and the clock starts at the receiver's "yes".
# (The question listing folders as folders and the summary sentence: tests/ux/destination.sh.)
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
cd "$E2E_TMP"
truncate -s 8G big.bin
CODE=$(new_code)
"$T" receive --yes -o "$E2E_TMP/dest" "$CODE" </dev/null >recv.out 2>recv.err &
RECV_PID=$!; track $RECV_PID
# the receiver is stopped (SIGTERM) once more than 64 MiB arrived, so the sender's bar runs and
# then the sender ends with an error
( wait_for 30 sh -c "[ \$(du -sk $E2E_TMP/dest 2>/dev/null | cut -f1) -gt 65536 ]"; sleep 0.5; kill -TERM $RECV_PID ) &
in_tty 60 send.tty 40 "$T" send --code "$CODE" big.bin
wait_pid 20 $RECV_PID
[ "$TTY_RC" -eq 1 ] || { show send.tty; fail "sender exited $TTY_RC, not 1"; }
python3 - send.tty <<'PY' || fail "bar does not fit 60 columns or is not redrawn in place"
import re, sys
out = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
plain = re.sub(r"\x1b\[K", "", out)
bars = [seg for seg in re.split(r"[\r\n]", plain) if "sending" in seg or "%" in seg]
assert len(bars) >= 3, f"only {len(bars)} bar updates: {plain!r}"
wide = [b for b in bars if len(b) >= 60]
assert not wide, f"{len(wide)} bar lines of 60 columns or more: {wide[:2]!r}"
lines = plain.count("\n")
assert lines <= 6, f"{lines} lines for {len(bars)} bar updates: it wraps or scrolls: {plain!r}"
# the error starts a line of its own (not glued to the bar)
assert re.search(r"(^|\n)tallow: the receiver cancelled", plain), f"error not on a fresh line: {plain[-300:]!r}"
print(f"{len(bars)} bar updates, widest {max(len(b) for b in bars)} columns, {lines} newlines; error on its own line")
PY
if grep -q $'\r\|\x1b' recv.err; then show recv.err; fail "receiver's stderr is not a terminal but got redraws or escapes"; fi
ok "60 columns: bar fitted and redrawn in place, error on a fresh line; plain stderr when not a terminal"

# the answer comes 3 s after the offer: that time is not part of the transfer's seconds or rate
echo "some text" >small.txt
start_send rate small.txt
TTY_INPUT='y\n' TTY_INPUT_AFTER=3 in_tty 100 recv.tty 30 "$T" receive -o "$E2E_TMP/dest-rate" "$CODE"
finish_send rate 30
[ "$TTY_RC" -eq 0 ] && [ "$SEND_RC" -eq 0 ] || { show recv.tty; show "$E2E_TMP/rate.send.err"; fail "rate run failed"; }
secs=$(grep -o "in [0-9.]* s" "$E2E_TMP/rate.send.err" | grep -o "[0-9.]*")
awk "BEGIN { exit !($secs < 2.5) }" || { show "$E2E_TMP/rate.send.err"; fail "sender counts the 3 s wait for the answer: $secs s"; }
ok "the 3 s wait for the answer is not counted: sender reports $secs s"
