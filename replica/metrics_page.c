/* GET /metrics: every family a replica exposes (docs/api.md names each). The process-wide
 * counters are rows of one table; the links (Redis, MQTT, HTTP listeners) and the histograms
 * write their own families. */
#include "metrics_page.h"

#include <stddef.h>

#include "http_respond.h"
#include "metrics.h"
#include "readiness.h"
#include "replica.h"

#define LOAD(x) ((double)atomic_load_explicit(&(x), memory_order_relaxed))

/* A counter of struct replica_stats. */
struct stat_row {
    const char *name, *help;
    size_t offset;
};

#define ROW(name, field, help)                                                                               \
    {                                                                                                        \
        name, help, offsetof(struct replica_stats, field)                                                    \
    }

static const struct stat_row stat_rows[] = {
    ROW("tally_idempotency_keys_stored_total", idem_stored,
        "Requests with a new Idempotency-Key: counted, their answer stored with the increment."),
    ROW("tally_idempotency_replays_total", idem_replays,
        "Requests answered with the answer stored for their Idempotency-Key (not counted)."),
    ROW("tally_idempotency_bad_keys_total", idem_bad,
        "Requests refused with 400 for a bad Idempotency-Key (nothing counted)."),
    ROW("tally_idempotency_answers_gone_total", idem_gone,
        "Keyed requests whose batch was applied but whose stored answer was gone when read back (503)."),
    ROW("tally_redis_batches_total", redis_batches, "Batches sent to Redis (one script call each)."),
    ROW("tally_redis_batched_requests_total", redis_batched,
        "Counted requests carried by the batches sent to Redis."),
    ROW("tally_redis_retried_batches_total", redis_retries,
        "Batches sent again, with the same id, after the connection that carried them was lost."),
    ROW("tally_redis_errors_total", redis_errors,
        "Batches that failed (connection lost, refused, error reply, timeout)."),
    ROW("tally_redis_waits_total", redis_waits,
        "WAIT commands sent in synchronous mode (REDIS_WAIT_REPLICAS), each covering the batches before it."),
    ROW("tally_redis_wait_timeouts_total", redis_wait_timeouts,
        "WAITs that confirmed fewer replicas than REDIS_WAIT_REPLICAS in time (their requests: 503)."),
    ROW("tally_redis_timeouts_total", redis_timeouts,
        "Redis connections dropped because a reply was overdue."),
    ROW("tally_redis_total_lifted_total", redis_lifted,
        "Amount total_count was raised by because Redis held less than a total already handed out."),
    ROW("tally_redis_refused_resends_total", redis_refused,
        "Resent batches not applied again because a lift after lost writes may hold them (503)."),
    ROW("tally_mqtt_messages_dropped_total", mqtt_dropped,
        "total_count payloads dropped because they were not a valid total."),
    ROW("tally_mqtt_totals_received_total", mqtt_totals,
        "Valid totals received on total_count (from other replicas and publishers)."),
    ROW("tally_mqtt_status_dropped_total", status_dropped,
        "replicas/+/status payloads dropped because they were not a valid status."),
};

static void http_families(tally_metrics_buf_t *m, struct replica_stats *s)
{
    static const char *const codes[RS_MAX] = {"200", "400", "404", "405", "500", "503"};
    tally_metrics_family(m, "tally_http_requests_total", "counter", "HTTP requests received, by route.");
    for (int r = TALLY_ROUTE_UNKNOWN; r <= TALLY_ROUTE_METRICS; r++)
        tally_metrics_sample(m, "tally_http_requests_total", "route", tally_route_name(r),
                             LOAD(s->route_requests[r]));
    tally_metrics_family(m, "tally_http_responses_total", "counter", "HTTP responses sent, by status.");
    for (int k = 0; k < RS_MAX; k++)
        tally_metrics_sample(m, "tally_http_responses_total", "code", codes[k], LOAD(s->responses[k]));
    tally_http_listener_t *listeners[64]; /* THREADS is at most 64 */
    for (int i = 0; i < g_replica.nworkers; i++)
        listeners[i] = &g_replica.workers[i].listener;
    tally_http_listeners_metrics(m, listeners, g_replica.nworkers);
    tally_metrics_histogram(m, "tally_http_request_duration_seconds",
                            "Time from reading a request to writing its answer, every answered request.",
                            &g_replica.workers[0].http_duration, (size_t)g_replica.nworkers,
                            sizeof(struct worker));
}

