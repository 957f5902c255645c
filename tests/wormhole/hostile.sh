# Hostile magic-wormhole peers against tallow (wh_peer: the plugin's own protocol code, lying on
# purpose), through a local mailbox server and transit relay: a third client on a nameplate, a
# forged mailbox phase, a corrupted transit record, a record out of order, a wrong hash in the
# receiver's ack, hostile zips (zip-slip, absolute names, symlinks, duplicates, a bomb). Nothing may land outside the
# destination, and each case ends with a clear message and a non-zero exit.
set -eu
. "$(dirname "$0")/lib.sh"
P=${WH_PEER:?WH_PEER must point at build/tests/wh_peer}
[ -x "$P" ] || fail "$P is not built"
start_wormhole_servers
cd "$E2E_TMP"
export TALLOW_NO_P2P=1

# -- a third client on a nameplate two others hold: the mailbox says crowded, tallow says so
next_code
bg hold "$P" hold "$MAILBOX_URL" "$C"
HOLD=$BG_PID
wait_for 10 grep -q claimed hold.out || { show hold.err; fail "wh_peer did not claim"; }
bg s2 timeout -s KILL 60 $PY_WORMHOLE $PYR send --code "$C" --text second
S2=$BG_PID
wait_for 10 sh -c "grep -q 'Wormhole code is' s2.err" || { show s2.err; fail "the second client did not start"; }
sleep 1
mkdir -p rx
fg r 20 "$T" receive --wormhole --yes -o rx "$C"
expect_rc "third client" 1 "$FG_RC"
grep -q "already used by two others (the mailbox says crowded)" r.err || { show r.err; fail "no crowded message"; }
kill -9 -- "-$HOLD" "-$S2" 2>/dev/null || true
wait "$HOLD" "$S2" 2>/dev/null || true
ok "a third client on the nameplate: refused, 'crowded'"

# -- a mailbox phase that does not decrypt (after a good version phase): stopped, mood scary
next_code
bg p "$P" send-badphase "$MAILBOX_URL" "$TRANSIT" "$C"
fg r 30 "$T" receive --wormhole --yes -o rx "$C"
expect_rc "bad phase" 1 "$FG_RC"
grep -q "phase 0 from the other side does not decrypt" r.err || { show r.err; fail "no message for a forged phase"; }
wait_pid 20 "$BG_PID"
ok "a forged mailbox phase: refused"

# -- a corrupted transit record, and one out of order: dropped, nothing kept
mkrand payload.bin 50000
for m in corrupt reorder; do
    rm -rf rx && mkdir rx
    next_code
    bg p "$P" send-$m "$MAILBOX_URL" "$TRANSIT" "$C" payload.bin
    fg r 30 "$T" receive --wormhole --yes -o rx "$C"
    expect_rc "$m record" 1 "$FG_RC"
    want="does not decrypt"; [ $m = reorder ] && want="out of order"
    grep -q "$want" r.err || { show r.err; fail "$m: no '$want' message"; }
    [ -z "$(ls -A rx)" ] || { ls -la rx; fail "$m: something was left in the destination"; }
    wait_pid 20 "$BG_PID"
    grep -q dropped p.out || { show p.out; fail "$m: the receiver acked a bad record"; }
    ok "a $m transit record: connection dropped, nothing written"
done

# -- the receiver's ack carries a wrong hash: tallow's sender says the integrity check failed
next_code
bg s "$T" send --wormhole --code "$C" payload.bin
SP=$BG_PID
fg p 30 "$P" recv-badhash "$MAILBOX_URL" "$TRANSIT" "$C"
expect_rc "wh_peer recv-badhash" 0 "$FG_RC"
wait_pid 30 "$SP"
expect_rc "bad hash in the ack (sender)" 1 "$WAIT_RC"
grep -q "integrity check failed" s.err || { show s.err; fail "no integrity message"; }
ok "a wrong sha256 in the ack: the sender fails with 'integrity check failed'"

# -- hostile zips
/usr/bin/python3 - <<'PY'
import zipfile, stat
def attr(mode): return (mode & 0xFFFF) << 16
with zipfile.ZipFile("slip.zip", "w") as z:
    for name in ["../evil.txt", "/abs.txt", "a/../../up.txt", "ok.txt"]:
        i = zipfile.ZipInfo(name); i.external_attr = attr(0o100644); z.writestr(i, "x")
    i = zipfile.ZipInfo("ok.txt"); i.external_attr = attr(0o100644); z.writestr(i, "second")
    i = zipfile.ZipInfo("link"); i.create_system = 3; i.external_attr = attr(stat.S_IFLNK | 0o777); z.writestr(i, "/etc/passwd")
    i = zipfile.ZipInfo("esc\x1b[31m.txt"); i.external_attr = attr(0o100644); z.writestr(i, "x")
with zipfile.ZipFile("bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
    i = zipfile.ZipInfo("zeros"); i.external_attr = attr(0o100644); i.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(i, b"\0" * (200 << 20))
PY
rm -rf rx && mkdir -p rx/outside
next_code
bg p "$P" send-zip "$MAILBOX_URL" "$TRANSIT" "$C" slip.zip 100
fg r 30 "$T" receive --wormhole --yes -o rx/outside "$C"
expect_rc "hostile zip" 1 "$FG_RC"
for n in "../evil.txt" "/abs.txt" "a/../../up.txt" "link: a symlink" "ok.txt: a second entry" 'esc\x1b'; do
    grep -qF "refused $n" r.err || { show r.err; fail "hostile zip: no refusal for $n"; }
done
[ "$(cat rx/outside/hostile/ok.txt)" = x ] || fail "the first ok.txt did not arrive (or the duplicate replaced it)"
[ ! -e rx/evil.txt ] && [ ! -e rx/outside/evil.txt ] && [ ! -e /abs.txt ] && [ ! -e rx/up.txt ] && [ ! -e rx/outside/hostile/link ] \
    || fail "a hostile entry was written"
[ "$(find rx -type f | wc -l)" = 1 ] || { find rx; fail "more than one file written"; }
wait_pid 20 "$BG_PID"
ok "hostile zip: zip-slip, absolute, symlink, duplicate, escape refused; the safe entry kept"

rm -rf rx && mkdir rx
next_code
bg p "$P" send-zip "$MAILBOX_URL" "$TRANSIT" "$C" bomb.zip 1000
fg r 30 "$T" receive --wormhole --yes -o rx "$C"
expect_rc "zip bomb" 1 "$FG_RC"
grep -q "zip bomb" r.err || { show r.err; fail "no zip-bomb message"; }
[ "$(find rx -type f | wc -l)" = 0 ] || { find rx -ls; fail "the bomb wrote something"; }
wait_pid 20 "$BG_PID"
ok "zip bomb (200 MiB of zeros announced as 1000 bytes): refused before writing"
