#!/usr/bin/env bash
# e2e existing file: a file of the same name already in the destination is never replaced without
# consent. Without --overwrite the offer is refused before it is accepted (issue 16: refused
# before asking): a clear error naming it, exit 3 on both sides, the existing file untouched
# (bytes, mode, mtime), no part file left. With --overwrite: replaced by what was sent.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay

src=$E2E_TMP/src dest=$E2E_TMP/dest
mkdir -p "$src" "$dest"
mkrand "$src/report.bin" 3000000
chmod 0640 "$src/report.bin"
printf 'precious local contents\n' >"$dest/report.bin"
chmod 0600 "$dest/report.bin"
touch -d '2020-01-02 03:04:05' "$dest/report.bin"
cp -p "$dest/report.bin" "$E2E_TMP/original"
before=$(stat -c '%a %s %Y' "$dest/report.bin")

start_send keep "$src/report.bin"
run_recv keep 30 --yes -o "$dest" "$CODE"
finish_send keep 30
# refused before anything is accepted (the receiver looks at the offer against its folder)
[ "$RECV_RC" -eq 3 ] || { show "$E2E_TMP/keep.recv.err"; fail "receiver exited $RECV_RC, not 3 (refused)"; }
grep -q "refused the offer before accepting anything: 1 name already exists in .*(report.bin).*--overwrite" "$E2E_TMP/keep.recv.err" ||
    { show "$E2E_TMP/keep.recv.err"; fail "no clear 'refused ... report.bin already exists ... --overwrite' error"; }
cmp "$E2E_TMP/original" "$dest/report.bin" || fail "existing file was changed"
[ "$(stat -c '%a %s %Y' "$dest/report.bin")" = "$before" ] || fail "existing file's mode/size/mtime changed"
[ -z "$(find "$dest" -name '*.tallow-part')" ] || fail "part file left behind"
# the sender must not claim success for a file the receiver refused
[ "$SEND_RC" -eq 3 ] || { show "$E2E_TMP/keep.send.err"; fail "sender exited $SEND_RC, not 3, although the receiver refused the file"; }
grep -q "declined: 1 name already exists there.*report.bin" "$E2E_TMP/keep.send.err" || { show "$E2E_TMP/keep.send.err"; fail "sender does not say the file was refused, and why"; }
[ "$(ls -A "$dest")" = report.bin ] || { ls -la "$dest"; fail "unexpected files in the destination"; }
ok "without --overwrite: receiver rc=$RECV_RC, '$(grep refused "$E2E_TMP/keep.recv.err" | head -n 1)', file untouched; sender rc=$SEND_RC: $(tail -n 1 "$E2E_TMP/keep.send.err")"

start_send replace "$src/report.bin"
run_recv replace 30 --yes --overwrite -o "$dest" "$CODE"
finish_send replace 30
both_ok replace
cmp "$src/report.bin" "$dest/report.bin" || fail "--overwrite did not replace the file"
[ "$(stat -c '%a %Y' "$src/report.bin")" = "$(stat -c '%a %Y' "$dest/report.bin")" ] || fail "replaced file lacks the sent mode/mtime"
[ "$(ls -A "$dest")" = report.bin ] || { ls -la "$dest"; fail "unexpected files in the destination"; }
ok "with --overwrite: replaced by the sent file (bytes, mode, mtime)"

# An empty file refused the same way: no byte goes missing, yet both sides must hear of it, and
# nothing is written (other.txt neither: the offer is refused as a whole, before it is accepted).
src=$E2E_TMP/src-empty dest=$E2E_TMP/dest-empty
mkdir -p "$src" "$dest"
: >"$src/empty.txt"
printf 'other\n' >"$src/other.txt"
printf 'precious\n' >"$dest/empty.txt"
start_send empty --json "$src/empty.txt" "$src/other.txt"
run_recv empty 30 --yes -o "$dest" "$CODE"
finish_send empty 30
[ "$RECV_RC" -eq 3 ] || { show "$E2E_TMP/empty.recv.err"; fail "receiver exited $RECV_RC although empty.txt exists"; }
grep -q "already exists in .*(empty.txt)" "$E2E_TMP/empty.recv.err" ||
    { show "$E2E_TMP/empty.recv.err"; fail "no clear 'empty.txt already exists' error"; }
[ "$(cat "$dest/empty.txt")" = precious ] || fail "existing empty.txt was changed"
[ ! -e "$dest/other.txt" ] || fail "other.txt was written although the offer was refused"
[ "$SEND_RC" -eq 3 ] || { show "$E2E_TMP/empty.send.out"; show "$E2E_TMP/empty.send.err"; fail "sender exited $SEND_RC although the receiver refused the empty file"; }
grep '"event":"error"' "$E2E_TMP/empty.send.out" | grep 'empty\.txt' | grep -q '"exit":3' ||
    { show "$E2E_TMP/empty.send.out"; fail "sender's JSON error event does not name the refused empty.txt with exit 3"; }
ok "refused empty file: receiver rc=$RECV_RC, sender rc=$SEND_RC: $(tail -n 1 "$E2E_TMP/empty.send.err")"

# Many existing: the refusal names the first five and says how many.
src=$E2E_TMP/src-many dest=$E2E_TMP/dest-many
mkdir -p "$src/d" "$dest/d"
for i in $(seq 1 30); do printf 'new %s\n' "$i" >"$src/d/f$i.txt"; printf 'old\n' >"$dest/d/f$i.txt"; done
start_send many --json "$src/d"
run_recv many 30 --yes -o "$dest" "$CODE"
finish_send many 30
[ "$RECV_RC" -eq 3 ] || fail "receiver exited $RECV_RC although 30 files exist"
grep -q "30 names already exist in .*(d/f1.txt, d/f10.txt, d/f11.txt, d/f12.txt, d/f13.txt, ...)" "$E2E_TMP/many.recv.err" ||
    { show "$E2E_TMP/many.recv.err"; fail "the refusal does not name five and count 30"; }
[ "$(cat "$dest/d/f7.txt")" = old ] || fail "a refused file was changed"
ok "30 existing: refused before asking, five named and a count"
