#!/usr/bin/env bash
# Broker container start: render the configuration and password files from the secrets
# (MQTT_*_PASSWORD_FILE, default /run/secrets/mqtt_<account>_password), then run
# mosquitto, which drops to the mosquitto user by itself.
set -euo pipefail
export MQTT_REPLICA_PASSWORD_FILE=${MQTT_REPLICA_PASSWORD_FILE:-/run/secrets/mqtt_replica_password}
export MQTT_PUBLISHER_PASSWORD_FILE=${MQTT_PUBLISHER_PASSWORD_FILE:-/run/secrets/mqtt_publisher_password}
export MQTT_WATCHER_PASSWORD_FILE=${MQTT_WATCHER_PASSWORD_FILE:-/run/secrets/mqtt_watcher_password}
# The broker's TLS certificate and key (watcher listeners 8884 and 9443), made on the host
# by make-secrets.sh: TLS_CERT_FILE / TLS_KEY_FILE, default /run/secrets/mqtt_tls_cert, _key.
export TLS_CERT_FILE=${TLS_CERT_FILE:-/run/secrets/mqtt_tls_cert}
export TLS_KEY_FILE=${TLS_KEY_FILE:-/run/secrets/mqtt_tls_key}
# The cluster secret is not the broker's business: a placeholder keeps make-secrets.sh quiet.
export CLUSTER_SECRET=${CLUSTER_SECRET:-not-used-by-the-broker}
for f in "$MQTT_REPLICA_PASSWORD_FILE" "$MQTT_PUBLISHER_PASSWORD_FILE" "$MQTT_WATCHER_PASSWORD_FILE" \
         "$TLS_CERT_FILE" "$TLS_KEY_FILE"; do
  [ -r "$f" ] || { echo "broker: missing secret $f" >&2; exit 2; }
done
# Inside the container every listener binds 0.0.0.0 (the host decides what it publishes:
# docker-compose.yml publishes the cleartext watcher ports on the host's loopback only).
/usr/share/tally-broker/make-secrets.sh /mosquitto/config --bind 0.0.0.0 --watch-bind 0.0.0.0 --data /mosquitto/data \
  --port 1883 --watch-port 1884 --ws-port 9001 --watch-tls-port 8884 --wss-port 9443
rm -rf /mosquitto/config/secrets /mosquitto/config/redis-auth.conf /mosquitto/config/watcher \
  /mosquitto/config/watcher-tls
chown -R mosquitto:mosquitto /mosquitto/config /mosquitto/data  # the rest of / is read-only
exec mosquitto -c /mosquitto/config/mosquitto.conf
