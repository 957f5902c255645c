#!/usr/bin/env bash
# e2e wrong code: the receiver mistypes the FIRST word (the rest is right). The relay sees only
# the number (the nameplate), so the two meet in the same room; the PAKE, which holds every word,
# fails: both exit non-zero with the mismatch message (bounded: 15 s), the destination stays
# empty. Before nameplates the first word was part of the room id and such a receiver waited in
# silence.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay

printf 'secret contents\n' >"$E2E_TMP/secret.txt"
dest=$E2E_TMP/dest
mkdir "$dest"
start_send wrong "$E2E_TMP/secret.txt"
# same number (the room), first word mistyped: the relay pairs them, the key exchange must not
num=$(echo "$CODE" | cut -d- -f1)
rest=$(echo "$CODE" | cut -d- -f3-)
other=$num-mistyped-$rest
[ "$other" != "$CODE" ] || fail "codes should differ"
run_recv wrong 15 --yes -o "$dest" "$other"
finish_send wrong 15

msg="code mismatch, or someone tried to guess it"
[ "$RECV_RC" -ne 0 ] || fail "receiver exited 0 with a wrong code"
[ "$SEND_RC" -ne 0 ] || fail "sender exited 0 with a wrong code"
grep -qF "$msg" "$E2E_TMP/wrong.recv.err" || { show "$E2E_TMP/wrong.recv.err"; fail "receiver did not say '$msg'"; }
grep -qF "$msg" "$E2E_TMP/wrong.send.err" || { show "$E2E_TMP/wrong.send.err"; fail "sender did not say '$msg'"; }
grep -q 'paired' "$RELAY_LOG" || { show "$RELAY_LOG"; fail "the relay never paired the two (the test would not reach the PAKE)"; }
[ -z "$(ls -A "$dest")" ] || { ls -la "$dest"; fail "destination is not empty"; }
ok "sender rc=$SEND_RC, receiver rc=$RECV_RC, both said '$msg', destination empty"
