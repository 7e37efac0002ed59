# The load balancer in front of the replicas: HAProxy from Debian with docker/haproxy.cfg.
#   docker build -f docker/lb.Dockerfile -t tally/lb .
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends haproxy curl \
 && rm -rf /var/lib/apt/lists/*
COPY docker/haproxy.cfg /etc/haproxy/haproxy.cfg
COPY docker/lb-entrypoint.sh /usr/local/bin/lb-entrypoint
ENV REPLICA_DNS=tasks.replica REPLICA_SLOTS=20
# The uid of tally's other images, so the secrets are given to one uid, mode 0400.
USER 10001:10001
EXPOSE 8080 8404
# Liveness only: the stats frontend's monitor URI (no password, no replica asked).
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD curl -fsS http://127.0.0.1:8404/healthz >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/lb-entrypoint"]
