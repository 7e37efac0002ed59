/* The HTTP face of a replica: one h2o handler dispatching on the normalized path.
 * Only GET / counts; health, readiness, totals, metrics, HEAD and errors never move a
 * counter. HEAD is answered on every GET route with the GET's status and headers: h2o
 * itself leaves the body out of an answer to HEAD. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "idempotency.h"
#include "log.h"
#include "metrics.h"
#include "replica.h"

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"

static void count_status(int status)
{
    int k = status == 200   ? RS_200
            : status == 400 ? RS_400
            : status == 404 ? RS_404
            : status == 405 ? RS_405
            : status == 503 ? RS_503
                            : RS_500;
    atomic_fetch_add_explicit(&g_replica.stats.responses[k], 1, memory_order_relaxed);
}

/* From the moment h2o began reading the request to now. */
static void observe_duration(h2o_req_t *req)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t us = (int64_t)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000000 +
                 (now.tv_usec - req->timestamps.request_begin_at.tv_usec);
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, req->conn->ctx);
    tally_histogram_observe(&w->http_duration, us > 0 ? (uint64_t)us * 1000 : 0);
}

void routes_respond(h2o_req_t *req, int status, const char *reason, const char *content_type,
                    const char *body, size_t len)
{
    count_status(status);
    observe_duration(req);
    /* Draining: answer every request already read on this connection, then close it with
     * this answer's Connection: close (h2o would close after the first answer and leave
     * pipelined requests unanswered, or keep an idle connection open to the end). */
    if (atomic_load_explicit(&g_replica.stopping, memory_order_relaxed) && req->version < 0x200)
        req->http1_is_persistent = tally_http_more_pipelined(req);
    req->res.status = status;
    req->res.reason = reason;
    /* h2o_send_inline would otherwise answer chunked; SIZE_MAX (a HEAD that cannot know the
     * GET's length) sends none. */
    req->res.content_length = len;
    if (content_type == NULL)
        content_type = CT_JSON;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len == SIZE_MAX ? 0 : len);
}

static void respond_error(h2o_req_t *req, int status, const char *reason, const char *code,
                          const char *message)
{
    char body[512];
    size_t len = tally_format_error_json(body, sizeof(body), code, message);
    if (len == (size_t)-1)
        len = (size_t)snprintf(body, sizeof(body), "{\"error\":\"%s\"}", code);
    routes_respond(req, status, reason, CT_JSON, body, len);
}

static void respond_unavailable(h2o_req_t *req, const char *message)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    respond_error(req, 503, "Service Unavailable", "redis_unavailable", message);
}

/* The completion of a counted GET / (counter_submit): @p json is the tag. */
static void on_counted(h2o_req_t *req, int json, const struct counter_result *r)
{
    char body[1024], instance[400], escaped[800];
    if (!r->counted) {
        respond_unavailable(req, r->message);
        return;
    }
    const char *text = g_replica.instance, *quoted = g_replica.instance_json;
    if (r->instance != NULL) {
        /* A stored answer of another replica: its instance, as it answered then. */
        if (r->instance_len >= sizeof(instance)) {
            respond_error(req, 500, "Internal Server Error", "internal", "stored answer too long");
            return;
        }
        memcpy(instance, r->instance, r->instance_len);
        instance[r->instance_len] = '\0';
        text = instance;
        quoted = tally_json_escape(escaped, sizeof(escaped), instance) == (size_t)-1 ? NULL : escaped;
    }
    size_t len = (size_t)-1;
    if (json && quoted != NULL)
        len = tally_format_count_json(body, sizeof(body), quoted, r->n, r->m);
    else if (!json)
        len = tally_format_count_text(body, sizeof(body), text, r->n, r->m);
    if (len == (size_t)-1) {
        respond_error(req, 500, "Internal Server Error", "internal", "answer too long");
        return;
    }
    if (r->replayed)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("idempotent-replayed"), 0,
                              "Idempotent-Replayed", H2O_STRLIT("true"));
    routes_respond(req, 200, "OK", json ? CT_JSON : CT_TEXT, body, len);
}

/* The request's Idempotency-Key (docs/api.md): returns its length (0: none, or keys are off)
 * or -1 when the request carries a bad one (answered 400 here). */
