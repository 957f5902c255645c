#!/bin/sh
# version.sh — releases of different protocol versions refuse each other with a message that
# says so, never a garbled failure: (1) this tallow against a relay of the release before (a
# stand-in that answers RoomJoin like relay protocol 1 did: VersionReject{1}), (2) a client of the
# release before (RoomJoin version 1) against this relay: VersionReject naming both versions.
set -eu
T=${TALLOW_BIN:?}
W=$(mktemp -d /tmp/tallow-version.XXXXXX)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; for f in "$W"/*.log; do echo "--- $f"; tail -n 20 "$f"; done; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# (1) an old relay
OLD=$(port)
python3 - "$OLD" > "$W/oldrelay.log" 2>&1 <<'PY' &
import socket, sys
def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80); v >>= 7
    out.append(v); return bytes(out)
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(4); ls.settimeout(30)
for _ in range(4):  # a reachability probe may connect first and send nothing
    c, _ = ls.accept(); c.settimeout(10)
    if not c.recv(4096):  # the RoomJoin
        c.close(); continue
    why = b"unsupported relay protocol version"
    body = bytes([1 << 3 | 0, 1]) + bytes([2 << 3 | 2]) + varint(len(why)) + why
    msg = varint(2) + varint(len(body)) + body  # VersionReject{version 1, reason}
    c.sendall((len(msg) + 1).to_bytes(4, "big") + b"\x00" + msg)
    c.close()
    print("answered")
    break
PY
PIDS="$PIDS $!"
for i in $(seq 50); do ss -ltn | grep -q "127.0.0.1:$OLD " && break; sleep 0.1; done
st=0
timeout 20 "$T" send --relay 127.0.0.1:$OLD --code 5-velvet-anchor-pebble --text hi > "$W/send.log" 2>&1 || st=$?
[ $st != 0 ] || fail "send against an old relay exited 0"
[ $st != 124 ] || fail "send against an old relay hung"
grep -q "incompatible versions: the relay speaks protocol 1, this tallow 2" "$W/send.log" ||
    fail "no clear version message from the client"

# (2) an old client against this relay
NEW=$(port)
"$T" relay --listen 127.0.0.1:$NEW 2> "$W/relay.log" &
PIDS="$PIDS $!"
for i in $(seq 50); do ss -ltn | grep -q "127.0.0.1:$NEW " && break; sleep 0.1; done
python3 - "$NEW" > "$W/oldclient.log" 2>&1 <<'PY' || fail "the relay did not refuse a version-1 join clearly"
import socket, sys
def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80); v >>= 7
    out.append(v); return bytes(out)
room = bytes(32)
body = bytes([1 << 3 | 2]) + varint(len(room)) + room + bytes([3 << 3 | 0, 1])  # RoomJoin v1
msg = varint(3) + varint(len(body)) + body
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall((len(msg) + 1).to_bytes(4, "big") + b"\x00" + msg)
data = b""
while True:
    d = s.recv(4096)
    if not d: break
    data += d
print(data)
assert data[4] == 0 and data[5] == 2, "not a VersionReject"
assert b"version 1 (this relay speaks 2)" in data, data
PY
echo "version ok: both directions refused with a version message"
