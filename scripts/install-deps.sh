#!/usr/bin/env bash
# install-deps.sh [run|all] — install what corpintel needs, idempotently.
#
#   run   only what building the images and running the stack needs (`make run` and
#         `make images` through `make deps-run`): the apt packages in RUN_APT_PACKAGES
#         and the MinIO server binary. No lint tools, no test servers.
#   all   (default; `make deps`, hence `make test` and `make lint`) everything: the above
#         plus the test servers, benchmark and lint tools (TEST_APT_PACKAGES, gotools).
#
# Safe to run any number of times: every step checks first and does nothing when its
# result is already there (a warm run takes about a second). Run as root (or with sudo
# available) on Debian bookworm; the only network it needs is the Debian mirror and the
# Go module proxy.
#
# Steps (in order):
#   apt       Debian packages (apt-get update runs only when something is missing)
#   gotools   staticcheck, gosec, actionlint, built with `go install` (all only)
#   minio     the MinIO server (static, CGO_ENABLED=0; ~3 min cold) for corpintel/minio
#             and the test harness
#   mailpit   the mailpit SMTP test server (static, CGO_ENABLED=0) the alert e-mail tests
#             deliver into and read back through its HTTP API
#   pebble    Let's Encrypt's test ACME CA: pebble and pebble-challtestsrv (~30 s cold),
#             for the certificate tests (internal/testenv/pebble.go)
#
# Knobs (environment variables):
#   CORPINTEL_CACHE       cache root, outside the repo      default: $HOME/.cache/corpintel
#                         Go tools go to $CORPINTEL_CACHE/tools/<name>-<version>/<name>,
#                         with symlinks in $CORPINTEL_CACHE/bin (put that on PATH;
#                         the Makefile does).
#   CORPINTEL_DEPS        which steps to run, space separated
#                         default: "apt minio" for run, "apt gotools minio mailpit pebble" for all
#   CORPINTEL_APT_PACKAGES  override the Debian package list   default: see RUN_APT_PACKAGES
#                         and TEST_APT_PACKAGES below (run: the first; all: both)
#   GO                    the go command                     default: `go` on PATH, else
#                                                            /usr/local/go/bin/go
#   STATICCHECK_VERSION   default v0.8.2
#   GOSEC_VERSION         default v2.30.0
#   ACTIONLINT_VERSION    default v1.7.12
#   MINIO_VERSION         default v0.0.0-20260212201848-7aac2a2c5b7c
#   MAILPIT_VERSION       default v1.33.1 (keep in step with internal/testenv/mailpit.go)
#   PEBBLE_VERSION        default v2.10.1 (keep in step with testenv.PebbleVersion)
#
# The redis-server package is installed for its binary (tests run their own redis-server
# processes); its system service is kept from starting and left disabled, so nothing
# listens on :6379 because of this script.
set -euo pipefail

: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE=${CORPINTEL_CACHE:-$HOME/.cache/corpintel}
SET=${1:-all}

STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}
GOSEC_VERSION=${GOSEC_VERSION:-v2.30.0}
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-v1.7.12}
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
MAILPIT_VERSION=${MAILPIT_VERSION:-v1.33.1}
PEBBLE_VERSION=${PEBBLE_VERSION:-v2.10.1}

# Running: debootstrap builds the base image (images/base/mkrootfs.sh); ca-certificates
# lets Go reach the module proxy over TLS to build MinIO. Everything else runs in the
# images, which bring their own packages.
RUN_APT_PACKAGES="debootstrap ca-certificates"
# Testing on top: redis-server/postgresql-15 are the real services the test harness runs;
# wrk/hyperfine drive benchmarks; jq/curl are used by the bench scripts; shellcheck lints
# the shell scripts; prometheus ships promtool, which checks the exported alert rules (its
# service is kept from starting and left disabled, like redis); testssl.sh scans the
# TLS edge in the certificate tests and nginx is the baseline of bench/tls.sh (its service
# is never started); systemd brings systemd-analyze (the unit's verify and security
# tests; nothing is started) and openssl verifies bundle signatures as install.sh does;
# chromium runs the console's browser tests (driven by chromedp).
TEST_APT_PACKAGES="redis-server postgresql-15 wrk hyperfine jq curl shellcheck prometheus testssl.sh nginx systemd openssl chromium"
case $SET in
run)
	STEPS=${CORPINTEL_DEPS:-apt minio}
	APT_PACKAGES=${CORPINTEL_APT_PACKAGES:-$RUN_APT_PACKAGES}
	;;
all)
	STEPS=${CORPINTEL_DEPS:-apt gotools minio mailpit pebble}
	APT_PACKAGES=${CORPINTEL_APT_PACKAGES:-$RUN_APT_PACKAGES $TEST_APT_PACKAGES}
	;;
*)
	echo "usage: install-deps.sh [run|all] (run: what make run needs; all: also tests and lint)" >&2
	exit 2
	;;
esac

log() { printf '[install-deps %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s; }
has_step() { [[ " $STEPS " == *" $1 "* ]]; }
wants_pkg() { [[ " $APT_PACKAGES " == *" $1 "* ]]; }

T0=$(now)

# --- go ----------------------------------------------------------------------------
find_go() {
	if [[ -n ${GO:-} ]]; then echo "$GO"; return; fi
	if command -v go >/dev/null 2>&1; then command -v go; return; fi
	if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
	die "no Go toolchain found (set GO=/path/to/go or put go on PATH)"
}

# --- apt ---------------------------------------------------------------------------
as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"
	elif command -v sudo >/dev/null 2>&1; then sudo "$@"
	else die "need root for: $*"
	fi
}

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_get() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get \
		-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# A policy-rc.d that refuses every start keeps package installs from launching
