# hsmbridge: `make demo` and `make test` do all set-up on a fresh Debian 12
# machine (run as root so missing packages can be installed).

GO        ?= go
CC        ?= cc
BUILD     := build
MODULES   := $(BUILD)/ossl-modules
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-X main.version=$(VERSION)"

.PHONY: all build deps provider provider-asan go-binaries c-tools test test-unit demo demo-mhsm demo-azihsm bench bench-mhsm bench-tls proto clean install uninstall man deb test-deb fuzz fuzz-c

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
	cd plugins/pkcs11 && $(GO) build $(GOFLAGS_BUILD) -o $(abspath $(BUILD))/plugins/hsmbridge-pkcs11 ./cmd/hsmbridge-pkcs11
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/bin/mhsm-standin ./testdoubles/mhsm-standin/cmd/mhsm-standin

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
	protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative \
		examples/grpc-sidecar/greeter/greeter.proto

# The whole suite: unit, contract and end-to-end tests (real openssl, real
# nginx, real plugin processes). End-to-end tests refuse to skip here.
test: build
	HSMBRIDGE_REQUIRE_E2E=1 $(GO) test -count=1 -timeout 20m ./...
	cd plugins/pkcs11 && HSMBRIDGE_REQUIRE_E2E=1 $(GO) test -count=1 -timeout 10m ./...

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

# The Managed HSM seed's flows and nginx with managedhsm: routed by config to
# the PKCS#11 plugin on a fresh SoftHSM2 token (examples/config/pkcs11-softhsm.hcl).
.PHONY: demo-pkcs11
demo-pkcs11: build
	@scripts/demo-pkcs11.sh

# The examples (examples/nginx on the simulator and on the Managed HSM
# stand-in, examples/grpc-sidecar on the simulator), each run exactly as its
# README says: the scripts in order, then its cleanup.
.PHONY: examples
examples: build
	@scripts/examples.sh

# examples/grpc-direct: a grpc-go server and client with mutual TLS, every key
# (theirs and the CA's) in the backend through the hsmkey package, no sidecar
# and no OpenSSL; its scripts in its README's order, stopped even on failure.
.PHONY: example-grpc-direct
example-grpc-direct: go-binaries
	@cd examples/grpc-direct && { ./generate-certs.sh && ./start-demo.sh && ./run-client.sh && \
	    ./try-untrusted-client.sh; rc=$$?; ./stop-demo.sh; exit $$rc; }

# Latency, throughput, CPU and memory through the whole path beside OpenSSL's
# default provider with key files, each figure against its target.
bench: build
	@GO=$(GO) scripts/bench.sh

# P-256 signing through the Managed HSM path against the stand-in with 0 and
# 20 ms latency, beside direct azkeys calls (bench/azkeysbench), and under
# injected faults (bench/faultload); each figure against its target.
bench-mhsm: build
	@scripts/bench-mhsm.sh

# Full TLS handshakes/s of nginx 1.22 (2 workers) with a key file beside an
# hsmbridge key, RSA-2048 and P-256, TLS 1.3 and 1.2, with CPU per handshake
# of nginx, hsmhost, its plugin and the load client (bench/tlsload).
bench-tls: build
	@GO=$(GO) scripts/bench-tls.sh

# Installed like an OpenSSL provider: the module, under its three names, in
# the MODULESDIR that `openssl version -m` names (so `-provider akv_provider`
# finds it without -provider-path or OPENSSL_MODULES), hsmhost and the
# plugins under PREFIX, and the man pages rendered by the hsmhost installed.
# `make uninstall` (same PREFIX and DESTDIR) removes exactly INSTALLED.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
PLUGINDIR  ?= $(PREFIX)/lib/hsmbridge/plugins
MANDIR     ?= $(PREFIX)/share/man
MODULESDIR ?= $(shell openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$$/\1/p')
PLUGINS    := hsmbridge-simulator hsmbridge-mhsm hsmbridge-azihsm hsmbridge-pkcs11
MANPAGES   := man8/hsmhost.8 man7/hsmbridge.7
INSTALLED  := $(DESTDIR)$(BINDIR)/hsmhost \
              $(PLUGINS:%=$(DESTDIR)$(PLUGINDIR)/%) \
              $(HB_OSSL_NAMES:%=$(DESTDIR)$(MODULESDIR)/%.so) \
              $(MANPAGES:%=$(DESTDIR)$(MANDIR)/%)

# The pages, from the binary itself (docs/man holds the same, checked in).
man: go-binaries
	@mkdir -p $(BUILD)/man
	$(BUILD)/bin/hsmhost manpage hsmhost.8 --version $(VERSION) > $(BUILD)/man/hsmhost.8
	$(BUILD)/bin/hsmhost manpage hsmbridge.7 --version $(VERSION) > $(BUILD)/man/hsmbridge.7

install: provider go-binaries man
	@test -n "$(MODULESDIR)" || { echo "cannot read MODULESDIR from openssl version -m; set MODULESDIR=" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(MODULESDIR) \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man7
	install -m 0755 $(BUILD)/bin/hsmhost $(DESTDIR)$(BINDIR)/hsmhost
	install -m 0755 $(PLUGINS:%=$(BUILD)/plugins/%) $(DESTDIR)$(PLUGINDIR)/
	install -m 0644 $(HB_OSSL_MODULES) $(DESTDIR)$(MODULESDIR)/
	install -m 0644 $(BUILD)/man/hsmhost.8 $(DESTDIR)$(MANDIR)/man8/hsmhost.8
	install -m 0644 $(BUILD)/man/hsmbridge.7 $(DESTDIR)$(MANDIR)/man7/hsmbridge.7

uninstall:
	@test -n "$(MODULESDIR)" || { echo "cannot read MODULESDIR from openssl version -m; set MODULESDIR=" >&2; exit 1; }
	rm -f $(INSTALLED)
	@for d in $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(PREFIX)/lib/hsmbridge; do \
	    [ ! -d "$$d" ] || rmdir --ignore-fail-on-non-empty "$$d"; done

# A Debian package (build/hsmbridge_<version>_<arch>.deb) made with
# dpkg-deb from `make install PREFIX=/usr` plus the systemd unit, the
# service's config and the openssl.cnf sections (packaging/); `apt-get
# install ./build/hsmbridge_*.deb` on Debian 12.
deb: deps provider go-binaries man
	@BUILD=$(BUILD) MAKE="$(MAKE)" scripts/make-deb.sh

# Builds and installs the package on this machine, runs the seeds' flows
# against the installed files and the service's command line, then purges it.
test-deb:
	@scripts/test-deb.sh

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