static long idempotency_key(h2o_req_t *req, char *key)
{
    if (g_replica.cfg.idempotency_ttl_s == 0)
        return 0; /* off: the header means nothing */
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT(TALLY_IDEM_HEADER), -1);
    if (i < 0)
        return 0;
    size_t len =
        tally_idem_key_parse(req->headers.entries[i].value.base, req->headers.entries[i].value.len, key);
    if (len == 0 || h2o_find_header_by_str(&req->headers, H2O_STRLIT(TALLY_IDEM_HEADER), i) >= 0) {
        atomic_fetch_add_explicit(&g_replica.stats.idem_bad, 1, memory_order_relaxed);
        respond_error(req, 400, "Bad Request", "bad_idempotency_key",
                      "Idempotency-Key must be one header holding 1 to 255 visible ASCII characters, bare or "
                      "as a quoted string; nothing was counted");
        return -1;
    }
    return (long)len;
}

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

static void handle_readyz(h2o_req_t *req)
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
    routes_respond(req, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", CT_JSON, body, len);
}

static void handle_total(h2o_req_t *req)
{
    char body[128];
    int64_t now = tally_now_ms();
    if (tally_cache_age_ms(&g_replica.cache, now) < 0) {
        /* Nothing heard from Redis or MQTT yet: a 0 here would be a fresh process's zero, and a
         * watcher polling across a restart would see the total go back. */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        respond_error(req, 503, "Service Unavailable", "not_seeded",
                      "no cluster total known yet: Redis has not been read since this replica started");
        return;
    }
    size_t len = tally_format_total_json(body, sizeof(body), tally_cache_value(&g_replica.cache),
                                         tally_cache_age_ms(&g_replica.cache, now));
    routes_respond(req, 200, "OK", CT_JSON, body, len);
}

#define LOAD(x) ((double)atomic_load_explicit(&(x), memory_order_relaxed))

