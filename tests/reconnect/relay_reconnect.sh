#!/bin/sh
# relay_reconnect.sh [plain|tls] — a transfer survives its relay connections being cut mid-way: the
# relay transport reconnects with its resume token, the session moves to fresh keys, and the
# transfer resynchronises from the receiver's position. Needs root (ss -K destroys the sockets).
# tls: the same over `--relay tls://` (a TLS-only relay with a self-signed certificate, clients
# pinning its key): the TCP sockets under TLS are cut; each side makes a new TLS connection,
# resumes with its token and proof, and the file arrives intact.
set -eu
MODE=${1:-plain}
T=${TALLOW_BIN:?}
W=$(mktemp -d /tmp/tallow-reconnect-$MODE.XXXXXX)
RP=""
cleanup() { [ -n "$RP" ] && kill "$RP" 2>/dev/null; pkill -P $$ 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT INT TERM
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root for ss -K"; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/src" "$W/dst"
case $MODE in
plain)
    MB=400 CUT_AT=40000000 POLLS=400 CODE=21-reconnect-river-stone
    RELAY_TLS="" URL=127.0.0.1:$PORT ;;
tls)
    MB=200 CUT_AT=20000000 POLLS=600 CODE=22-reconnect-river-stone
    command -v openssl >/dev/null || { echo "FAIL: openssl is not installed (scripts/deps.sh)"; exit 1; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/key.pem" \
        -out "$W/cert.pem" -days 2 -subj /CN=localhost >/dev/null 2>&1
    TALLOW_RELAY_PIN=$(openssl x509 -in "$W/cert.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
        openssl dgst -sha256 -binary | base64)
    export TALLOW_RELAY_PIN
    RELAY_TLS="--cert $W/cert.pem --key $W/key.pem" URL=tls://127.0.0.1:$PORT ;;
*) echo "FAIL: mode $MODE (plain or tls)"; exit 1 ;;
esac
head -c ${MB}000000 /dev/urandom > "$W/src/big.bin"
# shellcheck disable=SC2086 # RELAY_TLS is two options or none
TALLOW_LOG=info "$T" relay --listen 127.0.0.1:$PORT $RELAY_TLS 2> "$W/relay.log" &
RP=$!
for i in $(seq 50); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done
export TALLOW_RELAY=$URL
TALLOW_LOG=info timeout 120 "$T" send --json --code $CODE "$W/src/big.bin" > "$W/send.json" 2> "$W/send.log" &
SP=$!
TALLOW_LOG=info timeout 120 "$T" receive --yes --json -o "$W/dst" $CODE > "$W/recv.json" 2> "$W/recv.log" &
RCP=$!

# cut every client connection to the relay once some data has arrived
cut=0
for i in $(seq $POLLS); do
    sz=$(stat -c %s "$W"/dst/.big.bin.*.tallow-part 2>/dev/null || echo 0)
    if [ "$sz" -gt $CUT_AT ]; then
        ss -K dst 127.0.0.1 dport = :$PORT >/dev/null 2>&1 || true
        cut=1
        break
    fi
    sleep 0.02
done
wait $SP || { echo "FAIL: sender exited non-zero"; cat "$W/send.log"; exit 1; }
wait $RCP || { echo "FAIL: receiver exited non-zero"; cat "$W/recv.log"; exit 1; }
[ $cut = 1 ] || { echo "FAIL: the transfer finished before the connections could be cut"; exit 1; }
cmp "$W/src/big.bin" "$W/dst/big.bin"
grep -q "interrupted; resuming" "$W/send.log" "$W/recv.log" || {
    echo "FAIL: no reconnection happened"; cat "$W/send.log" "$W/recv.log"; exit 1; }
ls -a "$W/dst" | grep -q tallow-part && { echo "FAIL: stray partial file"; exit 1; }
if [ "$MODE" = tls ]; then
    grep -q "TLS only" "$W/relay.log" || { echo "FAIL: the relay did not serve TLS"; exit 1; }
fi
echo "reconnect ($MODE) ok: $(grep -h '"event":"sent"' "$W/send.json")"
