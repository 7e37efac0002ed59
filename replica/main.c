/* tally replica: configuration, start-up, threads and the orderly exit. */
#include <limits.h>
#include <stddef.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "counter.h"
#include "log.h"
#include "replica.h"

struct replica g_replica;

/* Runs on a paho thread: only atomics are touched. A bad payload never lowers the cache. */
static void on_mqtt_message(void *data, const char *topic, const void *payload, size_t len, int retained,
                            uint64_t epoch)
{
    uint64_t total;
    (void)data, (void)retained;
    if (strcmp(topic, TALLY_TOTAL_TOPIC) != 0) {
        presence_on_message(topic, payload, len);
        return;
    }
    if (tally_total_parse(payload, len, &total) != TALLY_OK) {
        unsigned long long n = atomic_fetch_add(&g_replica.stats.mqtt_dropped, 1) + 1;
        if (tally_log_every_power_of_two(n))
            tally_warn("mqtt: dropped a %s payload on %s that is not a total (%llu dropped so far)",
                       len == 0                       ? "empty"
                       : len > TALLY_TOTAL_MAX_DIGITS ? "too long"
                                                      : "malformed",
                       topic, n);
        return;
    }
    atomic_fetch_add_explicit(&g_replica.stats.mqtt_totals, 1, memory_order_relaxed);
    counter_offer(epoch, total, tally_now_ms());
}

static void *worker_thread(void *arg)
{
    worker_run(arg);
    return NULL;
}

static void on_mqtt_tick(uv_timer_t *t)
{
    (void)t;
    tally_mqtt_link_tick(&g_replica.mqtt, tally_now_ms());
}

static void on_presence_tick(uv_timer_t *t)
{
    (void)t;
    if (atomic_load(&g_replica.mqtt.connected) && !atomic_load(&g_replica.stopping))
        presence_publish(1);
    tally_presence_expire(&g_replica.presence, tally_wall_ms(),
                          (int64_t)g_replica.cfg.presence_expire_s * 1000, NULL, TALLY_PRESENCE_MAX);
}

/* paho thread, after every (re)connect: announce ourselves. */
static void on_mqtt_connect(void *data)
{
    (void)data;
    presence_publish(1);
}

/* INSTANCE_ID is ours (worker 0): connects to the broker the first time. */
static void on_claimed(void)
{
    if (g_replica.mqtt_started || atomic_load(&g_replica.stopping))
        return;
    /* The settings were checked at start, so this fails only on an internal error. */
    if (tally_mqtt_link_start(&g_replica.mqtt) != TALLY_OK) {
        g_replica.exit_code = 1;
        replica_request_stop("the MQTT client could not be created");
        return;
    }
    g_replica.mqtt_started = 1;
}

/* Another live process holds INSTANCE_ID: one error line, then stop with exit code 2. */
static void on_claim_refused(const char *line)
{
    tally_error("%s", line);
    g_replica.exit_code = 2;
    replica_request_stop("refusing to start");
}

/* The process-wide state that the settings decide: names, the cache, the presence table,
 * this replica's Last Will. Returns the Will's length. */
static size_t setup_identity(struct replica_config *cfg)
{
    snprintf(g_replica.instance, sizeof(g_replica.instance), "%s:%d", cfg->instance_id, cfg->service_port);
    tally_json_escape(g_replica.instance_json, sizeof(g_replica.instance_json), g_replica.instance);
    g_replica.started_ms = tally_now_ms();
    g_replica.started_wall_ms = tally_wall_ms();
    tally_cache_init(&g_replica.cache);
    char why[256];
    tally_sentinels_parse(cfg->redis.sentinels, &g_replica.sentinels, why, sizeof(why)); /* checked already */
    tally_presence_init(&g_replica.presence);
    snprintf(g_replica.status_topic, sizeof(g_replica.status_topic),
             TALLY_STATUS_TOPIC_PREFIX "%s" TALLY_STATUS_TOPIC_SUFFIX, cfg->instance_id);
    tally_status_t will;
    presence_status(&will, 0);
    return tally_status_format(g_replica.will, sizeof(g_replica.will), &will);
}

/* The MQTT link starts once INSTANCE_ID is claimed in Redis (claim.c), and its subscription
 * must be live before /readyz says so. */
