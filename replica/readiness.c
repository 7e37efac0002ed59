/* Readiness (GET /readyz, tally_ready): can this replica count now? */
#include "readiness.h"

#include <stdio.h>

#include "http_respond.h"
#include "replica.h"

/* Readiness is "can count": every worker's Redis link up and seeded, not draining. The MQTT
 * subscription is part of the start-up gate only (a fresh process must hear the retained
 * and live totals before it takes traffic); once passed, a broker outage never makes the
 * replica unready, since it still counts exactly. */
int replica_is_ready(void)
{
    int redis = atomic_load(&g_replica.redis_ready) == g_replica.nworkers;
    if (atomic_load(&g_replica.stopping) || atomic_load(&g_replica.draining) || !redis)
        return 0;
    if (atomic_load(&g_replica.started_up))
        return 1;
    if (!atomic_load(&g_replica.mqtt.subscribed))
        return 0;
    atomic_store(&g_replica.started_up, 1);
    return 1;
}

void readiness_respond(h2o_req_t *req)
{
    char body[256];
    int redis = atomic_load(&g_replica.redis_ready) == g_replica.nworkers;
    int mqtt = atomic_load(&g_replica.mqtt.subscribed);
    int stopping = atomic_load(&g_replica.stopping) || atomic_load(&g_replica.draining);
    int ready = replica_is_ready();
    size_t len =
        (size_t)snprintf(body, sizeof(body), "{\"ready\":%s,\"redis\":%s,\"mqtt\":%s,\"stopping\":%s}",
                         ready ? "true" : "false", redis ? "true" : "false", mqtt ? "true" : "false",
                         stopping ? "true" : "false");
    tally_http_respond(req, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", TALLY_CT_JSON, body,
                       len);
}
