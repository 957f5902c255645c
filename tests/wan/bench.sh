#!/bin/sh
# bench.sh — `make bench-wan`: goodput over emulated real links (not part of `make test`).
#
# Topology: the two-NAT internet of tests/nat (hosts A and B behind NATs, relay, iperf3 server,
# magic-wormhole mailbox and transit relay on the "internet" namespace). tests/wan/link.sh puts
# delay, loss and a rate limit on NAT A, which every path crosses exactly once: tallow direct
# (A -> NAT A -> NAT B -> B, QUIC), tallow relay (A -> relay -> B, TCP), iperf3 (A -> server,
# TCP with the named algorithm), magic-wormhole (A -> transit relay -> B, TCP, --no-listen).
#
# Per cell (RTT ms / loss % / rate): iperf3 with BBR and with CUBIC for WAN_SECS (8) s each; then
# tallow and magic-wormhole move a file of about WAN_SECS seconds at the BBR rate (8..256 MiB);
# a tallow that has not finished after WAN_TIMEOUT (60) s is stopped and rated on what arrived.
# Also: a 1 KiB file end to end (both processes started -> receiver done) relay and direct, and
# "direct up": pairing -> the direct path carries data (sender's paired and path events).
#
# Knobs: WAN_CELLS (default the whole matrix: RTT {10,40,100,250} x loss {0,0.1,1,3} x rate
# {50mbit,500mbit,unlimited}) as "RTT/LOSS/RATE ...", e.g. WAN_CELLS="100/1/unlimited 40/0/50mbit";
# WAN_CASES (default "bbr cubic direct relay wormhole small"); WAN_SECS; WAN_TIMEOUT; WAN_SIZE_MB
# (fixed file size instead); WAN_LOGS (logs of failed tallow runs, /tmp/tallow-wan-logs); WAN_OUT
# (markdown table appended there too, default /tmp/tallow-wan.md). Needs root; takes
# /tmp/tallow-netns.lock for the whole run (call it under `flock /tmp/tallow-bench.lock`).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${WAN_LOCKED:-}" ]; then
    WAN_LOCKED=1 exec flock /tmp/tallow-netns.lock "$0" "$@"
fi
. "$HERE/../nat/nat_lib.sh"
LINK=$HERE/link.sh
SECS=${WAN_SECS:-8}
TMO=${WAN_TIMEOUT:-60}
OUT=${WAN_OUT:-/tmp/tallow-wan.md}
LOGS=${WAN_LOGS:-/tmp/tallow-wan-logs} # logs of the tallow runs that failed or timed out
CASES=${WAN_CASES:-bbr cubic direct relay wormhole small}
if [ -z "${WAN_CELLS:-}" ]; then
    WAN_CELLS=""
    for r in 10 40 100 250; do for l in 0 0.1 1 3; do for b in 50mbit 500mbit unlimited; do
        WAN_CELLS="$WAN_CELLS $r/$l/$b"
    done; done; done
fi
has() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }
now() { date +%s.%N; }

build_nat ""
export LINK_NS=$NA
ip netns exec $I iperf3 -s -p 5201 > "$W/iperf3-server.txt" 2>&1 &
MB=198.51.100.1
if has wormhole; then
    ip netns exec $I twist3 wormhole-mailbox --port=tcp:4000:interface=$MB \
        --channel-db="$W/mailbox.sqlite" > "$W/mailbox.txt" 2>&1 &
    ip netns exec $I twist3 transitrelay --port=tcp:4001:interface=$MB > "$W/transit.txt" 2>&1 &
fi
for i in $(seq 100); do
    ss_out=$(ip netns exec $I ss -ltn)
    echo "$ss_out" | grep -q ":5201 " && { ! has wormhole || { echo "$ss_out" | grep -q ":4001 " &&
        echo "$ss_out" | grep -q ":4000 "; }; } && break
    sleep 0.1
done
WH="wormhole --relay-url ws://$MB:4000/v1 --transit-helper tcp:$MB:4001"

# srcfile SIZE: a random file of SIZE bytes (made once per size)
srcfile() {
    [ -f "$W/src-$1/f.bin" ] || { mkdir -p "$W/src-$1"; head -c "$1" /dev/urandom > "$W/src-$1/f.bin"; }
    echo "$W/src-$1/f.bin"
}

