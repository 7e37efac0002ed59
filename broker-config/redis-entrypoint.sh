#!/usr/bin/env bash
# Redis container start, in one of three shapes (docs/operations.md, "Redis HA"):
#   single node (default)        redis.conf, AOF on /data
#   HA node   (REDIS_HA_PRIMARY) redis.conf + redis-ha.conf; master or replica, as below
#   sentinel  (REDIS_MODE=sentinel) sentinel.conf.in rendered once into /data (a sentinel
#                                rewrites its own file, so the volume keeps what it learned)
# The password comes from REDIS_PASSWORD_FILE (a Docker secret) into a private file, never
# onto a command line; it guards the nodes (requirepass, masterauth) and the sentinels.
#
# An HA node asks the sentinels (REDIS_SENTINELS, host:port list) which node is master:
# another one -> it starts as that one's replica; itself -> master, but only with its data
# (a node named master that lost its volume refuses to start, so the sentinels promote a
# replica instead of the empty node wiping the others). No sentinel answers (a new cluster)
# -> the node named REDIS_HA_PRIMARY is master, the others its replicas.
set -euo pipefail
pw_file=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}
[ -r "$pw_file" ] || { echo "redis: missing secret $pw_file" >&2; exit 2; }
mode=${REDIS_MODE:-node}
primary=${REDIS_HA_PRIMARY:-}
me=${REDIS_ANNOUNCE:-$(hostname)}
umask 077
pw=$(cat "$pw_file")

run_as_redis() {
  if [ "$(id -u)" -eq 0 ]; then
    chown -R redis:redis /data "$@" 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups "${cmd[@]}"
  fi
  exec "${cmd[@]}"
}

if [ "$mode" = sentinel ]; then
  [ -n "$primary" ] || { echo "redis: REDIS_MODE=sentinel needs REDIS_HA_PRIMARY (the first master's name)" >&2; exit 2; }
  conf=/data/sentinel.conf
  if [ ! -s "$conf" ]; then
    sed -e "s|@PORT@|26379|" -e "s|@BIND@|* -::*|" -e "s|@DIR@|/data|" -e "s|@MASTER_HOST@|$primary|" \
        -e "s|@MASTER_PORT@|6379|" -e "s|@AUTH@|sentinel auth-pass tally $pw\nrequirepass $pw|" \
        -e "s|@ANNOUNCE@|sentinel announce-ip $me|" /etc/tally/sentinel.conf.in >"$conf"
  else # what the sentinel learned stays; the password follows the secret (rotation)
    sed -i -e "s|^sentinel auth-pass tally .*|sentinel auth-pass tally $pw|" -e "s|^requirepass .*|requirepass $pw|" "$conf"
  fi
  cmd=(redis-server "$conf" --sentinel)
  run_as_redis "$conf"
fi
[ "$mode" = node ] || { echo "redis: REDIS_MODE must be node or sentinel, not '$mode'" >&2; exit 2; }

conf=$(mktemp /tmp/redis.XXXXXX.conf)
cat /etc/tally/redis.conf >"$conf"
printf 'requirepass %s\nmasterauth %s\n' "$pw" "$pw" >>"$conf"
args=(--bind '* -::*' --dir /data --daemonize no)
if [ -n "$primary" ]; then
  cat /etc/tally/redis-ha.conf >>"$conf"
  args+=(--replica-announce-ip "$me")
  master="" port=""
  IFS=, read -r -a sentinels <<<"${REDIS_SENTINELS:-}"
  for _ in 1 2 3; do
    for s in "${sentinels[@]}"; do
      answer=$(REDISCLI_AUTH="$pw" timeout 2 redis-cli --no-auth-warning -h "${s%:*}" -p "${s##*:}" \
        SENTINEL get-master-addr-by-name tally 2>/dev/null || true)
      if [ "$(printf '%s\n' "$answer" | wc -l)" -eq 2 ] && [ -n "$(printf '%s' "$answer" | head -1)" ]; then
        master=$(printf '%s\n' "$answer" | sed -n 1p) port=$(printf '%s\n' "$answer" | sed -n 2p)
        break 2
      fi
    done
    [ ${#sentinels[@]} -gt 0 ] || break
    sleep 1
  done
  if [ -z "$master" ]; then
    echo "redis: no sentinel answered; $primary is the first master"
    master=$primary port=6379
  elif [ "$master" = "$me" ] && [ ! -d /data/appendonlydir ]; then
    echo "redis: the sentinels name $me master, but its data is gone; not starting (they promote a replica)" >&2
    sleep 5
    exit 1
  else
    echo "redis: the sentinels name $master:$port master"
  fi
  [ "$master" = "$me" ] || args+=(--replicaof "$master" "$port")
fi
chown redis:redis "$conf" 2>/dev/null || true
cmd=(redis-server "$conf" "${args[@]}")
run_as_redis "$conf"
