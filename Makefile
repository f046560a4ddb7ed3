# cloudeye-agent: build, test and package static musl binaries for x86_64 and aarch64.
#   make run    collect this machine's metrics and print the batch that would be sent
#   make test   everything CI runs: setup, fmt, clippy, tests on x86_64 and aarch64 (qemu)
#   make build  stripped static release binaries for both targets
#   make dist   per-architecture tarballs with SHA256SUMS
#   make bench  footprint figures (size, RSS, CPU per cycle)

TARGETS   := x86_64-unknown-linux-musl aarch64-unknown-linux-musl
BIN       := cloudeye-agent
VENV      := target/venv
CARGO     ?= cargo
MAX_BYTES := 2621440

export CLOUDEYE_SDK_PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: all setup venv run run-table build check-deps test lint test-native test-aarch64 dist bench clean

all: build

setup:
	./cross/setup.sh

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: setup $(VENV)/.installed

run:
	$(CARGO) run --release --quiet -- print

run-table:
	$(CARGO) run --release --quiet -- print --format table

check-deps:
	@if $(CARGO) tree --locked --target all -e normal,build 2>/dev/null | grep -q aws-lc; then \
		echo "error: aws-lc-sys is in the dependency tree; rustls must use ring only" >&2; exit 1; fi
	@echo "dependency check: no aws-lc in the tree"

build: setup check-deps $(addprefix build-,$(TARGETS))

build-%:
	$(CARGO) build --release --locked --target $*
	@f=target/$*/release/$(BIN); \
	file $$f | grep -Eq 'statically linked|static-pie linked' || { echo "error: $$f is not static" >&2; exit 1; }; \
	size=$$(stat -c %s $$f); \
	if [ $$size -gt $(MAX_BYTES) ]; then echo "error: $$f is $$size bytes, over the 2.5 MiB budget" >&2; exit 1; fi; \
	echo "$$f: $$size bytes, $$(file -b $$f | cut -d, -f1-2)"

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: venv check-deps lint test-native test-aarch64

# Doctests run on the host target: rustdoc links them as static-pie, which the
# non-PIE x86_64 musl objects cannot join; they are architecture-independent anyway.
test-native:
	$(CARGO) test --locked --target x86_64-unknown-linux-musl --lib --bins --tests
	$(CARGO) test --locked --doc

test-aarch64:
	CLOUDEYE_TEST_RUNNER=qemu-aarch64-static $(CARGO) test --locked --target aarch64-unknown-linux-musl
	$(CARGO) build --locked --target aarch64-unknown-linux-musl
	qemu-aarch64-static target/aarch64-unknown-linux-musl/debug/$(BIN) version

dist: build
	./packaging/make-dist.sh $(TARGETS)

bench:
	./bench/run.sh

clean:
	$(CARGO) clean
	rm -rf dist
