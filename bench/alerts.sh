#!/usr/bin/env bash
# bench/alerts.sh — the cost of one alert evaluation cycle (supervisor/alerts).
#
# Runs the package's Go benchmarks on a busy appliance's snapshot (every metric the rules
# read; 5 mounts with 6 h of 1-minute history; 4 replicas × 4 status classes and 6
# containers with 1 h of 15-second history; 3 certificates; ~20 active alerts, groups and
# a silence):
#   BenchmarkEvaluate  the pure evaluation (rules → states → muting → groups → plan)
#   BenchmarkCycle     one engine cycle: evaluation + saving the state to SQLite (WAL)
# Prints a table and writes bench/results/alerts.json. Needs Go and jq.
#
#   BENCHTIME   go test -benchtime (default 3s)
#   COUNT       go test -count, the median is reported (default 5)
#   RESULT      output file (default bench/results/alerts.json)
set -euo pipefail
cd "$(dirname "$0")/.."

BENCHTIME=${BENCHTIME:-3s}
COUNT=${COUNT:-5}
RESULT=${RESULT:-bench/results/alerts.json}
for tool in go jq; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

out=$(go test -run '^$' -bench 'Evaluate|Cycle' -benchmem -benchtime "$BENCHTIME" -count "$COUNT" ./supervisor/alerts/)
echo "$out" | grep '^Benchmark' >&2

# median of a column per benchmark: name ns/op B/op allocs/op
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
	done)

printf '\n%-10s %14s %12s %10s\n' benchmark "µs/cycle" "B/cycle" allocs
while read -r name ns bytes allocs; do
	printf '%-10s %14.1f %12s %10s\n' "$name" "$(awk -v n="$ns" 'BEGIN {print n / 1000}')" "$bytes" "$allocs"
done <<<"$summary"

json=$(while read -r name ns bytes allocs; do
	jq -n --arg n "$name" --argjson ns "$ns" --argjson b "$bytes" --argjson a "$allocs" \
		'{($n): {microseconds_per_cycle: ($ns / 1000), bytes_per_cycle: $b, allocs_per_cycle: $a}}'
done <<<"$summary" | jq -s 'add')
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$(git rev-parse --short HEAD)" \
	--argjson cpus "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
	--arg benchtime "$BENCHTIME" --argjson count "$COUNT" --argjson results "$json" \
	'{date: $date, revision: $rev, machine: {cpus: $cpus, loadavg: $load}, params: {benchtime: $benchtime, count: $count, evaluation_interval_seconds: 15}, results: $results}' >"$RESULT"
echo "wrote $RESULT" >&2
