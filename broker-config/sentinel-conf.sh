#!/usr/bin/env bash
# A sentinel's own configuration file, made one way wherever a sentinel runs: the Redis
# image's entrypoint, scripts/run-local.sh --ha and the tests (kit/procs.py).
#
#   sentinel-conf.sh CONF --port P --master HOST:PORT [--bind "ADDR ..."] [--quorum Q]
#                    [--announce HOST] [--auth FILE]
#
# A missing or empty CONF is rendered from sentinel.conf.in (beside this script, or
# SENTINEL_TEMPLATE), with the folder of CONF as the sentinel's directory. An existing CONF
# keeps what the sentinel learned (it rewrites its own file) and loses its users and
# passwords, so those follow the secrets (rotation). Then the lines of --auth FILE (the
# sentinel's auth-user/auth-pass for the nodes and its own users: make-secrets.sh's
# sentinel-auth.conf) are appended after "sentinel monitor tally", which they name.
# The file is left mode 0600: it holds passwords.
set -euo pipefail
usage() { echo "sentinel-conf.sh: $1" >&2; exit 2; }
[ $# -ge 1 ] || usage "usage: sentinel-conf.sh CONF --port P --master HOST:PORT [options]"
conf=$1
shift
port="" master="" bind="127.0.0.1" quorum=2 announce="" auth=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage "$1 needs a value"
  case $1 in
    --port) port=$2 ;;
    --master) master=$2 ;;
    --bind) bind=$2 ;;
    --quorum) quorum=$2 ;;
    --announce) announce=$2 ;;
    --auth) auth=$2 ;;
    *) usage "unknown option $1" ;;
  esac
  shift 2
done
[[ $port =~ ^[0-9]+$ ]] || usage "--port must be a number, not '$port'"
[[ $quorum =~ ^[0-9]+$ ]] || usage "--quorum must be a number, not '$quorum'"
[[ $master =~ ^[^:]+:[0-9]+$ ]] || usage "--master must be host:port, not '$master'"
[ -z "$auth" ] || [ -r "$auth" ] || usage "cannot read --auth $auth"
template=${SENTINEL_TEMPLATE:-$(dirname "$(readlink -f "$0")")/sentinel.conf.in}
umask 077
if [ ! -s "$conf" ]; then
  dir=$(cd "$(dirname "$conf")" && pwd)
  sed -e "s|@PORT@|$port|" -e "s|@BIND@|$bind|" -e "s|@DIR@|$dir|" -e "s|@QUORUM@|$quorum|" \
      -e "s|@MASTER_HOST@|${master%:*}|" -e "s|@MASTER_PORT@|${master##*:}|" -e "/@AUTH@/d" \
      -e "s|@ANNOUNCE@|${announce:+sentinel announce-ip $announce}|" "$template" >"$conf"
else
  sed -i -e "/^sentinel auth-pass tally /d" -e "/^sentinel auth-user tally /d" -e "/^requirepass /d" \
      -e "/^user /d" "$conf"
fi
[ -z "$auth" ] || cat "$auth" >>"$conf"
chmod 600 "$conf"
