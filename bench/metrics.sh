#!/usr/bin/env bash
# bench/metrics.sh — what the supervisor's metrics cost (supervisor/health).
#
# Part 1, Go benchmarks on a busy appliance's series (~150: host, 4 mounts, 3 API
# replicas × 4 status classes, 6 containers, the services), 24 h of 15-second cycles:
#   Samples            the alert rules' snapshot, built at every evaluation
#   Record             the recent-metrics buffer's share of one collection cycle
#   Gather             one scrape of the collectors' part of /metrics
#   HistoryFootprint   heap held by a full day of history
# Part 2 (E2E=1): the alerts end-to-end test on the real stack (cmd/corpintel
# TestAlertsEndToEnd, needs Docker, the images, root, mailpit and promtool), whose
# measurements — /metrics size and scrape time with the full stack, delay from an outage
# to the first notification, the supervisor's RSS — go into the same file.
# Prints a table and writes bench/results/metrics.json. Needs Go and jq.
#
#   BENCHTIME   go test -benchtime (default 2s)
#   COUNT       go test -count, the median is reported (default 3)
#   E2E         1 runs part 2 (default 0)
#   RESULT      output file (default bench/results/metrics.json)
set -euo pipefail
cd "$(dirname "$0")/.."

BENCHTIME=${BENCHTIME:-2s}
COUNT=${COUNT:-3}
E2E=${E2E:-0}
RESULT=${RESULT:-bench/results/metrics.json}
for tool in go jq; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

out=$(go test -run '^$' -bench 'Samples|Record|Gather' -benchmem -benchtime "$BENCHTIME" -count "$COUNT" ./supervisor/health/)
foot=$(go test -run '^$' -bench 'HistoryFootprint' -benchtime 1x ./supervisor/health/)
echo "$out" | grep '^Benchmark' >&2
echo "$foot" | grep '^Benchmark' >&2

summary=$(echo "$out" | awk '/^Benchmark/ {
		name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
		for (i = 3; i < NF; i++) {
			if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
			if ($(i+1) == "B/op") bytes[name] = $i
			if ($(i+1) == "allocs/op") allocs[name] = $i
		}
	}
	END { for (n in ns) print n, ns[n], "|", bytes[n], allocs[n] }' |
	while read -r name rest; do
		nss=${rest%%|*}
		read -r bytes allocs <<<"${rest#*|}"
		median=$(tr ' ' '\n' <<<"$nss" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
		printf '%s %s %s %s\n' "$name" "$median" "$bytes" "$allocs"
	done | sort)
mib=$(echo "$foot" | awk '/^Benchmark/ { for (i = 1; i < NF; i++) if ($(i+1) == "MiB") print $i }')
points=$(echo "$foot" | awk '/^Benchmark/ { for (i = 1; i < NF; i++) if ($(i+1) == "points") print $i }')

printf '\n%-10s %12s %12s %10s\n' benchmark "µs/op" "B/op" allocs
while read -r name ns bytes allocs; do
	printf '%-10s %12.1f %12s %10s\n' "$name" "$(awk -v n="$ns" 'BEGIN {print n / 1000}')" "$bytes" "$allocs"
done <<<"$summary"
printf '%-10s %12s MiB for 24 h of %s points\n' history "$mib" "$points"

json=$(while read -r name ns bytes allocs; do
	jq -n --arg n "$name" --argjson ns "$ns" --argjson b "$bytes" --argjson a "$allocs" \
		'{($n): {microseconds: ($ns / 1000), bytes: $b, allocs: $a}}'
done <<<"$summary" | jq -s 'add')
json=$(jq -n --argjson j "$json" --argjson mib "$mib" --argjson p "$points" '$j + {HistoryFootprint: {mib: $mib, points: $p, series: 150}}')

e2e=null
if [ "$E2E" = 1 ]; then
	tmp=$(mktemp)
	CORPINTEL_E2E_RESULTS=$tmp go test -count=1 -run 'TestAlertsEndToEnd' -timeout 20m ./cmd/corpintel/ >&2
	e2e=$(cat "$tmp")
	rm -f "$tmp"
	echo "$e2e" | jq -r 'to_entries[] | "\(.key)\t\(.value)"' | column -t >&2
fi
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$(git rev-parse --short HEAD)" \
	--argjson cpus "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
	--arg benchtime "$BENCHTIME" --argjson count "$COUNT" --argjson results "$json" --argjson e2e "$e2e" \
	'{date: $date, revision: $rev, machine: {cpus: $cpus, loadavg: $load}, params: {benchtime: $benchtime, count: $count, interval_seconds: 15}, results: $results, end_to_end: $e2e}' >"$RESULT"
echo "wrote $RESULT" >&2
