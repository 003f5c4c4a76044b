# libnetmesh — one Makefile is the entry point. `make` lists the targets.
GO      ?= go
BUILD   := build
LIB     := $(BUILD)/libnetmesh.so
GOFLAGS ?=
FUZZTIME ?= 5s

.DEFAULT_GOAL := help

.PHONY: help build lib test test-go test-c test-install soak bench-c install vet fmt-check fuzz bench demo demo-go clean

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: lib ## build every Go package and the shared library
	$(GO) build ./...

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-go: ## Go unit tests with the race detector
	$(GO) test -race -count=1 ./...

fuzz: ## run every fuzz target for FUZZTIME each (a duration like 5s, or a count like 10000x)
	GO=$(GO) bash tests/fuzz.sh $(FUZZTIME)

test: fmt-check vet test-go test-c test-python test-python-versions test-node ## everything: format, vet, Go tests (race), C ABI suite, fuzz smoke
	$(MAKE) fuzz FUZZTIME=10000x

bench: ## every benchmark next to its same-run floor: bench/RESULTS.md (Go + C), Python and Node tables
	@mkdir -p $(BUILD)
	@{ echo "## C ABI: C -> deliver -> C echo daemon -> back (\`make bench-c\`, goal <= 2x floor)"; echo; \
	   $(MAKE) --no-print-directory -s bench-c; } > $(BUILD)/bench-c.md
	$(GO) run ./bench/cmd/runbench -out bench/RESULTS.md -extra $(BUILD)/bench-c.md
	$(MAKE) bench-python bench-node

demo: demo-crosslang ## the main job: a counter daemon migrates live Python → Node.js → Python

demo-go: ## Go demo: spawn, feed, snapshot, stop, restore, then a live migration between two nodes
	$(GO) run ./examples/demo

include tests/c/c.mk
include bindings/python/python.mk
include bindings/node/node.mk

clean: ## remove build outputs
	rm -rf $(BUILD)
	$(GO) clean -testcache
