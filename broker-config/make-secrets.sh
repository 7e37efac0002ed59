#!/usr/bin/env bash
# Renders the production broker configuration and the credentials into OUTDIR:
#   OUTDIR/mosquitto.conf, passwd-services, passwd-watchers, acl-services, acl-watchers
#   OUTDIR/redis-auth.conf             (the nodes' ACL users and masteruser/masterauth, to include
#                                       after redis.conf; the same as secrets/redis-acl.conf)
#   OUTDIR/sentinel-auth.conf          (the sentinels' users and their auth-user/auth-pass for
#                                       the master "tally"; the same as secrets/sentinel-acl.conf)
#   OUTDIR/tls/ca.crt, ca.key          a local CA (made once, kept), and the broker's
#   OUTDIR/tls/server.crt, server.key  certificate for the TLS watcher listeners (names from
#                                       --tls-names); TLS_CERT_FILE/TLS_KEY_FILE bring your own
#   OUTDIR/watcher/mosquitto_sub       options for watchers (account, password) and
#   OUTDIR/watcher-tls/mosquitto_sub   the same with the CA, so no password is ever typed
#                                       on a command line:
#                                       XDG_CONFIG_HOME=OUTDIR/watcher mosquitto_sub -h H -p 1884 -t total_count
#   OUTDIR/secrets/<name>.txt          (one secret per file, for *_FILE: the Redis and MQTT
#                                       passwords, cluster-secret.txt, the CLUSTER_SECRET
#                                       that signs totals and statuses, and lb-stats.txt, the
#                                       password of HAProxy's stats page; the folder mode 700,
#                                       the files 600)
# Secrets come from the environment (REDIS_PASSWORD, MQTT_REPLICA_PASSWORD,
# MQTT_PUBLISHER_PASSWORD, MQTT_WATCHER_PASSWORD, CLUSTER_SECRET, LB_STATS_PASSWORD, or the same names with
# _FILE), else from OUTDIR/secrets/ if a previous run made them, else they are generated at
# random.
#
#   broker-config/make-secrets.sh OUTDIR [--port 1883] [--watch-port 1884] [--ws-port 9001]
#                                        [--watch-tls-port 8884] [--wss-port 9443]
#                                        [--bind 127.0.0.1] [--data DIR] [--conf-dir DIR]
#                                        [--owner UID[:GID]] [--tls-names DNS:a,IP:1.2.3.4]
#                                        [--watch-bind ADDR] [--plugin PATH]
#                                        [--max-connections N] [--watch-max-connections N]
#                                        [--site NAME --bridge-port P [--bridge-tls]
#                                         [--bridge OTHER=HOST:PORT ...] [--bridge-cafile FILE]]
# --watch-bind is where the two cleartext watcher listeners (--watch-port, --ws-port) listen:
# 127.0.0.1 unless given, whatever --bind says, so a watcher's password crosses a network
# only over TLS. --plugin is the broker plugin tally-client-ids.so (built by cmake in
# BUILD/broker-config/, installed by the broker image in /usr/lib/tally/); mosquitto refuses
# to start without it. --max-connections caps the services listener (default 1024),
# --watch-max-connections each watcher listener (default 1000).
# --conf-dir is where mosquitto will find the files (default OUTDIR; e.g. /mosquitto/config
# inside a container). --owner gives the secret files to that user (root only): docker-compose
# bind-mounts them as they are, and tally's images run as uid 10001.
# Sites (docs/sites.md): --site names this broker's site. --bridge-port opens a listener
# for the other sites' bridges (on --bind; TLS with the watchers' certificate if --bridge-tls),
# where account tally-bridge-OTHER may only publish sites/OTHER/#. Each --bridge OTHER=HOST:PORT
# is a mosquitto bridge (MQTT v5) to that site's bridge listener that carries sites/NAME/#
# (this site's own topics) and nothing else, as tally-bridge-NAME, over TLS verified against
# --bridge-cafile if given. Loops cannot happen: a bridge carries only the topics of the site
# it starts from, and a message about site X is only ever published on X's broker, so nothing
# that arrives over a bridge matches the topics of any bridge that leaves. Every site uses the
# same MQTT_BRIDGE_PASSWORD (secrets/mqtt-bridge.txt) and the same CLUSTER_SECRET: copy both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: make-secrets.sh OUTDIR [options]" >&2; exit 2; }
out=$1; shift
port=1883 watch_port=1884 ws_port=9001 watch_tls_port=8884 wss_port=9443 bind=127.0.0.1 data="" conf_dir="" owner=""
watch_bind=127.0.0.1 plugin=/usr/lib/tally/tally-client-ids.so max_conns=1024 watch_max_conns=1000
site="" bridge_port="" bridge_tls="" bridge_cafile="" bridges=()
tls_names="DNS:localhost,DNS:broker,IP:127.0.0.1,DNS:$(hostname)"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2 ;; --watch-port) watch_port=$2 ;; --ws-port) ws_port=$2 ;;
    --watch-tls-port) watch_tls_port=$2 ;; --wss-port) wss_port=$2 ;; --tls-names) tls_names=$2 ;;
    --bind) bind=$2 ;; --data) data=$2 ;; --conf-dir) conf_dir=$2 ;; --owner) owner=$2 ;;
    --watch-bind) watch_bind=$2 ;; --plugin) plugin=$2 ;;
    --max-connections) max_conns=$2 ;; --watch-max-connections) watch_max_conns=$2 ;;
    --site) site=$2 ;; --bridge-port) bridge_port=$2 ;; --bridge) bridges+=("$2") ;;
    --bridge-cafile) bridge_cafile=$2 ;;
    --bridge-tls) bridge_tls=1; shift; continue ;;
    *) echo "make-secrets.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
