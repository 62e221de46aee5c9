.DEFAULT_GOAL := help
GO ?= go

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
STAMPS := github.com/tokenauthz/tokenauthz/internal/buildinfo

build: ## build ./tokenauthz, stamped with version and commit
	$(GO) build -ldflags "-X $(STAMPS).version=$(VERSION) -X $(STAMPS).commit=$(COMMIT)" -o tokenauthz ./cmd/tokenauthz

demo: ## run the demo (development IdP + tokenauthz + sample checks)
	$(GO) run ./cmd/tokenauthz demo

tools: ## install the tools tests need into .tools/
	bash scripts/tools.sh

test: ## everything CI runs: tools, gofmt, vet, go test -race ./...
	bash scripts/test.sh

unit: ## fast tests only (no tools, e2e tests skip without them)
	$(GO) test -race ./...

e2e: tools ## end-to-end tests against real Hydra, devidp and proxies
	TOKENAUTHZ_E2E=1 $(GO) test -race -count=1 ./e2e/...

bench: ## benchmarks with allocations
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

check: lint ## lint, and fail when go mod tidy would change go.mod/go.sum
	$(GO) mod tidy -diff

.PHONY: help build demo tools test unit e2e bench lint check
