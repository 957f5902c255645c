#!/bin/sh
# Runs one fuzz target for a fixed time over its committed seeds (corpus/<target>) and crash
# regressions (regress/<target>), new inputs going to a temporary directory. Exits non-zero if
# the target finds a crash, a leak or a sanitizer report. Used by CTest (label `fuzz`) and by
# `make fuzz` (run_all.sh).
#   run_fuzz.sh BINARY FUZZ_SRC_DIR SECONDS [WORK_CORPUS_DIR]
set -u
bin=$1 src=$2 secs=$3
name=$(basename "$bin")
if [ ! -x "$bin" ]; then
    echo "$name: $bin not built" >&2
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
work=${4:-$tmp/corpus}
mkdir -p "$work" "$tmp/artifacts"
dirs="$work"
for d in "$src/corpus/$name" "$src/regress/$name"; do
    [ -d "$d" ] && dirs="$dirs $d"
done
# shellcheck disable=SC2086
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$tmp/artifacts/" $dirs >"$tmp/log" 2>&1
rc=$?
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$tmp/log" | grep -o '[0-9]*$' | head -n 1)
cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$tmp/log" | tail -n 1)
corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$tmp/log" | tail -n 1)
printf '%-22s %s s  execs %s  %s  %s  exit %s\n' "$name" "$secs" "${execs:-?}" "${cov:-cov: ?}" \
    "${corp:-}" "$rc"
if [ $rc -ne 0 ]; then
    tail -n 60 "$tmp/log"
    for a in "$tmp"/artifacts/*; do
        [ -e "$a" ] || continue
        echo "$name: crash input kept in $a (add it to tests/fuzz/regress/$name/)"
        od -A d -t x1 "$a" | head -n 20
    done
    exit 1
fi
rm -rf "$tmp"
exit 0