site_re='^[a-z0-9-]{1,32}$'
if [ -n "$site" ] && ! [[ $site =~ $site_re ]]; then
  echo "make-secrets.sh: --site must be 1 to 32 of a-z, 0-9 and -, not '$site'" >&2; exit 2
fi
if [ -z "$site" ] && { [ -n "$bridge_port" ] || [ ${#bridges[@]} -gt 0 ]; }; then
  echo "make-secrets.sh: --bridge-port and --bridge need --site" >&2; exit 2
fi
for b in "${bridges[@]}"; do
  if ! [[ $b =~ ^([a-z0-9-]{1,32})=([^:=]+):([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" = "$site" ]; then
    echo "make-secrets.sh: --bridge must be OTHER=HOST:PORT, OTHER another site's name, not '$b'" >&2; exit 2
  fi
done
[ -z "$bridge_cafile" ] || [ -r "$bridge_cafile" ] || { echo "make-secrets.sh: cannot read --bridge-cafile $bridge_cafile" >&2; exit 2; }
for n in "$max_conns" "$watch_max_conns"; do
  case "$n" in ''|*[!0-9]*) echo "make-secrets.sh: --max-connections and --watch-max-connections take a number" >&2; exit 2 ;; esac
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

redis_pw=$(secret redis REDIS_PASSWORD)  # Redis's default user: operators, and the deprecated single password
# One Redis ACL user per role, each with only the commands and keys it needs (docs/security.md).
redis_replica_pw=$(secret redis-replica REDIS_REPLICA_PASSWORD)
redis_publisher_pw=$(secret redis-publisher REDIS_PUBLISHER_PASSWORD)
redis_sentinel_pw=$(secret redis-sentinel REDIS_SENTINEL_NODE_PASSWORD)      # sentinels on the nodes
redis_replication_pw=$(secret redis-replication REDIS_REPLICATION_PASSWORD)  # replicas on their master
redis_client_pw=$(secret redis-sentinel-client REDIS_SENTINEL_CLIENT_PASSWORD) # programs on the sentinels
replica_pw=$(secret mqtt-replica MQTT_REPLICA_PASSWORD)
publisher_pw=$(secret mqtt-publisher MQTT_PUBLISHER_PASSWORD)
watcher_pw=$(secret mqtt-watcher MQTT_WATCHER_PASSWORD)
cluster_secret=$(secret cluster-secret CLUSTER_SECRET 48)
bridge_pw=""
[ -z "$site" ] || bridge_pw=$(secret mqtt-bridge MQTT_BRIDGE_PASSWORD)  # every site's bridges: the same
secret lb-stats LB_STATS_PASSWORD >/dev/null  # the edge's stats page (docker/lb-entrypoint.sh)
[ ${#cluster_secret} -ge 16 ] || { echo "make-secrets.sh: CLUSTER_SECRET must be at least 16 characters" >&2; exit 2; }

# Plain user:password lines, then hashed in place (no password on a command line).
printf 'tally-replica:%s\ntally-publisher:%s\n' "$replica_pw" "$publisher_pw" >"$out/passwd-services"
printf 'watcher:%s\n' "$watcher_pw" >"$out/passwd-watchers"
mosquitto_passwd -U "$out/passwd-services"
mosquitto_passwd -U "$out/passwd-watchers"
cp "$here/acl-services" "$here/acl-watchers" "$out/"
# Redis ACL users. Passwords as SHA-256 (the files hold no password but the two a node or
# a sentinel must send itself). Keys: the replica increments total_count (never SET or
# DEL it), keeps its batch ring, the lift mark and its instance claim, reads tally:epoch (and
# could INCRBY it: EVALSHA needs its keys writable; raising the epoch only stops lifts);
# the publisher reads total_count and holds its lease; the others touch no key.
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
acl_replica='resetchannels resetkeys ~total_count ~tally:batches:* ~tally:lifted ~tally:instance:* ~tally:epoch ~tally:idem:* -@all +auth +hello +ping +role +get +mget +incrby +eval +evalsha +script|load +wait (~tally:batches:* ~tally:lifted ~tally:instance:* ~tally:idem:* +set +hget +hset +pexpire +pttl +del)'
acl_publisher='resetchannels resetkeys %R~total_count %R~tally:epoch ~tally:publisher:* -@all +auth +hello +ping +role +get +mget +set +eval +evalsha +pexpire +del'
acl_sentinel='allchannels resetkeys -@all +auth +hello +ping +info +role +publish +subscribe +multi +exec +slaveof +replicaof +config|rewrite +client|setname +client|kill +script|kill'
acl_replication='resetchannels resetkeys -@all +auth +ping +psync +replconf'
acl_client='resetchannels &+switch-master &+promoted-slave &+selected-slave resetkeys -@all +auth +hello +ping +subscribe +sentinel|get-master-addr-by-name'
acl_health='resetchannels resetkeys -@all +auth +ping'
{
  printf 'user default on #%s ~* &* +@all\n' "$(sha "$redis_pw")"
  printf 'user tally-replica on #%s %s\n' "$(sha "$redis_replica_pw")" "$acl_replica"
  printf 'user tally-publisher on #%s %s\n' "$(sha "$redis_publisher_pw")" "$acl_publisher"
  printf 'user tally-sentinel on #%s %s\n' "$(sha "$redis_sentinel_pw")" "$acl_sentinel"
  printf 'user tally-replication on #%s %s\n' "$(sha "$redis_replication_pw")" "$acl_replication"
  printf 'user tally-health on nopass %s\n' "$acl_health"  # PING only: liveness without a secret
  printf 'masteruser tally-replication\nmasterauth %s\n' "$redis_replication_pw"
} >"$out/secrets/redis-acl.conf"
{
  # requirepass: the sentinels' default user, which they also send each other
  printf 'requirepass %s\n' "$redis_pw"
  printf 'user tally-client on #%s %s\n' "$(sha "$redis_client_pw")" "$acl_client"
  printf 'user tally-health on nopass %s\n' "$acl_health"
  printf 'sentinel auth-user tally tally-sentinel\nsentinel auth-pass tally %s\n' "$redis_sentinel_pw"
} >"$out/secrets/sentinel-acl.conf"
chmod 600 "$out/secrets/redis-acl.conf" "$out/secrets/sentinel-acl.conf"
[ -z "$owner" ] || chown "$owner" "$out/secrets/redis-acl.conf" "$out/secrets/sentinel-acl.conf"
cp "$out/secrets/redis-acl.conf" "$out/redis-auth.conf"
cp "$out/secrets/sentinel-acl.conf" "$out/sentinel-auth.conf"
chmod 600 "$out/redis-auth.conf" "$out/sentinel-auth.conf"

# TLS for the watcher listeners: a local CA made once (kept across runs), and a broker
# certificate signed by it, or the operator's own (TLS_CERT_FILE, TLS_KEY_FILE).
mkdir -p "$out/tls"
if [ -n "${TLS_CERT_FILE:-}" ] || [ -n "${TLS_KEY_FILE:-}" ]; then
  [ -r "${TLS_CERT_FILE:-}" ] && [ -r "${TLS_KEY_FILE:-}" ] ||
    { echo "make-secrets.sh: TLS_CERT_FILE and TLS_KEY_FILE must both name readable files" >&2; exit 2; }
  [ "$(readlink -f "$TLS_CERT_FILE")" = "$(readlink -f "$out/tls/server.crt")" ] || cp "$TLS_CERT_FILE" "$out/tls/server.crt"
  [ "$(readlink -f "$TLS_KEY_FILE")" = "$(readlink -f "$out/tls/server.key")" ] || cp "$TLS_KEY_FILE" "$out/tls/server.key"
  [ -z "${TLS_CA_FILE:-}" ] || cp "$TLS_CA_FILE" "$out/tls/ca.crt"
else
  command -v openssl >/dev/null || { echo "make-secrets.sh: openssl is needed to make the TLS certificates" >&2; exit 1; }
  if [ ! -s "$out/tls/ca.key" ] || [ ! -s "$out/tls/ca.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj "/CN=tally local CA" \
      -keyout "$out/tls/ca.key" -out "$out/tls/ca.crt" 2>/dev/null
  fi
  if [ ! -s "$out/tls/server.crt" ] || [ "$(cat "$out/tls/names" 2>/dev/null)" != "$tls_names" ]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=tally broker" \
      -keyout "$out/tls/server.key" -out "$out/tls/server.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$tls_names" >"$out/tls/server.ext"
    openssl x509 -req -in "$out/tls/server.csr" -CA "$out/tls/ca.crt" -CAkey "$out/tls/ca.key" -CAcreateserial \
      -days 825 -extfile "$out/tls/server.ext" -out "$out/tls/server.crt" 2>/dev/null
    rm -f "$out/tls/server.csr" "$out/tls/server.ext"
    printf '%s' "$tls_names" >"$out/tls/names"
  fi
fi
chmod 600 "$out/tls/"*.key
chmod 644 "$out/tls/server.crt" "$out/tls/ca.crt" 2>/dev/null || true
[ -z "$owner" ] || chown "$owner" "$out/tls/server.key"

# Watchers' mosquitto_sub options: the password in a file (mode 600), not on a command line.
mkdir -p "$out/watcher" "$out/watcher-tls"
printf -- '-u watcher\n-P %s\n' "$watcher_pw" >"$out/watcher/mosquitto_sub"
printf -- '-u watcher\n-P %s\n--cafile %s\n' "$watcher_pw" "$out/tls/ca.crt" >"$out/watcher-tls/mosquitto_sub"
chmod 600 "$out/watcher/mosquitto_sub" "$out/watcher-tls/mosquitto_sub"

sed -e "s|@PORT@|$port|g" -e "s|@WATCH_PORT@|$watch_port|g" -e "s|@WS_PORT@|$ws_port|g" \
    -e "s|@WATCH_TLS_PORT@|$watch_tls_port|g" -e "s|@WSS_PORT@|$wss_port|g" \
    -e "s|@BIND@|$bind|g" -e "s|@WATCH_BIND@|$watch_bind|g" -e "s|@PLUGIN@|$plugin|g" \
    -e "s|@SERVICES_MAX_CONNECTIONS@|$max_conns|g" -e "s|@WATCH_MAX_CONNECTIONS@|$watch_max_conns|g" -e "s|@DATA_DIR@|$data|g" -e "s|@CONF_DIR@|$conf_dir|g" \
    "$here/mosquitto.conf.in" >"$out/mosquitto.conf"
chmod 644 "$out/mosquitto.conf" "$out/acl-services" "$out/acl-watchers"
# Sites: the listener for the other sites' bridges, and this site's bridges to them. The
# bridges' file holds the bridge password: mode 600, included from mosquitto.conf.
rm -rf "$out/bridges.d"
if [ -n "$site" ]; then
  mkdir -p "$out/bridges.d"
  {
    printf '# Written by make-secrets.sh for site %s: the other sites bridge in here.\n' "$site"
    printf '# One account per site, which may only publish that site'"'"'s own topics.\n'
  } >"$out/acl-bridges"
  : >"$out/passwd-bridges"
  for b in "${bridges[@]}"; do
    other=${b%%=*}
    printf 'tally-bridge-%s:%s\n' "$other" "$bridge_pw" >>"$out/passwd-bridges"
    printf '\nuser tally-bridge-%s\ntopic write sites/%s/#\n' "$other" "$other" >>"$out/acl-bridges"
  done
  [ ! -s "$out/passwd-bridges" ] || mosquitto_passwd -U "$out/passwd-bridges"
  chmod 600 "$out/passwd-bridges"
  chmod 644 "$out/acl-bridges"
  conf="$out/bridges.d/bridges.conf"
  printf '# Written by make-secrets.sh: site %s, its listener for bridges and its bridges.\n' "$site" >"$conf"
  if [ -n "$bridge_port" ]; then
    {
      printf '\nlistener %s %s\nprotocol mqtt\nallow_anonymous false\n' "$bridge_port" "$bind"
      printf 'password_file %s/passwd-bridges\nacl_file %s/acl-bridges\n' "$conf_dir" "$conf_dir"
      printf 'plugin %s\nplugin_opt_role watchers\nmax_connections 64\n' "$plugin"
      if [ -n "$bridge_tls" ]; then
        printf 'certfile %s/tls/server.crt\nkeyfile %s/tls/server.key\ntls_version tlsv1.2\n' "$conf_dir" "$conf_dir"
      fi
    } >>"$conf"
  fi
  for b in "${bridges[@]}"; do
    other=${b%%=*} addr=${b#*=}
    {
      printf '\nconnection tally-%s-to-%s\naddress %s\nbridge_protocol_version mqttv50\n' "$site" "$other" "$addr"
      printf 'remote_clientid tally-bridge-%s-to-%s\nremote_username tally-bridge-%s\nremote_password %s\n' \
        "$site" "$other" "$site" "$bridge_pw"
      printf 'cleansession true\nnotifications false\nrestart_timeout 1 5\ntopic sites/%s/# out 1\n' "$site"
      [ -z "$bridge_cafile" ] || printf 'bridge_cafile %s\n' "$bridge_cafile"
    } >>"$conf"
  done
  chmod 600 "$conf"
  [ -z "$owner" ] || chown "$owner" "$conf" "$out/passwd-bridges"
  printf '\n# --- sites: bridges (make-secrets.sh --site) ---\ninclude_dir %s/bridges.d\n' "$conf_dir" >>"$out/mosquitto.conf"
fi
[ -e "$plugin" ] || echo "make-secrets.sh: warning: the broker plugin $plugin does not exist here; mosquitto will not start with this mosquitto.conf until it does (--plugin PATH; ignore this for a container, whose broker image has it)" >&2
