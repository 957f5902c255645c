# Thin wrapper over the CMake build. `make demo` and `make test` work on a fresh Debian 12 (root).
BUILD ?= build
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local

.PHONY: all deps configure build test test-asan test-nat-matrix demo install bench fuzz clean

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
	@TALLOW_BIN=$(abspath $(BUILD))/bin/tallow TALLOW_LUA_DIR=$(CURDIR)/lua sh tests/nat/nat_matrix.sh

# Fuzz targets (clang, libFuzzer + ASan/UBSan) in build-fuzz, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DTALLOW_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzzers
	@./tests/fuzz/run_all.sh build-fuzz $(FUZZ_SECONDS)

demo: build
	@./scripts/demo.sh $(BUILD)

# Benchmarks against magic-wormhole and cp on loopback (tests/bench; not part of `make test`).
bench: build
	@./tests/bench/run.sh $(BUILD)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
