#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (FUZZTIME each, default 6s); the seed
# corpus runs as part of the normal tests anyway. A crasher fails the run and is left in
# testdata/fuzz for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-6s}
n=0
while IFS=: read -r file _ line; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "fuzz: $pkg $name ($fuzztime)"
  go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
  n=$((n+1))
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^./bench/' | sort)
echo "fuzz: $n targets, $fuzztime each"
