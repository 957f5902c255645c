#!/bin/sh
# runner.sh — the `tallow` program itself: --help lists the stock commands with summaries,
# --version, `tallow run` of the hello example (a CandidateOffer round trip through the registry),
# a plugin with the wrong ABI reported with the file and both ABI numbers while the run goes on,
# unknown commands refused, and every stock command answering --help.
set -eu
T=${TALLOW_BIN:?}
out=$("$T" --help)
for c in send receive relay; do
    echo "$out" | grep -Eq "^  $c +[A-Z]" || { echo "FAIL: --help does not list $c"; echo "$out"; exit 1; }
done
"$T" --version | grep -q "^tallow [0-9]" || { echo "FAIL: --version"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
TALLOW_PLUGIN_PATH=${FAKE_PLUGIN_DIR:?} "$T" run "${SRC:?}/examples/scripts/hello.lua" > "$log" 2>&1 || {
    echo "FAIL: hello.lua did not run with a bad plugin on the path"; cat "$log"; exit 1; }
grep -q "round trip ok" "$log" || { echo "FAIL: no round trip"; cat "$log"; exit 1; }
grep -q "decoded CandidateOffer" "$log" || { echo "FAIL: no CandidateOffer decoded"; cat "$log"; exit 1; }
ABI=$(sed -n 's/^#define TALLOW_PLUGIN_ABI \([0-9]*\)$/\1/p' "$SRC/include/tallow/plugin.h")
grep -q "fake_abi.so: ABI mismatch (plugin ABI 999, tallow ABI $ABI); going on without it" "$log" || {
    echo "FAIL: the wrong-ABI plugin was not reported with file and both numbers"; cat "$log"; exit 1; }

if "$T" nosuchcommand > "$log" 2>&1; then echo "FAIL: unknown command accepted"; exit 1; fi
grep -q "no command 'nosuchcommand'" "$log" || { echo "FAIL: unclear error"; cat "$log"; exit 1; }

for c in $(ls "$SRC/lua/commands" | sed 's/\.lua$//'); do
    "$T" "$c" --help > "$log" 2>&1 || { echo "FAIL: tallow $c --help failed"; cat "$log"; exit 1; }
    grep -q "^usage: tallow $c" "$log" || { echo "FAIL: tallow $c --help shows no usage"; cat "$log"; exit 1; }
done
echo "runner ok"
