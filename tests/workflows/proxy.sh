#!/bin/sh
# proxy.sh — transfers through a SOCKS5 proxy (microsocks): --proxy socks5://HOST:PORT, and
# --tor (a SOCKS5 proxy at 127.0.0.1:9050, when that port is free here). The proxy connects out
# from 127.0.0.2, so the relay seeing its peers at 127.0.0.2 (and the sender connected to the
# proxy's port, not the relay's) shows the relay connection went through the proxy.
. "$(dirname "$0")/rooms_lib.sh"
command -v microsocks >/dev/null || { echo "SKIP: needs microsocks"; exit 77; }
start_relay

socks() { # socks PORT: microsocks on 127.0.0.1:PORT connecting out from 127.0.0.2
    microsocks -i 127.0.0.1 -p "$1" -b 127.0.0.2 > "$W/socks$1.log" 2>&1 &
    track $!
    for i in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$1 " && return 0; sleep 0.05; done
    fail "microsocks did not start on $1"
}
SP=$(free_port)
socks $SP

mkdir -p "$W/src" "$W/dst1" "$W/dst2"
head -c 2000000 /dev/urandom > "$W/src/data.bin"

# ---- --proxy: the sender waits in the room through the proxy; check its connections
CODE=51-proxy-lichen-sparrow
"$T" send --proxy socks5://127.0.0.1:$SP --code $CODE "$W/src/data.bin" > "$W/send1.out" 2> "$W/send1.err" &
S=$!; track $S
wait_grep 10 "created (capacity 2)" "$W/relay.log"
ss -tnp > "$W/ss.txt"
grep "pid=$S," "$W/ss.txt" | grep -q "127.0.0.1:$SP " || fail "the sender is not connected to the proxy: $(grep "pid=$S," "$W/ss.txt")"
grep "pid=$S," "$W/ss.txt" | grep -q "127.0.0.1:$RELAY_PORT " && fail "the sender is connected to the relay directly"
grep -E "127.0.0.1:$RELAY_PORT +127.0.0.2:" "$W/ss.txt" | grep -q "pid=$RELAY_PID," ||
    fail "the relay has no connection from the proxy's address 127.0.0.2"
timeout 30 "$T" receive --proxy socks5://127.0.0.1:$SP --yes -o "$W/dst1" $CODE > "$W/recv1.out" 2> "$W/recv1.err" &
R=$!; track $R
wait_exit 30 $S "send through the proxy"
wait_exit 30 $R "receive through the proxy"
cmp "$W/src/data.bin" "$W/dst1/data.bin" || fail "bytes differ after the proxy"
[ "$(grep -c "connected to 127.0.0.1:$RELAY_PORT" "$W/socks$SP.log")" = 2 ] ||
    fail "the proxy did not carry both peers' relay connections"

# ---- --tor: the same through 127.0.0.1:9050
if ss -ltn | grep -q "127.0.0.1:9050 \|0.0.0.0:9050 \|\*:9050 "; then
    echo "note: port 9050 is taken here; --tor not exercised"
else
    socks 9050
    CODE=52-proxy-lichen-sparrow
    "$T" send --tor --code $CODE "$W/src/data.bin" > "$W/send2.out" 2> "$W/send2.err" &
    S=$!; track $S
    wait_grep 10 "created (capacity 2)" "$W/relay.log" 2
    ss -tnp > "$W/ss2.txt"
    grep "pid=$S," "$W/ss2.txt" | grep -q "127.0.0.1:9050 " || fail "--tor: the sender is not connected to 127.0.0.1:9050"
    timeout 30 "$T" receive --tor --yes -o "$W/dst2" $CODE > "$W/recv2.out" 2> "$W/recv2.err" &
    R=$!; track $R
    wait_exit 30 $S "send --tor"
    wait_exit 30 $R "receive --tor"
    cmp "$W/src/data.bin" "$W/dst2/data.bin" || fail "bytes differ after --tor"
fi
echo "proxy ok"
