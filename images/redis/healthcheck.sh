#!/bin/sh
# Authenticated PING; the password travels in REDISCLI_AUTH, never in argv.
set -eu
if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
	REDISCLI_AUTH=$(cat "$REDIS_PASSWORD_FILE")
	export REDISCLI_AUTH
elif [ -n "${REDIS_PASSWORD:-}" ]; then
	REDISCLI_AUTH=$REDIS_PASSWORD
	export REDISCLI_AUTH
fi
[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]