# iperf ALG: Mbit/s received over SECS seconds
iperf() {
    ip netns exec $HA timeout $((SECS + 30)) iperf3 -c $MB -p 5201 -t "$SECS" -C "$1" -J \
        > "$W/iperf.json" 2> /dev/null || true
    python3 -c 'import json,sys
try:
    d = json.load(open(sys.argv[1])); print("%.1f" % (d["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception: print("fail")' "$W/iperf.json"
}

# tallow MODE SIZE CODE: sets G (Mbit/s of the data phase), P (path), UP (ms pairing -> direct),
# WALL (s, both started -> both exited)
tallow_run() {
    mode=$1 src=$(srcfile "$2") code=$3
    opt=""
    [ "$mode" = relay ] && opt=--no-p2p
    rm -rf "$W/dst"
    mkdir -p "$W/dst"
    t0=$(now)
    ( TALLOW_LOG=${WAN_LOG:-info} ip netns exec $HA $ISO timeout "$TMO" "$T" send --relay "$RELAY" $opt --json --code "$code" "$src" \
        2> "$W/s.log" | stamp > "$W/s.json" ) &
    sp=$!
    TALLOW_LOG=${WAN_LOG:-info} ip netns exec $HB $ISO timeout "$TMO" "$T" receive --relay "$RELAY" $opt --yes --json -o "$W/dst" "$code" \
        2> "$W/r.log" | stamp > "$W/r.json" || true
    wait $sp || true
    WALL=$(echo "$(now) - $t0" | bc)
    # G and P from the receiver's final event (else its last progress event)
    set -- $(python3 -c 'import json,sys
ev = None
for l in open(sys.argv[1], errors="replace"):
    try: e = json.loads(l.split(" ", 1)[1])
    except Exception: continue
    if e.get("event") == "received" or (e.get("event") == "progress" and (not ev or ev.get("event") != "received")): ev = e
if not ev or not ev.get("seconds"): print("fail -"); sys.exit()
g = ev["bytes"] * 8 / ev["seconds"] / 1e6
print("%.1f%s %s" % (g, "" if ev["event"] == "received" else "*", ev.get("path", "-")))' "$W/r.json")
    G=$1 P=$2
    cmp -s "$src" "$W/dst/f.bin" || case $G in *\*) ;; *) G="$G*" ;; esac
    tp=$(grep -a '"event":"paired"' "$W/s.json" | cut -d' ' -f1)
    td=$(grep -a '"event":"path"' "$W/s.json" | cut -d' ' -f1)
    UP=-
    case ${WAN_KEEP:+keep}$G in keep* | *\* | fail*)
        mkdir -p "$LOGS/$code"
        cp "$W/s.log" "$W/r.log" "$W/s.json" "$W/r.json" "$LOGS/$code/" 2>/dev/null || true ;;
    esac
    if [ -n "$tp" ] && [ -n "$td" ]; then
        UP=$(echo "($td - $tp) * 1000" | bc | awk '{ printf "%.0f", $1 }')
    fi
}

# wormhole SIZE N: Mbit/s over the whole run (pairing included), through the transit relay
wormhole_run() {
    src=$(srcfile "$1")
    rm -rf "$W/dst"
    mkdir -p "$W/dst"
    t0=$(now)
    ip netns exec $HA timeout "$TMO" $WH send --hide-progress --no-listen --code "$2-wormhole-wan-apple" "$src" \
        > "$W/ws.txt" 2>&1 &
    sp=$!
    ip netns exec $HB timeout "$TMO" $WH receive --hide-progress --no-listen --accept-file \
        -o "$W/dst/f.bin" "$2-wormhole-wan-apple" > "$W/wr.txt" 2>&1 || true
    wait $sp || true
    t1=$(now)
    if cmp -s "$src" "$W/dst/f.bin"; then
        echo "$1 $t0 $t1" | awk '{ printf "%.1f", $1 * 8 / ($3 - $2) / 1e6 }'
    else
        echo "fail"
    fi
}

# Only this tree's plugins: tallow also loads the install prefix's, and a `make install` of another
# version there would be measured too (WAN_ISOLATE=0 keeps them).
ISO=""
PD=/usr/local/lib/tallow/plugins
if [ "${WAN_ISOLATE:-1}" = 1 ] && [ -d "$PD" ]; then
    mkdir -p "$W/noplugins"
    printf '#!/bin/sh\nmount --bind %s %s && exec "$@"\n' "$W/noplugins" "$PD" > "$W/iso.sh"
    chmod +x "$W/iso.sh"
    ISO="unshare -m $W/iso.sh"
fi
cc=$(ip netns exec $HA sysctl -n net.ipv4.tcp_congestion_control)
{
    echo
    echo "#### WAN matrix, $(date -u '+%Y-%m-%d %H:%M') UTC, $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?'), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "Mbit/s of goodput; tallow relay's TCP and magic-wormhole's use the system's $cc. * = did not finish in ${TMO} s (rated on what arrived) or differs."
    echo
    echo "| RTT ms | loss % | rate | iperf3 BBR | iperf3 CUBIC | tallow direct | tallow relay | magic-wormhole transit | 1 KiB relay / direct s | direct up ms |"
    echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
} | tee -a "$OUT"
n=0
for cell in $WAN_CELLS; do
    rtt=${cell%%/*} rest=${cell#*/}
    loss=${rest%%/*} rate=${rest#*/}
    n=$((n + 1))
    "$LINK" "$rtt" "$loss" "$rate" > /dev/null || fail "link.sh $rtt $loss $rate"
    bbr=- cub=- gd=- gr=- gw=- small=- up=-
    has bbr && bbr=$(iperf bbr)
    has cubic && cub=$(iperf cubic)
    # size: about SECS seconds at the BBR rate (or the rate limit), 8..256 MiB
    ref=$(echo "$bbr" | awk '{ print ($1 + 0 > 0) ? $1 : 100 }')
    size=$(awk -v m="$ref" -v s="$SECS" 'BEGIN { x = m * 1e6 / 8 * s; if (x < 8388608) x = 8388608;
        if (x > 268435456) x = 268435456; printf "%d", x }')
    [ -n "${WAN_SIZE_MB:-}" ] && size=$((WAN_SIZE_MB * 1048576))
    if has direct; then
        tallow_run direct "$size" "$n-direct-wan-river"
        gd=$G
        [ "$P" = direct ] || gd="$G ($P)"
        up=$UP
    fi
    has relay && { tallow_run relay "$size" "$n-relay-wan-river"; gr=$G; }
    has wormhole && gw=$(wormhole_run "$size" "$n")
    if has small; then
        tallow_run relay 1024 "$n-smallrelay-wan-river"
        a=$WALL
        tallow_run direct 1024 "$n-smalldirect-wan-river"
        small=$(printf "%.2f / %.2f" "$a" "$WALL")
        [ "$P" = direct ] || small="$small ($P)"
        if [ "$up" = - ]; then up=$UP; fi
    fi
    echo "| $rtt | $loss | $rate | $bbr | $cub | $gd | $gr | $gw | $small | $up |" | tee -a "$OUT"
done
"$LINK" clear
