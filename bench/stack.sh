#!/usr/bin/env bash
# Word splitting of id lists is intended throughout.
# shellcheck disable=SC2086
# bench/stack.sh — the supervisor against the plain-compose way, on this machine, in one run.
#
#   1. cold start to all-healthy: `corpintel supervisor` vs `docker-compose up` with an
#      equivalent compose file (same images, env, secrets, limits, health checks,
#      dependency order, migrations) generated from the containers corpintel created;
#      both start from empty volumes with the images already built;
#   2. recovery after `docker kill` of an API container until a replica is healthy again
#      (as `corpintel status` says: Docker's health check or the supervisor's own probe)
#      (RECOVERY_RUNS times, median reported);
#   3. the supervisor's resident memory when idle with the stack up.
#
# Prints a table and writes bench/results/stack.json. Needs the images (`make images`),
# Docker, python3, jq and a compose: `docker compose` (v2, has --wait) if present, else
# docker-compose 1.29 whose missing --wait is emulated by polling container health.
#
#   RECOVERY_RUNS   recoveries to measure (default 3)
#   IDLE_SECONDS    settle time before the RSS reading (default 20)
#   RESULT          output file (default bench/results/stack.json)
#   SUPERVISOR_LOG  copy the supervisor's log there (before the compose part)
#   BENCH_BIN   use this corpintel binary instead of building one (e.g. bin/corpintel)
#   KEEP_WORK=1     keep the work dir (configs, logs, compose file) when a step fails
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

RECOVERY_RUNS=${RECOVERY_RUNS:-3}
IDLE_SECONDS=${IDLE_SECONDS:-20}
RESULT=${RESULT:-bench/results/stack.json}

for tool in docker python3 jq curl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
if docker compose version >/dev/null 2>&1; then
	compose=(docker compose) compose_wait=native
elif command -v docker-compose >/dev/null; then
	compose=(docker-compose) compose_wait=polled
else
	echo "bench: no compose found (docker compose v2 or docker-compose 1.29)" >&2
	exit 1
fi
compose_version=$("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -1)

for img in corpintel/postgres:15 corpintel/redis:7 corpintel/minio:latest corpintel/api:latest; do
	docker image inspect "$img" >/dev/null 2>&1 || { echo "bench: image $img missing — run \`make images\`" >&2; exit 1; }
done

work=$(mktemp -d)
project="bench-$$"
cproject="benchcompose$$"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bin="$work/corpintel"
sup_pid=""

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf 'bench: %s\n' "$*" >&2; }

