#!/bin/sh
# failover_mixed.sh — a relay list that mixes schemes: a plain relay and a TLS-only one
# ("127.0.0.1:P,tls://127.0.0.1:S", the TLS relay's key pinned). Both peers meet on the room's
# first relay; mid-transfer (the receiver held with SIGSTOP once 20 MB arrived) that relay is
# killed, and both move to the other one, where they meet again and the file arrives intact.
# Twice, with codes chosen so that the room goes once from plain to TLS, once from TLS to plain.
set -eu
T=${TALLOW_BIN:?}
W=$(mktemp -d /tmp/tallow-failover-mixed.XXXXXX)
PIDS=""
cleanup() { for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; for f in "$W"/*.log; do echo "---- $f"; tail -n 20 "$f"; done; exit 1; }
command -v openssl >/dev/null || fail "openssl is not installed (scripts/deps.sh)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/key.pem" \
    -out "$W/cert.pem" -days 2 -subj /CN=localhost >/dev/null 2>&1
PIN=$(openssl x509 -in "$W/cert.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
head -c 150000000 /dev/urandom > "$W/big.bin"
export TALLOW_RELAY_PIN=$PIN TALLOW_NO_P2P=1

# first_relay LIST CODE: the room's first relay (tallow.relays' rendezvous order)
first_relay() {
    "$T" run /dev/stdin "$1" "$2" <<'LUA'
print(require("tallow.relays").order(arg[1], arg[2])[1])
LUA
}

run_case() { # WANT (plain|tls): the carrier to kill
    want=$1
    P=$(port); S=$(port)
    LIST="127.0.0.1:$P,tls://127.0.0.1:$S"
    CODE=""
    for n in $(seq 100 199); do
        c="$n-failover-mixed-stone"
        f=$(first_relay "$LIST" "$c")
        case "$f" in tls://*) got=tls ;; *) got=plain ;; esac
        if [ "$got" = "$want" ]; then CODE=$c; break; fi
    done
    [ -n "$CODE" ] || fail "no code puts the $want relay first"
    rm -rf "$W/dst"; mkdir -p "$W/dst"
    TALLOW_LOG=info "$T" relay --listen 127.0.0.1:$P 2> "$W/plain-relay.log" &
    PP=$!; PIDS="$PIDS $PP"
    TALLOW_LOG=info "$T" relay --listen 127.0.0.1:$S --cert "$W/cert.pem" --key "$W/key.pem" 2> "$W/tls-relay.log" &
    SP=$!; PIDS="$PIDS $SP"
    for i in $(seq 50); do
        ss -ltn | grep -q ":$P " && ss -ltn | grep -q ":$S " && break
        sleep 0.1
    done
    TALLOW_LOG=info timeout 120 "$T" send --relay "$LIST" --code $CODE "$W/big.bin" > "$W/send.out" 2> "$W/send.log" &
    SENDP=$!; PIDS="$PIDS $SENDP"
    TALLOW_LOG=info timeout 120 "$T" receive --relay "$LIST" --yes -o "$W/dst" $CODE > "$W/recv.out" 2> "$W/recv.log" &
    RECVP=$!; PIDS="$PIDS $RECVP"
    held=0
    for i in $(seq 1000); do
        sz=$(stat -c %s "$W"/dst/.big.bin.*.tallow-part 2>/dev/null || echo 0)
        if [ "$sz" -gt 20000000 ]; then
            kill -STOP $(pgrep -P $RECVP) 2>/dev/null || true # the receiver (timeout's child)
            held=1
            break
        fi
        sleep 0.02
    done
    [ $held = 1 ] || fail "the transfer did not reach 20 MB"
    if [ "$(ss -Htn state established "dport = :$P" | wc -l)" -gt 0 ]; then carrier=plain; else carrier=tls; fi
    [ $carrier = "$want" ] || fail "the room is on the $carrier relay, expected $want"
    if [ $carrier = plain ]; then kill -9 $PP; else kill -9 $SP; fi
    kill -CONT $(pgrep -P $RECVP) 2>/dev/null || true
    wait $SENDP || fail "sender exited non-zero (carrier $carrier)"
    wait $RECVP || fail "receiver exited non-zero (carrier $carrier)"
    cmp "$W/big.bin" "$W/dst/big.bin" || fail "file differs"
    grep -q "moving to" "$W/send.log" "$W/recv.log" || fail "no failover happened"
    if [ $carrier = plain ]; then
        grep -q "paired" "$W/tls-relay.log" || fail "the TLS relay did not pair the room"
        kill -9 $SP
    else
        grep -q "paired" "$W/plain-relay.log" || fail "the plain relay did not pair the room"
        kill -9 $PP
    fi
    echo "ok: failover from the $carrier relay to the other ($CODE)"
}
run_case plain
run_case tls
