#!/usr/bin/env bash
# Redis container start, in one of three shapes (docs/operations.md, "Redis HA"):
#   single node (default)        redis.conf, AOF on the data directory
#   HA node   (REDIS_HA_PRIMARY) redis.conf + redis-ha.conf; master or replica, as below
#   sentinel  (REDIS_MODE=sentinel) sentinel.conf.in rendered once into the data directory (a
#                                sentinel rewrites its own file, so the volume keeps what it learned)
# The ACL users come from REDIS_ACL_FILE (node, default /run/secrets/redis_acl) or
# SENTINEL_ACL_FILE (sentinel, default /run/secrets/sentinel_acl), both made by
# make-secrets.sh: one user per role, passwords hashed, and the one password each must send
# itself (masterauth; the sentinels' auth-pass). Without that file (a deployment of an
# earlier release) the single REDIS_PASSWORD_FILE guards everything as before (deprecated).
# REDIS_PASSWORD_FILE (a Docker secret) is Redis's default user, which a node uses to ask the
# sentinels; no password goes onto a command line.
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
acl_file=${REDIS_ACL_FILE:-/run/secrets/redis_acl}
sentinel_acl_file=${SENTINEL_ACL_FILE:-/run/secrets/sentinel_acl}

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
  auth=$(mktemp "${TMPDIR:-/tmp}/sentinel-auth.XXXXXX")
  if [ -r "$sentinel_acl_file" ]; then
    cat "$sentinel_acl_file" >"$auth"
  else
    echo "redis: no $sentinel_acl_file: one password for everything (deprecated; make-secrets.sh makes the file)" >&2
    printf 'sentinel auth-pass tally %s\nrequirepass %s\n' "$pw" "$pw" >"$auth"
  fi
  SENTINEL_TEMPLATE="$etc/sentinel.conf.in" bash "$etc/sentinel-conf.sh" "$conf" \
    --port "${REDIS_LISTEN_PORT:-26379}" --bind "$bind" --master "$primary_host:$primary_port" --announce "$me" \
    --auth "$auth"
  rm -f "$auth"
  cmd=(redis-server "$conf" --sentinel)
  run_as_redis "$conf"
fi
[ "$mode" = node ] || { echo "redis: REDIS_MODE must be node or sentinel, not '$mode'" >&2; exit 2; }

lport=${REDIS_LISTEN_PORT:-6379}
conf=$(mktemp "${TMPDIR:-/tmp}/redis.XXXXXX.conf")
cat "$etc/redis.conf" >"$conf"
if [ -r "$acl_file" ]; then
  cat "$acl_file" >>"$conf"
else
  echo "redis: no $acl_file: one password for everything (deprecated; make-secrets.sh makes the file)" >&2
  printf 'requirepass %s\nmasterauth %s\n' "$pw" "$pw" >>"$conf"
fi
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
