#!/usr/bin/env bash
# Redis container start: requirepass from REDIS_PASSWORD_FILE (a Docker secret), kept in a
# private file rather than on the command line.
set -euo pipefail
pw_file=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}
[ -r "$pw_file" ] || { echo "redis: missing secret $pw_file" >&2; exit 2; }
umask 077
auth=$(mktemp /tmp/redis-auth.XXXXXX)
printf 'requirepass %s\n' "$(cat "$pw_file")" >"$auth"
if [ "$(id -u)" -eq 0 ]; then
  chown redis:redis "$auth" /data
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server /etc/tally/redis.conf --include "$auth" \
    --bind '* -::*' --dir /data --daemonize no
fi
exec redis-server /etc/tally/redis.conf --include "$auth" --bind '* -::*' --dir /data --daemonize no
