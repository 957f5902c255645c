#!/usr/bin/env bash
# e2e relay over TLS: a relay serving TLS only (`--cert/--key`, a self-signed certificate made
# here with openssl) and clients on `--relay tls://`. A transfer with --relay-pin (base64 of the
# SHA-256 of the key's SubjectPublicKeyInfo) arrives intact, directly and through a SOCKS5
# proxy; a wrong pin, no pin (the certificate is not trusted by the system), a plain client on
# the TLS relay and a tls:// client on a plain relay each fail with their own message; a SIGHUP
# puts a new key in place (a broken one is refused, as by --check); a client stalling the
# handshake is closed at the join timeout. tcpdump on lo: the relay password (sent in the
# RoomJoin, in clear on a plain link — checked on a plain relay as the control) must not appear
# in the TLS capture.
set -eu
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl is not installed (scripts/deps.sh)"
command -v tcpdump >/dev/null || fail "tcpdump is not installed"

cd "$E2E_TMP"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
    -out cert.pem -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >openssl.log 2>&1 || { show openssl.log; fail "openssl req"; }
PIN=$(openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)
HEXPIN=$(openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -hex | awk '{print $NF}')
secret="tls-e2e-password-$RANDOM$RANDOM"

start_relay --cert cert.pem --key key.pem --password "$secret" --join-timeout 1
grep -q "TLS only" "$RELAY_LOG" || { show "$RELAY_LOG"; fail "the relay does not say it serves TLS only"; }
TLS_PORT=$RELAY_PORT
export TALLOW_RELAY_PASSWORD=$secret

pcap=$E2E_TMP/tls.pcap
tcpdump -i lo -U -n -s 0 --immediate-mode -B 131072 -w "$pcap" "tcp port $TLS_PORT" 2>tcpdump.err &
TD=$!
track "$TD"
wait_for 10 grep -q "listening on" tcpdump.err || { show tcpdump.err; fail "tcpdump did not start"; }

# 1. a transfer over tls:// with the pin (hex on one side, base64 on the other)
mkrand f.bin 3000000
mkdir dest
export TALLOW_RELAY=tls://localhost:$TLS_PORT
start_send pin --relay-pin "$PIN" f.bin
run_recv pin 30 --relay-pin "$HEXPIN" --yes -o dest "$CODE"
finish_send pin 30
both_ok pin
cmp f.bin dest/f.bin || fail "file differs"
cat pin.send.out pin.send.err | grep -q "over the relay" || { show pin.send.err; fail "not sent over the relay"; }
ok "transfer over tls:// with --relay-pin (base64 and hex)"

# 1b. the same through a SOCKS5 proxy (microsocks): TLS runs inside the proxied connection. The
# relay is named by its address here: microsocks tries only the first address of a name, and
# localhost can be ::1 first (a fresh Debian root has no /etc/hosts), where no relay listens.
command -v microsocks >/dev/null || fail "microsocks is not installed (scripts/deps.sh)"
SOCKS_PORT=$(free_port)
microsocks -i 127.0.0.1 -p "$SOCKS_PORT" >socks.log 2>&1 &
track $!
wait_for 10 sh -c "ss -Htln 'sport = :$SOCKS_PORT' | grep -q LISTEN" || fail "microsocks did not start"
mkdir dest2
start_send proxy --proxy "socks5://127.0.0.1:$SOCKS_PORT" --relay "tls://127.0.0.1:$TLS_PORT" --relay-pin "$PIN" f.bin
run_recv proxy 30 --proxy "socks5://127.0.0.1:$SOCKS_PORT" --relay "tls://127.0.0.1:$TLS_PORT" --relay-pin "$PIN" --yes -o dest2 "$CODE"
finish_send proxy 30
both_ok proxy
cmp f.bin dest2/f.bin || fail "file differs (proxy)"
ok "transfer over tls:// through a SOCKS5 proxy"

sleep 0.3
kill -INT "$TD"
wait_pid 10 "$TD"
grep -aqF "$secret" "$pcap" && fail "the relay password is visible on the TLS link"
[ "$(stat -c %s "$pcap")" -ge 6000000 ] || fail "the capture is smaller than the file: capture broken"
ok "capture of the TLS link: the RoomJoin's password is not in it"

