#!/usr/bin/env bash
# README command 1: the whole system on this machine, no Docker.
#   scripts/run-local.sh [replicas]      (default 3)
#   scripts/run-local.sh --ha [replicas] Redis HA: a master, two Redis replicas and three
#                                        sentinels (SENTINEL_PORT 26379..26381); replicas
#                                        and publishers find the master through them;
#                                        synchronous (REDIS_WAIT_REPLICAS=1) unless the
#                                        environment says REDIS_WAIT_REPLICAS=0
# Installs missing Debian packages, builds, makes credentials (broker-config/make-secrets.sh),
# starts redis-server (AOF on, password) and mosquitto with the production configuration
# in broker-config/, two publishers (one leads), then the replicas, all sharing one HTTP
# port through SO_REUSEPORT. Ctrl-C stops everything.
# Ports: HTTP_PORT (8080), REDIS_PORT (6379), MQTT_PORT (1883, services),
# MQTT_WATCH_PORT (1884, read-only watchers), MQTT_WS_PORT (9001, WebSockets), the same
# over TLS on MQTT_WATCH_TLS_PORT (8884) and MQTT_WSS_PORT (9443), publishers' /metrics on
# PUBLISHER_HTTP_PORT (9101) and the next. Totals and statuses are signed with the cluster
# secret made here. Data, credentials and logs: TALLY_RUN_DIR (.run/).
# TALLY_PREBUILT=DIR runs the programs of a build already made there (the tests' build)
# instead of building build-local/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ha=""
if [ "${1:-}" = "--ha" ]; then ha=1; shift; fi
replicas=${1:-${REPLICAS:-3}}
sentinel_port=${SENTINEL_PORT:-26379}
http_port=${HTTP_PORT:-8080}
redis_port=${REDIS_PORT:-6379}
mqtt_port=${MQTT_PORT:-1883}
watch_port=${MQTT_WATCH_PORT:-1884}
ws_port=${MQTT_WS_PORT:-9001}
watch_tls_port=${MQTT_WATCH_TLS_PORT:-8884}
wss_port=${MQTT_WSS_PORT:-9443}
pub_port=${PUBLISHER_HTTP_PORT:-9101}
case "$replicas" in ''|*[!0-9]*|0) echo "run-local.sh: replicas must be a positive number, got '$replicas'" >&2; exit 2 ;; esac
for v in SENTINEL_PORT:"$sentinel_port" HTTP_PORT:"$http_port" REDIS_PORT:"$redis_port" MQTT_PORT:"$mqtt_port" \
         MQTT_WATCH_PORT:"$watch_port" MQTT_WS_PORT:"$ws_port" MQTT_WATCH_TLS_PORT:"$watch_tls_port" \
         MQTT_WSS_PORT:"$wss_port" PUBLISHER_HTTP_PORT:"$pub_port"; do
  value=${v#*:}
  case "$value" in
    ''|*[!0-9]*|0*) ok="" ;;
    *) ok=$([ "${#value}" -le 5 ] && [ "$value" -le 65533 ] && echo 1 || true) ;;
  esac
  if [ -z "$ok" ]; then
    echo "run-local.sh: ${v%%:*} must be a port from 1 to 65533 (the next two are used too), got '$value'" >&2
    exit 2
  fi
done

"$root/scripts/install-deps.sh" run
build=${TALLY_PREBUILT:-$root/build-local}
if [ -z "${TALLY_PREBUILT:-}" ]; then
  cmake -S "$root" -B "$build" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" --target tally-replica tally-publisher tally-client-ids
fi

