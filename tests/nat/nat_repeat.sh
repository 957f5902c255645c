#!/bin/sh
# nat_repeat.sh TYPE_A TYPE_B RUNS — runs one cell of the NAT matrix (nat_cell.sh) RUNS times
# (at most 100) and prints how many went direct, how many of those had the direct path up within
# 3 s, and the times to direct (ms, sorted). A figure, not a test: no assertion on time.
# NAT_LOCK=FILE: each run takes that lock (flock) for itself.
set -u
D=$(dirname "$0")
A=${1:?type A} B=${2:?type B} N=${3:-20}
[ "$N" -ge 1 ] && [ "$N" -le 100 ] || { echo "RUNS must be 1..100"; exit 2; }
direct=0 fast=0 failed=0 times=""
i=0
while [ $i -lt "$N" ]; do
    i=$((i + 1))
    res=$(${NAT_LOCK:+flock "$NAT_LOCK"} sh "$D/nat_cell.sh" "$A" "$B" 2>&1 | grep '^RESULT' | head -n 1)
    echo "run $i: ${res:-FAILED}"
    set -- $res
    case "${2:-}" in
    direct)
        direct=$((direct + 1))
        times="$times $4"
        [ "$4" -le 3000 ] && fast=$((fast + 1))
        ;;
    relay) ;;
    *) failed=$((failed + 1)) ;;
    esac
done
echo "$A -> $B: direct $direct/$N, direct within 3 s $fast/$N, transfers failed $failed;" \
    "ms to direct:$(echo $times | tr ' ' '\n' | sort -n | paste -sd' ' -)"
[ $failed = 0 ]
