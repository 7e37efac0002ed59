# tally's two programs, one image each, from one build. From the repository root:
#   docker build -f docker/tally.Dockerfile --target replica -t tally/replica .
#   docker build -f docker/tally.Dockerfile --target publisher -t tally/publisher .
# The second build reuses the first one's build stage from the cache.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends build-essential cmake pkg-config \
      libh2o-dev libuv1-dev libhiredis-dev libpaho-mqtt-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY replica replica
COPY publisher publisher
COPY bench bench
RUN cmake -S . -B /build -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_WERROR=ON -DTALLY_BROKER_PLUGIN=OFF \
 && cmake --build /build -j "$(nproc)" --target tally-replica tally-publisher

# What both programs run on: their shared libraries, curl for the health check, no root.
FROM ${BASE} AS runtime
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends libh2o0.13 libuv1 libhiredis0.14 libpaho-mqtt1.3 libssl3 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tally
USER tally
STOPSIGNAL SIGTERM

# The publisher: owns the retained total_count.
FROM runtime AS publisher
COPY --from=build /build/publisher/tally-publisher /usr/local/bin/tally-publisher
ENV HTTP_PORT=9100
EXPOSE 9100
# Liveness only: an outage of Redis or the broker must never get a healthy process replaced.
HEALTHCHECK --interval=5s --timeout=2s --start-period=5s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${HTTP_PORT}/healthz" >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/tally-publisher"]

# The replica: the HTTP service (last, so a build without --target makes it).
FROM runtime AS replica
COPY --from=build /build/replica/tally-replica /usr/local/bin/tally-replica
ENV SERVICE_PORT=8080
EXPOSE 8080
# Liveness only (the load balancer asks /readyz).
HEALTHCHECK --interval=5s --timeout=2s --start-period=5s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${SERVICE_PORT}/healthz" >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/tally-replica"]
