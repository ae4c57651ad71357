#!/usr/bin/env bash
# Entrypoint of corpintel/minio.
#   MINIO_ROOT_USER_FILE, MINIO_ROOT_PASSWORD_FILE   files with the root credentials
#   (MINIO_ROOT_USER / MINIO_ROOT_PASSWORD work too, for tests)
# The files are read here and exported to the server's own environment only, so the
# values never appear in `docker inspect` or in argv. Arguments are passed to `minio`
# (default: server /data --address :9000 --console-address :9001). Runs as uid 1000;
# started as root it fixes /data's ownership and drops privileges first.
set -Eeuo pipefail

log() { printf '%s [corpintel-minio] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# "-flags" extend the default server command; "minio ARGS" runs minio; any other
# command (bash, curl) runs as is.
if [[ ${1:-} == -* ]]; then
	set -- server /data --address :9000 --console-address :9001 "$@"
fi
if [[ ${1:-} == minio ]]; then
	shift
	[[ ${1:-} == server ]] || exec minio "$@"
fi
if [[ ${1:-} != server ]]; then
	exec "$@"
fi

if [[ $(id -u) -eq 0 ]]; then
	mkdir -p /data
	find /data \! -user minio -exec chown minio:minio '{}' +
	log "started as root: dropping privileges to minio (uid 1000)"
	exec env HOME=/data setpriv --reuid=minio --regid=minio --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# file_env VAR: VAR from $VAR or from the file named by $VAR_FILE.
file_env() {
	local var=$1 fvar="${1}_FILE"
	if [[ -n ${!var:-} && -n ${!fvar:-} ]]; then
		log "error: both $var and $fvar are set (but are exclusive)"
		exit 1
	fi
	if [[ -n ${!fvar:-} ]]; then
		if [[ ! -r ${!fvar} ]]; then
			log "error: $fvar=${!fvar} is not readable by uid $(id -u) (secret files must be owned by 1000, mode 0400)"
			exit 1
		fi
		export "$var"="$(<"${!fvar}")"
	fi
	# MinIO would otherwise read the *_FILE variables itself, with its own rules.
	unset "$fvar"
}
file_env MINIO_ROOT_USER
file_env MINIO_ROOT_PASSWORD
if [[ -z ${MINIO_ROOT_USER:-} || -z ${MINIO_ROOT_PASSWORD:-} ]]; then
	log "error: set MINIO_ROOT_USER_FILE and MINIO_ROOT_PASSWORD_FILE"
	exit 1
fi

exec minio "$@"
