#!/bin/sh
# tests/bench/run.sh BUILD — `make bench`: installs what the benchmarks need from Debian (when
# root), then runs tests/bench/bench.py with the system Python (magic-wormhole's). Not part of
# `make test`. Knobs: BENCH_RUNS (3), BENCH_SIZE_MB (1024), BENCH_ONLY (big,small,concurrent,
# sync,watch), BENCH_CASES (e.g. 'tallow relay' or 'tallow' or 'direct': keep matching 1 GiB cases),
# BENCH_CONCURRENT (1000), BENCH_SYNC_FILES (10000), BENCH_DIR (/tmp/tallow-bench),
# BENCH_TALLOW_RUNS (5: the tallow rows of the 1 GiB table, min/median/max). The scp and rsync rows
# start their own sshd on 127.0.0.1 (root). One benchmark at a time: flock /tmp/tallow-bench.lock make bench.
set -eu
BUILD=${1:-build}
"$(dirname "$0")/../../scripts/deps.sh" magic-wormhole python3-magic-wormhole-mailbox-server \
    magic-wormhole-transit-relay time python3 diffutils openssh-server openssh-client rsync
export TALLOW_BIN="$(cd "$BUILD" && pwd)/bin/tallow"
export TALLOW_LUA_DIR="${TALLOW_LUA_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/lua}"
exec /usr/bin/python3 "$(dirname "$0")/bench.py"
