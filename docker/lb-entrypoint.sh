#!/bin/sh
# The edge's entrypoint: the stats page's password from LB_STATS_PASSWORD, else from the
# file LB_STATS_PASSWORD_FILE names (default: the lb_stats_password secret), then HAProxy.
# Without either the page is locked with a random password nobody knows, and one line says
# so: the stats are never open.
set -eu
# The per-source shares (docker/haproxy.cfg): whole numbers above 0, or unset for the defaults.
for v in EDGE_SOURCE_CONNS EDGE_SOURCE_RATE EDGE_SOURCE_EVENTS; do
  eval "val=\${$v:-}"
  case "$val" in
    "") ;;
    *[!0-9]* | 0*) echo "lb: $v must be a whole number above 0, not '$val'" >&2; exit 2 ;;
  esac
done
case "${EDGE_IDEMPOTENCY_KEYS:-off}" in
  on | off) ;;
  *) echo "lb: EDGE_IDEMPOTENCY_KEYS must be on or off, not '$EDGE_IDEMPOTENCY_KEYS'" >&2; exit 2 ;;
esac
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
