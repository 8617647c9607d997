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

.PHONY: all build image demo test unit e2e tools bench fuzz vet clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(FERRY) ./cmd/ferry

## image: the container image, without a container engine: static ferry
## binaries for linux/amd64 and linux/arm64 on a scratch base with CA
## certificates and the non-root user 65532, as an OCI layout in bin/image;
## PUSH=registry/ferry:tag [AUTH=auth.json] pushes it too.
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
image:
	$(GO) run ./hack/image -o $(BIN)/image -version $(VERSION) -platforms $(IMAGE_PLATFORMS) $(if $(PUSH),-push $(PUSH)) $(if $(AUTH),-a $(AUTH))

## demo: run Ferry on the embedded example config repo (no cluster, no registry needed).
demo: build
	@hack/demo.sh $(FERRY)

## test: every test, unit and end-to-end against real servers; installs what they need.
## The packages with concurrency (the copy engine, the air gap, the reconciler
## and its cluster step, git sync, the cluster client, the daemon, the pipeline,
## the registry client and the world builder the tests use) run under the race
## detector; the rest without it, to stay well inside CI's time.
RACE_PKGS := ./internal/mirror/... ./internal/airgap/... ./reconcile/... ./gitsync/... \
	./internal/cluster/... ./internal/daemon/... ./internal/pipeline/... ./internal/registry/... \
	./internal/world/... ./internal/filelock/...
test: tools vet
	$(GO) test -count=1 -timeout 45m -race $(RACE_PKGS)
	$(GO) test -count=1 -timeout 45m $$($(GO) list ./... | grep -v -x -F "$$($(GO) list $(RACE_PKGS))")

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
