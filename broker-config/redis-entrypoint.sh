#!/usr/bin/env bash
# Redis container start, in one of three shapes (docs/operations.md, "Redis HA"):
#   single node (default)        redis.conf, AOF on the data directory
#   HA node   (REDIS_HA_PRIMARY) redis.conf + redis-ha.conf; master or replica, as below
#   sentinel  (REDIS_MODE=sentinel) sentinel.conf.in rendered once into the data directory (a
#                                sentinel rewrites its own file, so the volume keeps what it learned)
# The password comes from REDIS_PASSWORD_FILE (a Docker secret) into a private file, never
# onto a command line; it guards the nodes (requirepass, masterauth) and the sentinels.
#
# An HA node asks the sentinels (REDIS_SENTINELS, host:port list) which node is master:
# another one -> it starts as that one's replica; no sentinel answers (a new cluster) -> the
# node named REDIS_HA_PRIMARY is master, the others its replicas; itself -> master, if it
# still has its data or the sentinels know no replica (a new cluster whose sentinels started
# first: they name the configured first master). A node named master that lost its volume
# while the sentinels know replicas refuses to start, so they promote one of those instead of
# the empty node wiping them.
#
# Outside a container (tests/integration/test_redis_image.py runs it as local processes):
# REDIS_LISTEN_PORT (6379, sentinel 26379), REDIS_BIND ("* -::*"), REDIS_DATA_DIR (/data),
# TALLY_CONF_DIR (/etc/tally); REDIS_HA_PRIMARY may be host:port.
set -euo pipefail
pw_file=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}
[ -r "$pw_file" ] || { echo "redis: missing secret $pw_file" >&2; exit 2; }
mode=${REDIS_MODE:-node}
primary=${REDIS_HA_PRIMARY:-}
me=${REDIS_ANNOUNCE:-$(hostname)}
data=${REDIS_DATA_DIR:-/data}
etc=${TALLY_CONF_DIR:-/etc/tally}
bind=${REDIS_BIND:-* -::*}
primary_host=${primary%:*} primary_port=6379
[ "$primary_host" = "$primary" ] || primary_port=${primary##*:}
port_ok() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
port_ok "$primary_port" || { echo "redis: REDIS_HA_PRIMARY must be host or host:port, not '$primary'" >&2; exit 2; }
port_ok "${REDIS_LISTEN_PORT:-6379}" ||
  { echo "redis: REDIS_LISTEN_PORT must be a port (1..65535), not '$REDIS_LISTEN_PORT'" >&2; exit 2; }
umask 077
pw=$(cat "$pw_file")

run_as_redis() {
  if [ "$(id -u)" -eq 0 ]; then
    chown -R redis:redis "$data" "$@" 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups "${cmd[@]}"
  fi
  exec "${cmd[@]}"
}

if [ "$mode" = sentinel ]; then
  [ -n "$primary" ] || { echo "redis: REDIS_MODE=sentinel needs REDIS_HA_PRIMARY (the first master's name)" >&2; exit 2; }
  conf=$data/sentinel.conf
  if [ ! -s "$conf" ]; then
    sed -e "s|@PORT@|${REDIS_LISTEN_PORT:-26379}|" -e "s|@BIND@|$bind|" -e "s|@DIR@|$data|" \
        -e "s|@MASTER_HOST@|$primary_host|" -e "s|@MASTER_PORT@|$primary_port|" \
        -e "s|@AUTH@|sentinel auth-pass tally $pw\nrequirepass $pw|" \
        -e "s|@ANNOUNCE@|sentinel announce-ip $me|" "$etc/sentinel.conf.in" >"$conf"
  else # what the sentinel learned stays; the password follows the secret (rotation)
    sed -i -e "s|^sentinel auth-pass tally .*|sentinel auth-pass tally $pw|" -e "s|^requirepass .*|requirepass $pw|" "$conf"
  fi
  cmd=(redis-server "$conf" --sentinel)
  run_as_redis "$conf"
fi
[ "$mode" = node ] || { echo "redis: REDIS_MODE must be node or sentinel, not '$mode'" >&2; exit 2; }

lport=${REDIS_LISTEN_PORT:-6379}
conf=$(mktemp "${TMPDIR:-/tmp}/redis.XXXXXX.conf")
cat "$etc/redis.conf" >"$conf"
printf 'requirepass %s\nmasterauth %s\n' "$pw" "$pw" >>"$conf"
args=(--port "$lport" --bind "$bind" --dir "$data" --daemonize no)
ask() { # ask host:port command... -> the sentinel's answer, one field per line; fails if none
  local s=$1
  shift
  REDISCLI_AUTH="$pw" timeout 2 redis-cli --no-auth-warning -h "${s%:*}" -p "${s##*:}" "$@" 2>/dev/null
}
if [ -n "$primary" ]; then
  cat "$etc/redis-ha.conf" >>"$conf"
  args+=(--replica-announce-ip "$me")
  master="" port="" by=""
  IFS=, read -r -a sentinels <<<"${REDIS_SENTINELS:-}"
  for _ in 1 2 3; do
    for s in "${sentinels[@]}"; do
      answer=$(ask "$s" SENTINEL get-master-addr-by-name tally || true)
      if [ "$(printf '%s\n' "$answer" | wc -l)" -eq 2 ] && [ -n "$(printf '%s' "$answer" | head -1)" ]; then
        master=$(printf '%s\n' "$answer" | sed -n 1p) port=$(printf '%s\n' "$answer" | sed -n 2p) by=$s
        break 2
      fi
    done
    [ ${#sentinels[@]} -gt 0 ] || break
    sleep 1
  done
  if [ -z "$master" ]; then
    echo "redis: no sentinel answered; $primary_host:$primary_port is the first master"
    master=$primary_host port=$primary_port
  elif [ "$master:$port" = "$me:$lport" ] && [ ! -d "$data/appendonlydir" ]; then
    # an unanswered question counts as "replicas known": starting empty is the one risky choice
    if ! known=$(ask "$by" SENTINEL replicas tally) || [ -n "$known" ]; then
      echo "redis: the sentinels name $me master, but its data is gone and they know replicas" \
        "(or $by did not say); not starting (they promote one of those)" >&2
      sleep 5
      exit 1
    fi
    echo "redis: the sentinels name $me master of a new set (no data here, no replica known to them)"
  else
    echo "redis: the sentinels name $master:$port master"
  fi
  [ "$master:$port" = "$me:$lport" ] || args+=(--replicaof "$master" "$port")
fi
chown redis:redis "$conf" 2>/dev/null || true
cmd=(redis-server "$conf" "${args[@]}")
run_as_redis "$conf"
