#!/bin/sh
# nat_matrix.sh [small] — the NAT matrix: every ordered pair of the NAT types of nat_cell.sh
# (A sends and controls, B receives; both orders run), or with "small" a representative few.
# Prints a table of direct/relay, the winning candidate kinds (ours-theirs, A's view), the
# time until the direct path was up (and how many birthday probes found it), or for the relay
# the time from pairing until it was chosen; then checks each cell against what is possible in
# principle: direct whenever one side maps endpoint-independently or a gateway grants a mapping,
# and for two hosts behind one NAT (hairpin, or one LAN); relay when both map per destination,
# UDP is blocked, or one side has only IPv6 and the other only IPv4. A relay cell must also carry
# its reason ("direct_failed" in --json). Every transfer must complete intact.
set -u
D=$(dirname "$0")
TYPES="eif adf apdf edm seq upnp cgnat hairpin nohairpin v6fw blocked"
if [ "${1:-}" = small ]; then
    CELLS="adf:edm apdf:seq hairpin:hairpin v6fw:v6fw blocked:eif"
else
    CELLS=""
    for a in $TYPES; do for b in $TYPES; do CELLS="$CELLS $a:$b"; done; done
fi
expect() {
    case "$1 $2" in
    blocked* | *blocked) echo relay ;;
    "v6fw v6fw") echo direct ;;
    v6fw* | *v6fw) echo relay ;;
    "edm edm" | "edm seq" | "seq edm" | "seq seq") echo relay ;;
    *) echo direct ;;
    esac
}
# a sequential-allocation NAT against an endpoint-independent one: the easy side must predict
predicts() {
    case "$1 $2" in
    "seq "*) b=$2 ;;
    *" seq") b=$1 ;;
    *) echo no; return ;;
    esac
    case $b in eif | adf | apdf | cgnat | hairpin | nohairpin) echo yes ;; *) echo no ;; esac
}
OUT=$(mktemp)
bad=0
for c in $CELLS; do
    a=${c%:*} b=${c#*:}
    t0=$(date +%s.%N)
    # NAT_LOCK=FILE: each cell takes that lock (flock) for itself, so a long run shares namespaces
    r=$(${NAT_LOCK:+flock "$NAT_LOCK"} sh "$D/nat_cell.sh" $a $b 2>&1)
    rc=$?
    res=$(echo "$r" | grep '^RESULT' | head -n 1 | cut -d' ' -f2-)
    secs=$(echo "$(date +%s.%N) - $t0" | bc | cut -c1-4)
    want=$(expect $a $b)
    got=${res%% *}
    if [ $rc -ne 0 ] || [ -z "$res" ]; then
        echo "$a -> $b: FAILED (transfer)"; echo "$r" | tail -n 30; bad=$((bad + 1)); got=failed
    elif [ "$got" != "$want" ]; then
        echo "$a -> $b: $res (expected $want)"; bad=$((bad + 1))
    elif [ "$a $b" = "hairpin hairpin" ] && echo "$res" | grep -q host; then
        # the two LAN segments are isolated: a host pair means the test is broken
        echo "$a -> $b: $res (expected the hairpin, not a host pair)"; bad=$((bad + 1))
    elif [ "$(predicts $a $b)" = yes ] && ! echo "$res" | grep -q predicted; then
        echo "$a -> $b: $res (expected the sequential ports predicted)"; bad=$((bad + 1))
    elif [ "$(predicts $a $b)" = yes ] && [ "$(echo "$res" | cut -d' ' -f4)" != - ] &&
        [ "$(echo "$res" | cut -d' ' -f4)" -gt 832 ]; then
        # 832: the nearest 64 predicted ports 8 times, then 320 more
        echo "$a -> $b: $res (found after the predicted ports)"; bad=$((bad + 1))
    elif [ "$got" = relay ] && [ -z "$(echo "$res" | cut -d' ' -f3-)" ]; then
        echo "$a -> $b: $res (no direct_failed reason)"; bad=$((bad + 1))
    else
        echo "$a -> $b: $res (${secs} s for the cell)"
    fi
    echo "$a $b $got $res" >> "$OUT"
done
# the table: rows A (sender), columns B (receiver); D kinds ms | R
echo
printf '| A \\ B |'; for b in $TYPES; do printf ' %s |' $b; done; echo
printf '|---|'; for b in $TYPES; do printf -- '---|'; done; echo
for a in $TYPES; do
    grep -q "^$a " "$OUT" || continue
    printf '| %s |' $a
    for b in $TYPES; do
        l=$(grep "^$a $b " "$OUT" | head -n 1)
        case "$l" in
        "") printf '  |' ;;
        *" direct direct "*)
            set -- $l
            if [ "$7" = - ]; then printf ' direct %s %s ms |' "$5" "$6"
            elif [ "$8" = predicted ]; then printf ' direct %s %s ms (%s probes, predicted) |' "$5" "$6" "$7"
            else printf ' direct %s %s ms (%s probes) |' "$5" "$6" "$7"; fi
            ;;
        *" relay relay "*) set -- $l; printf ' relay %s ms |' "$5" ;;
        *) printf ' FAILED |' ;;
        esac
    done
    echo
done
echo
echo "Why the direct path failed (relay cells): $(grep ' relay relay ' "$OUT" | cut -d' ' -f6- | sort | uniq -c | sed 's/^ *//' | paste -sd';' -)"
rm -f "$OUT"
[ $bad = 0 ] || { echo "FAIL: $bad cell(s) not as expected"; exit 1; }
