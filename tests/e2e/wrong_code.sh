#!/usr/bin/env bash
# e2e wrong code: sender and receiver meet in the same relay room (same "N-firstword" of the code)
# but the other words differ. The PAKE fails: both exit non-zero with the mismatch message, and the
# destination stays empty.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay

printf 'secret contents\n' >"$E2E_TMP/secret.txt"
dest=$E2E_TMP/dest
mkdir "$dest"
start_send wrong "$E2E_TMP/secret.txt"
# same "number-firstword" (the room), different secret words: the relay pairs them, the key
# exchange must not
first=$(echo "$CODE" | cut -d- -f1-2)
other=$first-wrong-guess
[ "$other" != "$CODE" ] || fail "codes should differ"
run_recv wrong 30 --yes -o "$dest" "$other"
finish_send wrong 30

msg="code mismatch, or someone tried to guess it"
[ "$RECV_RC" -ne 0 ] || fail "receiver exited 0 with a wrong code"
[ "$SEND_RC" -ne 0 ] || fail "sender exited 0 with a wrong code"
grep -qF "$msg" "$E2E_TMP/wrong.recv.err" || { show "$E2E_TMP/wrong.recv.err"; fail "receiver did not say '$msg'"; }
grep -qF "$msg" "$E2E_TMP/wrong.send.err" || { show "$E2E_TMP/wrong.send.err"; fail "sender did not say '$msg'"; }
grep -q 'paired' "$RELAY_LOG" || { show "$RELAY_LOG"; fail "the relay never paired the two (the test would not reach the PAKE)"; }
[ -z "$(ls -A "$dest")" ] || { ls -la "$dest"; fail "destination is not empty"; }
ok "sender rc=$SEND_RC, receiver rc=$RECV_RC, both said '$msg', destination empty"
