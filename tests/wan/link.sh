#!/bin/sh
# link.sh — turns a router namespace into a real-looking link: delay, random loss, a rate limit.
#
#   LINK_NS=<router netns> tests/wan/link.sh RTT_MS LOSS_PCT RATE    e.g. 100 1 50mbit
#   LINK_NS=<router netns> tests/wan/link.sh clear
#
# RATE is a tc rate (50mbit, 500mbit) or 0 / unlimited. The kernel here has no netem, so:
# - delay and loss: every packet the router forwards (mangle FORWARD, before the NAT's own filter
#   rules) goes to NFQUEUE LINK_QUEUE (default 7), where tests/wan/delayline holds it RTT/2 ms and
#   drops LOSS_PCT % of packets at random; each direction crosses the router once, so a round trip
#   gets RTT and each direction LOSS_PCT %. Delay sits on the router, never on a sending host
#   (held packets on the sender's own host count against TCP Small Queues).
# - rate: tbf on the egress of both router interfaces (LINK_DEVS, default "wan lan"), one
#   bandwidth-delay product of buffer (at least 100 KB).
# Needs root; run namespace work under `flock /tmp/tallow-netns.lock`. The delay line binary is
# DELAYLINE, or found next to TALLOW_BIN's build (build/tests/wan/delayline). Its pid and log are
# /tmp/tallow-link-<ns>.{pid,log}; `ip netns del` or `clear` ends it.
set -eu
NS=${LINK_NS:?LINK_NS: the router namespace}
Q=${LINK_QUEUE:-7}
DEVS=${LINK_DEVS:-wan lan}
PIDF=/tmp/tallow-link-$NS.pid
LOG=/tmp/tallow-link-$NS.log
if [ -z "${DELAYLINE:-}" ]; then
    DELAYLINE=$(dirname "${TALLOW_BIN:?TALLOW_BIN or DELAYLINE}")/../tests/wan/delayline
fi

clear_link() {
    if [ -f "$PIDF" ]; then
        kill "$(cat "$PIDF")" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$(cat "$PIDF")" 2>/dev/null || break; sleep 0.05; done
        rm -f "$PIDF"
    fi
    ip netns exec "$NS" iptables -t mangle -F FORWARD
    for d in $DEVS; do tc -n "$NS" qdisc del dev "$d" root 2>/dev/null || true; done
}

if [ "${1:-}" = clear ]; then
    clear_link
    exit 0
fi
[ $# -eq 3 ] || { echo "usage: LINK_NS=ns $0 RTT_MS LOSS_PCT RATE | clear" >&2; exit 2; }
RTT=$1 LOSS=$2 RATE=$3
[ -x "$DELAYLINE" ] || { echo "link.sh: no delay line at $DELAYLINE (build tallow first)" >&2; exit 1; }
clear_link

# Rate first (the queue may hold packets once the delay line runs).
case $RATE in
0 | unlimited | none) ;;
*)
    bits=$(echo "$RATE" | awk '{ v = $1 + 0; u = tolower($1); sub(/^[0-9.]+/, "", u);
        m = (u == "kbit") ? 1e3 : (u == "mbit") ? 1e6 : (u == "gbit") ? 1e9 : 1; printf "%d", v * m }')
    [ "$bits" -gt 0 ] || { echo "link.sh: bad rate $RATE" >&2; exit 2; }
    # burst: 2 ms at the rate (at least 32 KiB); buffer: one bandwidth-delay product (>= 100 KB)
    burst=$(awk -v b="$bits" 'BEGIN { x = b / 8 * 0.002; if (x < 32768) x = 32768; printf "%d", x }')
    limit=$(awk -v b="$bits" -v r="$RTT" 'BEGIN { x = b / 8 * r / 1000; if (x < 100000) x = 100000; printf "%d", x }')
    for d in $DEVS; do
        tc -n "$NS" qdisc replace dev "$d" root tbf rate "$bits" burst "$burst" limit "$limit"
    done
    ;;
esac

# Delay and loss: the queue holds one bandwidth-delay product at ~1 Gbit/s, at least 20,000.
maxlen=$(awk -v r="$RTT" 'BEGIN { x = 1e9 / 8 / 1500 * r / 2000 * 2; if (x < 20000) x = 20000; printf "%d", x }')
: > "$LOG"
ip netns exec "$NS" "$DELAYLINE" "$Q" "$(awk -v r="$RTT" 'BEGIN { printf "%.3f", r / 2 }')" "$LOSS" \
    "$maxlen" 2>> "$LOG" &
echo $! > "$PIDF"
for i in $(seq 100); do
    grep -q "delayline: ready" "$LOG" && break
    kill -0 "$(cat "$PIDF")" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.05
done
grep -q "delayline: ready" "$LOG" || { echo "link.sh: delay line did not start" >&2; cat "$LOG" >&2; exit 1; }
ip netns exec "$NS" iptables -t mangle -A FORWARD -j NFQUEUE --queue-num "$Q"
echo "link: $NS RTT ${RTT} ms, loss ${LOSS} %, rate $RATE"
