#!/usr/bin/env bash
# scripts/demo.sh BUILD_DIR — `make demo`: a local relay, a 50 MiB file, and two peers on this
# machine sending it through the relay, end-to-end encrypted with a short code phrase.
# Cleans up (relay stopped, temp dir removed) however it ends.
set -eu

BUILD=${1:-build}
TALLOW=$(cd "$BUILD" && pwd)/bin/tallow
[ -x "$TALLOW" ] || { echo "demo: $TALLOW not found — run 'make' first" >&2; exit 1; }

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "==> $*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tallow-demo.XXXXXX")
RELAY_PID=""
SEND_PID=""
cleanup() {
    rc=$?
    set +e
    [ -n "$SEND_PID" ] && kill "$SEND_PID" 2>/dev/null && wait "$SEND_PID" 2>/dev/null
    [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
    rm -rf "$WORK"
    [ "$rc" -eq 0 ] || echo "demo FAILED (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# 1. A relay on a free loopback port. It only ever sees ciphertext.
port=""
for _ in $(seq 1 50); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! ss -Htanu 2>/dev/null | awk '{print $5}' | grep -q ":$p\$"; then port=$p; break; fi
done
[ -n "$port" ] || { echo "demo: no free port" >&2; exit 1; }
RELAY=127.0.0.1:$port
step "Starting a relay on $RELAY"
echo "    $ tallow relay --listen $RELAY"
"$TALLOW" relay --listen "$RELAY" 2>"$WORK/relay.log" &
RELAY_PID=$!
for _ in $(seq 1 100); do
    ss -Htln "sport = :$port" 2>/dev/null | grep -q LISTEN && break
    kill -0 "$RELAY_PID" 2>/dev/null || { cat "$WORK/relay.log" >&2; exit 1; }
    sleep 0.05
done
export TALLOW_RELAY=$RELAY TALLOW_NO_P2P=1

# 2. Something to send.
mkdir -p "$WORK/alice" "$WORK/bob"
FILE=$WORK/alice/holiday-video.bin
step "Making a 50 MiB file to send"
head -c $((50 * 1024 * 1024)) /dev/urandom >"$FILE"
sum=$(sha256sum "$FILE" | cut -d' ' -f1)
echo "    $FILE"
echo "    sha256 $sum"

# 3. Alice sends. tallow makes up a code phrase and prints it; she tells it to Bob.
step "Alice sends it (and reads the code phrase to Bob)"
echo "    $ tallow send holiday-video.bin"
(cd "$WORK/alice" && exec timeout 60 "$TALLOW" send holiday-video.bin) 2>"$WORK/alice.log" &
SEND_PID=$!
CODE=""
for _ in $(seq 1 200); do
    CODE=$(sed -n 's/^Code is: //p' "$WORK/alice.log")
    [ -n "$CODE" ] && break
    kill -0 "$SEND_PID" 2>/dev/null || break
    sleep 0.05
done
[ -n "$CODE" ] || { cat "$WORK/alice.log" >&2; echo "demo: the sender printed no code" >&2; exit 1; }
sed 's/^/    [alice] /' "$WORK/alice.log"

# 4. Bob receives with the code: CPace turns it into a shared key; the file arrives sealed.
#    (On a terminal the receiver draws a progress bar.)
step "Bob receives it with the code"
echo "    $ tallow receive --yes -o bob $CODE"
timeout 60 "$TALLOW" receive --yes -o "$WORK/bob" "$CODE" || { echo "demo: receiving failed" >&2; exit 1; }
wait "$SEND_PID" || { SEND_PID=""; cat "$WORK/alice.log" >&2; echo "demo: sending failed" >&2; exit 1; }
SEND_PID=""
echo "    [alice] $(tail -n 1 "$WORK/alice.log")"

# 5. Same bytes?
step "Checking"
got=$WORK/bob/holiday-video.bin
cmp "$FILE" "$got" || { echo "demo: the file differs!" >&2; exit 1; }
echo
bold "demo OK: file arrived intact (sha256 $(sha256sum "$got" | cut -d' ' -f1))"
