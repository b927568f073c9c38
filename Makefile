# gitorc — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/gitorc
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Tests of packages that drive containerd, network namespaces or a cluster
# share the machine: keep them from running side by side.
TESTFLAGS ?= -count=1 -timeout 25m -p 2

.PHONY: help deps build test lint demo fuzz bench bench-swarm chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

deps: ## install missing system packages (apt; as root)
	@bash scripts/install-deps.sh

build: ## build bin/gitorc
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gitorc

test: deps ## run every test CI runs (as root this includes containerd and network tests)
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

demo: deps build ## a single-node cluster deploying examples/ from a local Git repo (as root)
	./$(BIN) validate examples/
	bash scripts/demo.sh

fuzz: ## run the stack loader fuzz target for a minute
	$(GO) test ./compose -run '^$$' -fuzz FuzzLoad -fuzztime 60s

# make chaos: GITORC_CHAOS_FAULTS (40), GITORC_CHAOS_HOLD (the longest a
# fault lasts, 10s) and GITORC_CHAOS_SEED (a fresh one unless given: the
# test prints the seed it used) shape the run.
GITORC_CHAOS_FAULTS ?= 40
GITORC_CHAOS_SEED ?= $(shell date +%s%N)
chaos: deps ## the chaos e2e, long: 40 faults on a 5-node cluster, a fresh seed (GITORC_CHAOS_SEED=N replays one)
	GITORC_CHAOS_FAULTS=$(GITORC_CHAOS_FAULTS) GITORC_CHAOS_SEED=$(GITORC_CHAOS_SEED) $(GO) test ./e2e -run '^TestChaos_Root$$' -count=1 -v -timeout 120m

bench: ## run the Go benchmarks
	$(GO) test ./... -run '^$$' -bench . -benchmem

ROUNDS ?= 3
SYSTEMS ?= gitorc,swarm
bench-swarm: ## gitorc and Docker Swarm side by side, single node (as root; Swarm only with docker.io): ROUNDS=3 SYSTEMS=gitorc,swarm
	$(GO) run ./e2e/bench -suite swarm -rounds $(ROUNDS) -systems $(SYSTEMS)

clean: ## remove build output
	rm -rf bin
