#!/usr/bin/env bash
# Container health check of the Redis image: the node (6379) or the sentinel (26379) answers
# PING. Liveness only: a replica that is still syncing, or a sentinel without quorum, is alive.
port=${REDIS_LISTEN_PORT:-6379}
[ "${REDIS_MODE:-node}" = sentinel ] && port=${REDIS_LISTEN_PORT:-26379}
# tally-health may PING and nothing else, without a password (make-secrets.sh); a node or
# sentinel without the ACL users (an earlier release's secrets) takes the default user's.
redis-cli --no-auth-warning --user tally-health --pass - -p "$port" ping 2>/dev/null | grep -q PONG && exit 0
REDISCLI_AUTH="$(cat "${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}")" \
  redis-cli --no-auth-warning -p "$port" ping | grep -q PONG
