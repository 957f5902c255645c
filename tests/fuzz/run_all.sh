#!/bin/sh
# `make fuzz`: every fuzz target for FUZZ_SECONDS each (default 60), a working corpus per target
# kept in BUILD/corpus/<target> between runs; prints executions and coverage. Non-zero if any
# target found something.   run_all.sh BUILD_DIR [SECONDS]
set -u
build=$1 secs=${2:-60}
src=$(cd "$(dirname "$0")" && pwd)
fail=0
for t in fuzz_codec fuzz_stun fuzz_sockaddr fuzz_manifest fuzz_relay_frame fuzz_resume \
         fuzz_session_record fuzz_quic_stream; do
    mkdir -p "$build/corpus/$t"
    sh "$src/run_fuzz.sh" "$build/fuzz/$t" "$src" "$secs" "$build/corpus/$t" || fail=1
done
exit $fail
