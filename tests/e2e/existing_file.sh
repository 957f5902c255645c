#!/usr/bin/env bash
# e2e existing file: a file of the same name already in the destination is never replaced without
# consent. Without --overwrite: a clear error, non-zero exit, the existing file untouched (bytes,
# mode, mtime), no part file left. With --overwrite: replaced by what was sent.
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
[ "$RECV_RC" -ne 0 ] || fail "receiver exited 0 although it did not write the file"
grep -q "refused report.bin: .*exists" "$E2E_TMP/keep.recv.err" ||
    { show "$E2E_TMP/keep.recv.err"; fail "no clear 'refused report.bin: ... exists' error"; }
cmp "$E2E_TMP/original" "$dest/report.bin" || fail "existing file was changed"
[ "$(stat -c '%a %s %Y' "$dest/report.bin")" = "$before" ] || fail "existing file's mode/size/mtime changed"
[ -z "$(find "$dest" -name '*.tallow-part')" ] || fail "part file left behind"
# the sender must not claim success (nor "already there") for a file the receiver refused
[ "$SEND_RC" -ne 0 ] || { show "$E2E_TMP/keep.send.err"; fail "sender exited 0 although the receiver refused the file"; }
grep -q "refused" "$E2E_TMP/keep.send.err" || { show "$E2E_TMP/keep.send.err"; fail "sender does not say the file was refused"; }
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

# An empty file refused the same way: no byte goes missing, yet the sender must hear of it
# (the receiver's byte count alone cannot tell). Also a refused file next to one that arrives.
src=$E2E_TMP/src-empty dest=$E2E_TMP/dest-empty
mkdir -p "$src" "$dest"
: >"$src/empty.txt"
printf 'other\n' >"$src/other.txt"
printf 'precious\n' >"$dest/empty.txt"
start_send empty --json "$src/empty.txt" "$src/other.txt"
run_recv empty 30 --yes -o "$dest" "$CODE"
finish_send empty 30
[ "$RECV_RC" -ne 0 ] || fail "receiver exited 0 although it did not write empty.txt"
grep -q "refused empty.txt: .*exists" "$E2E_TMP/empty.recv.err" ||
    { show "$E2E_TMP/empty.recv.err"; fail "no clear 'refused empty.txt: ... exists' error"; }
[ "$(cat "$dest/empty.txt")" = precious ] || fail "existing empty.txt was changed"
cmp "$src/other.txt" "$dest/other.txt" || fail "other.txt did not arrive"
[ "$SEND_RC" -ne 0 ] || { show "$E2E_TMP/empty.send.out"; show "$E2E_TMP/empty.send.err"; fail "sender exited 0 although the receiver refused the empty file"; }
grep '"event":"error"' "$E2E_TMP/empty.send.out" | grep -q 'refused.*empty\.txt' ||
    { show "$E2E_TMP/empty.send.out"; fail "sender's JSON error event does not name the refused empty.txt"; }
grep '"event":"refused"' "$E2E_TMP/empty.send.out" | grep -q 'empty\.txt: destination exists' ||
    { show "$E2E_TMP/empty.send.out"; fail "sender's JSON has no 'refused' event with the receiver's reason"; }
ok "refused empty file: receiver rc=$RECV_RC, sender rc=$SEND_RC: $(tail -n 1 "$E2E_TMP/empty.send.err")"

# Many refusals: stderr shows the first 20 and a count of the rest; --json has an event for each.
src=$E2E_TMP/src-many dest=$E2E_TMP/dest-many
mkdir -p "$src/d" "$dest/d"
for i in $(seq 1 30); do printf 'new %s\n' "$i" >"$src/d/f$i.txt"; printf 'old\n' >"$dest/d/f$i.txt"; done
start_send many --json "$src/d"
run_recv many 30 --yes -o "$dest" "$CODE"
finish_send many 30
[ "$RECV_RC" -ne 0 ] || fail "receiver exited 0 although it refused 30 files"
n=$(grep -c "refused d/f[0-9]*\.txt: destination exists" "$E2E_TMP/many.recv.err")
[ "$n" -eq 20 ] || { show "$E2E_TMP/many.recv.err"; fail "receiver printed $n refusal lines, not 20"; }
grep -q "and 10 more like these" "$E2E_TMP/many.recv.err" || { show "$E2E_TMP/many.recv.err"; fail "no count of the refusals not shown"; }
n=$(grep -c '"event":"refused"' "$E2E_TMP/many.send.out")
[ "$n" -eq 30 ] || { show "$E2E_TMP/many.send.out"; fail "sender's JSON has $n refused events, not 30"; }
[ "$(cat "$dest/d/f7.txt")" = old ] || fail "a refused file was changed"
ok "30 refusals: 20 lines and a count on stderr, 30 JSON events"
