#!/usr/bin/env bash
# bench/backup.sh — corpintel's backup against `pg_dump | gzip` and `pg_dump -Fc` on
# the same ~1 GB database, plus a second (incremental) backup with unchanged objects.
#
# It starts its own PostgreSQL 15 (host processes, as the unprivileged corpintel-test
# user when run as root), Redis and MinIO on free loopback ports, seeds the database
# with the API's own generator (`corpintel api seed`), and runs bench/cmd/backupbench,
# which times every contender in the same run, prints a table and writes
# bench/results/backup.json (the speed-up over `pg_dump | gzip` is under
# `throughput_ratio_gzip`). The backup runs the jobs/backup code the supervisor runs,
# with the container commands executed as host processes (jobs/hostexec).
#
# Knobs (environment variables):
#   COMPANIES, YEARS   seed size (default 5000 x 3: ~11 M metric points, a 0.95 GB dump,
#                      1.6 GB on disk with indexes)
#   OBJECTS, OBJECT_SIZE  MinIO objects uploaded before the first backup (default 200 x 256 KiB)
#   ROUNDS             measured rounds, each contender once per round, medians reported
#                      (default 3: the machine is shared, single runs are noise)
#   OUT                result file (default bench/results/backup.json)
#   KEEP=1             keep the work directory (printed) instead of removing it
set -euo pipefail

cd "$(dirname "$0")/.."
COMPANIES=${COMPANIES:-5000}
YEARS=${YEARS:-3}
OBJECTS=${OBJECTS:-200}
OBJECT_SIZE=${OBJECT_SIZE:-262144}
OUT=${OUT:-bench/results/backup.json}
ROUNDS=${ROUNDS:-3}
CACHE=${CORPINTEL_CACHE:-$HOME/.cache/corpintel}
PGBIN=${CORPINTEL_PG_BINDIR:-/usr/lib/postgresql/15/bin}
MINIO=${CORPINTEL_MINIO_BIN:-$(find "$CACHE/tools" -path '*/minio-*/minio' -type f 2>/dev/null | head -n1 || true)}

log() { printf '[backup.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -x $PGBIN/initdb ]] || die "PostgreSQL 15 not found in $PGBIN (run scripts/install-deps.sh)"
command -v redis-server >/dev/null || die "redis-server not found (run scripts/install-deps.sh)"

work=$(mktemp -d /tmp/corpintel-backupbench.XXXXXX)
chmod 0711 "$work"
pids=()
cleanup() {
	set +e
	[[ -f $work/pg/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# PostgreSQL refuses to run as root.
PGUSER_OS=$(id -un)
if [[ $(id -u) -eq 0 ]]; then
	PGUSER_OS=corpintel-test
	id "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PGUSER_OS"
fi
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then runuser -u "$PGUSER_OS" -- "$@"; else "$@"; fi
}

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
	local deadline=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# --- PostgreSQL --------------------------------------------------------------------
mkdir -p "$work/pg" "$work/sock"
chown "$PGUSER_OS" "$work/pg" "$work/sock" 2>/dev/null || true
as_pg "$PGBIN/initdb" -D "$work/pg" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync >/dev/null
PGPORT=$(free_port)
# Only the socket in the work dir (trust auth is for this throw-away server alone).
as_pg "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/sock/pg.log" -w -o "-p $PGPORT -k $work/sock -c listen_addresses= -c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB" start >/dev/null
export PGHOST=$work/sock PGPORT PGUSER=postgres
"$PGBIN/psql" -XAtqc "CREATE DATABASE bench" >/dev/null
log "PostgreSQL 15 on $PGHOST:$PGPORT"

# --- seed with the API's generator ---------------------------------------------------
log "building corpintel"
go build -o "$work/corpintel" ./cmd/corpintel
echo unused >"$work/pgpass"
log "seeding $COMPANIES companies x $YEARS years (corpintel api seed)"
t0=$(date +%s.%N)
CORPINTEL_PG_HOST=$PGHOST CORPINTEL_PG_PORT=$PGPORT CORPINTEL_PG_DB=bench CORPINTEL_PG_USER=postgres \
	CORPINTEL_PG_PASSWORD_FILE=$work/pgpass CORPINTEL_LOG_LEVEL=warn \
	"$work/corpintel" api seed --companies "$COMPANIES" --years "$YEARS" >"$work/seed.log" 2>&1 || { cat "$work/seed.log" >&2; exit 1; }
seed_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
"$PGBIN/psql" -XAtqd bench -c "VACUUM ANALYZE" >/dev/null
log "seeded in ${seed_s} s: $("$PGBIN/psql" -XAtd bench -c "SELECT pg_size_pretty(pg_database_size('bench'))")"

# --- Redis -------------------------------------------------------------------------
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --logfile "$work/redis.log" --daemonize no &
pids+=($!)
wait_for 20 redis-cli -p "$RPORT" PING || die "redis did not start"
seq 1 50000 | awk '{ printf "SET cache:%d value-%d-%s\n", $1, $1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }' | redis-cli -p "$RPORT" --pipe >/dev/null

# --- MinIO -------------------------------------------------------------------------
minio_args=()
if [[ -x $MINIO ]]; then
	MPORT=$(free_port) CPORT=$(free_port)
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/minio.secret"
	MINIO_ROOT_USER=bench MINIO_ROOT_PASSWORD=$(cat "$work/minio.secret") MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=on \
		"$MINIO" server --quiet --address "127.0.0.1:$MPORT" --console-address "127.0.0.1:$CPORT" "$work/minio" >"$work/minio.log" 2>&1 &
	pids+=($!)
	wait_for 60 curl -sf "http://127.0.0.1:$MPORT/minio/health/ready" || die "minio did not start"
	minio_args=(-minio "127.0.0.1:$MPORT" -minio-user bench -minio-password-file "$work/minio.secret" -objects "$OBJECTS" -object-size "$OBJECT_SIZE")
else
	log "no MinIO binary (scripts/install-deps.sh builds it): measuring without objects"
fi

# --- measure -------------------------------------------------------------------------
seed_info=$(printf '{"seed":"corpintel api seed --companies %s --years %s","seed_seconds":%s}' "$COMPANIES" "$YEARS" "$seed_s")
go run ./bench/cmd/backupbench -pg-host "$PGHOST" -pg-port "$PGPORT" -pg-db bench -pg-user postgres \
	-redis "127.0.0.1:$RPORT" "${minio_args[@]}" -work "$work/bench" -rounds "$ROUNDS" -out "$OUT" -seed-info "$seed_info"
