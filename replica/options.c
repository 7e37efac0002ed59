/* The replica's settings: one row per variable (see common/config.h for the sources), and
 * the checks across rows. */
#include <stdio.h>
#include <stddef.h>

#include "log.h"
#include "shared_options.h"
#include "replica.h"

#define OPT(field) offsetof(struct replica_config, field), sizeof(((struct replica_config *)0)->field)
#define INT(name, field, lo, hi, def, help)                                                                  \
    {                                                                                                        \
        name, TALLY_OPT_INT, OPT(field), lo, hi, def, help, NULL                                             \
    }

static const tally_opt_t options[] = {
    {"SERVICE_HOST", TALLY_OPT_STRING, OPT(service_host), 0, 0, "0.0.0.0", "address to listen on",
     tally_check_host},
    INT("SERVICE_PORT", service_port, 1, 65535, "8080",
        "HTTP port (shared by replicas on one host through SO_REUSEPORT)"),
    TALLY_OPTS_INSTANCE_ID(OPT, "instance name shown in answers and MQTT topics [default: the hostname]"),
    TALLY_OPTS_SITE(OPT),
    INT("INSTANCE_ID_WAIT_MS", instance_id_wait_ms, 0, 3600000, "0",
        "when another live process holds INSTANCE_ID, wait this long for it to exit before refusing to start "
        "(a start-first rolling update reuses the ids of the tasks it replaces)"),
    TALLY_OPTS_MAX_CONNECTIONS(OPT),
    TALLY_OPTS_REDIS(OPT),
    INT("REDIS_TIMEOUT_MS", redis_timeout_ms, 50, 600000, "2000",
        "a Redis reply later than this fails its requests with 503 and reconnects"),
    INT("REDIS_WAIT_REPLICAS", redis_wait_replicas, 0, 16, "0",
        "synchronous mode: a batch is acknowledged only once Redis WAIT confirms this many Redis replicas "
        "hold "
        "it "
        "(one WAIT at a time, covering every batch sent meanwhile); fewer in REDIS_WAIT_TIMEOUT_MS: 503. 0: "
        "asynchronous replication"),
    INT("REDIS_WAIT_TIMEOUT_MS", redis_wait_timeout_ms, 1, 60000, "500",
        "how long one WAIT may wait for the replicas"),
    TALLY_OPTS_MQTT(
        OPT,
        "MQTT client id; the broker ACL lets it write replicas/<client id>/status [default: INSTANCE_ID]"),
    INT("PUBLISH_INTERVAL_US", publish_interval_us, 0, 1000000, "2000",
        "least time between two total_count publishes of one thread (0: every loop pass); an idle replica "
        "publishes at once"),
    INT("PUBLISH_EAGER_RPS", publish_eager_rps, 0, 100000000, "20000",
        "below this many counted requests per second, every loop pass publishes its newest total (least "
        "propagation delay); above it, PUBLISH_INTERVAL_US applies (bounded broker traffic); 0: always apply "
        "it"),
    INT("PRESENCE_INTERVAL_MS", presence_interval_ms, 100, 3600000, "5000",
        "how often the retained replicas/<id>/status is refreshed"),
    TALLY_OPTS_PRESENCE_EXPIRE(
        OPT, "a replica offline this long leaves /replicas (the publisher also clears its retained status)"),
    INT("THREADS", threads, 1, 64, "1", "event-loop threads, each with its own Redis connection"),
    INT("SHUTDOWN_TIMEOUT_MS", shutdown_timeout_ms, 0, 600000, "10000",
        "on SIGTERM, how long to wait for requests in flight"),
    INT("EVENTS_MAX_CLIENTS", events_max_clients, 0, 100000, "256",
        "most GET /events streams open at once on this replica; beyond: 503 (0: /events always 503)"),
    INT("EVENTS_MAX_LIFETIME_S", events_max_lifetime_s, 0, 86400, "300",
        "a GET /events stream is ended after this long (less up to a tenth, so streams opened together do "
        "not end together); the browser's EventSource reconnects by itself (0: never)"),
    INT("IDEMPOTENCY_TTL_S", idempotency_ttl_s, 0, 2592000, "300",
        "how long Redis keeps the answer to a GET / with an Idempotency-Key, so a retry with the same key is "
        "answered from it and not counted again (0: the header is ignored and every request counts)"),
    INT("SHUTDOWN_DELAY_MS", shutdown_delay_ms, 0, 600000, "0",
        "on SIGTERM, answer /readyz 503 for this long before draining, so a load balancer's health checks "
        "take "
        "the replica out first (set it above their interval x fall count)"),
    TALLY_OPTS_LOG(OPT),
};

/* A batch may be resent until REDIS_TIMEOUT_MS after its first send, and a resend reads its
 * keys' answers back: they must still be there. */
static int check_settings(const void *from, char *why, size_t whylen)
{
    const struct replica_config *cfg = from;
    if (cfg->idempotency_ttl_s != 0 && (long long)cfg->idempotency_ttl_s * 1000 <= cfg->redis_timeout_ms) {
        snprintf(why, whylen, "IDEMPOTENCY_TTL_S: must be 0 or longer than REDIS_TIMEOUT_MS (%d ms), got %d",
                 cfg->redis_timeout_ms, cfg->idempotency_ttl_s);
        return TALLY_ERR;
    }
    return TALLY_OK;
}

const tally_program_t replica_program = {
    "tally-replica",
    "tally replica: counts the HTTP requests it serves in Redis and shares the cluster total over MQTT.",
    options,
    sizeof(options) / sizeof(options[0]),
    "localhost",
    "",
    check_settings,
};
