#!/usr/bin/env bash
# README command 1: the whole system on this machine, no Docker.
#   scripts/run-local.sh [replicas]      (default 3)
# Installs missing Debian packages, builds, makes credentials (broker-config/make-secrets.sh),
# starts redis-server (AOF on, password) and mosquitto with the production configuration
# in broker-config/, two publishers (one leads), then the replicas, all sharing one HTTP
# port through SO_REUSEPORT. Ctrl-C stops everything.
# Ports: HTTP_PORT (8080), REDIS_PORT (6379), MQTT_PORT (1883, services),
# MQTT_WATCH_PORT (1884, read-only watchers), MQTT_WS_PORT (9001, WebSockets), the same
# over TLS on MQTT_WATCH_TLS_PORT (8884) and MQTT_WSS_PORT (9443), publishers' /metrics on
# 9101 and 9102. Totals and statuses are signed with the cluster secret made here.
# Data, credentials and logs: .run/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
replicas=${1:-${REPLICAS:-3}}
http_port=${HTTP_PORT:-8080}
redis_port=${REDIS_PORT:-6379}
mqtt_port=${MQTT_PORT:-1883}
watch_port=${MQTT_WATCH_PORT:-1884}
ws_port=${MQTT_WS_PORT:-9001}
watch_tls_port=${MQTT_WATCH_TLS_PORT:-8884}
wss_port=${MQTT_WSS_PORT:-9443}
case "$replicas" in ''|*[!0-9]*|0) echo "run-local.sh: replicas must be a positive number, got '$replicas'" >&2; exit 2 ;; esac

"$root/scripts/install-deps.sh" run
cmake -S "$root" -B "$root/build-local" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build-local" -j "$(nproc)" --target tally-replica tally-publisher

run="$root/.run"
mkdir -p "$run/redis"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$http_port:HTTP_PORT" "$redis_port:REDIS_PORT" "$mqtt_port:MQTT_PORT" "$watch_port:MQTT_WATCH_PORT" \
         "$ws_port:MQTT_WS_PORT" "$watch_tls_port:MQTT_WATCH_TLS_PORT" "$wss_port:MQTT_WSS_PORT" \
         "9101:publisher" "9102:publisher"; do
  if port_busy "${p%%:*}"; then
    echo "run-local.sh: port ${p%%:*} is in use; stop what holds it or set ${p##*:}=another port" >&2
    exit 1
  fi
done

servers=() replica_pids=()
stop_all() {
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  # Replicas first (they drain their requests), then the servers they talk to.
  stop_all "${replica_pids[@]}"
  stop_all "${servers[@]}"
  echo "stopped; data and logs are in $run"
}
trap cleanup EXIT
trap "cleanup; exit 0" INT TERM

wait_until() { # wait_until <seconds> <what> <command...>
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "run-local.sh: $what did not come up; see $run/*.log" >&2; exit 1; fi
    sleep 0.1
  done
}

# Credentials are made once and kept in .run/broker/secrets/ (mode 600).
"$root/broker-config/make-secrets.sh" "$run/broker" --port "$mqtt_port" --watch-port "$watch_port" \
  --ws-port "$ws_port" --watch-tls-port "$watch_tls_port" --wss-port "$wss_port" --bind 127.0.0.1
[ "$(id -u)" -eq 0 ] && echo "user root" >>"$run/broker/mosquitto.conf"
secrets="$run/broker/secrets"

redis-server "$root/broker-config/redis.conf" --include "$run/broker/redis-auth.conf" --port "$redis_port" \
  --dir "$run/redis" --daemonize no >"$run/redis.log" 2>&1 &
servers+=($!)
mosquitto -c "$run/broker/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
servers+=($!)
wait_until 10 "redis" env REDISCLI_AUTH="$(cat "$secrets/redis.txt")" redis-cli -p "$redis_port" ping
wait_until 10 "mosquitto" port_busy "$mqtt_port"

for i in 1 2; do
  INSTANCE_ID="$(hostname)-publisher-$i" HTTP_HOST=127.0.0.1 HTTP_PORT=$((9100 + i)) REDIS_PORT=$redis_port \
    REDIS_PASSWORD_FILE="$secrets/redis.txt" MQTT_URL="tcp://127.0.0.1:$mqtt_port" MQTT_USERNAME=tally-publisher \
    MQTT_PASSWORD_FILE="$secrets/mqtt-publisher.txt" CLUSTER_SECRET_FILE="$secrets/cluster-secret.txt" \
    "$root/build-local/publisher/tally-publisher" \
    >"$run/publisher-$i.log" 2>&1 &
  replica_pids+=($!)
done

for i in $(seq 1 "$replicas"); do
  SERVICE_PORT=$http_port INSTANCE_ID="$(hostname)-$i" REDIS_PORT=$redis_port \
    REDIS_PASSWORD_FILE="$secrets/redis.txt" MQTT_URL="tcp://127.0.0.1:$mqtt_port" MQTT_USERNAME=tally-replica \
    MQTT_PASSWORD_FILE="$secrets/mqtt-replica.txt" CLUSTER_SECRET_FILE="$secrets/cluster-secret.txt" \
    "$root/build-local/replica/tally-replica" \
    >"$run/replica-$i.log" 2>&1 &
  replica_pids+=($!)
done
wait_until 20 "the replicas" curl -sf "http://127.0.0.1:$http_port/readyz"

cat <<INFO

tally is running: $replicas replicas sharing http://127.0.0.1:$http_port/, 2 publishers
(Redis :$redis_port, MQTT :$mqtt_port for services, :$watch_port for watchers, WebSockets :$ws_port,
 TLS for watchers :$watch_tls_port and :$wss_port with the local CA $run/broker/tls/ca.crt)

  curl http://127.0.0.1:$http_port/
  curl -H 'Accept: application/json' http://127.0.0.1:$http_port/
  curl http://127.0.0.1:$http_port/total
  curl http://127.0.0.1:$http_port/replicas
  curl http://127.0.0.1:9101/metrics          # publisher 1 (tally_publisher_leader)
  XDG_CONFIG_HOME=$run/broker/watcher mosquitto_sub -h 127.0.0.1 -p $watch_port -t total_count
  XDG_CONFIG_HOME=$run/broker/watcher-tls mosquitto_sub -h localhost -p $watch_tls_port -t total_count
  (the watcher's account and password are read from those folders' mosquitto_sub file)

Logs: $run/*.log    Ctrl-C stops everything.
INFO

# Stay up until Ctrl-C, or until one of the processes dies (then say which and stop).
set +e
wait -n "${servers[@]}" "${replica_pids[@]}"
echo "run-local.sh: a process exited; see $run/*.log" >&2
exit 1
