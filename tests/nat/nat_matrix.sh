#!/bin/sh
# nat_matrix.sh [small] — the NAT matrix: every ordered pair of the NAT types of nat_cell.sh
# (A sends and controls, B receives; both orders run), or with "small" a representative few.
# Prints a table of direct/relay, the winning candidate kinds (ours-theirs, A's view) and the
# time until the direct path was up, then checks each cell against what is possible in
# principle: direct whenever one side maps endpoint-independently or a gateway grants a mapping;
# relay when both map per destination or UDP is blocked. Every transfer must complete intact.
set -u
D=$(dirname "$0")
TYPES="eif adf apdf edm upnp cgnat blocked"
if [ "${1:-}" = small ]; then
    CELLS="adf:edm cgnat:edm blocked:eif"
else
    CELLS=""
    for a in $TYPES; do for b in $TYPES; do CELLS="$CELLS $a:$b"; done; done
fi
expect() {
    case "$1 $2" in
    blocked* | *blocked) echo relay ;;
    "edm edm") echo relay ;;
    *) echo direct ;;
    esac
}
OUT=$(mktemp)
bad=0
for c in $CELLS; do
    a=${c%:*} b=${c#*:}
    t0=$(date +%s.%N)
    r=$(sh "$D/nat_cell.sh" $a $b 2>&1)
    rc=$?
    res=$(echo "$r" | grep '^RESULT' | head -n 1 | cut -d' ' -f2-)
    secs=$(echo "$(date +%s.%N) - $t0" | bc | cut -c1-4)
    want=$(expect $a $b)
    got=${res%% *}
    if [ $rc -ne 0 ] || [ -z "$res" ]; then
        echo "$a -> $b: FAILED (transfer)"; echo "$r" | tail -n 30; bad=$((bad + 1)); got=failed
    elif [ "$got" != "$want" ]; then
        echo "$a -> $b: $res (expected $want)"; bad=$((bad + 1))
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
        *" direct direct "*) set -- $l; printf ' direct %s %s ms |' "$5" "$6" ;;
        *" relay relay"*) printf ' relay |' ;;
        *) printf ' FAILED |' ;;
        esac
    done
    echo
done
rm -f "$OUT"
[ $bad = 0 ] || { echo "FAIL: $bad cell(s) not as expected"; exit 1; }
