# Redis for tally: broker-config/redis.conf (AOF on), the password from a Docker secret,
# data on the /data volume; with REDIS_HA_PRIMARY a node of an HA set, with REDIS_MODE=sentinel
# a sentinel (broker-config/redis-entrypoint.sh). The entrypoint starts as root only to read the secret (a
# docker-compose secret is the host file, mode 600) and runs redis-server as the redis user.
#   docker build -f broker-config/redis.Dockerfile -t tally/redis .
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY broker-config/redis.conf broker-config/redis-ha.conf broker-config/sentinel.conf.in \
     broker-config/sentinel-conf.sh /etc/tally/
COPY broker-config/redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
COPY broker-config/redis-health.sh /usr/local/bin/redis-health.sh
VOLUME /data
EXPOSE 6379 26379
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD /usr/local/bin/redis-health.sh
ENTRYPOINT ["/usr/local/bin/redis-entrypoint.sh"]
