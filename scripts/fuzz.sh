#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (FUZZTIME each, default 6s); the seed
# corpus runs as part of the normal tests anyway. A crasher fails the run and is left in
# testdata/fuzz for `go test` to replay.
#
# A target that fails WITHOUT a crasher (Go reports e.g. "context deadline exceeded" when
# -fuzztime ends while a worker is mid-execution) is run once more; it fails the stage
# only if it fails again. A real finding always writes "Failing input written to …".
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-6s}
n=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while IFS=: read -r file _ line; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  for attempt in 1 2; do
    echo "fuzz: $pkg $name ($fuzztime, attempt $attempt)"
    if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" 2>&1 | tee "$log"; then
      break
    fi
    if grep -q "Failing input written to" "$log" || [ "$attempt" = 2 ]; then
      echo "fuzz: $pkg $name failed" >&2
      exit 1
    fi
    echo "fuzz: $pkg $name failed without a crasher; running it once more"
  done
  n=$((n+1))
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^./bench/' | sort)
echo "fuzz: $n targets, $fuzztime each"