run=${TALLY_RUN_DIR:-$root/.run}
mkdir -p "$run/redis"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$http_port:HTTP_PORT" "$redis_port:REDIS_PORT" "$mqtt_port:MQTT_PORT" "$watch_port:MQTT_WATCH_PORT" \
         "$ws_port:MQTT_WS_PORT" "$watch_tls_port:MQTT_WATCH_TLS_PORT" "$wss_port:MQTT_WSS_PORT" \
         "$pub_port:PUBLISHER_HTTP_PORT" "$((pub_port + 1)):PUBLISHER_HTTP_PORT+1" ${ha:+"$((redis_port + 1)):REDIS_PORT+1" "$((redis_port + 2)):REDIS_PORT+2"} \
         ${ha:+"$sentinel_port:SENTINEL_PORT" "$((sentinel_port + 1)):SENTINEL_PORT+1" "$((sentinel_port + 2)):SENTINEL_PORT+2"}; do
  if port_busy "${p%%:*}"; then
    echo "run-local.sh: port ${p%%:*} is in use; stop what holds it or set ${p##*:}=another port" >&2
    exit 1
  fi
done

servers=() replica_pids=() redis_nodes=()
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
  stop_all "${servers[@]}" "${redis_nodes[@]}"
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

# Credentials are made once and kept in $run/broker/secrets/ (mode 600).
"$root/broker-config/make-secrets.sh" "$run/broker" --port "$mqtt_port" --watch-port "$watch_port" \
  --ws-port "$ws_port" --watch-tls-port "$watch_tls_port" --wss-port "$wss_port" --bind 127.0.0.1 \
  --plugin "$build/broker-config/tally-client-ids.so"
[ "$(id -u)" -eq 0 ] && echo "user root" >>"$run/broker/mosquitto.conf"
secrets="$run/broker/secrets"

# In HA mode the sentinels rewrite a node's configuration file (CONFIG REWRITE: who is whose
# replica, after a failover): each node gets its own copy in its data folder, made once and
# kept, so a restart finds the roles as the sentinels left them.
node_conf() { # node_conf DIR PORT [MASTER_PORT]: prints the path of DIR/redis.conf
  if [ ! -s "$1/redis.conf" ]; then
    { cat "$root/broker-config/redis.conf" "$root/broker-config/redis-ha.conf"
      printf 'port %s\ndir %s\n' "$2" "$1"
      [ -z "${3:-}" ] || printf 'replicaof 127.0.0.1 %s\n' "$3"; } >"$1/redis.conf"
  else # the users and passwords follow the secrets
    sed -i -e '/^requirepass /d' -e '/^masterauth /d' -e '/^masteruser /d' -e '/^user /d' "$1/redis.conf"
  fi
  cat "$run/broker/redis-auth.conf" >>"$1/redis.conf"
  chmod 600 "$1/redis.conf"
  echo "$1/redis.conf"
}
if [ -n "$ha" ]; then
  redis-server "$(node_conf "$run/redis" "$redis_port")" --daemonize no >"$run/redis.log" 2>&1 &
else
  redis-server "$root/broker-config/redis.conf" --include "$run/broker/redis-auth.conf" --port "$redis_port" \
    --dir "$run/redis" --daemonize no >"$run/redis.log" 2>&1 &
fi
# In HA mode a Redis node may die (that is what the sentinels are for): not watched below.
if [ -n "$ha" ]; then redis_nodes+=($!); else servers+=($!); fi
redis_env=(REDIS_PORT="$redis_port")
if [ -n "$ha" ]; then
  # Two Redis replicas and three sentinels, all local. A node's role is whatever the
  # sentinels made it last: each keeps its own data folder and its sentinel its own file.
  sentinels=""
  for i in 1 2; do
    mkdir -p "$run/redis-$i"
    redis-server "$(node_conf "$run/redis-$i" $((redis_port + i)) "$redis_port")" --daemonize no \
      >"$run/redis-$i.log" 2>&1 &
    redis_nodes+=($!)
  done
  for i in 0 1 2; do
    p=$((sentinel_port + i)); mkdir -p "$run/sentinel-$i"
    "$root/broker-config/sentinel-conf.sh" "$run/sentinel-$i/sentinel.conf" --port "$p" \
      --master "127.0.0.1:$redis_port" --auth "$run/broker/sentinel-auth.conf"
    redis-server "$run/sentinel-$i/sentinel.conf" --sentinel >"$run/sentinel-$i.log" 2>&1 &
    servers+=($!)
    sentinels="$sentinels${sentinels:+,}127.0.0.1:$p"
  done
  # Synchronous by default, as in compose and stack: a batch is answered once a Redis
  # replica holds it too (REDIS_WAIT_REPLICAS=0 in the environment opts into async).
  redis_env=(REDIS_SENTINELS="$sentinels" REDIS_WAIT_REPLICAS="${REDIS_WAIT_REPLICAS:-1}"
             REDIS_SENTINEL_USERNAME=tally-client REDIS_SENTINEL_PASSWORD_FILE="$secrets/redis-sentinel-client.txt")
