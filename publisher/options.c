/* The publisher's settings (see common/config.h for the sources). */
#include <stddef.h>

#include "log.h"
#include "shared_options.h"
#include "publisher.h"

#define OPT(field) offsetof(struct publisher_config, field), sizeof(((struct publisher_config *)0)->field)
#define INT(name, field, lo, hi, def, help)                                                                  \
    {                                                                                                        \
        name, TALLY_OPT_INT, OPT(field), lo, hi, def, help, NULL                                             \
    }
#define STR(name, field, def, help, check)                                                                   \
    {                                                                                                        \
        name, TALLY_OPT_STRING, OPT(field), 0, 0, def, help, check                                           \
    }

static const tally_opt_t options[] = {
    TALLY_OPTS_INSTANCE_ID(OPT, "name in logs and in the lease [default: the hostname]"),
    TALLY_OPTS_SITE(OPT),
    STR("HTTP_HOST", http_host, "0.0.0.0", "address of /healthz, /readyz, /metrics", tally_check_host),
    INT("HTTP_PORT", http_port, 1, 65535, "9100", "port of /healthz, /readyz, /metrics"),
    TALLY_OPTS_MAX_CONNECTIONS(OPT),
    TALLY_OPTS_REDIS(OPT),
    TALLY_OPTS_MQTT(OPT, "MQTT client id [default: publisher-<instance>]"),
    INT("PUBLISH_INTERVAL_MS", publish_interval_ms, 10, 600000, "1000",
        "how often the leader reads the total and publishes it if it changed"),
    INT("HEARTBEAT_MS", heartbeat_ms, 100, 3600000, "5000",
        "the leader republishes an unchanged total this often"),
    STR("LEASE_KEY", lease_key, "tally:publisher:leader", "Redis key of the leader lease", NULL),
    INT("LEASE_TTL_MS", lease_ttl_ms, 300, 600000, "3000",
        "lease lifetime: a standby takes over about this long after the leader dies or hangs"),
    TALLY_OPTS_PRESENCE_EXPIRE(
        OPT, "the leader clears the retained status of a replica offline this long, so /replicas forgets it"),
    STR("FORGET_REPLICA", forget_replica, "",
        "do nothing else: clear replicas/<this id>/status on the broker (signed) and exit",
        tally_check_instance_id),
    TALLY_OPTS_LOG(OPT),
};

const tally_program_t publisher_program = {
    "tally-publisher",
    "tally publisher: keeps the retained total_count message on MQTT equal to the Redis total; one of "
    "several "
    "leads, by a Redis lease.",
    options,
    sizeof(options) / sizeof(options[0]),
    "publisher",
    "publisher-",
    NULL,
};
