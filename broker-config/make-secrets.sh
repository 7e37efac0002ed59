#!/usr/bin/env bash
# Renders the production broker configuration and the credentials into OUTDIR:
#   OUTDIR/mosquitto.conf, passwd-services, passwd-watchers, acl-services, acl-watchers
#   OUTDIR/redis-auth.conf             (requirepass, to include after redis.conf)
#   OUTDIR/secrets/<name>.txt          (one secret per file, for *_FILE: the Redis and MQTT
#                                       passwords and cluster-secret.txt, the CLUSTER_SECRET
#                                       that signs totals and statuses; the folder mode 700,
#                                       the files 600)
# Secrets come from the environment (REDIS_PASSWORD, MQTT_REPLICA_PASSWORD,
# MQTT_PUBLISHER_PASSWORD, MQTT_WATCHER_PASSWORD, CLUSTER_SECRET, or the same names with
# _FILE), else from OUTDIR/secrets/ if a previous run made them, else they are generated at
# random.
#
#   broker-config/make-secrets.sh OUTDIR [--port 1883] [--watch-port 1884] [--ws-port 9001]
#                                        [--bind 127.0.0.1] [--data DIR] [--conf-dir DIR]
#                                        [--owner UID[:GID]]
# --conf-dir is where mosquitto will find the files (default OUTDIR; e.g. /mosquitto/config
# inside a container). --owner gives the secret files to that user (root only): docker-compose
# bind-mounts them as they are, and tally's images run as uid 10001.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: make-secrets.sh OUTDIR [options]" >&2; exit 2; }
out=$1; shift
port=1883 watch_port=1884 ws_port=9001 bind=127.0.0.1 data="" conf_dir="" owner=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2 ;; --watch-port) watch_port=$2 ;; --ws-port) ws_port=$2 ;;
    --bind) bind=$2 ;; --data) data=$2 ;; --conf-dir) conf_dir=$2 ;; --owner) owner=$2 ;;
    *) echo "make-secrets.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
mkdir -p "$out/secrets"
out=$(cd "$out" && pwd)
data=${data:-$out/data}
conf_dir=${conf_dir:-$out}
mkdir -p "$data"
chmod 700 "$out/secrets"
umask 077

# secret NAME VAR [LEN]: the secret for NAME, from $VAR, ${VAR}_FILE, a kept file, or LEN
# (default 32) random characters.
secret() {
  local name=$1 var=$2 file_var="${2}_FILE" len=${3:-32} value=""
  if [ -n "${!var:-}" ]; then value=${!var}
  elif [ -n "${!file_var:-}" ]; then value=$(cat "${!file_var}")
  elif [ -s "$out/secrets/$name.txt" ]; then value=$(cat "$out/secrets/$name.txt")
  else value=$(head -c 64 /dev/urandom | base64 | tr -d '/+=\n' | head -c "$len")
  fi
  case "$value" in *:*|*[[:space:]]*|"") echo "make-secrets.sh: $var must be non-empty, without ':' or spaces" >&2; exit 2 ;; esac
  printf '%s' "$value" >"$out/secrets/$name.txt"
  chmod 600 "$out/secrets/$name.txt"
  [ -z "$owner" ] || chown "$owner" "$out/secrets/$name.txt"
  printf '%s' "$value"
}

redis_pw=$(secret redis REDIS_PASSWORD)
replica_pw=$(secret mqtt-replica MQTT_REPLICA_PASSWORD)
publisher_pw=$(secret mqtt-publisher MQTT_PUBLISHER_PASSWORD)
watcher_pw=$(secret mqtt-watcher MQTT_WATCHER_PASSWORD)
cluster_secret=$(secret cluster-secret CLUSTER_SECRET 48)
[ ${#cluster_secret} -ge 16 ] || { echo "make-secrets.sh: CLUSTER_SECRET must be at least 16 characters" >&2; exit 2; }

# Plain user:password lines, then hashed in place (no password on a command line).
printf 'tally-replica:%s\ntally-publisher:%s\n' "$replica_pw" "$publisher_pw" >"$out/passwd-services"
printf 'watcher:%s\n' "$watcher_pw" >"$out/passwd-watchers"
mosquitto_passwd -U "$out/passwd-services"
mosquitto_passwd -U "$out/passwd-watchers"
cp "$here/acl-services" "$here/acl-watchers" "$out/"
printf 'requirepass %s\n' "$redis_pw" >"$out/redis-auth.conf"
chmod 600 "$out/redis-auth.conf"

sed -e "s|@PORT@|$port|g" -e "s|@WATCH_PORT@|$watch_port|g" -e "s|@WS_PORT@|$ws_port|g" \
    -e "s|@BIND@|$bind|g" -e "s|@DATA_DIR@|$data|g" -e "s|@CONF_DIR@|$conf_dir|g" \
    "$here/mosquitto.conf.in" >"$out/mosquitto.conf"
chmod 644 "$out/mosquitto.conf" "$out/acl-services" "$out/acl-watchers"
