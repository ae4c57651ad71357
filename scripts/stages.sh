#!/usr/bin/env bash
# Runs make targets one after the other, printing the time each took and a summary
# table at the end (also when a stage fails, so CI logs show where the time went).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
declare -a names=() secs=() results=()
summary() {
  echo
  echo "stage        seconds  result"
  echo "-----------  -------  ------"
  for i in "${!names[@]}"; do printf '%-11s  %7s  %s\n' "${names[$i]}" "${secs[$i]}" "${results[$i]}"; done
}
total_start=$(date +%s)
for stage in "$@"; do
  echo "==> stage $stage"
  start=$(date +%s)
  make --no-print-directory "$stage"
  rc=$?
  names+=("$stage"); secs+=("$(( $(date +%s) - start ))")
  if [ $rc -ne 0 ]; then
    results+=("FAILED ($rc)")
    summary
    echo "total ${SECONDS}s — stage $stage failed" >&2
    exit $rc
  fi
  results+=("ok")
  echo "<== stage $stage: ${secs[-1]} s"
done
summary
echo "total $(( $(date +%s) - total_start )) s"