# services (redis-server would otherwise take :6379). Only created if none exists.
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=""
cleanup() {
	if [[ -n $POLICY_RC_OURS ]]; then as_root rm -f "$POLICY_RC"; fi
}
trap cleanup EXIT

step_apt() {
	local t missing=() p
	t=$(now)
	for p in $APT_PACKAGES; do
		pkg_installed "$p" || missing+=("$p")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "apt: all present ($APT_PACKAGES)"
	else
		log "apt: installing ${missing[*]}"
		if [[ ! -e $POLICY_RC ]]; then
			printf '#!/bin/sh\nexit 101\n' | as_root tee "$POLICY_RC" >/dev/null
			as_root chmod 0755 "$POLICY_RC"
			POLICY_RC_OURS=1
		fi
		# Package lists on a fresh machine may be absent or stale: always update first,
		# and once more if the install still fails.
		apt_get update -q || log "apt: apt-get update reported errors; trying the install anyway"
		if ! apt_get install -y -q --no-install-recommends "${missing[@]}"; then
			log "apt: install failed; updating package lists and retrying once"
			sleep 5
			apt_get update -q
			apt_get install -y -q --no-install-recommends "${missing[@]}"
		fi
		cleanup
		POLICY_RC_OURS=""
		for p in "${missing[@]}"; do
			pkg_installed "$p" || die "apt: $p is still not installed"
		done
	fi
	# Never leave the distribution's redis (or postgres) service running or enabled.
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
		local svc
		for svc in redis-server postgresql prometheus nginx; do
			if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
				log "apt: disabling system service $svc"
				as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
			fi
		done
	fi
	if wants_pkg postgresql-15; then
		[[ -x /usr/lib/postgresql/15/bin/postgres ]] || die "apt: /usr/lib/postgresql/15/bin/postgres missing after installing postgresql-15"
	fi
	if wants_pkg redis-server; then
		command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]] || die "apt: redis-server binary missing"
	fi
	log "apt: done in $(($(now) - t))s"
}

# --- go tools ----------------------------------------------------------------------
# go_tool NAME PACKAGE VERSION [extra go install flags...]
# Builds PACKAGE@VERSION into $CACHE/tools/NAME-VERSION/NAME (atomically) unless it is
# there already, and points $CACHE/bin/NAME at it.
go_tool() {
	local name=$1 pkg=$2 version=$3
	shift 3
	local dir=$CACHE/tools/$name-$version t tmp
	t=$(now)
	if [[ -x $dir/$name ]]; then
		log "$name $version: cached ($dir)"
	else
		log "$name $version: go install $pkg@$version ..."
		tmp=$(mktemp -d "$CACHE/tools/.$name-$version.XXXXXX")
		if ! GOBIN=$tmp/bin GOFLAGS="${GOFLAGS:-} -buildvcs=false" "$GOCMD" install "$@" "$pkg@$version"; then
			rm -rf "$tmp"
			die "$name: go install $pkg@$version failed"
		fi
		local built=$tmp/bin/${pkg##*/}
		[[ -x $built ]] || built=$(find "$tmp/bin" -type f -perm -u+x | head -n1)
		[[ -x $built ]] || die "$name: go install produced no binary"
		# rename(2) within the cache filesystem: readers never see a partial binary.
		mkdir -p "$dir"
		mv -f "$built" "$dir/$name"
		rm -rf "$tmp"
		log "$name $version: built in $(($(now) - t))s"
	fi
	ln -sfn "../tools/$name-$version/$name" "$CACHE/bin/$name"
}

step_gotools() {
	go_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
	go_tool gosec github.com/securego/gosec/v2/cmd/gosec "$GOSEC_VERSION"
	go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
}

step_minio() {
	local -x CGO_ENABLED=0
	go_tool minio github.com/minio/minio "$MINIO_VERSION" -trimpath -ldflags "-s -w"
}

step_mailpit() {
	local -x CGO_ENABLED=0
	go_tool mailpit github.com/axllent/mailpit "$MAILPIT_VERSION" -trimpath -ldflags "-s -w"
}

step_pebble() {
	local -x CGO_ENABLED=0
	go_tool pebble github.com/letsencrypt/pebble/v2/cmd/pebble "$PEBBLE_VERSION" -trimpath
	go_tool pebble-challtestsrv github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv "$PEBBLE_VERSION" -trimpath
}

# --- main --------------------------------------------------------------------------
mkdir -p "$CACHE/tools" "$CACHE/bin"
# Two concurrent runs (make -j, parallel shells) would race on the same cache entries.
exec 9>"$CACHE/.install-deps.lock"
flock 9

log "set: $SET; cache: $CACHE; steps: $STEPS"
if has_step apt; then step_apt; fi
if has_step gotools || has_step minio || has_step mailpit || has_step pebble; then
	GOCMD=$(find_go)
	log "go: $("$GOCMD" version)"
	# Tools are built as modules of their own, never inside this repo's module.
	cd "$CACHE"
	export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
	if has_step gotools; then step_gotools; fi
	if has_step minio; then step_minio; fi
	if has_step mailpit; then step_mailpit; fi
	if has_step pebble; then step_pebble; fi
fi
log "done in $(($(now) - T0))s; tools in $CACHE/bin"
