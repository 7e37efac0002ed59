/* The HTTP face of a replica: one h2o handler dispatching on the normalized path.
 * Only GET / counts; health, readiness, totals, metrics, HEAD and errors never move a
 * counter. HEAD is answered on every GET route with the GET's status and headers: h2o
 * itself leaves the body out of an answer to HEAD. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "counter.h"
#include "http_respond.h"
#include "idempotency.h"
#include "log.h"
#include "metrics_page.h"
#include "readiness.h"
#include "replica.h"

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

/* Every answer: its status counted, its time from the moment h2o began reading the request
 * observed; and while draining, the connection closes after the requests already read on it
 * (h2o would close after the first answer and leave pipelined requests unanswered, or keep an
 * idle connection open to the end). */
static void observe(h2o_req_t *req, int status)
{
    count_status(status);
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t us = (int64_t)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000000 +
                 (now.tv_usec - req->timestamps.request_begin_at.tv_usec);
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, req->conn->ctx);
    tally_histogram_observe(&w->http_duration, us > 0 ? (uint64_t)us * 1000 : 0);
    if (atomic_load_explicit(&g_replica.stopping, memory_order_relaxed) && req->version < 0x200)
        req->http1_is_persistent = tally_http_more_pipelined(req);
}

void routes_init(void)
{
    tally_http_set_observer(observe);
}

static void respond_unavailable(h2o_req_t *req, const char *message)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    tally_http_respond_error(req, 503, "Service Unavailable", "redis_unavailable", message);
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
            tally_http_respond_error(req, 500, "Internal Server Error", "internal", "stored answer too long");
            return;
        }
        memcpy(instance, r->instance, r->instance_len);
        instance[r->instance_len] = '\0';
        text = instance;
        quoted = tally_json_escape(escaped, sizeof(escaped), instance) == (size_t)-1 ? NULL : escaped;
    }
    size_t len = (size_t)-1;
    if (json && quoted != NULL)
        len = tally_format_count_json(body, sizeof(body), quoted, g_replica.cfg.site, r->n, r->m);
    else if (!json)
        len = tally_format_count_text(body, sizeof(body), text, r->n, r->m);
    if (len == (size_t)-1) {
        tally_http_respond_error(req, 500, "Internal Server Error", "internal", "answer too long");
        return;
    }
    if (r->replayed)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("idempotent-replayed"), 0,
                              "Idempotent-Replayed", H2O_STRLIT("true"));
    tally_http_respond(req, 200, "OK", json ? TALLY_CT_JSON : TALLY_CT_TEXT, body, len);
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
        tally_http_respond_error(
            req, 400, "Bad Request", "bad_idempotency_key",
            "Idempotency-Key must be one header holding 1 to 255 visible ASCII characters, bare or "
            "as a quoted string; nothing was counted");
        return -1;
    }
    return (long)len;
}

static void handle_total(h2o_req_t *req)
{
    char body[128];
    int64_t now = tally_now_ms();
    if (tally_cache_age_ms(&g_replica.cache, now) < 0) {
        /* Nothing heard from Redis or MQTT yet: a 0 here would be a fresh process's zero, and a
         * watcher polling across a restart would see the total go back. */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        tally_http_respond_error(
            req, 503, "Service Unavailable", "not_seeded",
            "no cluster total known yet: Redis has not been read since this replica started");
        return;
    }
    size_t len = tally_format_total_json(body, sizeof(body), tally_cache_value(&g_replica.cache),
                                         tally_cache_age_ms(&g_replica.cache, now));
    tally_http_respond(req, 200, "OK", TALLY_CT_JSON, body, len);
}

int routes_handle(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, req->conn->ctx);
    enum tally_route route = tally_route_find(req->path_normalized.base, req->path_normalized.len);
    w->last_request_ms = (int64_t)uv_now(&w->loop);
    atomic_fetch_add_explicit(&g_replica.stats.route_requests[route], 1, memory_order_relaxed);

    if (route == TALLY_ROUTE_UNKNOWN) {
        tally_http_respond_not_found(req, "no such route; try GET /");
        return 0;
    }
    int head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        tally_http_respond_bad_method(req, "GET, HEAD", "only GET and HEAD are allowed here");
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
            tally_http_respond(req, 200, "OK", json ? TALLY_CT_JSON : TALLY_CT_TEXT, NULL, SIZE_MAX);
        }
        break;
    }
    case TALLY_ROUTE_TOTAL:
        handle_total(req);
        break;
    case TALLY_ROUTE_HEALTHZ:
        tally_http_respond_alive(req);
        break;
    case TALLY_ROUTE_READYZ:
        readiness_respond(req);
        break;
    case TALLY_ROUTE_REPLICAS: {
        size_t len;
        char *body = tally_presence_json(&g_replica.presence, &len);
        if (body == NULL) {
            tally_http_respond_error(req, 500, "Internal Server Error", "internal", "out of memory");
            break;
        }
        tally_http_respond(req, 200, "OK", TALLY_CT_JSON, body, len);
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
        metrics_page_respond(req);
        break;
    default:
        tally_http_respond_not_found(req, "no such route; try GET /");
        break;
    }
    return 0;
}