static void redis_families(tally_metrics_buf_t *m)
{
    double failovers = 0, not_master = 0;
    tally_redis_link_t *links[64];
    for (int i = 0; i < g_replica.nworkers; i++) {
        links[i] = &g_replica.workers[i].redis;
        failovers += (double)atomic_load(&links[i]->failovers);
        not_master += (double)atomic_load(&links[i]->not_master);
    }
    tally_metrics_add(
        m, "tally_redis_failovers_total", "counter",
        "Failovers announced by a sentinel (+switch-master, +promoted-slave) and followed, summed "
        "over worker threads.",
        failovers);
    tally_metrics_add(m, "tally_redis_not_master_total", "counter",
                      "Connections dropped because the node answered as no master (ROLE, -READONLY).",
                      not_master);
    tally_redis_links_metrics(m, links, g_replica.nworkers);
    tally_metrics_add(m, "tally_redis_connected", "gauge",
                      "Worker threads with a live, seeded Redis connection.",
                      (double)atomic_load(&g_replica.redis_ready));
    tally_metrics_histogram(
        m, "tally_redis_batch_duration_seconds", "Round trip of one batch: sent to Redis until its reply.",
        &g_replica.workers[0].redis_duration, (size_t)g_replica.nworkers, sizeof(struct worker));
}

static void cluster_families(tally_metrics_buf_t *m)
{
    tally_metrics_add(m, "tally_counted_requests_total", "counter",
                      "Counted requests answered with their totals (N of this instance).",
                      LOAD(g_replica.served));
    tally_metrics_add(m, "tally_mqtt_publish_interval_seconds", "gauge",
                      "Least time between two total_count publishes now (0: every loop pass).",
                      LOAD(g_replica.stats.publish_interval_ns) / 1e9);
    tally_metrics_add(
        m, "tally_cluster_epoch", "gauge",
        "The cluster epoch (Redis key tally:epoch, raised after a deliberate restore) this process "
        "counts in.",
        (double)tally_cache_epoch(&g_replica.cache));
    tally_metrics_add(m, "tally_cluster_requests", "gauge", "The cached cluster total.",
                      (double)tally_cache_value(&g_replica.cache));
    int64_t age = tally_cache_age_ms(&g_replica.cache, tally_now_ms());
    tally_metrics_add(m, "tally_cache_age_seconds", "gauge",
                      "Seconds since the cached total was last confirmed.",
                      age < 0 ? -1.0 : (double)age / 1000.0);
}

static void events_families(tally_metrics_buf_t *m)
{
    tally_metrics_add(m, "tally_events_clients", "gauge", "Open GET /events streams.",
                      (double)atomic_load(&g_replica.events_clients));
    tally_metrics_add(m, "tally_events_refused_total", "counter",
                      "GET /events answered 503 because EVENTS_MAX_CLIENTS streams were open.",
                      LOAD(g_replica.events_refused));
    tally_metrics_add(m, "tally_events_dropped_total", "counter",
                      "Event clients dropped because they took no write for 10 s.",
                      LOAD(g_replica.events_dropped));
    tally_metrics_add(m, "tally_events_expired_total", "counter",
                      "Event streams ended after EVENTS_MAX_LIFETIME_S (the client reconnects).",
                      LOAD(g_replica.events_expired));
}

void metrics_page_respond(h2o_req_t *req)
{
    struct replica_stats *s = &g_replica.stats;
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    http_families(&m, s);
    for (size_t i = 0; i < sizeof(stat_rows) / sizeof(stat_rows[0]); i++) {
        const atomic_ullong *v = (const atomic_ullong *)((const char *)s + stat_rows[i].offset);
        tally_metrics_add(&m, stat_rows[i].name, "counter", stat_rows[i].help,
                          (double)atomic_load_explicit(v, memory_order_relaxed));
    }
    redis_families(&m);
    tally_mqtt_link_metrics(&m, &g_replica.mqtt);
    cluster_families(&m);
    events_families(&m);
    tally_metrics_add(&m, "tally_ready", "gauge", "1 while /readyz answers 200.", (double)replica_is_ready());
    tally_metrics_add(&m, "tally_start_time_seconds", "gauge",
                      "Start time of the process since the Unix epoch.",
                      (double)g_replica.started_wall_ms / 1000.0);
    tally_metrics_process(&m, g_replica.started_wall_ms);
    tally_http_respond_metrics(req, &m);
}
