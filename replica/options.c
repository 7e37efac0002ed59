/* The replica's settings: one row per variable (see common/config.h for the sources). */
#include <stddef.h>

#include "log.h"
#include "shared_options.h"
#include "replica.h"

#define OPT(field) offsetof(struct replica_config, field), sizeof(((struct replica_config *)0)->field)

const tally_opt_t replica_options[] = {
    {"SERVICE_HOST", TALLY_OPT_STRING, OPT(service_host), 0, 0, "0.0.0.0", "address to listen on",
     tally_check_host},
    {"SERVICE_PORT", TALLY_OPT_INT, OPT(service_port), 1, 65535, "8080",
     "HTTP port (shared by replicas on one host through SO_REUSEPORT)", NULL},
    {"INSTANCE_ID", TALLY_OPT_STRING, OPT(instance_id), 0, 0, "",
     "instance name shown in answers and MQTT topics [default: the hostname]", tally_check_instance_id},
    {"INSTANCE_ID_WAIT_MS", TALLY_OPT_INT, OPT(instance_id_wait_ms), 0, 3600000, "0",
     "when another live process holds INSTANCE_ID, wait this long for it to exit before refusing to start "
     "(a start-first rolling update reuses the ids of the tasks it replaces)",
     NULL},
    TALLY_OPTS_MAX_CONNECTIONS(OPT),
    TALLY_OPTS_REDIS(OPT),
    {"REDIS_TIMEOUT_MS", TALLY_OPT_INT, OPT(redis_timeout_ms), 50, 600000, "2000",
     "a Redis reply later than this fails its requests with 503 and reconnects", NULL},
    {"REDIS_WAIT_REPLICAS", TALLY_OPT_INT, OPT(redis_wait_replicas), 0, 16, "0",
     "synchronous mode: a batch is acknowledged only once Redis WAIT confirms this many Redis replicas hold "
     "it "
     "(one WAIT at a time, covering every batch sent meanwhile); fewer in REDIS_WAIT_TIMEOUT_MS: 503. 0: "
     "asynchronous replication",
     NULL},
    {"REDIS_WAIT_TIMEOUT_MS", TALLY_OPT_INT, OPT(redis_wait_timeout_ms), 1, 60000, "500",
     "how long one WAIT may wait for the replicas", NULL},
    TALLY_OPTS_MQTT(OPT),
    {"MQTT_CLIENT_ID", TALLY_OPT_STRING, OPT(mqtt.client_id), 0, 0, "",
     "MQTT client id; the broker ACL lets it write replicas/<client id>/status [default: INSTANCE_ID]",
     tally_check_instance_id},
    TALLY_OPTS_CLUSTER_SECRET(OPT),
    {"PUBLISH_INTERVAL_US", TALLY_OPT_INT, OPT(publish_interval_us), 0, 1000000, "2000",
     "least time between two total_count publishes of one thread (0: every loop pass); an idle replica "
     "publishes at once",
     NULL},
    {"PUBLISH_EAGER_RPS", TALLY_OPT_INT, OPT(publish_eager_rps), 0, 100000000, "20000",
     "below this many counted requests per second, every loop pass publishes its newest total (least "
     "propagation delay); above it, PUBLISH_INTERVAL_US applies (bounded broker traffic); 0: always apply it",
     NULL},
    {"PRESENCE_INTERVAL_MS", TALLY_OPT_INT, OPT(presence_interval_ms), 100, 3600000, "5000",
     "how often the retained replicas/<id>/status is refreshed", NULL},
    {"PRESENCE_EXPIRE_S", TALLY_OPT_INT, OPT(presence_expire_s), 1, 31536000, "600",
     "a replica offline this long leaves /replicas (the publisher also clears its retained status)", NULL},
    {"THREADS", TALLY_OPT_INT, OPT(threads), 1, 64, "1",
     "event-loop threads, each with its own Redis connection", NULL},
    {"SHUTDOWN_TIMEOUT_MS", TALLY_OPT_INT, OPT(shutdown_timeout_ms), 0, 600000, "10000",
     "on SIGTERM, how long to wait for requests in flight", NULL},
    {"EVENTS_MAX_CLIENTS", TALLY_OPT_INT, OPT(events_max_clients), 0, 100000, "256",
     "most GET /events streams open at once on this replica; beyond: 503 (0: /events always 503)", NULL},
    {"EVENTS_MAX_LIFETIME_S", TALLY_OPT_INT, OPT(events_max_lifetime_s), 0, 86400, "300",
     "a GET /events stream is ended after this long (less up to a tenth, so streams opened together do "
     "not end together); the browser's EventSource reconnects by itself (0: never)",
     NULL},
    {"IDEMPOTENCY_TTL_S", TALLY_OPT_INT, OPT(idempotency_ttl_s), 0, 2592000, "300",
     "how long Redis keeps the answer to a GET / with an Idempotency-Key, so a retry with the same key is "
     "answered from it and not counted again (0: the header is ignored and every request counts)",
     NULL},
    {"SHUTDOWN_DELAY_MS", TALLY_OPT_INT, OPT(shutdown_delay_ms), 0, 600000, "0",
     "on SIGTERM, answer /readyz 503 for this long before draining, so a load balancer's health checks take "
     "the replica out first (set it above their interval x fall count)",
     NULL},
    TALLY_OPTS_LOG(OPT),
};

const size_t replica_noptions = sizeof(replica_options) / sizeof(replica_options[0]);
