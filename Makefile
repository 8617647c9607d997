# Ferry's entry points. `make demo` and `make test` are the two commands a
# fresh clone needs; everything they depend on is installed by hack/tools.sh
# (Debian packages, and kube-apiserver, etcd and opm built from Go modules,
# cached under ~/.cache/ferry/tools).

GO        ?= go
BIN       := bin
FERRY     := $(BIN)/ferry
FUZZTIME  ?= 60s
BENCHTIME ?= 1x
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/ferry-gitops/ferry/internal/cli.version=$(VERSION)

.PHONY: all build demo test unit e2e tools bench fuzz vet clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(FERRY) ./cmd/ferry

## demo: run Ferry on the embedded example config repo (no cluster, no registry needed).
demo: build
	@hack/demo.sh $(FERRY)

## test: every test, unit and end-to-end against real servers; installs what they need.
test: tools vet
	$(GO) test -count=1 -timeout 45m ./...

## unit: the fast tests only (no real servers).
unit:
	FERRY_SKIP_E2E=1 $(GO) test -count=1 ./...

tools:
	hack/tools.sh

vet:
	$(GO) vet ./...

## bench: benchmarks, side by side with the tools users would otherwise run.
bench: tools
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem ./...
	hack/bench-fbc.sh

## fuzz: fuzz the spec loader (FUZZTIME=10m for a long run).
fuzz:
	$(GO) test ./spec -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME)

clean:
	rm -rf $(BIN)
