#!/usr/bin/env bash
# images/test.sh — smoke tests of the corpintel images against the real Docker Engine.
# Builds nothing: run `make images` first (`make images-test` does both). Every object it
# creates is named corpintel-imgtest-<pid>-* and labelled io.corpintel.imgtest=<pid>, and
# is removed on exit, also on failure or interrupt.
# Prints one PASS/FAIL line per check and a closing "N passed, N failed" line.
# Knobs: IMGTEST_TIMEOUT (seconds to wait for a container to become healthy, default 120),
#        IMGTEST_KEEP=1 leaves the containers behind for debugging.
set -euo pipefail

P=corpintel-imgtest-$$
LABEL=io.corpintel.imgtest=$$
TIMEOUT=${IMGTEST_TIMEOUT:-120}
NET=$P-net
PG=corpintel/postgres:15 REDIS=corpintel/redis:7 MINIO=corpintel/minio:latest API=corpintel/api:latest
passed=0 failed=0
T0=$(date +%s)

log() { printf '[imgtest %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

tmp=$(mktemp -d /tmp/corpintel-imgtest.XXXXXX)
chmod 0755 "$tmp"
cleanup() {
	local rc=$?
	if [[ -n ${IMGTEST_KEEP:-} ]]; then
		log "IMGTEST_KEEP set: leaving containers with label $LABEL and $tmp"
		exit "$rc"
	fi
	local ids
	mapfile -t ids < <(docker ps -aq --filter "label=$LABEL")
	[[ ${#ids[@]} -eq 0 ]] || docker rm -f -v "${ids[@]}" >/dev/null 2>&1 || true
	mapfile -t ids < <(docker volume ls -q --filter "label=$LABEL")
	[[ ${#ids[@]} -eq 0 ]] || docker volume rm "${ids[@]}" >/dev/null 2>&1 || true
	docker network rm "$NET" >/dev/null 2>&1 || true
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# check DESCRIPTION COMMAND...: one test line; never aborts the run.
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
		printf 'PASS %s\n' "$desc"
	else
		failed=$((failed + 1))
		printf 'FAIL %s\n' "$desc"
		[[ -z $out ]] || printf '     %s\n' "${out//$'\n'/$'\n'     }" | tail -n 15
	fi
}

# secret NAME VALUE UID: a 0400 file owned by UID, as the supervisor writes them.
secret() {
	printf '%s' "$2" >"$tmp/$1"
	chown "$3:$3" "$tmp/$1"
	chmod 0400 "$tmp/$1"
	echo "$tmp/$1"
}

# wait_healthy CONTAINER: until Docker reports healthy; fails on exit or timeout.
wait_healthy() {
	local c=$1 deadline=$(($(date +%s) + TIMEOUT)) st
	while :; do
		st=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c" 2>/dev/null || echo gone)
		case $st in
		running/healthy) return 0 ;;
		running/*) ;;
		*) echo "container $c is $st"; docker logs --tail 30 "$c" 2>&1; return 1 ;;
		esac
		if (($(date +%s) > deadline)); then
			echo "container $c not healthy after ${TIMEOUT}s ($st)"
			docker logs --tail 30 "$c" 2>&1
			return 1
		fi
		sleep 0.5
	done
}

# uids_are CONTAINER UID: every process of the container runs as UID.
uids_are() {
	local uids
	# Health checks run as the container's configured user; they are not the service.
	uids=$(docker top "$1" -eo uid,pid,comm | tail -n +2 |
		awk '$3 !~ /^(pg_isready|redis-cli|curl|healthcheck.sh|corpintel)$/ {print $1}' | sort -u)
	[[ $uids == "$2" ]] || { echo "process uids: $(echo "$uids" | tr '\n' ' ') (want $2)"; docker top "$1" -eo uid,pid,args; return 1; }
}

# not_exposed CONTAINER SECRET: the value is in neither inspect nor any process's argv.
not_exposed() {
	if docker inspect "$1" | grep -qF -- "$2"; then echo "secret visible in docker inspect"; return 1; fi
	if docker top "$1" -eo args | grep -qF -- "$2"; then echo "secret visible in argv"; return 1; fi
}

contains() { grep -qF -- "$2" <<<"$1" || { echo "want '$2' in: $1"; return 1; }; }
equals() { [[ $1 == "$2" ]] || { echo "got '$1', want '$2'"; return 1; }; }
fails() { if "$@"; then echo "unexpectedly succeeded: $*"; return 1; fi; }
run() { docker run --label "$LABEL" "$@"; }

for img in $PG $REDIS $MINIO $API corpintel/base:bookworm; do
	docker image inspect "$img" >/dev/null 2>&1 || { log "missing image $img: run make images"; exit 1; }
done
docker network create --label "$LABEL" "$NET" >/dev/null

# --- labels ----------------------------------------------------------------------------
oci_labels() {
	local l v
	for l in version revision source; do
		v=$(docker image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$l\"}}" "$1")
		[[ -n $v ]] || { echo "$1 lacks org.opencontainers.image.$l"; return 1; }
	done
	v=$(docker image inspect -f '{{index .Config.Labels "io.corpintel.inputs-hash"}}' "$1")
	[[ ${#v} -eq 64 ]] || { echo "$1 lacks io.corpintel.inputs-hash"; return 1; }
}
for img in corpintel/base:bookworm $PG $REDIS $MINIO $API; do
	check "$img carries OCI labels and the inputs hash" oci_labels "$img"
done

# --- postgres ----------------------------------------------------------------------------
log "postgres"
pgpw="pg-$RANDOM-$RANDOM-secret"
pgsecret=$(secret postgres_password "$pgpw" 999)
pgc=$P-postgres
run -d --name "$pgc" --network "$NET" --network-alias postgres \
	-e POSTGRES_USER=intel_user -e POSTGRES_DB=corporate_intel \
	-e POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password \
	-v "$pgsecret:/run/secrets/postgres_password:ro" \
	--mount "type=volume,src=$P-pgdata,dst=/var/lib/postgresql/data,volume-label=$LABEL" \
	"$PG" -c shared_buffers=64MB -c wal_level=replica >/dev/null
check "postgres: initialises and becomes healthy" wait_healthy "$pgc"
check "postgres: every process runs as uid 999" uids_are "$pgc" 999
check "postgres: reports timescaledb feature detection" contains "$(docker logs "$pgc" 2>&1)" "timescaledb: absent"
check "postgres: extra -c arguments reach the server" equals \
	"$(docker exec "$pgc" psql -U intel_user -d corporate_intel -tAc 'show shared_buffers' 2>&1)" 64MB
check "postgres: password login over TCP from another container" equals \
	"$(run --rm --network "$NET" -e PGPASSWORD="$pgpw" "$PG" psql -h postgres -U intel_user -d corporate_intel -tAc 'select current_user' 2>&1)" intel_user
check "postgres: rejects a wrong password" fails \
	run --rm --network "$NET" -e PGPASSWORD=wrong "$PG" psql -h postgres -U intel_user -d corporate_intel -tAc 'select 1'
check "postgres: replication connection allowed from the stack network" \
	run --rm --network "$NET" -e PGPASSWORD="$pgpw" "$PG" psql "host=postgres user=intel_user replication=true dbname=replication" -c 'IDENTIFY_SYSTEM'
check "postgres: password not in inspect or argv" not_exposed "$pgc" "$pgpw"
docker restart "$pgc" >/dev/null
check "postgres: restarts on its data without re-initialising" wait_healthy "$pgc"
check "postgres: initialised exactly once" equals "$(docker logs "$pgc" 2>&1 | grep -c 'initialisation complete')" 1

pgroot=$P-postgres-root
run -d --name "$pgroot" --user 0:0 -e POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password \
	-v "$pgsecret:/run/secrets/postgres_password:ro" \
	--mount "type=volume,src=$P-pgdata-root,dst=/var/lib/postgresql/data,volume-label=$LABEL" \
	"$PG" >/dev/null
check "postgres: started as root, drops to uid 999" bash -c "$(declare -f wait_healthy uids_are); TIMEOUT=$TIMEOUT; wait_healthy $pgroot && uids_are $pgroot 999"
check "postgres: refuses to initialise without a password" fails \
	run --rm "$PG"

# --- redis -------------------------------------------------------------------------------
log "redis"
rpw="redis-$RANDOM-$RANDOM-secret"
rsecret=$(secret redis_password "$rpw" 999)
rc=$P-redis
run -d --name "$rc" --network "$NET" --network-alias redis \
	-e REDIS_PASSWORD_FILE=/run/secrets/redis_password -v "$rsecret:/run/secrets/redis_password:ro" \
	--mount "type=volume,src=$P-redisdata,dst=/data,volume-label=$LABEL" \
	"$REDIS" --maxmemory 64mb --maxmemory-policy allkeys-lru >/dev/null
check "redis: becomes healthy (authenticated ping)" wait_healthy "$rc"
check "redis: every process runs as uid 999" uids_are "$rc" 999
check "redis: requires the password" contains "$(docker exec "$rc" redis-cli set k v 2>&1)" NOAUTH
rcli() { run --rm --network "$NET" -e REDISCLI_AUTH="$rpw" "$REDIS" redis-cli -h redis "$@" 2>&1; }
check "redis: password works from another container" equals "$(rcli set k v)" OK
check "redis: appendonly is on" equals "$(rcli config get appendonly | tail -n1)" yes
check "redis: --maxmemory reaches the server" equals "$(rcli config get maxmemory | tail -n1)" 67108864
check "redis: --maxmemory-policy reaches the server" equals "$(rcli config get maxmemory-policy | tail -n1)" allkeys-lru
check "redis: data dir is /data" equals "$(rcli config get dir | tail -n1)" /data
check "redis: password not in inspect or argv" not_exposed "$rc" "$rpw"
check "redis: generated config is 0600" equals "$(docker exec "$rc" stat -c %a /run/redis/redis.conf 2>&1)" 600
check "redis: refuses to start without a password" fails run --rm "$REDIS"

# --- minio -------------------------------------------------------------------------------
log "minio"
muser="minio-$RANDOM"
mpw="minio-$RANDOM-$RANDOM-secret"
musecret=$(secret minio_root_user "$muser" 1000)
mpsecret=$(secret minio_root_password "$mpw" 1000)
mc=$P-minio
run -d --name "$mc" --network "$NET" --network-alias minio \
	-e MINIO_ROOT_USER_FILE=/run/secrets/minio_root_user -e MINIO_ROOT_PASSWORD_FILE=/run/secrets/minio_root_password \
	-v "$musecret:/run/secrets/minio_root_user:ro" -v "$mpsecret:/run/secrets/minio_root_password:ro" \
	--mount "type=volume,src=$P-miniodata,dst=/data,volume-label=$LABEL" \
	"$MINIO" >/dev/null
check "minio: becomes healthy (/minio/health/live)" wait_healthy "$mc"
check "minio: every process runs as uid 1000" uids_are "$mc" 1000
# S3 calls signed with SigV4 by curl: the root credentials from the files are in force.
s3() { docker exec "$mc" curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 --user "$1" -X "$2" "http://127.0.0.1:9000/$3" 2>&1; }
check "minio: root credentials create a bucket" equals "$(s3 "$muser:$mpw" PUT imgtest)" 200
check "minio: root credentials list buckets" equals "$(s3 "$muser:$mpw" GET '')" 200
check "minio: a wrong secret is refused" equals "$(s3 "$muser:wrong-password" GET '')" 403
check "minio: reachable from the stack network" run --rm --network "$NET" "$MINIO" \
	bash -c 'exec curl -fsS -o /dev/null http://minio:9000/minio/health/ready'
check "minio: credentials not in inspect or argv" not_exposed "$mc" "$mpw"

# --- api ---------------------------------------------------------------------------------
log "api"
check "api: corpintel version runs" contains "$(run --rm "$API" version 2>&1)" "corpintel "
check "api: runs as uid 10001" equals "$(run --rm --entrypoint id "$API" -u 2>&1)" 10001
check "api: image runs 'corpintel api' and checks health with 'api healthcheck'" equals \
	"$(docker image inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.Healthcheck.Test}} {{.Config.User}}' "$API")" \
	'["/usr/local/bin/corpintel"] ["api"] ["CMD","/usr/local/bin/corpintel","api","healthcheck"] 10001:10001'

log "done in $(($(date +%s) - T0))s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
