#!/usr/bin/env bash
# ux item 10: chat spliced an incoming line into what one was typing, and one's own lines had no
# prefix. Now, on a terminal, the typed line is edited by chat at the bottom ("> ..."): an
# incoming line is printed above it and what was typed so far is redrawn after it; a sent line
# shows as "you: ...". In a pipe nothing changes (tests/workflows/chat.sh).
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
cd "$E2E_TMP"
CODE=$(new_code)
# B joins from a pipe: says one line at ~3 s, then stays until ~7 s and leaves (/quit)
( sleep 3; echo "hello from B"; sleep 4; echo /quit ) | "$T" chat "$CODE" >b.out 2>b.err &
B=$!; track $B
# A, on a terminal, makes the room, types "half" at 1.5 s (before B's line arrives), and the
# rest of its line at 5 s
TTY_INPUT="half" TTY_INPUT_AFTER=1.5 TTY_INPUT2=" typed\\r" TTY_INPUT2_AFTER=5 \
    in_tty 80 a.tty 25 "$T" chat --code "$CODE"
wait_pid 15 $B
[ "$TTY_RC" -eq 0 ] || { show a.tty; fail "A exited $TTY_RC"; }
python3 - a.tty <<'PY' || fail "the incoming line was spliced into the typed one, or own line unmarked"
import sys
out = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
# B's line: on a cleared line of its own, then the prompt with what A had typed redrawn
i = out.find("peer: hello from B")
assert i > 0, f"B's line missing: {out!r}"
assert out[:i].endswith("\r\x1b[K"), f"B's line not on a cleared line: {out[max(0, i - 40):i + 40]!r}"
after = out[i:i + 60]
assert "\n" in after and "> half" in after.split("\n", 1)[1], f"typed text not redrawn below: {after!r}"
assert "halfpeer" not in out and "half peer" not in out, "spliced"
assert "you: half typed" in out, f"own line not marked: {out[-300:]!r}"
print("incoming line above the typed one, typed text redrawn, own line marked")
PY
grep -q "^peer: half typed$" b.out || { show b.out; fail "B did not get A's line"; }
ok "chat on a terminal: incoming above the typed line; 'you: half typed' marked; B got it"