static void setup_mqtt(const struct replica_config *cfg, size_t will_len)
{
    tally_mqtt_link_t *mq = &g_replica.mqtt;
    tally_mqtt_link_configure(mq, &cfg->mqtt);
    mq->topics[0] = TALLY_TOTAL_TOPIC;
    mq->topics[1] = TALLY_STATUS_TOPIC_PREFIX "+" TALLY_STATUS_TOPIC_SUFFIX;
    mq->ntopics = 2;
    /* MQTT 5 No Local: a replica already knows the totals it published; echoes would only
     * cost CPU (measured: see docs/benchmarks.md). */
    mq->no_local = 1;
    mq->keepalive_s = 10;
    mq->will_topic = g_replica.status_topic;
    mq->will_payload = g_replica.will;
    mq->will_len = will_len;
    mq->on_connect = on_mqtt_connect;
    mq->on_message = on_mqtt_message;
}

/* One h2o configuration for every worker: every path goes to routes_handle. */
static h2o_globalconf_t *setup_http(void)
{
    static h2o_globalconf_t hconf;
    tally_http_config_init(&hconf, "tally");
    h2o_hostconf_t *host = h2o_config_register_host(&hconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = routes_handle;
    routes_init();
    return &hconf;
}

static void log_start(const struct replica_config *cfg)
{
    char redis_where[1200];
    tally_redis_settings_describe(&cfg->redis, redis_where, sizeof(redis_where));
    tally_info("instance %s%s%s listening on %s:%d with %d thread%s; redis %s, mqtt %s", g_replica.instance,
               cfg->site[0] != '\0' ? " of site " : "", cfg->site, cfg->service_host, cfg->service_port,
               cfg->threads, cfg->threads == 1 ? "" : "s", redis_where, cfg->mqtt.url);
}

/* Runs worker 0 on this thread and the others on their own, until all have drained. */
static int run_workers(int n)
{
    for (int i = 1; i < n; i++)
        if (pthread_create(&g_replica.workers[i].thread, NULL, worker_thread, &g_replica.workers[i]) != 0) {
            tally_error("cannot start thread %d", i);
            return TALLY_ERR;
        }
    worker_run(&g_replica.workers[0]);
    for (int i = 1; i < n; i++)
        pthread_join(g_replica.workers[i].thread, NULL);
    return TALLY_OK;
}

int main(int argc, char **argv)
{
    struct replica_config *cfg = &g_replica.cfg;
    int rc = tally_program_begin(&replica_program, cfg, argc, argv);
    if (rc >= 0)
        return rc;
    /* glibc trimming and regrowing the heap on every request costs 2.5x (docs/profiling.md). */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    signal(SIGPIPE, SIG_IGN);
    setup_mqtt(cfg, setup_identity(cfg));
    claim_init(on_claimed, on_claim_refused);
    h2o_globalconf_t *hconf = setup_http();
    g_replica.nworkers = cfg->threads;
    g_replica.workers = calloc((size_t)cfg->threads, sizeof(struct worker));
    if (g_replica.workers == NULL)
        return 1;
    for (int i = 0; i < cfg->threads; i++)
        if (worker_init(&g_replica.workers[i], i, hconf) != TALLY_OK)
            return 1;
    uv_timer_t mqtt_tick, presence_tick;
    uv_timer_init(&g_replica.workers[0].loop, &mqtt_tick);
    uv_timer_start(&mqtt_tick, on_mqtt_tick, 200, 200);
    uv_timer_init(&g_replica.workers[0].loop, &presence_tick);
    uv_timer_start(&presence_tick, on_presence_tick, (uint64_t)cfg->presence_interval_ms,
                   (uint64_t)cfg->presence_interval_ms);
    log_start(cfg);
    if (run_workers(cfg->threads) != TALLY_OK)
        return 1;
    /* A clean exit says so itself; the Last Will covers the unclean ones. */
    if (g_replica.mqtt_started) {
        if (atomic_load(&g_replica.mqtt.connected))
            presence_publish(0);
        tally_mqtt_link_stop(&g_replica.mqtt, 1000);
    }
    tally_info("stopped after serving %llu counted requests",
               (unsigned long long)atomic_load(&g_replica.served));
    return g_replica.exit_code;
}
