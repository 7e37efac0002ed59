/* The publisher's settings (see common/config.h for the sources). */
#include <stddef.h>

#include "log.h"
#include "shared_options.h"
#include "publisher.h"

#define OPT(field) offsetof(struct publisher_config, field), sizeof(((struct publisher_config *)0)->field)

const tally_opt_t publisher_options[] = {
    {"INSTANCE_ID", TALLY_OPT_STRING, OPT(instance_id), 0, 0, "",
     "name in logs and in the lease [default: the hostname]", tally_check_instance_id},
    {"HTTP_HOST", TALLY_OPT_STRING, OPT(http_host), 0, 0, "0.0.0.0", "address of /healthz, /readyz, /metrics",
     tally_check_host},
    {"HTTP_PORT", TALLY_OPT_INT, OPT(http_port), 1, 65535, "9100", "port of /healthz, /readyz, /metrics",
     NULL},
    TALLY_OPTS_MAX_CONNECTIONS(OPT),
    TALLY_OPTS_REDIS(OPT),
    TALLY_OPTS_MQTT(OPT),
    {"MQTT_CLIENT_ID", TALLY_OPT_STRING, OPT(mqtt.client_id), 0, 0, "",
     "MQTT client id [default: publisher-<instance>]", tally_check_instance_id},
    TALLY_OPTS_CLUSTER_SECRET(OPT),
    {"PUBLISH_INTERVAL_MS", TALLY_OPT_INT, OPT(publish_interval_ms), 10, 600000, "1000",
     "how often the leader reads the total and publishes it if it changed", NULL},
    {"HEARTBEAT_MS", TALLY_OPT_INT, OPT(heartbeat_ms), 100, 3600000, "5000",
     "the leader republishes an unchanged total this often", NULL},
    {"LEASE_KEY", TALLY_OPT_STRING, OPT(lease_key), 0, 0, "tally:publisher:leader",
     "Redis key of the leader lease", NULL},
    {"LEASE_TTL_MS", TALLY_OPT_INT, OPT(lease_ttl_ms), 300, 600000, "3000",
     "lease lifetime: a standby takes over about this long after the leader dies or hangs", NULL},
    {"PRESENCE_EXPIRE_S", TALLY_OPT_INT, OPT(presence_expire_s), 1, 31536000, "600",
     "the leader clears the retained status of a replica offline this long, so /replicas forgets it", NULL},
    {"FORGET_REPLICA", TALLY_OPT_STRING, OPT(forget_replica), 0, 0, "",
     "do nothing else: clear replicas/<this id>/status on the broker (signed) and exit",
     tally_check_instance_id},
    TALLY_OPTS_LOG(OPT),
};

const size_t publisher_noptions = sizeof(publisher_options) / sizeof(publisher_options[0]);
