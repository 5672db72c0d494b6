# hsmbridge: `make demo` and `make test` do all set-up on a fresh Debian 12
# machine (run as root so missing packages can be installed).

GO        ?= go
CC        ?= cc
BUILD     := build
MODULES   := $(BUILD)/ossl-modules
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-X main.version=$(VERSION)"

.PHONY: all build deps provider provider-asan go-binaries c-tools test test-unit demo demo-mhsm demo-azihsm bench bench-mhsm bench-tls proto clean install fuzz fuzz-c

all: build

deps:
	@scripts/install-deps.sh

build: deps provider provider-asan go-binaries c-tools emulator

go-binaries:
	@mkdir -p $(BUILD)/bin $(BUILD)/plugins
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/bin/hsmhost ./cmd/hsmhost
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/plugins/hsmbridge-simulator ./plugins/simulator/cmd/hsmbridge-simulator
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/plugins/hsmbridge-mhsm ./plugins/mhsm/cmd/hsmbridge-mhsm
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/plugins/hsmbridge-azihsm ./plugins/azihsm-device/cmd/hsmbridge-azihsm
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/bin/mhsm-standin ./cmd/mhsm-standin

# The provider module (C): one object installed as hsmbridge.so,
# akv_provider.so and azihsm_provider.so.
include adapters/openssl/Makefile.inc
provider: ossl-modules

# The same module built with AddressSanitizer and UBSan, for the e2e tests
# that run the seed flows and nginx on it (e2e/sanitizer_test.go).
ASAN_MODULES := $(BUILD)/asan/ossl-modules
provider-asan:
	@$(MAKE) --no-print-directory ossl-modules HB_OSSL_OUT=$(ASAN_MODULES) \
	    HB_OSSL_CFLAGS="-O1 -g -Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

# The emulated Integrated HSM device (testdoubles/azihsm-emulator): the
# library the device backend loads in tests and demos, in place of the
# device's libazihsm_api_native.so.
include testdoubles/azihsm-emulator/Makefile.inc

# C programs that drive libcrypto: the benchmark tools and the threads+fork check.
include bench/Makefile.inc
c-tools: bench-tools $(BUILD)/bin/hsmbridge-stress

$(BUILD)/bin/hsmbridge-stress: adapters/openssl/tests/stress.c
	@mkdir -p $(BUILD)/bin
	$(CC) -O2 -g -Wall -Wextra -pthread -o $@ $< -lcrypto

# Regenerates the protocol code from the schemas (the output is checked in).
proto:
	protoc --go_out=. --go_opt=paths=source_relative api/hostapi/host.proto
	protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative \
		plugins/sdk/backendpb/backend.proto
	protoc --proto_path=api/hostapi --c_out=adapters/openssl/gen api/hostapi/host.proto

# The whole suite: unit, contract and end-to-end tests (real openssl, real
# nginx, real plugin processes). End-to-end tests refuse to skip here.
test: build
	HSMBRIDGE_REQUIRE_E2E=1 $(GO) test -count=1 -timeout 20m ./...

test-unit:
	$(GO) test ./core/... ./ports/... ./plugins/... ./internal/...

demo: build
	@scripts/demo.sh

# The same demo with managedhsm: routed by config to the Managed HSM backend,
# pointed at the local stand-in (examples/config/mhsm-standin.hcl).
demo-mhsm: build
	@scripts/demo-mhsm.sh

# The Integrated HSM seed's flows with azihsm:// routed by config to the
# device backend on the emulated device (examples/config/azihsm-emulator.hcl).
demo-azihsm: build
	@scripts/demo-azihsm.sh

# Latency, throughput, CPU and memory through the whole path beside OpenSSL's
# default provider with key files, each figure against its target.
bench: build
	@GO=$(GO) scripts/bench.sh

# P-256 signing through the Managed HSM path against the stand-in with 0 and
# 20 ms latency, beside direct azkeys calls (bench/azkeysbench).
bench-mhsm: build
	@scripts/bench-mhsm.sh

# Full TLS handshakes/s of nginx 1.22 (2 workers) with a key file beside an
# hsmbridge key, RSA-2048 and P-256, TLS 1.3 and 1.2, with CPU per handshake
# of nginx, hsmhost, its plugin and the load client (bench/tlsload).
bench-tls: build
	@GO=$(GO) scripts/bench-tls.sh

install: build
	install -d $(DESTDIR)/usr/local/bin $(DESTDIR)/usr/local/lib/hsmbridge/plugins
	install -m 0755 $(BUILD)/bin/hsmhost $(DESTDIR)/usr/local/bin/hsmhost
	install -m 0755 $(BUILD)/plugins/* $(DESTDIR)/usr/local/lib/hsmbridge/plugins/
	install -d $(DESTDIR)$(shell openssl version -m | sed 's/.*"\(.*\)"/\1/')
	install -m 0644 $(MODULES)/*.so $(DESTDIR)$(shell openssl version -m | sed 's/.*"\(.*\)"/\1/')/

clean:
	rm -rf $(BUILD)

# Each Go fuzz target in turn for $(FUZZTIME) (default 10s); `go test ./...`
# already runs their checked-in seed corpora.
fuzz:
	@GO=$(GO) scripts/fuzz.sh

# The C fuzz harnesses of the OpenSSL provider (adapters/openssl/fuzz/: the
# key-reference decoder, the frame reader), libFuzzer with ASan/UBSan, each
# for $(FUZZTIME) seconds (default 10); needs clang (Debian: apt-get install
# clang).
fuzz-c:
	@scripts/fuzz-c.sh
