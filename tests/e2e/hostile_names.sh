#!/usr/bin/env bash
# e2e hostile names: a peer written with the Lua API (hostile_sender.lua) offers hand-made
# manifests with names that try to escape the destination (../, absolute, a/../../b, through a
# symlink planted in the destination) or to drive the terminal (ESC, CR), then pushes bytes anyway.
# Nothing may be written outside the destination, each refusal is reported on stderr, and no raw
# ESC or CR byte reaches the receiver's output.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay

uniq=$$-$RANDOM
base=$E2E_TMP/x
dest=$base/dest
outside=$E2E_TMP/outside
mkdir -p "$dest" "$outside"
ln -s "$outside" "$dest/link"
abs_target=/tmp/tallow-e2e-evil-$uniq
hostile=$(dirname "$0")/hostile_sender.lua

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
ESC=$(printf '\033') CR=$(printf '\r')

# hostile TAG NAME [stop] : one offer of NAME to a fresh `tallow receive` into $dest
hostile() {
    local tag=$1 name=$2 how=${3:-}
    CODE=$(new_code)
    "$T" run "$hostile" "$CODE" "$RELAY" "$(hex "$name")" $how >"$E2E_TMP/$tag.peer.out" 2>&1 &
    local hp=$!
    track "$hp"
    run_recv "$tag" 30 --yes -o "$dest" "$CODE"
    wait_pid 20 "$hp"
    [ "$WAIT_RC" -eq 0 ] || { show "$E2E_TMP/$tag.peer.out"; fail "$tag: the hostile peer itself failed ($WAIT_RC)"; }
    [ "$RECV_RC" -ne 0 ] || { show "$E2E_TMP/$tag.recv.err"; fail "$tag: receiver exited 0"; }
    # never a raw ESC or CR on the receiver's terminal
    if LC_ALL=C grep -q "[$ESC$CR]" "$E2E_TMP/$tag.recv.err" "$E2E_TMP/$tag.recv.out"; then
        cat -v "$E2E_TMP/$tag.recv.err" >&2
        fail "$tag: raw ESC/CR bytes in the receiver's output"
    fi
}

expect_err() { # TAG TEXT
    grep -qF -- "$2" "$E2E_TMP/$1.recv.err" || { show "$E2E_TMP/$1.recv.err"; fail "$1: receiver did not say: $2"; }
}

# names the manifest decoder refuses: the whole offer is refused and the peer is told
hostile dotdot "../evil-$uniq"
hostile absolute "$abs_target"
hostile updown "a/../../b-$uniq"
hostile escape "esc-$ESC[31mred$ESC[0m-${CR}cr-$uniq"
for tag in dotdot absolute updown escape; do
    expect_err "$tag" "refused the offer: unsafe path refused"
    grep -q '^FileReject' "$E2E_TMP/$tag.peer.out" || { show "$E2E_TMP/$tag.peer.out"; fail "$tag: the peer was not sent a FileReject"; }
done
ok "../, absolute, a/../../b and ESC/CR names: whole offer refused, peer told (FileReject)"

# through a symlink planted in the destination: the per-file check refuses it; the bytes the
# peer pushes anyway are refused too
hostile symlink "link/x"
expect_err symlink "refused link/x: unsafe path refused"
expect_err symlink "peer sent data for link/x, which was not accepted"
ok "link/x (dest/link -> outside): refused, pushed bytes refused"

# an accepted file, then the peer stops with a message full of terminal escapes
hostile stop "ok-$uniq.txt" stop
expect_err stop "the peer stopped the transfer"
grep -qF '\x1b' "$E2E_TMP/stop.recv.err" || { cat -v "$E2E_TMP/stop.recv.err" >&2; fail "stop: escape characters not shown escaped"; }
ok "the peer's error message is shown with ESC/CR escaped: $(grep 'stopped' "$E2E_TMP/stop.recv.err")"

# nothing written anywhere but the destination; the destination holds only the planted link
[ -z "$(ls -A "$outside")" ] || { ls -la "$outside"; fail "something was written through the symlink"; }
[ ! -e "$abs_target" ] || { rm -f "$abs_target"; fail "$abs_target was created"; }
[ "$(ls -A "$base")" = dest ] || { ls -la "$base"; fail "something was written next to the destination"; }
[ "$(ls -A "$dest")" = link ] || { ls -la "$dest"; fail "the destination holds more than the planted link"; }
[ -z "$(find "$E2E_TMP" -name "*$uniq*" -o -name '*evil*')" ] || { find "$E2E_TMP" -name "*$uniq*"; fail "a hostile name was created"; }
ok "outside dir empty, no $abs_target, nothing beside or inside the destination"
