# The load balancer in front of the replicas: HAProxy from Debian with docker/haproxy.cfg.
#   docker build -f docker/lb.Dockerfile -t tally/lb .
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends haproxy curl \
 && rm -rf /var/lib/apt/lists/*
COPY docker/haproxy.cfg /etc/haproxy/haproxy.cfg
ENV REPLICA_DNS=tasks.replica REPLICA_SLOTS=20
USER haproxy
EXPOSE 8080 8404
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD curl -fsS http://127.0.0.1:8404/ >/dev/null || exit 1
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