cleanup() {
	local rc=$?
	set +e
	if (( rc != 0 )); then
		for f in "$work"/supervisor.log "$work"/compose.log; do
			[[ -s $f ]] && { echo "--- $f (tail)" >&2; tail -25 "$f" >&2; }
		done
	fi
	[[ -n $sup_pid ]] && kill "$sup_pid" 2>/dev/null && wait "$sup_pid" 2>/dev/null
	[[ -f $work/compose.json ]] && "${compose[@]}" -p "$cproject" -f "$work/compose.json" down -v --remove-orphans >/dev/null 2>&1
	remove_project "$project"
	if (( rc != 0 )) && [[ -n ${KEEP_WORK:-} ]]; then
		echo "bench: kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

if [[ -n ${BENCH_BIN:-} ]]; then
	cp "$BENCH_BIN" "$bin"
else
	log "building corpintel"
	CGO_ENABLED=0 go build -o "$bin" ./cmd/corpintel
fi

cat >"$work/corpintel.toml" <<EOF
profile = "dev"
project = "$project"
listen = "127.0.0.1:$port"
socket = "$work/run/corpintel.sock"
state_dir = "$work/state"
log_level = "info"
sample_data = false
EOF

status_json() { "$bin" status --json --config "$work/corpintel.toml" 2>/dev/null; }
all_healthy() { status_json | jq -e '[.services[] | (.healthy >= .desired and .running == .desired)] | all and length > 0' >/dev/null 2>&1; }

# --- corpintel cold start -------------------------------------------------------------
log "corpintel: cold start (project $project)"
t0=$(now)
"$bin" supervisor --config "$work/corpintel.toml" >"$work/supervisor.log" 2>&1 &
sup_pid=$!
deadline=$(( $(date +%s) + 600 ))
until all_healthy; do
	kill -0 "$sup_pid" 2>/dev/null || { cat "$work/supervisor.log" >&2; exit 1; }
	(( $(date +%s) < deadline )) || { log "corpintel: not healthy within 600 s"; tail -40 "$work/supervisor.log" >&2; exit 1; }
	sleep 0.1
done
t1=$(now)
corpintel_cold=$(elapsed "$t0" "$t1")
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { log "GET /health through the proxy failed"; exit 1; }
log "corpintel: healthy after ${corpintel_cold} s"

# --- the equivalent compose file, from what corpintel created -------------------------
# The four services must all be there (a recreate may be in flight when images change).
deadline=$(( $(date +%s) + 120 ))
while :; do
	ids=$(docker ps -q --filter "label=io.corpintel.project=$project" --filter "label=io.corpintel.service")
	docker inspect $ids >"$work/inspect.json"
	[[ $(jq '[.[].Config.Labels["io.corpintel.service"]] | unique | length' "$work/inspect.json") -ge 4 ]] && break
	(( $(date +%s) < deadline )) || { log "not all services are running"; exit 1; }
	sleep 0.5
done
python3 - "$work/inspect.json" "$work/compose.json" <<'PY'
import json, sys
inspect = json.load(open(sys.argv[1]))
order = ["postgres", "redis", "minio", "api"]
by_service = {}
for c in inspect:
    svc = c["Config"]["Labels"]["io.corpintel.service"]
    by_service.setdefault(svc, c)           # one replica is the template
def dur(ns):
    return "%dms" % (ns // 1_000_000) if ns else None
services, volumes = {}, {}
for i, svc in enumerate(order):
    c = by_service[svc]
    cfg, host = c["Config"], c["HostConfig"]
    s = {"image": cfg["Image"], "environment": cfg["Env"] or [], "restart": "unless-stopped"}
    if cfg.get("Cmd"):
        s["command"] = cfg["Cmd"]
    if cfg.get("User"):
        s["user"] = cfg["User"]
    mounts = []
    for m in c["Mounts"]:
        if m["Type"] == "volume":
            volumes[svc + "_data"] = {}
            mounts.append(svc + "_data:" + m["Destination"])
        elif m["Type"] == "bind":
            mounts.append(m["Source"] + ":" + m["Destination"] + ("" if m.get("RW", True) else ":ro"))
    if mounts:
        s["volumes"] = mounts
    hc = cfg.get("Healthcheck")
    if hc and hc.get("Test"):
        s["healthcheck"] = {k: v for k, v in {
            "test": hc["Test"], "interval": dur(hc.get("Interval")), "timeout": dur(hc.get("Timeout")),
            "start_period": dur(hc.get("StartPeriod")), "retries": hc.get("Retries")}.items() if v}
    if host.get("Memory"):
        s["mem_limit"] = host["Memory"]
    if host.get("NanoCpus"):
        s["cpus"] = host["NanoCpus"] / 1e9
    if i > 0:
        s["depends_on"] = {d: {"condition": "service_healthy"} for d in order[:i]}
    services[svc] = s
# corpintel runs the migrations as a one-shot job before any API replica starts.
migrate = dict(services["api"])
migrate.pop("healthcheck", None)
migrate["restart"] = "no"
migrate["command"] = ["api", "migrate"]
migrate["depends_on"] = {"postgres": {"condition": "service_healthy"}}
services["migrate"] = migrate
services["api"]["depends_on"] = dict(services["api"]["depends_on"], migrate={"condition": "service_completed_successfully"})
def escape(v):
    """Compose interpolates $VAR in every string; the values are literal."""
    if isinstance(v, str):
        return v.replace("$", "$$")
    if isinstance(v, list):
        return [escape(x) for x in v]
    if isinstance(v, dict):
        return {k: escape(x) for k, x in v.items()}
    return v
json.dump({"services": escape(services), "volumes": volumes}, open(sys.argv[2], "w"), indent=2)
PY

# --- recovery after docker kill of an API replica -------------------------------------
api=$(docker ps --filter "label=io.corpintel.project=$project" --filter "label=io.corpintel.service=api" --format '{{.Names}}' | sort | head -1)
recoveries=()
for ((i = 1; i <= RECOVERY_RUNS; i++)); do
	old=$(docker inspect -f '{{.Id}} {{.State.StartedAt}}' "$api")
	t0=$(now)
	docker kill "$api" >/dev/null
	deadline=$(( $(date +%s) + 120 ))
	# Healthy as `corpintel status` reports it: Docker's check, or — before Docker's first
	# check of the new container — the supervisor's own probe (the proxy's view).
	while :; do
		cur=$(docker inspect -f '{{.Id}} {{.State.StartedAt}} {{.State.Running}}' "$api" 2>/dev/null || true)
		if [[ -n $cur && ${cur% *} != "$old" && $cur == *" true" ]] &&
			status_json | jq -e --arg n "$api" '[.services[].containers[] | select(.name == $n and .state == "running" and .health == "healthy")] | length > 0' >/dev/null 2>&1; then
			break
		fi
		(( $(date +%s) < deadline )) || { log "recovery: not healthy within 120 s"; tail -40 "$work/supervisor.log" >&2; exit 1; }
		sleep 0.05
	done
	t1=$(now)
	recoveries+=("$(elapsed "$t0" "$t1")")
	log "recovery $i: ${recoveries[-1]} s"
	until all_healthy; do sleep 0.2; done
done
recovery_median=$(printf '%s\n' "${recoveries[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')

# --- idle RSS -----------------------------------------------------------------------------
log "idle for ${IDLE_SECONDS} s before reading the supervisor's RSS"
sleep "$IDLE_SECONDS"
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$sup_pid/status")
rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')

# --- stop corpintel's stack, then the compose cold start ---------------------------------
[[ -n ${SUPERVISOR_LOG:-} ]] && cp "$work/supervisor.log" "$SUPERVISOR_LOG"
"$bin" stop --config "$work/corpintel.toml" >/dev/null
kill "$sup_pid"; wait "$sup_pid" 2>/dev/null || true; sup_pid=""

log "compose ($compose_version, wait $compose_wait): cold start (project $cproject)"
t0=$(now)
if [[ $compose_wait == native ]]; then
	"${compose[@]}" -p "$cproject" -f "$work/compose.json" up -d --wait >"$work/compose.log" 2>&1
else
	"${compose[@]}" -p "$cproject" -f "$work/compose.json" up -d >"$work/compose.log" 2>&1
	deadline=$(( $(date +%s) + 600 ))
	while :; do
		ids=$("${compose[@]}" -p "$cproject" -f "$work/compose.json" ps -q 2>/dev/null)
		states=$(docker inspect -f '{{.Config.Labels}}|{{.State.Running}}|{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $ids 2>/dev/null | grep -v 'com.docker.compose.service:migrate' || true)
		if [[ $(wc -l <<<"$states") -ge 4 ]] && ! grep -qv '|true|healthy$' <<<"$states"; then break; fi
		(( $(date +%s) < deadline )) || { log "compose: not healthy within 600 s"; cat "$work/compose.log" >&2; exit 1; }
		sleep 0.1
	done
fi
t1=$(now)
compose_cold=$(elapsed "$t0" "$t1")
log "compose: healthy after ${compose_cold} s"
ratio=$(awk -v a="$corpintel_cold" -v b="$compose_cold" 'BEGIN { printf "%.2f", a / b }')

# --- report -------------------------------------------------------------------------------
printf '\n%-44s %10s %10s\n' "measure" "value" "target"
printf '%-44s %9ss %10s\n' "cold start, corpintel supervisor" "$corpintel_cold" ""
printf '%-44s %9ss %10s\n' "cold start, $compose_version (up + wait)" "$compose_cold" ""
printf '%-44s %10s %10s\n' "ratio corpintel / compose" "$ratio" "<= 1.0"
printf '%-44s %9ss %10s\n' "recovery after docker kill api (median of $RECOVERY_RUNS)" "$recovery_median" "<= 5 s"
printf '%-44s %7s MB %10s\n' "supervisor RSS, idle" "$rss_mb" "<= 50 MB"

mkdir -p "$(dirname "$RESULT")"
jq -n \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--arg engine "$(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')" \
	--arg compose "$compose_version" --arg wait "$compose_wait" \
	--argjson cpus "$(nproc)" \
	--argjson mem_gib "$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)" \
	--argjson cc "$corpintel_cold" --argjson dc "$compose_cold" --argjson ratio "$ratio" \
	--argjson rec "$(printf '%s\n' "${recoveries[@]}" | jq -s .)" --argjson recm "$recovery_median" \
	--argjson rss "$rss_mb" \
	--argjson images "$(jq '[.[].Config.Image] | unique' "$work/inspect.json")" \
	'{date: $date, revision: $rev, machine: {cpus: $cpus, memory_gib: $mem_gib, docker_engine: $engine, compose: $compose, compose_wait: $wait}, images: $images,
	  cold_start_seconds: {corpintel: $cc, compose: $dc, ratio: $ratio, target_ratio_max: 1.0},
	  recovery_after_kill_seconds: {runs: $rec, median: $recm, target_max: 5},
	  supervisor_idle_rss_mb: {value: $rss, target_max: 50}}' >"$RESULT"
log "wrote $RESULT"
