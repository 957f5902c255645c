#!/usr/bin/env bash
# ux item 7: destination problems showed only after accepting (which used up the code): `-o
# newdir` was not created, an existing file was refused after the "yes". Now the destination is
# created or found unusable before the relay is even contacted (the code stays usable), and an
# existing file is flagged in the question (--overwrite) or refused before asking (without).
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
cd "$E2E_TMP"
mkdir -p src/photos
echo one >src/photos/1.jpg; echo two >src/photos/2.jpg; echo report >src/report.txt

# -o a file, or a folder this user cannot write into: refused before connecting, so the same
# code still works for the next try
echo not-a-folder >afile
start_send first src/report.txt
run_recv bad 10 --yes -o "$E2E_TMP/afile" "$CODE"
[ "$RECV_RC" -eq 1 ] || { show "$E2E_TMP/bad.recv.err"; fail "-o FILE: exit $RECV_RC, not 1"; }
grep -q "cannot receive into .*afile: it exists and is not a folder" "$E2E_TMP/bad.recv.err" || { show "$E2E_TMP/bad.recv.err"; fail "-o FILE: unclear"; }
kill -0 "$SEND_PID" || fail "the sender gave up: the code was used by a receiver that could not receive"
# -o a folder this user cannot write into: refused before connecting, with what to do
mkdir ro; chmod 555 ro
rc=0; as_nobody env TALLOW_LUA_DIR="$TALLOW_LUA_DIR" TALLOW_RELAY="$RELAY" "$T" receive --yes -o "$E2E_TMP/ro" "$CODE" </dev/null >ro.out 2>ro.err || rc=$?
[ "$rc" -eq 1 ] || { show ro.err; fail "-o unwritable: exit $rc, not 1"; }
grep -q "cannot write into .*ro: permission denied. Choose another folder with -o DIR." ro.err || { show ro.err; fail "-o unwritable: unclear"; }
kill -0 "$SEND_PID" || fail "the sender gave up after a receiver that could not write"
# -o a folder that does not exist yet: created (with parents)
run_recv first 30 --yes -o "$E2E_TMP/new/deeper" "$CODE"
finish_send first 30
both_ok first
cmp src/report.txt new/deeper/report.txt || fail "not received into the new folder"
grep -q "^Received 1 file (7 B) into .*new/deeper in .* s, over the relay\.$" "$E2E_TMP/first.recv.err" ||
    { show "$E2E_TMP/first.recv.err"; fail "the summary does not read as a sentence"; }
ok "-o FILE refused before connecting (code still usable); -o new/deeper created; $(tail -n 1 "$E2E_TMP/first.recv.err")"

# existing file without --overwrite: refused before the question is asked
mkdir dest; echo old >dest/report.txt
start_send keep src/report.txt src/photos
in_tty 100 "$E2E_TMP/keep.tty" 30 "$T" receive -o "$E2E_TMP/dest" "$CODE"
finish_send keep 30
[ "$TTY_RC" -eq 3 ] || { show "$E2E_TMP/keep.tty"; fail "existing file: exit $TTY_RC, not 3"; }
grep -q "Accept" "$E2E_TMP/keep.tty" && { show "$E2E_TMP/keep.tty"; fail "asked although the offer had to be refused"; }
grep -q "1 name already exists in .*(report.txt).*--overwrite" "$E2E_TMP/keep.tty" || { show "$E2E_TMP/keep.tty"; fail "refusal unclear"; }
[ "$(cat dest/report.txt)" = old ] || fail "existing file changed"
ok "existing file, no --overwrite: refused before asking"

# with --overwrite: the question says which would be replaced and lists the folder as a folder
start_send over src/report.txt src/photos
TTY_INPUT='n\n' TTY_INPUT_AFTER=2 in_tty 120 "$E2E_TMP/over.tty" 30 "$T" receive --overwrite -o "$E2E_TMP/dest" "$CODE"
finish_send over 30
grep -q "Accept 3 files (.*, 1 folder): report.txt, photos/ (folder) — 1 file would replace existing ones (report.txt)? \[y/N\]" "$E2E_TMP/over.tty" ||
    { show "$E2E_TMP/over.tty"; fail "question does not show the folder and the replaced file"; }
[ "$TTY_RC" -eq 3 ] || fail "declined: exit $TTY_RC, not 3"
[ "$SEND_RC" -eq 3 ] || fail "sender after a decline: exit $SEND_RC, not 3"
ok "question: $(grep -o 'Accept.*N\]' "$E2E_TMP/over.tty")"
