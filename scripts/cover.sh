#!/usr/bin/env bash
# Runs every test (unit, integration against real servers, end-to-end against the real
# Docker Engine) with coverage over the product packages, merges the unit and end-to-end
# coverage, prints the per-package table and fails below COVER_MIN percent.
#   COVER_MIN   minimum total statement coverage (default 80)
#   COVER_OUT   merged profile (default coverage.out)
#   TEST_FLAGS  extra flags for go test (e.g. -run, -v)
set -euo pipefail
cd "$(dirname "$0")/.."
min=${COVER_MIN:-80}
out=${COVER_OUT:-coverage.out}
pkgs=$(go list ./... | grep -v -e /bench/ | paste -sd, -)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/unit" "$dir/e2e"
# The e2e test builds the real binary with -cover and runs it with GOCOVERDIR=$CORPINTEL_COVERDIR.
export CORPINTEL_COVERDIR="$dir/e2e"
# shellcheck disable=SC2086,SC2046 # the package list and TEST_FLAGS are meant to split
go test -count=1 -p 2 -timeout 40m -coverpkg="$pkgs" ${TEST_FLAGS:-} $(go list ./... | grep -v -e /bench/) -args -test.gocoverdir="$dir/unit" \
  | sed -E "s/ of statements in .*/ of statements (share of all product packages)/"
go tool covdata textfmt -i="$dir/unit,$dir/e2e" -o "$out"
total=$(go tool cover -func="$out" | awk '/^total:/ {sub("%","",$3); print $3}')
go tool covdata percent -i="$dir/unit,$dir/e2e" | sort
echo "cover: total ${total}% (minimum ${min}%)"
awk -v t="$total" -v m="$min" 'BEGIN { exit !(t+0 >= m+0) }' || { echo "cover: below ${min}%" >&2; exit 1; }