static void handle_metrics(h2o_req_t *req)
{
    struct replica_stats *s = &g_replica.stats;
    tally_mqtt_link_t *mq = &g_replica.mqtt;
    tally_metrics_buf_t m;
    static const char *const codes[RS_MAX] = {"200", "400", "404", "405", "500", "503"};
    tally_metrics_init(&m);

    tally_metrics_family(&m, "tally_http_requests_total", "counter", "HTTP requests received, by route.");
    for (int r = TALLY_ROUTE_UNKNOWN; r <= TALLY_ROUTE_METRICS; r++)
        tally_metrics_sample(&m, "tally_http_requests_total", "route", tally_route_name(r),
                             LOAD(s->route_requests[r]));
    tally_metrics_family(&m, "tally_http_responses_total", "counter", "HTTP responses sent, by status.");
    for (int k = 0; k < RS_MAX; k++)
        tally_metrics_sample(&m, "tally_http_responses_total", "code", codes[k], LOAD(s->responses[k]));
    tally_metrics_add(&m, "tally_counted_requests_total", "counter",
                      "Counted requests answered with their totals (N of this instance).",
                      LOAD(g_replica.served));
    tally_metrics_add(&m, "tally_idempotency_keys_stored_total", "counter",
                      "Requests with a new Idempotency-Key: counted, their answer stored with the increment.",
                      LOAD(s->idem_stored));
    tally_metrics_add(&m, "tally_idempotency_replays_total", "counter",
                      "Requests answered with the answer stored for their Idempotency-Key (not counted).",
                      LOAD(s->idem_replays));
    tally_metrics_add(&m, "tally_idempotency_bad_keys_total", "counter",
                      "Requests refused with 400 for a bad Idempotency-Key (nothing counted).",
                      LOAD(s->idem_bad));
    tally_metrics_add(&m, "tally_idempotency_answers_gone_total", "counter",
                      "Keyed requests whose batch was applied but whose stored answer was gone when read "
                      "back (503).",
                      LOAD(s->idem_gone));
    tally_metrics_add(&m, "tally_redis_batches_total", "counter",
                      "Batches sent to Redis (one script call each).", LOAD(s->redis_batches));
    tally_metrics_add(&m, "tally_redis_batched_requests_total", "counter",
                      "Counted requests carried by INCRBY commands.", LOAD(s->redis_batched));
    tally_metrics_add(
        &m, "tally_redis_retried_batches_total", "counter",
        "Batches sent again, with the same id, after the connection that carried them was lost.",
        LOAD(s->redis_retries));
    tally_metrics_add(&m, "tally_redis_errors_total", "counter",
                      "INCRBY batches that failed (connection lost, refused, error reply, timeout).",
                      LOAD(s->redis_errors));
    tally_metrics_add(
        &m, "tally_redis_waits_total", "counter",
        "WAIT commands sent in synchronous mode (REDIS_WAIT_REPLICAS), each covering the batches before it.",
        LOAD(s->redis_waits));
    tally_metrics_add(
        &m, "tally_redis_wait_timeouts_total", "counter",
        "WAITs that confirmed fewer replicas than REDIS_WAIT_REPLICAS in time (their requests: 503).",
        LOAD(s->redis_wait_timeouts));
    tally_metrics_add(&m, "tally_redis_timeouts_total", "counter",
                      "Redis connections dropped because a reply was overdue.", LOAD(s->redis_timeouts));
    tally_metrics_add(&m, "tally_mqtt_publish_interval_seconds", "gauge",
                      "Least time between two total_count publishes now (0: every loop pass).",
                      LOAD(s->publish_interval_ns) / 1e9);
    tally_metrics_add(
        &m, "tally_redis_total_lifted_total", "counter",
        "Amount total_count was raised by because Redis held less than a total already handed out.",
        LOAD(s->redis_lifted));
    tally_metrics_add(
        &m, "tally_redis_refused_resends_total", "counter",
        "Resent batches not applied again because a lift after lost writes may hold them (503).",
        LOAD(s->redis_refused));
    double failovers = 0, not_master = 0;
    for (int i = 0; i < g_replica.nworkers; i++) {
        failovers += (double)atomic_load(&g_replica.workers[i].redis.failovers);
        not_master += (double)atomic_load(&g_replica.workers[i].redis.not_master);
    }
    tally_metrics_add(&m, "tally_redis_failovers_total", "counter",
                      "Failovers announced by a sentinel (+switch-master, +promoted-slave) and followed, "
                      "summed over worker threads.",
                      failovers);
    tally_metrics_add(&m, "tally_redis_not_master_total", "counter",
                      "Connections dropped because the node answered as no master (ROLE, -READONLY).",
                      not_master);
    tally_redis_link_t *links[64]; /* THREADS is at most 64 */
    for (int i = 0; i < g_replica.nworkers; i++)
        links[i] = &g_replica.workers[i].redis;
    tally_redis_links_metrics(&m, links, g_replica.nworkers);
    tally_http_listener_t *listeners[64];
    for (int i = 0; i < g_replica.nworkers; i++)
        listeners[i] = &g_replica.workers[i].listener;
    tally_http_listeners_metrics(&m, listeners, g_replica.nworkers);
    tally_metrics_add(&m, "tally_redis_connected", "gauge",
                      "Worker threads with a live, seeded Redis connection.",
                      (double)atomic_load(&g_replica.redis_ready));
    tally_metrics_add(&m, "tally_mqtt_connected", "gauge", "1 while the MQTT session is up.",
                      (double)atomic_load(&mq->connected));
    tally_metrics_add(&m, "tally_mqtt_messages_received_total", "counter", "MQTT messages received.",
                      LOAD(mq->received));
    tally_metrics_add(&m, "tally_mqtt_messages_published_total", "counter",
                      "MQTT messages handed to the broker.", LOAD(mq->published));
    tally_metrics_add(&m, "tally_mqtt_publish_failures_total", "counter",
                      "MQTT publishes that could not be sent (broker unreachable).",
                      LOAD(mq->publish_failures));
    tally_metrics_add(&m, "tally_mqtt_messages_dropped_total", "counter",
                      "total_count payloads dropped because they were not a valid total.",
                      LOAD(s->mqtt_dropped));
    tally_metrics_add(&m, "tally_mqtt_totals_received_total", "counter",
                      "Valid totals received on total_count (from other replicas and publishers).",
                      LOAD(s->mqtt_totals));
    tally_metrics_add(&m, "tally_mqtt_status_dropped_total", "counter",
                      "replicas/+/status payloads dropped because they were not a valid status.",
                      LOAD(s->status_dropped));
    tally_metrics_add(&m, "tally_mqtt_unsigned_dropped_total", "counter",
                      "MQTT messages dropped because they carried no valid CLUSTER_SECRET signature.",
                      LOAD(mq->forged));
    tally_metrics_add(&m, "tally_mqtt_stale_epoch_dropped_total", "counter",
                      "Signed MQTT messages dropped because they belong to an older cluster epoch (before a "
                      "restore of Redis).",
                      LOAD(mq->stale_epoch));
    tally_metrics_add(
        &m, "tally_cluster_epoch", "gauge",
        "The cluster epoch (Redis key tally:epoch, raised after a deliberate restore) this process "
        "counts in.",
        (double)tally_cache_epoch(&g_replica.cache));
    tally_metrics_add(&m, "tally_cluster_requests", "gauge",
                      "The cached cluster total (formerly tally_cluster_total).",
                      (double)tally_cache_value(&g_replica.cache));
    int64_t age = tally_cache_age_ms(&g_replica.cache, tally_now_ms());
    tally_metrics_add(&m, "tally_cache_age_seconds", "gauge",
                      "Seconds since the cached total was last confirmed.",
                      age < 0 ? -1.0 : (double)age / 1000.0);
    tally_metrics_add(&m, "tally_events_clients", "gauge", "Open GET /events streams.",
                      (double)atomic_load(&g_replica.events_clients));
    tally_metrics_add(&m, "tally_events_refused_total", "counter",
                      "GET /events answered 503 because EVENTS_MAX_CLIENTS streams were open.",
                      LOAD(g_replica.events_refused));
    tally_metrics_add(&m, "tally_events_dropped_total", "counter",
                      "Event clients dropped because they took no write for 10 s.",
                      LOAD(g_replica.events_dropped));
    tally_metrics_add(&m, "tally_events_expired_total", "counter",
                      "Event streams ended after EVENTS_MAX_LIFETIME_S (the client reconnects).",
                      LOAD(g_replica.events_expired));
    tally_metrics_add(&m, "tally_ready", "gauge", "1 while /readyz answers 200.", (double)replica_is_ready());
    tally_metrics_add(&m, "tally_start_time_seconds", "gauge",
                      "Start time of the process since the Unix epoch.",
                      (double)g_replica.started_wall_ms / 1000.0);
    tally_metrics_histogram(&m, "tally_http_request_duration_seconds",
                            "Time from reading a request to writing its answer, every answered request.",
                            &g_replica.workers[0].http_duration, (size_t)g_replica.nworkers,
                            sizeof(struct worker));
    tally_metrics_histogram(&m, "tally_redis_batch_duration_seconds",
                            "Round trip of one INCRBY batch: sent to Redis until its reply.",
                            &g_replica.workers[0].redis_duration, (size_t)g_replica.nworkers,
                            sizeof(struct worker));
    tally_metrics_process(&m, g_replica.started_wall_ms);

    if (m.failed)
        respond_error(req, 500, "Internal Server Error", "internal", "out of memory");
    else
        routes_respond(req, 200, "OK", CT_PROM, m.data, m.len);
    tally_metrics_free(&m);
}

