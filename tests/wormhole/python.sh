# tallow <-> magic-wormhole 0.12.0 (Debian's Python `wormhole`), with a local mailbox server and
# transit relay: text (also from a Lua script on the plugin's Lua face), a 0-byte file, a 100 MiB file
# direct and a 20 MiB one relay-only (sha256), a folder with nested (and, from
# tallow, empty) subfolders; direct and relay-only (--no-listen / --no-p2p) both ways; a wrong code
# refused on both sides.
set -eu
. "$(dirname "$0")/lib.sh"
start_wormhole_servers
cd "$E2E_TMP"
W="timeout -s KILL 60 $PY_WORMHOLE $PYR"

# -- text, both ways
next_code
bg s "$T" send --wormhole --code "$C" --text "hello from tallow"
fg r 30 $W receive "$C"
expect_rc "text tallow->wormhole" 0 "$FG_RC"
wait_pid 20 "$BG_PID"
expect_rc "text tallow->wormhole (sender)" 0 "$WAIT_RC"
[ "$(cat r.out)" = "hello from tallow" ] || fail "wormhole received '$(cat r.out)'"
ok "text tallow -> wormhole"

next_code
bg s $W send --code "$C" --text "hello from python"
fg r 30 "$T" receive --wormhole --yes "$C"
expect_rc "text wormhole->tallow" 0 "$FG_RC"
wait_pid 20 "$BG_PID"
[ "$(cat r.out)" = "hello from python" ] || fail "tallow received '$(cat r.out)'"
ok "text wormhole -> tallow"

