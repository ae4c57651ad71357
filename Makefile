# corpintel — one Makefile for setup, build, images and (later) run/test/lint.
# `make help` lists the targets. Everything installs itself: a fresh machine needs only
# Go, Docker and root (see ../shared/ENVIRONMENT.md).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

# --- settings ------------------------------------------------------------------------
# A stripped environment (cron, some CI runners) may lack HOME; Go and the cache need it.
ifeq ($(strip $(HOME)),)
export HOME := $(shell getent passwd "$$(id -u)" | cut -d: -f6)
endif
# Tools and caches live outside the repo, keyed by version (scripts/install-deps.sh).
CACHE   ?= $(HOME)/.cache/corpintel
export CORPINTEL_CACHE := $(CACHE)
# Cached tools first; Go's default location last, for shells that lack it.
export PATH := $(CACHE)/bin:$(PATH):/usr/local/go/bin

GO      ?= go
PKG     := github.com/corpintel/corpintel
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REV     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Revision=$(REV)

# --- setup -----------------------------------------------------------------------------
.PHONY: help deps deps-run
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Two sets (scripts/install-deps.sh): `make run` needs only debootstrap and the MinIO
# binary; tests and lint add the test servers, benchmark and lint tools.
deps: ## install everything tests, lint and running need (idempotent; ~1 s when warm)
	scripts/install-deps.sh all

deps-run: ## install only what building the images and running needs (no lint or test tools)
	scripts/install-deps.sh run

# --- build -----------------------------------------------------------------------------
.PHONY: bin
bin: ## static binary bin/corpintel
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/corpintel ./cmd/corpintel

# --- images ----------------------------------------------------------------------------
.PHONY: images images-test
images: deps-run bin ## build the stack images (skips unchanged ones; see images/README.md)
	VERSION='$(VERSION)' REVISION='$(REV)' images/build.sh

images-test: images ## smoke-test the images against the Docker Engine; build the system test's machine image
	images/test.sh
	images/build.sh systemd

# --- bundle ----------------------------------------------------------------------------
.PHONY: bundle
bundle: images ## air-gapped bundle dist/corpintel-$(VERSION)-linux-amd64.tar + dist/install.sh (KEY=signing key)
	@test -n '$(KEY)' || { echo "make bundle needs KEY=path/to/signing.key (make one: bin/corpintel bundle keygen --out DIR, outside the repo)" >&2; exit 2; }
	bin/corpintel bundle build --key '$(KEY)' --out dist --version '$(VERSION)'

# --- run -------------------------------------------------------------------------------
.PHONY: run
run: images ## start the stack (dev profile) in the foreground; prints where the API answers
	bin/corpintel supervisor --profile dev $(RUN_FLAGS)

# --- test ------------------------------------------------------------------------------
.PHONY: test lint cover fuzz unit
test: ## everything CI runs: deps, images, lint, all tests with coverage >= 80 %, fuzz (per-stage timing)
	scripts/stages.sh deps images-test lint cover fuzz

# gosec rules left out, and why: G104 (unchecked errors: errcheck-style noise, vet and
# staticcheck cover the real cases), G204/G304 (subprocess and file paths come from the
# operator's own config and the CLI by design), G115 (integer conversions: bounded by
# construction where they occur), G101 (names of secret files, not secrets), G404
# (math/rand only for the deterministic sample data).
GOSEC_EXCLUDE := G104,G204,G304,G115,G101,G404

lint: deps ## gofmt, go vet, staticcheck, gosec, actionlint, shellcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...
	gosec -quiet -exclude=$(GOSEC_EXCLUDE) -exclude-dir=bench ./...
	actionlint .github/workflows/*.yml
	shellcheck .ci/run scripts/*.sh images/*.sh images/*/*.sh bench/*.sh
	shellcheck -s sh installer/*.sh
	@echo "lint: ok"

cover: ## all tests (unit, integration, end-to-end) with merged coverage; fails below 80 %
	scripts/cover.sh

unit: ## quick: go test ./... without coverage
	$(GO) test -count=1 ./...

fuzz: ## short run of every fuzz target (FUZZTIME each, default 6s)
	scripts/fuzz.sh
