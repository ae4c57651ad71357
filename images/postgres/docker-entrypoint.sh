#!/usr/bin/env bash
# Entrypoint of corpintel/postgres:15. Compatible with the official postgres image:
#   POSTGRES_USER (postgres)   superuser created by initdb
#   POSTGRES_DB ($POSTGRES_USER) database created on first start
#   POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE   the superuser's password (required on first start)
#   POSTGRES_INITDB_ARGS       extra initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for network clients (scram-sha-256)
#   PGDATA (/var/lib/postgresql/data), PGPORT (5432)
#   /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once after the first initdb.
# Additionally: POSTGRES_HBA_ADDRESS (samenet) — which clients pg_hba admits over the network.
# Arguments starting with "-" are passed to postgres (e.g. -c shared_buffers=1GB).
# Runs the server as postgres (uid 999); started as root it fixes PGDATA's ownership and
# drops privileges first.
set -Eeuo pipefail

log() { printf '%s [corpintel-postgres] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE.
file_env() {
	local var=$1 fvar="${1}_FILE" def=${2:-}
	if [[ -n ${!var:-} && -n ${!fvar:-} ]]; then
		log "error: both $var and $fvar are set (but are exclusive)"
		exit 1
	fi
	local val=$def
	if [[ -n ${!var:-} ]]; then
		val=${!var}
	elif [[ -n ${!fvar:-} ]]; then
		if [[ ! -r ${!fvar} ]]; then
			log "error: $fvar=${!fvar} is not readable by uid $(id -u) (secret files must be owned by 999, mode 0400)"
			exit 1
		fi
		val=$(<"${!fvar}")
	fi
	export "$var"="$val"
	unset "$fvar"
}

if [[ ${1:-} == -* ]]; then
	set -- postgres "$@"
fi

if [[ ${1:-} != postgres ]]; then
	exec "$@"
fi

export PGDATA=${PGDATA:-/var/lib/postgresql/data}

if [[ $(id -u) -eq 0 ]]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	chown postgres:postgres /var/run/postgresql
	chmod 3777 /var/run/postgresql
	log "started as root: dropping privileges to postgres (uid 999)"
	exec env HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

mkdir -p "$PGDATA" 2>/dev/null || true
chmod 0700 "$PGDATA" 2>/dev/null || true
if [[ ! -w $PGDATA ]]; then
	log "error: PGDATA=$PGDATA is not writable by uid $(id -u); start as root once or chown it to 999:999"
	exit 1
fi

sharedir=$(pg_config --sharedir 2>/dev/null || echo /usr/share/postgresql/15)
if [[ -f $sharedir/extension/timescaledb.control ]]; then
	log "timescaledb: present"
else
	log "timescaledb: absent"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
POSTGRES_HBA_ADDRESS=${POSTGRES_HBA_ADDRESS:-samenet}
PGPORT=${PGPORT:-5432}
export PGPORT

marker=$PGDATA/.corpintel-init-incomplete
if [[ -e $marker ]]; then
	log "error: a previous first-start initialisation of $PGDATA did not finish; remove the volume's contents to start over"
	exit 1
fi

psql_init() {
	psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" "$@"
}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		log "error: the database is uninitialised and no superuser password is given: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"
		exit 1
	fi
	log "initialising $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
	# initdb wants an empty directory; the marker goes in once it has run.
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words by contract
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
		--encoding=UTF8 --locale=C.UTF-8 --data-checksums \
		${POSTGRES_INITDB_ARGS:-} >/dev/null
	: >"$marker"
	{
		echo
		echo "# corpintel: clients on the stack network (samenet = any subnet this container is on)"
		printf 'host\tall\t\tall\t%s\t%s\n' "$POSTGRES_HBA_ADDRESS" "$POSTGRES_HOST_AUTH_METHOD"
		printf 'host\treplication\tall\t%s\t%s\n' "$POSTGRES_HBA_ADDRESS" "$POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"

	# A temporary server on the socket only, so nothing connects before init is complete.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p $PGPORT" -w -t 60 start >/dev/null
	if [[ $POSTGRES_DB != postgres ]]; then
		exists=$(psql_init --dbname postgres --set db="$POSTGRES_DB" -tA <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
		if [[ -z $exists ]]; then
			psql_init --dbname postgres --set db="$POSTGRES_DB" -q <<<'CREATE DATABASE :"db";'
		fi
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		[[ -e $f ]] || continue
		case $f in
		*.sh)
			if [[ -x $f ]]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql) log "running $f"; psql_init --dbname "$POSTGRES_DB" -q -f "$f" ;;
		*.sql.gz) log "running $f"; gunzip -c "$f" | psql_init --dbname "$POSTGRES_DB" -q ;;
		*) log "ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
	rm -f "$marker"
	log "initialisation complete"
fi

unset POSTGRES_PASSWORD
log "starting $(postgres --version)"
exec "$@"
