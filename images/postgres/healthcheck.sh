#!/bin/sh
# Healthy once the real server accepts TCP connections. TCP, not the socket: during
# first-start initialisation only a socket-only temporary server runs.
exec pg_isready -q -h 127.0.0.1 -p "${PGPORT:-5432}" -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" -t 2
