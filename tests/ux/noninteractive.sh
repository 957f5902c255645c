#!/usr/bin/env bash
# ux item 6: `tallow receive CODE </dev/null` (cron, CI) died with a Lua traceback ("cannot watch
# fd 0"), and `receive --json` accepted files without being asked and without --yes. Now: no
# traceback ever; without --yes and with nobody to answer, the offer is refused with a message
# saying to pass --yes (exit 3 on both sides, nothing written); --json does not accept by itself.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
echo data >"$E2E_TMP/f.txt"
for mode in plain json; do
    flags=""; [ $mode = json ] && flags=--json
    start_send $mode $flags "$E2E_TMP/f.txt"
    run_recv $mode 30 $flags -o "$E2E_TMP/dest-$mode" "$CODE"     # stdin is /dev/null
    finish_send $mode 30
    err=$E2E_TMP/$mode.recv.err
    no_code "$err"
    [ "$RECV_RC" -eq 3 ] || { show "$err"; fail "$mode: receiver exited $RECV_RC, not 3"; }
    grep -q "pass --yes to accept without being asked" "$err" || { show "$err"; fail "$mode: no hint to pass --yes"; }
    [ ! -e "$E2E_TMP/dest-$mode/f.txt" ] || fail "$mode: the file was written without an answer or --yes"
    [ "$SEND_RC" -eq 3 ] || { show "$E2E_TMP/$mode.send.err"; fail "$mode: sender exited $SEND_RC, not 3"; }
    grep -q "could not be asked (no terminal) and did not pass --yes" "$E2E_TMP/$mode.send.err" ||
        { show "$E2E_TMP/$mode.send.err"; fail "$mode: the sender is not told why"; }
    if [ $mode = json ]; then
        grep -q '"event":"error".*"exit":3' "$E2E_TMP/$mode.recv.out" || { show "$E2E_TMP/$mode.recv.out"; fail "json: no error event with exit 3"; }
        grep -q '"event":"offer"' "$E2E_TMP/$mode.recv.out" || fail "json: no offer event"
    fi
    ok "$mode, stdin /dev/null, no --yes: refused, exit 3: $(tail -n 1 "$err")"
done

# an answer on a pipe still counts (echo y | tallow receive CODE), and --yes needs none
start_send piped "$E2E_TMP/f.txt"
rc=0; echo y | timeout 30 "$T" receive -o "$E2E_TMP/dest-piped" "$CODE" >"$E2E_TMP/piped.recv.out" 2>"$E2E_TMP/piped.recv.err" || rc=$?
RECV_RC=$rc
finish_send piped 30
both_ok piped
cmp "$E2E_TMP/f.txt" "$E2E_TMP/dest-piped/f.txt" || fail "piped yes: not received"
start_send yes "$E2E_TMP/f.txt"
run_recv yes 30 --yes --json -o "$E2E_TMP/dest-yes" "$CODE"
finish_send yes 30
both_ok yes
ok "an answer on a pipe, and --yes with stdin /dev/null, receive"

# no code and no terminal to ask it on: a usage error, not a traceback
rc=0; "$T" receive </dev/null >"$E2E_TMP/nocode.out" 2>"$E2E_TMP/nocode.err" || rc=$?
[ "$rc" -eq 2 ] || { show "$E2E_TMP/nocode.err"; fail "no code: exit $rc, not 2"; }
no_code "$E2E_TMP/nocode.err"
grep -q "no code phrase given: pass it as an argument or in TALLOW_CODE" "$E2E_TMP/nocode.err" || { show "$E2E_TMP/nocode.err"; fail "no code: unclear"; }
ok "no code, stdin /dev/null: $(tail -n 1 "$E2E_TMP/nocode.err")"
