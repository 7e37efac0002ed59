/* This replica's presence on MQTT: its retained replicas/<id>/status (online on every
 * connect and heartbeat, offline on a clean exit, offline as the Last Will if it
 * vanishes), and the table of every replica it hears of, served as GET /replicas. */
#include <string.h>

#include "log.h"
#include "replica.h"

void presence_status(tally_status_t *s, int online)
{
    memset(s, 0, sizeof(*s));
    tally_strlcpy(s->id, g_replica.cfg.instance_id, sizeof(s->id));
    tally_strlcpy(s->host, g_replica.instance, sizeof(s->host));
    tally_strlcpy(s->version, TALLY_VERSION, sizeof(s->version));
    s->started_at = g_replica.started_wall_ms;
    s->served = atomic_load(&g_replica.served);
    s->online = online;
}

int presence_publish(int online)
{
    tally_status_t s;
    char buf[TALLY_STATUS_MAX_PAYLOAD];
    presence_status(&s, online);
    size_t len = tally_status_format(buf, sizeof(buf), &s);
    if (len == (size_t)-1)
        return TALLY_ERR;
    /* No Local keeps our own status from coming back: record it here. */
    tally_presence_update(&g_replica.presence, &s, tally_wall_ms());
    return tally_mqtt_link_publish(&g_replica.mqtt, g_replica.status_topic, buf, len, 1, 1);
}

void presence_on_message(const char *topic, const void *payload, size_t len)
{
    char id[TALLY_ID_SIZE];
    tally_status_t s;
    if (tally_status_topic_id(topic, id) != TALLY_OK) {
        atomic_fetch_add(&g_replica.stats.status_dropped, 1);
        return;
    }
    if (len == 0) { /* a cleared retained status: the replica is gone for good */
        tally_presence_remove(&g_replica.presence, id);
        return;
    }
    if (tally_status_parse(payload, len, &s) != TALLY_OK || strcmp(s.id, id) != 0) {
        unsigned long long n = atomic_fetch_add(&g_replica.stats.status_dropped, 1) + 1;
        if (tally_log_every_power_of_two(n))
            tally_warn("mqtt: dropped an invalid status on %s (%llu dropped so far)", topic, n);
        return;
    }
    if (tally_presence_update(&g_replica.presence, &s, tally_wall_ms()) != TALLY_OK)
        tally_warn("mqtt: more than %d replicas; ignoring %s", TALLY_PRESENCE_MAX, id);
}
