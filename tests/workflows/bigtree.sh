#!/bin/bash
# tests/workflows/bigtree.sh — trees larger than one message: 45,000 files in 150 folders with
# long names, whose manifest (~6.5 MiB) is three times the 2 MiB frame, so the offer, the
# receiver's resume list, the mirror's listing and the delete list all travel in parts.
# `tallow send DIR` / `tallow receive` copies the tree (diff -r); `tallow sync` makes an
# identical mirror, a second sync finds nothing to do, and `--delete` after removing a third of
# the files removes 15,000 paths one by one (a delete list of ~2 MB, in two parts). Each step prints its
# time. (Creating and unlinking files is the slow part on a busy disk: the fixture is made once.)
. "$(dirname "$0")/sync_lib.sh"

N=45000 FOLDERS=150
SRC=$TMP/src DST=$TMP/dst OUT=$TMP/out
mkdir -p "$DST" "$OUT"
python3 - "$SRC" "$N" "$FOLDERS" <<'PY' || fail "could not make the fixture"
import os, sys
root, n, folders = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(folders):
    dp = os.path.join(root, "a-folder-with-a-long-name-%03d" % d)
    os.makedirs(dp)
    for i in range(n // folders):
        name = "file-%06d-%s.txt" % (i, "with-a-name-long-enough-to-need-several-parts" * 2)
        with open(os.path.join(dp, name), "w") as f:
            if i % 20 == 0:  # the rest empty: no data blocks to write back and free
                f.write("%d/%d\n" % (d, i))
PY
[ "$(find "$SRC" -type f | wc -l)" -eq $N ] || fail "fixture is not $N files"
# the manifest's size: path bytes plus at least 6 bytes of varints per entry
bytes=$(( $(find "$SRC" -mindepth 1 -printf '%P\n' | wc -c) + 6 * (N + FOLDERS) ))
[ "$bytes" -gt $((4 * 1024 * 1024)) ] || fail "fixture manifest ($bytes B) is too small for this test"
echo "fixture: $N files, $FOLDERS folders, manifest > $bytes bytes"
start_relay
elapsed() { echo "$(date +%s.%N) - $1" | bc; }

# 1. tallow send DIR (the offer and the resume list in parts) to tallow receive
code=$(new_code)
t0=$(date +%s.%N)
bg send "$T" send --code "$code" "$SRC"
spid=$LAST_PID
bg recv "$T" receive --yes -o "$OUT" "$code"
rpid=$LAST_PID
wait_pid 120 "$rpid"; [ "$WAIT_RC" -eq 0 ] || fail "receive exited $WAIT_RC"
wait_pid 30 "$spid"; [ "$WAIT_RC" -eq 0 ] || fail "send exited $WAIT_RC"
echo "send/receive: $N files in $(elapsed "$t0") s"
grep -q "Received $N files" "$TMP/recv.log" || fail "receive report"
diff -r "$SRC" "$OUT/src" >/dev/null || fail "trees differ after send/receive"
t0=$(date +%s.%N)
rm -rf "$OUT"
echo "(removing the copy: $(elapsed "$t0") s)"

SYNC_WAIT=120 # big trees: the first sync takes a while on a busy machine

# 2. first sync: everything is new
t0=$(date +%s.%N)
sync_round
echo "first sync: $N files in $(elapsed "$t0") s"
grep -q "sent 0 changed, $N new; deleted 0" "$TMP/sync-s.log" || fail "first sync report"
grep -q "received 0 changed, $N new; deleted 0" "$TMP/sync-r.log" || fail "first receive report"
diff -r "$SRC" "$DST" >/dev/null || fail "trees differ after the first sync"

# 3. again, nothing changed: the mirror's listing (in parts) says it has everything
t0=$(date +%s.%N)
sync_round
echo "second sync (nothing changed): $(elapsed "$t0") s"
grep -q "sent 0 changed, 0 new; deleted 0" "$TMP/sync-s.log" || fail "second sync report"
grep -q "received 0 changed, 0 new; deleted 0" "$TMP/sync-r.log" || fail "second receive report"

# 4. a third of the files go: --delete removes them one by one (a long delete list)
find "$SRC" -type f -name 'file-*' | awk -F'file-' '($2 + 0) % 3 == 0' | xargs rm -f
gone=$((N - $(find "$SRC" -type f | wc -l)))
[ "$gone" -eq $(((N / FOLDERS + 2) / 3 * FOLDERS)) ] || fail "removed $gone files"
t0=$(date +%s.%N)
sync_round --delete
echo "sync --delete of $gone files: $(elapsed "$t0") s"
grep -q "sent 0 changed, 0 new; deleted $gone" "$TMP/sync-s.log" || fail "delete sync report"
grep -q "received 0 changed, 0 new; deleted $gone" "$TMP/sync-r.log" || fail "delete receive report"
diff -r "$SRC" "$DST" >/dev/null || fail "trees differ after sync --delete"
echo "OK"
