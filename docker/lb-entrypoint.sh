#!/bin/sh
# The edge's entrypoint: the stats page's password from LB_STATS_PASSWORD, else from the
# file LB_STATS_PASSWORD_FILE names (default: the lb_stats_password secret), then HAProxy.
# Without either the page is locked with a random password nobody knows, and one line says
# so: the stats are never open.
set -eu
file=${LB_STATS_PASSWORD_FILE:-/run/secrets/lb_stats_password}
if [ -z "${LB_STATS_PASSWORD:-}" ] && [ -r "$file" ]; then
  LB_STATS_PASSWORD=$(cat "$file")
fi
if [ -z "${LB_STATS_PASSWORD:-}" ]; then
  LB_STATS_PASSWORD=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "lb: no LB_STATS_PASSWORD or $file: the stats page (:8404) is locked" >&2
fi
export LB_STATS_PASSWORD
exec haproxy -W -db -f "${LB_CONFIG:-/etc/haproxy/haproxy.cfg}" "$@"
