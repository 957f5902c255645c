# Thin wrapper over the CMake build. `make demo` and `make test` work on a fresh Debian 12 (root).
BUILD ?= build
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local

.PHONY: all deps configure build test test-asan test-nat-matrix demo install bench bench-relay bench-wan fuzz clean

all: build

deps:
	@./scripts/deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B build-asan -DTALLOW_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ctest --output-on-failure -j $(JOBS) -LE noasan

# Every pair of NAT behaviours in network namespaces (root; about 5 minutes): direct or relay,
# winning candidate kinds, time to direct.
test-nat-matrix: build
	@NAT_LOCK=$${NAT_LOCK:-/tmp/tallow-netns.lock} TALLOW_BIN=$(abspath $(BUILD))/bin/tallow \
		TALLOW_LUA_DIR=$(CURDIR)/lua sh tests/nat/nat_matrix.sh

# Fuzz targets (clang, libFuzzer + ASan/UBSan) in build-fuzz, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DTALLOW_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzzers
	@./tests/fuzz/run_all.sh build-fuzz $(FUZZ_SECONDS)

demo: build
	@./scripts/demo.sh $(BUILD)

# Benchmarks against magic-wormhole, scp, rsync -e ssh (a throwaway sshd on 127.0.0.1, root) and
# cp on loopback (tests/bench; not part of `make test`): CPU s per GiB for every row, min/median/max
# over BENCH_TALLOW_RUNS (5) runs of the tallow rows. One benchmark at a time:
# flock /tmp/tallow-bench.lock make bench
bench: build
	@./tests/bench/run.sh $(BUILD)

# One relay at scale (tests/bench/relay_scale.py): 10,000 idle rooms, 1,000 concurrent transfers,
# a churn bounded in time (BENCH_CHURN_SECS, default 60); RSS, fds, CPU s/GiB. Results in
# tests/bench/RESULTS.md. Holds /tmp/tallow-bench.lock so benchmarks do not overlap.
bench-relay: build
	@flock /tmp/tallow-bench.lock env TALLOW_BIN=$(BUILD)/bin/tallow python3 tests/bench/relay_scale.py

# Goodput over emulated real links (delay, loss, rate; tests/wan/bench.sh, root): WAN_CELLS picks
# cells ("100/1/unlimited 40/0/50mbit"), the default is the whole 48-cell matrix (~45 min).
bench-wan: build
	@./scripts/deps.sh magic-wormhole python3-magic-wormhole-mailbox-server \
		magic-wormhole-transit-relay iperf3 iputils-ping bc
	@TALLOW_BIN=$(abspath $(BUILD))/bin/tallow TALLOW_LUA_DIR=$(CURDIR)/lua ./tests/wan/bench.sh

# the program, library, plugins, man pages and shell completions only (no tests); quiet
install: configure
	@cmake --build $(BUILD) -j $(JOBS) --target runtime >/dev/null
	@cmake --install $(BUILD) | grep -v "^-- Up-to-date" | sed -n '$$p'
	@echo "installed tallow into $(PREFIX) (man tallow, man tallow-relay; completions for bash, zsh, fish)"

clean:
	rm -rf $(BUILD) build-asan build-fuzz
