# Prometheus from Debian's package, with tally's scrape configurations and alert rules.
#   TALLY_BUILD_MONITORING=1 scripts/docker-build.sh      (or: docker build -f monitoring/prometheus.Dockerfile .)
# Run beside the stack: docker-compose -f docker-compose.yml -f monitoring/compose.yml up -d,
# or docker stack deploy -c stack.yml -c monitoring/stack.yml tally (docs/operations.md).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends prometheus curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
COPY monitoring/alerts.yml monitoring/prometheus-compose.yml monitoring/prometheus-swarm.yml /etc/tally-monitoring/
USER prometheus
VOLUME /prometheus
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["curl", "-sf", "http://127.0.0.1:9090/-/healthy"]
ENTRYPOINT ["prometheus", "--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"]
CMD ["--config.file=/etc/tally-monitoring/prometheus-compose.yml"]
