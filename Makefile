# skewscope: `make run` and `make test` set up everything they need (via `make deps`).
CARGO ?= cargo
BIN := target/release/skewscope
ARGS ?=

.PHONY: deps build run test test-unit golden bench lab fmt lint doctor clean vm-e2e fuzz

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --release --bin skewscope

run: build
	$(BIN) run $(ARGS)

doctor: build
	$(BIN) doctor

# Every test: parsers over real fixtures, live kernel tests (root: eBPF, netlink, netns
# labs), the golden end-to-end tests, then the guests of the kernels users run (vm-e2e).
# As root, privileged tests must run: a skip fails.
export SKEWSCOPE_REQUIRE_PRIVILEGED ?= $(shell [ "$$(id -u)" -eq 0 ] && echo 1)
test: deps
	$(CARGO) test --workspace --no-fail-fast
	scripts/vm/run.sh 5.10 6.1 6.12

# A skewed SO_REUSEPORT UDP group in its own namespace (LAB_SECONDS, default 60):
# start it, then `make run` in another terminal.
lab: deps
	scripts/lab.sh

# Stock Debian 5.10, 6.1 and 6.12 guests under QEMU (TCG) with an igb NIC: the agent's
# per-listener events, RSS table and per-queue counts against ground truth in each guest.
# Installs its own needs (scripts/vm/deps.sh); about a minute per kernel. Part of `make test`.
vm-e2e:
	scripts/vm/run.sh 5.10 6.1 6.12

# Re-write the golden files of the end-to-end tests from the current binary.
golden: deps
	UPDATE_GOLDEN=1 $(CARGO) test -p skewscope --test golden

bench: deps
	$(CARGO) bench -p skewscope --bench cycle
	$(CARGO) bench -p skewscope --bench overhead
	$(CARGO) bench -p skewscope --bench peer
	$(CARGO) bench -p skewscope --bench footprint
	$(CARGO) bench -p skewscope-shadow --bench replay

# Coverage-guided fuzzing of every parser and decoder (agent/fuzz, cargo-fuzz on nightly),
# FUZZ_SECONDS (default 30) per target; findings land in agent/fuzz/artifacts/.
fuzz:
	scripts/fuzz.sh

fmt:
	$(CARGO) fmt --all

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
