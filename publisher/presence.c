/* The publisher's view of presence: every replicas/<id>/status it hears, kept in a table so
 * that the leader can clear the retained status of a replica offline for PRESENCE_EXPIRE_S.
 * Clearing is an empty retained message (signed like every status when CLUSTER_SECRET is
 * set): the broker forgets the status, and every replica drops the entry from /replicas at
 * once. FORGET_REPLICA does the same for one id by hand. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "publisher.h"

void publisher_presence_on_message(const char *topic, const void *payload, size_t len)
{
    char id[TALLY_ID_SIZE];
    tally_status_t s;
    if (tally_status_topic_id(topic, id) != TALLY_OK)
        return;
    if (len == 0) {
        tally_presence_remove(&g_pub.presence, id);
        return;
    }
    if (tally_status_parse(payload, len, &s) == TALLY_OK && strcmp(s.id, id) == 0)
        tally_presence_update(&g_pub.presence, &s, tally_wall_ms());
}

static int clear_status(const char *id)
{
    char topic[96];
    snprintf(topic, sizeof(topic), TALLY_STATUS_TOPIC_PREFIX "%.64s" TALLY_STATUS_TOPIC_SUFFIX, id);
    return tally_mqtt_link_publish(&g_pub.mqtt, topic, "", 0, 1, 1);
}

void publisher_presence_expire(void)
{
    char ids[16][TALLY_ID_SIZE];
    size_t n = tally_presence_expire(&g_pub.presence, tally_wall_ms(),
                                     (int64_t)g_pub.cfg.presence_expire_s * 1000, ids, 16);
    for (size_t i = 0; i < n; i++) {
        if (clear_status(ids[i]) != TALLY_OK)
            continue; /* still in the broker: heard again on the next subscribe, cleared then */
        atomic_fetch_add(&g_pub.stats.statuses_cleared, 1);
        tally_info("presence: %s offline for %d s; cleared its retained status", ids[i],
                   g_pub.cfg.presence_expire_s);
    }
}

int publisher_forget(const char *id)
{
    /* Its own client id: the running publisher's must not be taken over. */
    static char client_id[160];
    snprintf(client_id, sizeof(client_id), "%.100s-forget-%d", g_pub.cfg.mqtt.client_id, (int)getpid());
    g_pub.mqtt.client_id = client_id;
    int64_t deadline = tally_now_ms() + 10000;
    if (tally_mqtt_link_start(&g_pub.mqtt) != TALLY_OK)
        return 1;
    while (!atomic_load(&g_pub.mqtt.connected) && tally_now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        tally_mqtt_link_tick(&g_pub.mqtt, tally_now_ms());
    }
    int rc = atomic_load(&g_pub.mqtt.connected) && clear_status(id) == TALLY_OK ? 0 : 1;
    tally_mqtt_link_stop(&g_pub.mqtt, 2000);
    if (rc == 0)
        tally_info("cleared the retained status of %s", id);
    else
        tally_error("could not reach the broker at %s to clear the status of %s", g_pub.cfg.mqtt.url, id);
    return rc;
}
