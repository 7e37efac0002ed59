#!/usr/bin/env bash
# Swarm end-to-end test: a real single-node Docker Swarm on this machine.
# Installs Debian's docker.io if no engine is there, starts dockerd if none runs, makes
# this node a swarm manager if it is not one, builds the images, validates stack.yml and
# docker-compose.yml, deploys the stack, runs tests/swarm/check.py through the load
# balancer, and removes everything it created at the end, even on failure.
# For diagnosis: TALLY_SWARM_LOGS=DIR keeps every service's whole log there on failure;
# TALLY_SWARM_CHECK_ARGS passes options to check.py (e.g. "--redis-only --redis-rounds 6"
# repeats the Redis fault phases, printing every M answered twice and when).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
stack=${TALLY_STACK:-tallye2e}
work=$(mktemp -d /tmp/tally-swarm.XXXXXX)
started_dockerd="" joined_swarm="" compose_up=""
log() { echo "swarm-e2e: $*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
  local rc=$?
  set +e
  log "cleaning up"
  if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$stack"; then
    if [ $rc -ne 0 ] && [ -n "${TALLY_SWARM_LOGS:-}" ]; then # every service's whole log, kept for diagnosis
      mkdir -p "$TALLY_SWARM_LOGS"
      for s in $(docker stack services --format '{{.Name}}' "$stack" 2>/dev/null); do
        docker service logs --timestamps "$s" >"$TALLY_SWARM_LOGS/$s.log" 2>&1
      done
      log "service logs kept in $TALLY_SWARM_LOGS"
    fi
    if [ $rc -ne 0 ]; then
      for s in $(docker stack services -q "$stack" 2>/dev/null); do
        docker service ps --no-trunc "$s" 2>/dev/null | head -5
        docker service logs --tail 20 "$s" 2>&1 | tail -20
      done
    fi
    docker stack rm "$stack" >/dev/null
    for _ in $(seq 1 60); do
      [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] &&
        [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ] && break
      sleep 1
    done
  fi
  for v in redis-data redis-2-data redis-3-data sentinel-1-data sentinel-2-data sentinel-3-data broker-data; do
    docker volume rm -f "${stack}_$v" >/dev/null 2>&1
  done
  [ -n "$compose_up" ] && docker-compose -p "${stack}c" -f "$root/docker-compose.yml" down -v >/dev/null 2>&1
  [ -n "$joined_swarm" ] && docker swarm leave --force >/dev/null 2>&1
  if [ -n "$started_dockerd" ]; then kill "$started_dockerd" 2>/dev/null; wait "$started_dockerd" 2>/dev/null; fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

t0=$SECONDS
"$root/scripts/install-deps.sh" docker >/dev/null
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  dockerd >"$work/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { cat "$work/dockerd.log"; log "dockerd did not start"; exit 1; }
fi
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != "active" ]; then
  addr=$(hostname -I | awk '{print $1}')
  log "docker swarm init --advertise-addr $addr"
  docker swarm init --advertise-addr "$addr" >/dev/null
  joined_swarm=1
fi

export TALLY_IMAGE_PREFIX=tally TALLY_TAG=e2e TALLY_SECRETS_DIR="$work/broker"
export TALLY_HTTP_PORT=$(free_port) TALLY_WATCH_PORT=$(free_port) TALLY_WS_PORT=$(free_port) TALLY_STATS_PORT=$(free_port)
export TALLY_WATCH_TLS_PORT=$(free_port) TALLY_WSS_PORT=$(free_port)
log "building images ($TALLY_IMAGE_PREFIX/*:$TALLY_TAG)"
t1=$SECONDS
"$root/scripts/docker-build.sh"
log "images built in $((SECONDS - t1)) s"
"$root/broker-config/make-secrets.sh" "$work/broker" --owner 10001 >/dev/null

log "validating stack.yml and docker-compose.yml"
if docker stack config --help 2>&1 | grep -q "stack config"; then
  docker stack config -c "$root/stack.yml" >/dev/null
else # Docker < 25 has no "stack config"; the compose parser checks the same file format
  docker-compose -f "$root/stack.yml" config -q
fi
docker-compose -f "$root/docker-compose.yml" config -q
docker-compose -f "$root/docker-compose.yml" -f "$root/monitoring/compose.yml" config -q
docker-compose -f "$root/stack.yml" -f "$root/monitoring/stack.yml" config -q
for f in stack.yml docker-compose.yml; do # synchronous by default; the async opt-in reaches the replicas
  env -u TALLY_REDIS_WAIT_REPLICAS docker-compose -f "$root/$f" config | grep -Eq "REDIS_WAIT_REPLICAS: ['\"]?1['\"]?$" ||
    { log "$f: the replicas' REDIS_WAIT_REPLICAS is not 1 by default"; exit 1; }
  TALLY_REDIS_WAIT_REPLICAS=0 docker-compose -f "$root/$f" config | grep -Eq "REDIS_WAIT_REPLICAS: ['\"]?0['\"]?$" ||
    { log "$f: TALLY_REDIS_WAIT_REPLICAS=0 does not reach the replicas' REDIS_WAIT_REPLICAS"; exit 1; }
done

# docker-compose.yml on this host: up, three instances answer through HAProxy, down.
log "docker-compose up (project ${stack}c)"
compose_up=1
docker-compose -p "${stack}c" -f "$root/docker-compose.yml" up -d >"$work/compose.log" 2>&1 ||
  { cat "$work/compose.log"; exit 1; }
