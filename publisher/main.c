/* tally publisher: configuration, the publish cycle, the orderly exit. */
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "publisher.h"
#include "total.h"

struct publisher g_pub;

/* paho thread: a retained total raises the floor (retain-as-published keeps the flag on
 * totals another publisher retains while we are subscribed). Live replica totals do not:
 * the floor is what watchers get when they subscribe, and only that must never go back. */
static void on_message(void *data, const char *topic, const void *payload, size_t len, int retained,
                       uint64_t epoch)
{
    uint64_t v;
    (void)data;
    if (strncmp(topic, TALLY_STATUS_TOPIC_PREFIX, sizeof(TALLY_STATUS_TOPIC_PREFIX) - 1) == 0) {
        publisher_presence_on_message(topic, payload, len);
        return;
    }
    if (!retained || strcmp(topic, PUBLISHER_TOPIC) != 0 || tally_total_parse(payload, len, &v) != TALLY_OK)
        return;
    tally_cache_offer_epoch(&g_pub.floor, epoch, v, tally_now_ms());
    atomic_store(&g_pub.retained_seen, 1);
}

static int publish(uint64_t v)
{
    char payload[24];
    size_t len = tally_total_format(payload, v);
    if (tally_mqtt_link_publish(&g_pub.mqtt, PUBLISHER_TOPIC, payload, len, 1, 1) != TALLY_OK)
        return TALLY_ERR;
    g_pub.last_publish_ms = tally_now_ms();
    return TALLY_OK;
}

/* A number from Redis: a string of digits or nil (0). */
/* The reply of MGET total_count tally:epoch. */
static void on_total(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    uint64_t v = 0, epoch = 0;
    (void)ac, (void)privdata;
    g_pub.read_inflight = 0;
    if (reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        tally_redis_reply_total(reply->element[0], &v) != TALLY_OK ||
        tally_redis_reply_total(reply->element[1], &epoch) != TALLY_OK) {
        g_pub.stats.read_errors++;
        tally_error("redis: key " PUBLISHER_REDIS_KEY " or " TALLY_EPOCH_KEY " does not hold a number");
        return;
    }
    int64_t now = tally_now_ms();
    /* A newer cluster epoch: Redis was restored on purpose (docs/operations.md). What was
     * retained before belongs to the old epoch; the retained total starts again from Redis. */
    tally_mqtt_link_set_epoch(&g_pub.mqtt, epoch);
    if (tally_cache_offer_epoch(&g_pub.floor, epoch, 0, now) == 2)
        tally_warn("redis: cluster epoch %llu (Redis was restored): the retained total starts again from "
                   "Redis's %llu",
                   (unsigned long long)epoch, (unsigned long long)v);
    /* Re-check: the lease may have run out while the read was in flight (a pause). */
    if (!lease_held(now) || g_pub.stopping)
        return;
    uint64_t floor = tally_cache_value(&g_pub.floor);
    if (v > floor) {
        if (publish(v) == TALLY_OK) {
            tally_cache_offer_epoch(&g_pub.floor, epoch, v, now);
            g_pub.stats.publishes++;
        }
        return;
    }
    if (v < floor) {
        g_pub.stats.held_back++;
        if (tally_log_every_power_of_two(g_pub.stats.held_back))
            tally_warn(
                "redis total %llu is below the retained %llu (did Redis lose increments?); not publishing it",
                (unsigned long long)v, (unsigned long long)floor);
    }
    if (floor > 0 && now - g_pub.last_publish_ms >= g_pub.cfg.heartbeat_ms && publish(floor) == TALLY_OK)
        g_pub.stats.heartbeats++;
}

static void on_publish_timer(uv_timer_t *t)
{
    (void)t;
    int64_t now = tally_now_ms();
    if (!atomic_load(&g_pub.mqtt.subscribed)) {
        g_pub.subscribed_ms = 0;
        return;
    }
    if (g_pub.subscribed_ms == 0)
        g_pub.subscribed_ms = now;
    /* Retained messages follow the SUBACK: give the floor a moment to arrive before a new
     * leader publishes anything. */
    if (!atomic_load(&g_pub.retained_seen) && now - g_pub.subscribed_ms < 500)
        return;
    if (g_pub.stopping || !lease_held(now))
        return;
    publisher_presence_expire();
    if (g_pub.read_inflight || g_pub.redis.state != TALLY_REDIS_UP)
        return;
    if (redisAsyncCommand(g_pub.redis.ac, on_total, NULL, "MGET " PUBLISHER_REDIS_KEY " " TALLY_EPOCH_KEY) ==
        REDIS_OK)
        g_pub.read_inflight = 1;
}