fi
mosquitto -c "$run/broker/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
servers+=($!)
wait_until 10 "redis" redis-cli --no-auth-warning --user tally-health --pass - -p "$redis_port" ping
if [ -n "$ha" ]; then
  wait_until 20 "the sentinels" env REDISCLI_AUTH="$(cat "$secrets/redis-sentinel-client.txt")" redis-cli \
    --no-auth-warning --user tally-client -p "$sentinel_port" SENTINEL get-master-addr-by-name tally
fi
wait_until 10 "mosquitto" port_busy "$mqtt_port"

# One of tally's programs in the background: `role` (publisher or replica) names its binary
# and its own Redis and MQTT users; `log` its log file; the rest are its own settings.
start_program() {
  local role=$1 log=$2
  shift 2
  env "${redis_env[@]}" "$@" REDIS_USERNAME="tally-$role" REDIS_PASSWORD_FILE="$secrets/redis-$role.txt" \
    MQTT_URL="tcp://127.0.0.1:$mqtt_port" MQTT_USERNAME="tally-$role" \
    MQTT_PASSWORD_FILE="$secrets/mqtt-$role.txt" CLUSTER_SECRET_FILE="$secrets/cluster-secret.txt" \
    "$build/$role/tally-$role" >"$run/$log.log" 2>&1 &
  replica_pids+=($!)
}
for i in 1 2; do
  start_program publisher "publisher-$i" INSTANCE_ID="$(hostname)-publisher-$i" HTTP_HOST=127.0.0.1 \
    HTTP_PORT=$((pub_port + i - 1))
done
for i in $(seq 1 "$replicas"); do
  start_program replica "replica-$i" SERVICE_PORT="$http_port" INSTANCE_ID="$(hostname)-$i"
done
wait_until 20 "the replicas" curl -sf "http://127.0.0.1:$http_port/readyz"

cat <<INFO

tally is running: $replicas replicas sharing http://127.0.0.1:$http_port/, 2 publishers${ha:+
Redis HA: master :$redis_port, replicas :$((redis_port + 1)) :$((redis_port + 2)), sentinels $sentinels
  (kill the master and watch them follow: REDISCLI_AUTH=\$(cat $secrets/redis-sentinel-client.txt) redis-cli --user tally-client -p $sentinel_port SENTINEL get-master-addr-by-name tally)}
(Redis :$redis_port, MQTT :$mqtt_port for services, :$watch_port for watchers, WebSockets :$ws_port,
 TLS for watchers :$watch_tls_port and :$wss_port with the local CA $run/broker/tls/ca.crt)

  curl http://127.0.0.1:$http_port/
  curl -H 'Accept: application/json' http://127.0.0.1:$http_port/
  curl http://127.0.0.1:$http_port/total
  curl http://127.0.0.1:$http_port/replicas
  curl http://127.0.0.1:$pub_port/metrics          # publisher 1 (tally_publisher_leader)
  open http://127.0.0.1:$http_port/dashboard  # the live view, in a browser
  prometheus --config.file=$root/monitoring/prometheus.yml --storage.tsdb.path=$run/prometheus
                                              # metrics and alerts: http://127.0.0.1:9090/alerts
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