seen=""
for _ in $(seq 1 240); do
  body=$(curl -s "http://127.0.0.1:$TALLY_HTTP_PORT/" || true)
  inst=$(printf '%s' "$body" | sed -n 's/^You are talking to instance \(.*\)\.$/\1/p')
  [ -n "$inst" ] && case " $seen " in *" $inst "*) ;; *) seen="$seen $inst" ;; esac
  [ "$(echo $seen | wc -w)" -ge 3 ] && break
  sleep 0.5
done
[ "$(echo $seen | wc -w)" -ge 3 ] || { docker-compose -p "${stack}c" -f "$root/docker-compose.yml" ps; log "compose: expected 3 instances, saw:$seen"; exit 1; }
log "compose: counting through HAProxy, instances:$seen"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TALLY_HTTP_PORT/metrics")
[ "$code" = 404 ] || { log "compose: the edge served /metrics ($code)"; exit 1; }
stats=$(docker-compose -p "${stack}c" -f "$root/docker-compose.yml" port lb 8404)
case "$stats" in 127.0.0.1:*) ;; *) log "compose: HAProxy stats published on $stats, not loopback"; exit 1 ;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$stats/")
[ "$code" = 401 ] || { log "compose: HAProxy stats answered $code without the password"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -u "tally:$(cat "$work/broker/secrets/lb-stats.txt")" "http://$stats/")
[ "$code" = 200 ] || { log "compose: HAProxy stats answered $code with the password"; exit 1; }
log "compose: /metrics is 404 at the edge, HAProxy stats on $stats only, behind its password"
for p in 1884 9001; do # cleartext watcher ports: the host's loopback only
  pub=$(docker-compose -p "${stack}c" -f "$root/docker-compose.yml" port broker $p)
  case "$pub" in 127.0.0.1:*) ;; *) log "compose: cleartext watcher port $p published on $pub, not loopback"; exit 1 ;; esac
done
log "compose: cleartext watcher ports 1884 and 9001 on loopback only"
# Every container read-only, without capabilities beyond its entrypoint's, memory-limited.
for cid in $(docker-compose -p "${stack}c" -f "$root/docker-compose.yml" ps -q); do
  hc=$(docker inspect -f '{{.Name}} ro={{.HostConfig.ReadonlyRootfs}} drop={{.HostConfig.CapDrop}} mem={{.HostConfig.Memory}} pids={{.HostConfig.PidsLimit}} nnp={{.HostConfig.SecurityOpt}}' "$cid")
  case "$hc" in *"ro=true drop=[ALL] mem=0"*|*"mem=0 "*) log "compose: no memory limit: $hc"; exit 1 ;; esac
  case "$hc" in *"ro=true drop=[ALL] "*"no-new-privileges:true"*) ;; *) log "compose: not locked down: $hc"; exit 1 ;; esac
done
log "compose: every container read-only, capabilities dropped, no-new-privileges, memory and pids limits"
docker-compose -p "${stack}c" -f "$root/docker-compose.yml" down -v >/dev/null 2>&1
compose_up=""

# A swarm orders no service start, so a first deployment must come up in any order; the
# hardest one first: the sentinels up before any Redis node (they name the configured first
# master, whose volume is still empty), then the nodes.
log "deploying stack $stack (http :$TALLY_HTTP_PORT, watchers over TLS :$TALLY_WATCH_TLS_PORT), its Redis nodes held back"
TALLY_REDIS_NODES=0 docker stack deploy -c "$root/stack.yml" "$stack" >/dev/null
healthy_sentinels() {
  local n=0
  for i in 1 2 3; do
    [ -n "$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_sentinel-$i" --filter health=healthy)" ] &&
      n=$((n + 1))
  done
  [ $n -eq 3 ]
}
for _ in $(seq 1 240); do healthy_sentinels && break; sleep 0.5; done
healthy_sentinels || { log "the three sentinels did not become healthy"; exit 1; }
log "three sentinels healthy, no Redis node yet; starting the nodes"
docker service scale "${stack}_redis=1" "${stack}_redis-2=1" "${stack}_redis-3=1" >/dev/null 2>&1
(cd "$root" && python3 -m tests.swarm.check --stack "$stack" --http-port "$TALLY_HTTP_PORT" \
  --watch-port "$TALLY_WATCH_TLS_PORT" --watcher-options "$work/broker/watcher-tls" ${TALLY_SWARM_CHECK_ARGS:-})
# The stack's tasks: read-only roots, capabilities dropped, every secret mode 0400.
for svc in replica publisher broker redis sentinel-1 lb; do
  cid=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$svc" | head -1)
  hc=$(docker inspect -f 'ro={{.HostConfig.ReadonlyRootfs}} drop={{.HostConfig.CapDrop}}' "$cid")
  [ "$hc" = "ro=true drop=[ALL]" ] || { log "swarm: $svc is not locked down ($hc)"; exit 1; }
  modes=$(docker exec "$cid" sh -c 'stat -L -c %a /run/secrets/*' | sort -u | tr '\n' ' ')
  [ "$modes" = "400 " ] || { log "swarm: $svc's secrets have modes $modes"; exit 1; }
done
log "swarm: every task read-only, capabilities dropped, secrets mode 0400"
log "passed in $((SECONDS - t0)) s"
echo "1 passed, 0 failed"