static void on_mqtt_tick(uv_timer_t *t)
{
    (void)t;
    tally_mqtt_link_tick(&g_pub.mqtt, tally_now_ms());
}

static void finish(void)
{
    uv_timer_stop(&g_pub.stop_timer);
    tally_redis_link_stop(&g_pub.redis);
    tally_http_unlisten(&g_pub.listener);
    uv_stop(&g_pub.loop);
}

static void on_stop_timer(uv_timer_t *t)
{
    (void)t;
    tally_warn("lease: no answer to the release; it will expire by itself");
    finish();
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (g_pub.stopping)
        return;
    g_pub.stopping = 1;
    tally_info("%s: releasing the lease and stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_timer_stop(&g_pub.publish_timer);
    uv_timer_start(&g_pub.stop_timer, on_stop_timer, 1000, 0);
    lease_release(finish);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)s, (void)signum;
    tally_config_reload_log();
}

int main(int argc, char **argv)
{
    struct publisher_config *cfg = &g_pub.cfg;
    int rc = tally_program_begin(&publisher_program, cfg, argc, argv);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    g_pub.started_wall_ms = tally_wall_ms();

    uv_loop_init(&g_pub.loop);
    tally_cache_init(&g_pub.floor);
    atomic_init(&g_pub.retained_seen, 0);
    tally_mqtt_link_t *mq = &g_pub.mqtt;
    tally_mqtt_link_configure(mq, &cfg->mqtt);
    if (cfg->forget_replica[0] != '\0')
        return publisher_forget(cfg->forget_replica);
    if (publisher_http_start() != TALLY_OK)
        return 1;
    mq->topics[0] = PUBLISHER_TOPIC;
    mq->topics[1] = TALLY_STATUS_TOPIC_PREFIX "+" TALLY_STATUS_TOPIC_SUFFIX;
    mq->ntopics = 2;
    tally_presence_init(&g_pub.presence);
    mq->retain_as_published = 1;
    mq->keepalive_s = 10;
    mq->on_message = on_message;
    if (tally_mqtt_link_start(mq) != TALLY_OK)
        return 1;

    tally_redis_link_configure(&g_pub.redis, &g_pub.loop, &cfg->redis, &g_pub.sentinels);
    char why[256];
    if (tally_sentinels_parse(cfg->redis.sentinels, &g_pub.sentinels, why, sizeof(why)) != TALLY_OK)
        return 2; /* checked while loading: cannot happen */
    if (tally_redis_link_start(&g_pub.redis) != TALLY_OK)
        return 1;
    lease_start();

    uv_timer_init(&g_pub.loop, &g_pub.publish_timer);
    uv_timer_start(&g_pub.publish_timer, on_publish_timer, 0, (uint64_t)cfg->publish_interval_ms);
    uv_timer_init(&g_pub.loop, &g_pub.mqtt_tick);
    uv_timer_start(&g_pub.mqtt_tick, on_mqtt_tick, 200, 200);
    uv_timer_init(&g_pub.loop, &g_pub.stop_timer);
    uv_signal_init(&g_pub.loop, &g_pub.sigterm);
    uv_signal_start(&g_pub.sigterm, on_signal, SIGTERM);
    uv_signal_init(&g_pub.loop, &g_pub.sigint);
    uv_signal_start(&g_pub.sigint, on_signal, SIGINT);
    uv_signal_init(&g_pub.loop, &g_pub.sighup);
    uv_signal_start(&g_pub.sighup, on_sighup, SIGHUP);

    char redis_where[1200];
    tally_redis_settings_describe(&cfg->redis, redis_where, sizeof(redis_where));
    tally_info("publisher %s%s%s: http %s:%d, redis %s, mqtt %s, lease %s (%d ms)", cfg->instance_id,
               cfg->site[0] != '\0' ? " of site " : "", cfg->site, cfg->http_host, cfg->http_port,
               redis_where, cfg->mqtt.url, cfg->lease_key, cfg->lease_ttl_ms);
    uv_run(&g_pub.loop, UV_RUN_DEFAULT);
    tally_mqtt_link_stop(mq, 1000);
    tally_info("stopped after %llu publishes", g_pub.stats.publishes);
    return 0;
}
