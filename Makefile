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
.PHONY: help deps
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install missing apt packages and Go tools (idempotent; ~1 s when warm)
	scripts/install-deps.sh

# --- build -----------------------------------------------------------------------------
.PHONY: bin
bin: ## static binary bin/corpintel
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/corpintel ./cmd/corpintel

# --- images ----------------------------------------------------------------------------
.PHONY: images images-test
images: deps bin ## build the stack images (skips unchanged ones; see images/README.md)
	VERSION='$(VERSION)' REVISION='$(REV)' images/build.sh

images-test: images ## smoke-test the images against the Docker Engine
	images/test.sh
