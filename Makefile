# skiff: `make test` installs what is missing, builds, and runs unit and e2e tests;
# `sudo make demo` runs the seed's ReplicaSet on `skiff up`.
SHELL := /bin/bash
export GOTOOLCHAIN := local
export CGO_ENABLED := 0
GO ?= go
BIN := $(CURDIR)/bin
PAUSE := cri/pause/pause
GO_SOURCES := $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum

.PHONY: all build deps images test unit e2e lab critest bench-cri demo bench bench-seed bench-pods clean fmt vet

all: build

$(PAUSE): cri/pause/pause.c cri/pause/build.sh
	cri/pause/build.sh

$(BIN)/skiff: $(GO_SOURCES) $(PAUSE)
	$(GO) build -trimpath -ldflags '-s -w' -o $@ ./cmd/skiff

$(BIN)/registry: $(GO_SOURCES)
	$(GO) build -trimpath -o $@ ./test/registry

build: $(BIN)/skiff $(BIN)/registry

deps:
	hack/install-deps.sh

# Test images as OCI layouts, built offline from Debian packages.
images: $(BIN)/registry
	test/images/build.sh $(BIN)/images

# CRICTL lets the CRI tests drive the stock crictl against our server.
unit: $(PAUSE)
	CRICTL=$(BIN)/tools/crictl $(GO) test -count=1 ./...

e2e: build images
	SKIFF_BIN=$(BIN)/skiff SKIFF_IMAGES=$(BIN)/images CRICTL=$(BIN)/tools/crictl \
		$(GO) test -count=1 -tags e2e -timeout 30m -v ./test/e2e/

# A multi-node lab on this machine: a server and N agents in network namespaces.
lab: build images
	SKIFF_BIN=$(BIN)/skiff REGISTRY_BIN=$(BIN)/registry SKIFF_IMAGES=$(BIN)/images \
		$(GO) test -count=1 -tags e2e -timeout 30m -v ./test/lab/

# CRI conformance: critest against skiff's CRI server and containerd's own CRI plugin on
# the same daemon (docs/conformance.md); bench-cri compares their latencies.
critest: deps
	test/critest/run.sh

bench-cri: deps
	test/critest/bench.sh

test: deps
	$(MAKE) unit
	$(MAKE) e2e
	$(MAKE) lab

demo: deps build images
	hack/demo.sh

bench: bench-seed bench-pods

# 20 pods one by one, then 100 at once on one node: p50/p90/p99 created → Running, total
# time, and the RSS of `skiff agent` (agent and CRI server) with `skiff server` apart.
bench-pods: deps build images
	SKIFF_BIN=$(BIN)/skiff SKIFF_IMAGES=$(BIN)/images \
		$(GO) test -count=1 -tags e2e -run '^$$' -bench BenchmarkPods -benchtime 1x -timeout 30m -v ./test/e2e/

bench-seed: deps build images
	SKIFF_BIN=$(BIN)/skiff SKIFF_IMAGES=$(BIN)/images \
		$(GO) test -count=1 -tags e2e -run '^$$' -bench BenchmarkSeed -benchtime 3x -timeout 30m ./test/e2e/

fmt:
	gofmt -w $$(git ls-files '*.go')

vet: $(PAUSE)
	$(GO) vet ./...

clean:
	rm -rf $(BIN) $(PAUSE)
