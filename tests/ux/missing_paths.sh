#!/usr/bin/env bash
# ux item 1: `tallow send nosuchfile` printed a code and failed only when the receiver joined
# ("cannot read what to send: No such file or directory" — which file?). Same for an unreadable
# file and a symlink given as the argument. Now each is named before any code is shown, exit 1.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
cd "$E2E_TMP"
echo data >ok.txt

rc=0; "$T" send ok.txt nosuchfile >out 2>err || rc=$?
[ "$rc" -eq 1 ] || { show err; fail "missing file: exit $rc, not 1"; }
no_code err
grep -q "cannot send nosuchfile: no such file or directory" err || { show err; fail "missing file not named"; }
ok "missing file: $(cat err)"

ln -s ok.txt link.txt
rc=0; "$T" send link.txt >out 2>err || rc=$?
[ "$rc" -eq 1 ] || { show err; fail "symlink argument: exit $rc, not 1"; }
no_code err
grep -q "cannot send link.txt: it is a symbolic link, and tallow does not follow links" err ||
    { show err; fail "symlink argument not explained"; }
ok "symlink argument: $(cat err)"

echo secret >locked.txt
chmod 000 locked.txt
rc=0; as_nobody env TALLOW_LUA_DIR="$TALLOW_LUA_DIR" "$T" send locked.txt >out 2>err || rc=$?
[ "$rc" -eq 1 ] || { show err; fail "unreadable file: exit $rc, not 1"; }
no_code err
grep -q "cannot send locked.txt: cannot be read (permission denied)" err || { show err; fail "unreadable file not named"; }
ok "unreadable file: $(head -n 1 err)"
