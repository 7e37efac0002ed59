#!/usr/bin/env bash
# Builds tally's images: <prefix>/replica, /publisher, /broker, /redis, /lb, all :<tag>
# (and /prometheus with TALLY_BUILD_MONITORING=1).
#   TALLY_IMAGE_PREFIX (default tally)  TALLY_TAG (default latest)
# Makes the base image first if it cannot be pulled (scripts/docker-base-image.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${TALLY_IMAGE_PREFIX:-tally}
tag=${TALLY_TAG:-latest}
"$root/scripts/docker-base-image.sh" debian:bookworm-slim
build() { # build <name> <dockerfile> [docker build options]
  echo "docker-build.sh: $prefix/$1:$tag"
  docker build -q -f "$root/$2" "${@:3}" -t "$prefix/$1:$tag" "$root" >/dev/null
}
build replica docker/tally.Dockerfile --target replica
build publisher docker/tally.Dockerfile --target publisher
build broker broker-config/Dockerfile
build redis broker-config/redis.Dockerfile
build lb docker/lb.Dockerfile
# Prometheus with tally's configuration (monitoring/): opt-in, it is not part of the stack.
if [ "${TALLY_BUILD_MONITORING:-0}" = 1 ]; then
  build prometheus monitoring/prometheus.Dockerfile
fi
