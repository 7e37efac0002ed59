#!/usr/bin/env bash
# Installs the Debian 12 packages tally needs, only those missing.
#   scripts/install-deps.sh run    build + run locally (default)
#   scripts/install-deps.sh test   + test tools (valgrind, python3 and pyflakes3, clang-format, clang + libFuzzer,
#                                  chromium for the dashboard test, prometheus/promtool for monitoring/)
#   scripts/install-deps.sh bench  + load generator and static ceiling (wrk, nginx)
#   scripts/install-deps.sh docker + Docker and compose (the swarm test), debootstrap (the base
#                                  image when no registry answers: scripts/docker-base-image.sh)
set -euo pipefail

want=(build-essential cmake pkg-config libh2o-dev libuv1-dev libhiredis-dev libpaho-mqtt-dev libssl-dev
      libcriterion-dev redis-server redis-tools mosquitto mosquitto-clients
      mosquitto-dev libmosquitto-dev curl openssl)
for what in "$@"; do
  case "$what" in
    run) ;;
    test) want+=(python3 pyflakes3 valgrind clang-format clang libclang-rt-14-dev iproute2 chromium prometheus haproxy) ;;
    bench) want+=(wrk nginx-light python3) ;;
    docker) want+=(docker.io docker-compose ca-certificates xz-utils debootstrap) ;;
    *) echo "install-deps.sh: unknown set '$what' (run, test, bench, docker)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# policy-rc.d: do not let the packages start system-wide redis/mosquitto services on the
# ports tally's own processes want; tally starts its servers itself.
tmp_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  tmp_policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $sudo tee $tmp_policy >/dev/null
  $sudo chmod +x $tmp_policy
fi
trap '[ -n "$tmp_policy" ] && $sudo rm -f "$tmp_policy"' EXIT
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