# 1c. a client that stalls (nothing sent; half a ClientHello) is closed at the join timeout (1 s)
python3 - "$TLS_PORT" <<'PY' || fail "a stalled TLS handshake was not closed"
import socket, sys
for first in (b"", b"\x16\x03\x01\x00"):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(first)
    try:
        if s.recv(4096) != b"":
            sys.exit(1)
    except socket.timeout:
        sys.exit(1)
    except ConnectionResetError:
        pass
PY
ok "stalled TLS handshakes closed at the join timeout"

# each refusal: sender alone, must exit non-zero quickly with the message
refused() { # TAG PATTERN ARGS...
    local tag=$1 pat=$2; shift 2
    local rc=0
    timeout -s KILL 20 "$T" send --code "$(new_code)" "$@" f.bin </dev/null >"$tag.out" 2>"$tag.err" || rc=$?
    [ "$rc" -ne 0 ] || { show "$tag.err"; fail "$tag: the sender succeeded"; }
    [ "$rc" -ne 137 ] || fail "$tag: the sender hung"
    grep -q -- "$pat" "$tag.err" || { show "$tag.err"; fail "$tag: no '$pat' in the message"; }
    ok "$tag: $(head -n 1 "$tag.err")"
}
# 2. a wrong pin
refused wrongpin "does not match --relay-pin" --relay-pin "$(head -c 32 /dev/urandom | base64)"
# 3. no pin: the self-signed certificate is not trusted; the message names both fixes
refused untrusted "not trusted.*--relay-pin.*certificate this system trusts"
# 4. a plain client on the TLS-only relay
refused plain "serves TLS only: use --relay tls://" --relay "127.0.0.1:$TLS_PORT"
# 5. a malformed pin
refused badpin "not the base64 or hex of a SHA-256" --relay-pin nothex

# 6. SIGHUP re-reads the certificate and key: a new key, and the old pin now names the new one
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key2.pem \
    -out cert2.pem -days 2 -subj /CN=localhost >>openssl.log 2>&1 || { show openssl.log; fail "openssl req (2)"; }
PIN2=$(openssl x509 -in cert2.pem -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)
cp cert2.pem cert.pem
cp key2.pem key.pem
kill -HUP "$RELAY_PID"
wait_for 10 grep -q "configuration reloaded" "$RELAY_LOG" || { show "$RELAY_LOG"; fail "no reload"; }
refused reload "does not match --relay-pin (its key is sha256 $PIN2)" --relay-pin "$PIN"

# a broken file on reload: refused, the running key stays
echo "not a certificate" >cert.pem
kill -HUP "$RELAY_PID"
wait_for 10 grep -q "reload refused" "$RELAY_LOG" || { show "$RELAY_LOG"; fail "a broken certificate was not refused on reload"; }
refused reload2 "does not match --relay-pin (its key is sha256 $PIN2)" --relay-pin "$PIN"
# --check: a missing file, a certificate without its key
rc=0; "$T" relay --check --cert missing.pem --key key2.pem >check1.err 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "cannot load the TLS certificate" check1.err || { show check1.err; fail "--check took a missing certificate"; }
rc=0; "$T" relay --check --cert cert2.pem >check2.err 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "needs both --cert FILE and --key FILE" check2.err || { show check2.err; fail "--check took --cert without --key"; }
ok "bad certificates refused by --check and on reload"

# 7. a tls:// client on a plain relay (also the capture's control: the password in clear)
kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
start_relay --password "$secret"
tcpdump -i lo -U -n -s 0 --immediate-mode -B 131072 -w plain.pcap "tcp port $RELAY_PORT" 2>tcpdump2.err &
TD=$!
track "$TD"
wait_for 10 grep -q "listening on" tcpdump2.err || { show tcpdump2.err; fail "tcpdump did not start"; }
refused tlsonplain "TLS handshake failed.*does this relay serve TLS" --relay "tls://localhost:$RELAY_PORT" --relay-pin "$PIN"
# a plain sender waiting in a room: its RoomJoin (with the password) crosses the link in clear
"$T" send --code "$(new_code)" --relay "127.0.0.1:$RELAY_PORT" f.bin </dev/null >plainjoin.out 2>&1 &
PJ=$!
track "$PJ"
wait_for 10 grep -q "created" "$RELAY_LOG" || { show "$RELAY_LOG"; fail "the plain sender did not join"; }
kill "$PJ"; wait "$PJ" 2>/dev/null || true
sleep 0.3
kill -INT "$TD"
wait_pid 10 "$TD"
grep -aqF "$secret" plain.pcap || fail "control: the password is not in the plain capture (capture/grep broken)"
ok "control: on a plain link the password is in the capture"