int routes_handle(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, req->conn->ctx);
    enum tally_route route = tally_route_find(req->path_normalized.base, req->path_normalized.len);
    w->last_request_ms = (int64_t)uv_now(&w->loop);
    atomic_fetch_add_explicit(&g_replica.stats.route_requests[route], 1, memory_order_relaxed);

    if (route == TALLY_ROUTE_UNKNOWN) {
        respond_error(req, 404, "Not Found", "not_found", "no such route; try GET /");
        return 0;
    }
    int head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed",
                      "only GET and HEAD are allowed here");
        return 0;
    }
    switch (route) {
    case TALLY_ROUTE_COUNT: {
        ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
        int json = i >= 0 && tally_accept_wants_json(req->headers.entries[i].value.base,
                                                     req->headers.entries[i].value.len);
        /* The answer depends on Accept: caches must key on it. */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept"));
        char key[TALLY_IDEM_KEY_MAX];
        long key_len = idempotency_key(req, key);
        if (key_len < 0) {
            break;
        } else if (!head && key_len > 0) {
            counter_submit_keyed(w, req, on_counted, json, key, (size_t)key_len);
        } else if (!head) {
            counter_submit(w, req, on_counted, json);
        } else if (!counter_can_count(w)) {
            respond_unavailable(req, "Redis is not reachable; a GET would not be counted");
        } else {
            /* HEAD never counts: the GET's status and type, without N and M, so without the
             * length a GET's body would have. */
            routes_respond(req, 200, "OK", json ? CT_JSON : CT_TEXT, NULL, SIZE_MAX);
        }
        break;
    }
    case TALLY_ROUTE_TOTAL:
        handle_total(req);
        break;
    case TALLY_ROUTE_HEALTHZ:
        routes_respond(req, 200, "OK", CT_JSON, H2O_STRLIT("{\"status\":\"ok\"}"));
        break;
    case TALLY_ROUTE_READYZ:
        handle_readyz(req);
        break;
    case TALLY_ROUTE_REPLICAS: {
        size_t len;
        char *body = tally_presence_json(&g_replica.presence, &len);
        if (body == NULL) {
            respond_error(req, 500, "Internal Server Error", "internal", "out of memory");
            break;
        }
        routes_respond(req, 200, "OK", CT_JSON, body, len);
        free(body);
        break;
    }
    case TALLY_ROUTE_EVENTS:
        events_handle(w, req, head);
        break;
    case TALLY_ROUTE_DASHBOARD:
        dashboard_handle(req, head);
        break;
    case TALLY_ROUTE_METRICS:
        handle_metrics(req);
        break;
    default:
        respond_error(req, 404, "Not Found", "not_found", "no such route; try GET /");
        break;
    }
    return 0;
}
