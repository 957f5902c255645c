#!/usr/bin/env bash
# ux item 4: an unreadable folder inside what is sent was skipped silently ("Sent 0 files",
# exit 0), and so were symlinks inside folders. Now the tree is walked before the code is shown:
# what cannot be read is named and stops the send (exit 1); links (never followed) are named as
# notes and the send goes on.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
cd "$E2E_TMP"
mkdir -p tree/sub tree/private
echo a >tree/a.txt
echo b >tree/sub/b.txt
echo c >tree/private/c.txt
echo s >tree/sub/secret.txt
chmod 000 tree/private tree/sub/secret.txt
ln -s a.txt tree/link
rc=0; as_nobody env TALLOW_LUA_DIR="$TALLOW_LUA_DIR" "$T" send tree >out 2>err || rc=$?
[ "$rc" -eq 1 ] || { show err; fail "unreadable parts: exit $rc, not 1"; }
no_code err
grep -q "cannot send tree/private: folder cannot be read" err || { show err; fail "unreadable folder not named"; }
grep -q "cannot send tree/sub/secret.txt: cannot be read" err || { show err; fail "unreadable file not named"; }
grep -q "2 items cannot be read, so nothing was sent and no code was made" err || { show err; fail "no summary"; }
grep -q "note: tree/link: symlink skipped (not followed)" err || { show err; fail "symlink inside not named"; }
ok "unreadable folder and file named before the code: $(tail -n 1 err)"
for cmd in sync watch; do
    rc=0; as_nobody env TALLOW_LUA_DIR="$TALLOW_LUA_DIR" "$T" $cmd tree >out 2>err || rc=$?
    [ "$rc" -eq 1 ] || { show err; fail "$cmd of a tree with unreadable parts: exit $rc, not 1"; }
    no_code err
    grep -q "cannot send tree/private: folder cannot be read" err || { show err; fail "$cmd: unreadable folder not named"; }
done
ok "sync and watch: the same check before the code"

# readable, with a link inside: the note comes before the code, the rest is sent
chmod 755 tree/private; chmod 644 tree/sub/secret.txt
start_send tree "$E2E_TMP/tree"
mkdir dest
run_recv tree 30 --yes -o "$E2E_TMP/dest" "$CODE"
finish_send tree 30
both_ok tree
grep -q "symlink skipped (not followed)" "$E2E_TMP/tree.send.err" || { show "$E2E_TMP/tree.send.err"; fail "no note about the link"; }
[ ! -e dest/tree/link ] && cmp tree/sub/b.txt dest/tree/sub/b.txt || fail "tree not received as expected"
grep -q "^Sent 4 files" "$E2E_TMP/tree.send.err" || { show "$E2E_TMP/tree.send.err"; fail "sender's count"; }
ok "readable tree with a link: note shown, 4 files sent, link not followed"