# -- a wss:// mailbox (a TLS front on the local one): certificate checked against the CA given
TP=$(free_port)
MBPORT=${MAILBOX_URL#ws://127.0.0.1:}
MBPORT=${MBPORT%/v1}
bg tls /usr/bin/python3 "$(dirname "$0")/tlsproxy.py" "$E2E_TMP" "$TP" "$MBPORT"
wait_for 20 grep -q ready tls.out || { show tls.err; fail "TLS front did not start"; }
next_code
bg s env TALLOW_WORMHOLE_RELAY="wss://localhost:$TP/v1" TALLOW_WORMHOLE_CA="$E2E_TMP/cert.pem" \
    "$T" send --wormhole --code "$C" --text "over wss"
fg r 30 $W receive "$C"
expect_rc "wss text" 0 "$FG_RC"
wait_pid 20 "$BG_PID"
expect_rc "wss text (sender)" 0 "$WAIT_RC"
[ "$(cat r.out)" = "over wss" ] || fail "wormhole received '$(cat r.out)' over wss"
fg r 20 env TALLOW_WORMHOLE_RELAY="wss://localhost:$TP/v1" "$T" receive --wormhole --yes 1-no-ca
expect_rc "wss without the CA" 1 "$FG_RC"
grep -q "TLS with the mailbox server localhost" r.err || { show r.err; fail "no TLS refusal without the CA"; }
ok "wss:// mailbox: works with the CA, refused without"

# -- --verify shows the verifier `wormhole --verify` shows
next_code
bg s sh -c "echo yes | $W send --verify --code $C --text checked"
fg r 30 "$T" receive --wormhole --verify --yes "$C"
expect_rc "verify" 0 "$FG_RC"
wait_pid 20 "$BG_PID"
v=$(sed -n 's/^Verifier: \([0-9a-f]\{64\}\)$/\1/p' r.err)
[ -n "$v" ] && grep -q "Verifier $v" s.out || { show r.err; show s.out; fail "verifiers differ"; }
ok "--verify: the same verifier as wormhole --verify"

# -- a Lua script on the plugin's Lua face (examples/scripts/wormhole_note.lua)
next_code
bg s "$T" run "$TALLOW_SOURCE_DIR/examples/scripts/wormhole_note.lua" "from a script" "$C"
fg r 30 $W receive "$C"
expect_rc "script -> wormhole" 0 "$FG_RC"
wait_pid 20 "$BG_PID"
expect_rc "script (sender)" 0 "$WAIT_RC"
[ "$(cat r.out)" = "from a script" ] && grep -q "^sent 13 bytes, verifier " s.out || { show s.out; show r.out; fail "script"; }
ok "a Lua script (tallow.plugins.module) -> wormhole"

# -- files: 0 bytes and 100 MiB, direct and relay-only, both ways
: >zero.bin
mkrand big.bin $((100 * 1024 * 1024))
# 0 bytes and 100 MiB, each direct and through the transit relay, both ways
for f in zero.bin big.bin; do
    for mode in direct relay; do
        if [ $mode = relay ]; then tflag=--no-p2p; pflag=--no-listen; else tflag=; pflag=; fi
        rm -rf rx && mkdir rx
        next_code
        bg s "$T" send --wormhole $tflag --json --code "$C" "$f"
        fg r 60 $W receive $pflag --accept-file -o "rx/$f" "$C"
        expect_rc "$f tallow->wormhole $mode" 0 "$FG_RC"
        wait_pid 60 "$BG_PID"
        expect_rc "$f tallow->wormhole $mode (sender)" 0 "$WAIT_RC"
        same "$f" rx/"$f"
        grep -q "\"event\":\"sent\".*\"path\":\"$mode\"" s.out || { show s.out; fail "$f: tallow did not report the $mode path"; }
        ok "$f tallow -> wormhole ($mode)"

        rm -rf rx && mkdir rx
        next_code
        bg s $W send $pflag --code "$C" "$f"
        fg r 60 "$T" receive --wormhole $tflag --json -o rx "$C"
        expect_rc "$f wormhole->tallow $mode" 0 "$FG_RC"
        wait_pid 60 "$BG_PID"
        expect_rc "$f wormhole->tallow $mode (sender)" 0 "$WAIT_RC"
        same "$f" rx/"$f"
        grep -q "\"event\":\"received\".*\"path\":\"$mode\"" r.out || { show r.out; fail "$f: tallow did not report the $mode path"; }
        grep -q '"event":"progress"\|"event":"done"' r.out || fail "no progress events with --json"
        ok "$f wormhole -> tallow ($mode)"
    done
done
rm -f big.bin

# --no-p2p alone (the Python side listening and sending its direct hints): tallow neither sends
# hints nor dials the peer's, so the bytes can only go through the transit relay
mkrand small.bin 100000
rm -rf rx && mkdir rx
next_code
bg s "$T" send --wormhole --no-p2p --json --code "$C" small.bin
fg r 60 $W receive --accept-file -o rx/small.bin "$C"
wait_pid 30 "$BG_PID"
expect_rc "no-p2p sender" 0 "$WAIT_RC"
same small.bin rx/small.bin
grep -q '"event":"sent".*"path":"relay"' s.out || { show s.out; fail "--no-p2p sender went direct"; }
grep -q -- "->relay:" r.err || { show r.err; fail "wormhole did not receive through the relay"; }
rm -rf rx && mkdir rx
next_code
bg s $W send --code "$C" small.bin
fg r 60 "$T" receive --wormhole --no-p2p --json -o rx "$C"
expect_rc "no-p2p receiver" 0 "$FG_RC"
wait_pid 30 "$BG_PID"
same small.bin rx/small.bin
grep -q '"event":"received".*"path":"relay"' r.out || { show r.out; fail "--no-p2p receiver went direct"; }
ok "--no-p2p: no direct hints sent or dialled, relay only, both ways"

# an existing file is not replaced (tallow's receive rule: refused, exit 3), and the sender hears a refusal
rm -rf rx && mkdir rx && echo keep >rx/zero.bin
next_code
bg s $W send --code "$C" zero.bin
fg r 30 "$T" receive --wormhole --yes -o rx "$C"
expect_rc "existing file" 3 "$FG_RC"
grep -q "destination exists" r.err || { show r.err; fail "no 'destination exists' message"; }
[ "$(cat rx/zero.bin)" = keep ] || fail "existing file replaced"
wait_pid 30 "$BG_PID"
[ "$WAIT_RC" != 0 ] || fail "the Python sender did not see the refusal"
ok "an existing file is kept; the sender is told"

# -- folders: nested, empty subfolders, modes
mkdir -p tree/a/b/c tree/empty/inner
echo one >tree/a/one.txt; mkrand tree/a/b/c/deep.bin 300000; : >tree/zero; echo x >tree/exec.sh
chmod 755 tree/exec.sh; chmod 600 tree/a/one.txt
rm -rf rx && mkdir rx
next_code
bg s "$T" send --wormhole --code "$C" tree
fg r 60 $W receive --accept-file -o rx/tree "$C"
expect_rc "folder tallow->wormhole" 0 "$FG_RC"
wait_pid 30 "$BG_PID"
expect_rc "folder tallow->wormhole (sender)" 0 "$WAIT_RC"
diff -r tree rx/tree || fail "folder differs"
[ -d rx/tree/empty/inner ] || fail "empty folder missing"
[ "$(stat -c %a rx/tree/exec.sh)" = 755 ] && [ "$(stat -c %a rx/tree/a/one.txt)" = 600 ] || fail "modes not kept"
ok "folder tallow -> wormhole (nested, empty folders, modes)"

rm -rf rx && mkdir rx
next_code
bg s $W send --code "$C" tree
fg r 60 "$T" receive --wormhole --yes -o rx "$C"
expect_rc "folder wormhole->tallow" 0 "$FG_RC"
wait_pid 30 "$BG_PID"
# magic-wormhole's zip holds files only: its empty folders do not travel
diff -r -x empty tree rx/tree || fail "folder differs"
[ "$(stat -c %a rx/tree/exec.sh)" = 755 ] || fail "mode not kept"
ok "folder wormhole -> tallow (nested, modes)"

# -- wrong code: both sides stop, tallow with its usual message
next_code
bg s $W send --code "$C" --text secret
fg r 30 "$T" receive --wormhole --yes "${C%-*}-wrong"
expect_rc "wrong code (tallow receiver)" 4 "$FG_RC"
grep -q "code mismatch" r.err || { show r.err; fail "no code-mismatch message"; }
wait_pid 30 "$BG_PID"
grep -qi "key confirmation failed\|WrongPassword" s.err || { show s.err; fail "wormhole did not refuse"; }
ok "wrong code: tallow receiver and wormhole sender both refuse"

next_code
bg s "$T" send --wormhole --code "$C" --text secret
fg r 30 $W receive "${C%-*}-wrong"
[ "$FG_RC" != 0 ] || fail "wormhole accepted a wrong code"
wait_pid 30 "$BG_PID"
expect_rc "wrong code (tallow sender)" 4 "$WAIT_RC"
grep -q "code mismatch" s.err || { show s.err; fail "no code-mismatch message"; }
ok "wrong code: tallow sender and wormhole receiver both refuse"
