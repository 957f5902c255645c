#!/usr/bin/env bash
# ux item 5: the code was printed before the relay, the options and the paths were checked; with
# no relay: "relay 127.0.0.1:4433: cannot connect", no reason, no hint. `--to-many 0`,
# `--capacity 100`, `--debounce -5`: late or no errors. Now: checked first, exit 2 for a value
# out of range, exit 1 with the reason and what to do for a relay that does not answer.
set -eu
. "$(dirname "$0")/lib.sh"
cd "$E2E_TMP"
echo data >f.txt
port=$(free_port)   # nothing listens there
for cmd in "send f.txt" "receive 7-alpha-bravo-charlie" "chat" "sync ." "watch ."; do
    rc=0; $T $cmd --relay "127.0.0.1:$port" </dev/null >out 2>err || rc=$?
    [ "$rc" -eq 1 ] || { show err; fail "$cmd with no relay: exit $rc, not 1"; }
    no_code err
    grep -q "cannot connect to the relay at 127.0.0.1:$port: connection refused" err ||
        { show err; fail "$cmd: no reason"; }
    grep -q 'Start one with `tallow relay`' err && grep -q "TALLOW_RELAY" err ||
        { show err; fail "$cmd: no hint"; }
done
ok "no relay: $(cat err)"

start_relay
check() { # expected-text command...
    local want=$1; shift
    rc=0; "$T" "$@" </dev/null >out 2>err || rc=$?
    [ "$rc" -eq 2 ] || { show err; fail "$*: exit $rc, not 2"; }
    no_code err
    grep -q -- "$want" err || { show err; fail "$*: no '$want'"; }
    note "$*: $(cat err)"
}
check "--to-many must be between 1 and 1023, not 0" send --to-many 0 f.txt
check "--capacity must be between 2 and 1024, not 1" chat --capacity 1
check "--capacity must be between 2 and 1024, not 2000" chat --capacity 2000
check "--debounce must be between 0 and 60000, not -5" watch --debounce -5 .
check "--words must be between 2 and 8, not 0" send --words 0 f.txt
check "--words must be a whole number, not 2.5" send --words 2.5 f.txt
check "--to-many needs a number, not 'x'" send --to-many x f.txt
check "give either --text or files" send --text hi f.txt
ok "options out of range: exit 2 before any code"

# a group larger than the relay allows (a stock relay: 16): said before the code is shown
for args in "chat --capacity 100" "send --to-many 99 f.txt"; do
    rc=0; timeout 20 "$T" $args </dev/null >out 2>err || rc=$?
    [ "$rc" -eq 1 ] || { show err; fail "$args: exit $rc, not 1"; }
    no_code err
    grep -q "the relay allows fewer people in a room than .*a stock relay allows 16; its --max-peers raises that" err ||
        { show err; fail "$args: unclear"; }
done
ok "a capacity the relay refuses: named before any code: $(cat err)"
