#!/bin/sh
# relay_reconnect_tls.sh — relay_reconnect.sh over `--relay tls://` (a TLS-only relay with a
# self-signed certificate, clients pinning its key): the connections are cut mid-transfer
# (ss -K on the TCP sockets under TLS); each side makes a new TLS connection, resumes with its
# token and proof, and the file arrives intact. Needs root (ss -K).
set -eu
T=${TALLOW_BIN:?}
W=$(mktemp -d /tmp/tallow-reconnect-tls.XXXXXX)
RP=""
cleanup() { [ -n "$RP" ] && kill "$RP" 2>/dev/null; pkill -P $$ 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT INT TERM
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root for ss -K"; exit 1; }
command -v openssl >/dev/null || { echo "FAIL: openssl is not installed (scripts/deps.sh)"; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/key.pem" \
    -out "$W/cert.pem" -days 2 -subj /CN=localhost >/dev/null 2>&1
PIN=$(openssl x509 -in "$W/cert.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/src" "$W/dst"
head -c 200000000 /dev/urandom > "$W/src/big.bin"
TALLOW_LOG=info "$T" relay --listen 127.0.0.1:$PORT --cert "$W/cert.pem" --key "$W/key.pem" 2> "$W/relay.log" &
RP=$!
for i in $(seq 50); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done
export TALLOW_RELAY=tls://127.0.0.1:$PORT TALLOW_RELAY_PIN=$PIN
CODE=22-reconnect-river-stone
TALLOW_LOG=info timeout 120 "$T" send --json --code $CODE "$W/src/big.bin" > "$W/send.json" 2> "$W/send.log" &
SP=$!
TALLOW_LOG=info timeout 120 "$T" receive --yes --json -o "$W/dst" $CODE > "$W/recv.json" 2> "$W/recv.log" &
RCP=$!

cut=0
for i in $(seq 600); do
    sz=$(stat -c %s "$W"/dst/.big.bin.*.tallow-part 2>/dev/null || echo 0)
    if [ "$sz" -gt 20000000 ]; then
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
grep -q "TLS only" "$W/relay.log" || { echo "FAIL: the relay did not serve TLS"; exit 1; }
echo "reconnect over TLS ok: $(grep -h '"event":"sent"' "$W/send.json")"
