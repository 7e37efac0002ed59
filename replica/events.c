/* GET /events: the cached total and the presence table as Server-Sent Events (docs/api.md).
 *
 * Each worker keeps its event connections in a list and looks at them on its watchdog
 * tick (every 50 ms): a connection gets the newest state composed at the moment it can take
 * more, never a queue of old ones. At most one write is in flight per connection; while it
 * is (the client does not read), the connection is skipped, so a slow client costs one
 * buffer and no time of the loop or of the counting path. A client that has not taken a
 * write for EVENTS_STALL_MS is dropped (its socket shut down: h2o then closes it the usual
 * way). A stream is ended after EVENTS_MAX_LIFETIME_S (less up to a tenth, so streams opened
 * together do not end together): EventSource reconnects by itself, and no client holds one of
 * the EVENTS_MAX_CLIENTS slots for ever. Events never count: /events only reads the cache and
 * the presence table. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http_respond.h"
#include "log.h"
#include "readiness.h"
#include "replica.h"

#define EVENTS_TOTAL_EVERY_MS 100    /* at most 10 total events a second */
#define EVENTS_REPLICAS_EVERY_MS 500 /* presence changes: at most 2 a second */
#define EVENTS_HEARTBEAT_MS 15000    /* a comment line when nothing else was sent */
#define EVENTS_STALL_MS 10000        /* a write not taken for this long: the client is dropped */
#define EVENTS_RETRY_MS 2000         /* what EventSource waits before reconnecting */
#define EVENTS_BUF_MAX (512 * 1024)  /* a presence table larger than this is not sent */

struct events_conn {
    h2o_generator_t gen; /* first: h2o hands this pointer back */
    h2o_req_t *req;
    struct worker *w;
    struct events_conn *prev, *next;
    int in_flight;            /* h2o_send issued, proceed not called yet */
    int64_t in_flight_since;  /* when that write was issued */
    int64_t last_write_ms;    /* the heartbeat's clock */
    int64_t total_sent_ms;    /* the last total event */
    int64_t replicas_sent_ms; /* the last replicas event */
    int64_t end_ms;           /* EVENTS_MAX_LIFETIME_S: the stream ends once this has passed (0: never) */
    char total_sent[1200];    /* what the last total event said (without age) */
    uint64_t replicas_hash;   /* FNV-1a of the last replicas JSON sent */
    int greeted;              /* retry: and the first events went out */
    int dropped;              /* its socket was shut down: waiting for h2o to close it */
    char *buf;
    size_t cap, len;
};

static int append(struct events_conn *c, const char *s, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->len + n)
            cap *= 2;
        if (cap > EVENTS_BUF_MAX)
            return TALLY_ERR;
        char *b = realloc(c->buf, cap);
        if (b == NULL)
            return TALLY_ERR;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
    return TALLY_OK;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void unlink_conn(struct events_conn *c)
{
    struct worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->events = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    free(c->buf);
    c->buf = NULL;
    atomic_fetch_sub(&g_replica.events_clients, 1);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    struct events_conn *c = (struct events_conn *)gen;
    c->in_flight = 0;
    c->len = 0;
}

/* The client went away (or h2o gave up on it): the request is being disposed. */
static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    unlink_conn((struct events_conn *)gen);
}

/* The total event's data: what the dashboard shows of this replica. */
static size_t total_json(char *out, size_t size, int64_t now, int with_age)
{
    int64_t age = tally_cache_age_ms(&g_replica.cache, now);
    int redis = atomic_load(&g_replica.redis_ready) == g_replica.nworkers;
    int mqtt = atomic_load(&g_replica.mqtt.connected);
    int n =
        snprintf(out, size,
                 "{\"cluster_total\":%" PRIu64 ",\"age_ms\":%" PRId64 ",\"instance\":\"%s\",\"served\":%llu,"
                 "\"redis\":%s,\"mqtt\":%s,\"ready\":%s}",
                 tally_cache_value(&g_replica.cache), with_age ? age : 0, g_replica.instance_json,
                 (unsigned long long)atomic_load(&g_replica.served), redis ? "true" : "false",
                 mqtt ? "true" : "false", replica_is_ready() ? "true" : "false");
    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* Composes what @p c is owed now into its buffer; returns 1 if there is something to send. */
static int compose(struct events_conn *c, int64_t now, const char *replicas, size_t replicas_len,
                   uint64_t replicas_hash)
{
    char data[1200], key[1200];
    c->len = 0;
    if (!c->greeted) {
        char retry[32];
        int n = snprintf(retry, sizeof(retry), "retry: %d\n\n", EVENTS_RETRY_MS);
        if (append(c, retry, (size_t)n) != TALLY_OK)
            return 0;
    }
    /* total: when the total, the links or readiness changed (age alone is no change) */
    size_t klen = total_json(key, sizeof(key), now, 0);
    if (klen > 0 && tally_cache_age_ms(&g_replica.cache, now) >= 0 &&
        (!c->greeted || strcmp(key, c->total_sent) != 0) && now - c->total_sent_ms >= EVENTS_TOTAL_EVERY_MS) {
        size_t dlen = total_json(data, sizeof(data), now, 1);
        if (dlen > 0 && append(c, "event: total\ndata: ", 19) == TALLY_OK &&
            append(c, data, dlen) == TALLY_OK && append(c, "\n\n", 2) == TALLY_OK) {
            memcpy(c->total_sent, key, klen + 1);
            c->total_sent_ms = now;
        }
    }
    if (replicas != NULL && (!c->greeted || replicas_hash != c->replicas_hash) &&
        now - c->replicas_sent_ms >= EVENTS_REPLICAS_EVERY_MS) {
        size_t mark = c->len;
        if (append(c, "event: replicas\ndata: ", 22) == TALLY_OK &&
            append(c, replicas, replicas_len) == TALLY_OK && append(c, "\n\n", 2) == TALLY_OK) {
            c->replicas_hash = replicas_hash;
            c->replicas_sent_ms = now;
        } else {
            c->len = mark; /* too large: the total still goes */
        }
    }
    if (c->len == 0 && now - c->last_write_ms >= EVENTS_HEARTBEAT_MS)
        append(c, ": keep-alive\n\n", 14);
    c->greeted = 1;
    return c->len > 0;
}

static void send_now(struct events_conn *c, int64_t now)
{
    h2o_iovec_t v = h2o_iovec_init(c->buf, c->len);
    c->in_flight = 1;
    c->in_flight_since = now;
    c->last_write_ms = now;
    h2o_send(c->req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* Shuts the client's socket: h2o's next read or write fails and it closes the connection,
 * which calls on_stop. */
static void drop(struct events_conn *c)
{
    h2o_socket_t *sock = c->req->conn->callbacks->get_socket != NULL
                             ? c->req->conn->callbacks->get_socket(c->req->conn)
                             : NULL;
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}

/* Whether some client of @p w may take a replicas event now: only then is the /replicas JSON
 * built (at most EVENTS_REPLICAS_EVERY_MS apart per client, while ticks are far closer). */
static int replicas_due(const struct worker *w, int64_t now)
{
    for (const struct events_conn *c = w->events; c != NULL; c = c->next)
        if (!c->in_flight && (!c->greeted || now - c->replicas_sent_ms >= EVENTS_REPLICAS_EVERY_MS))
            return 1;
    return 0;
}

void events_tick(struct worker *w, int64_t now)
{
    if (w->events == NULL)
        return;
    int stopping = atomic_load(&g_replica.stopping);
    size_t rlen = 0;
    char *replicas =
        !stopping && replicas_due(w, now) ? tally_presence_json(&g_replica.presence, &rlen) : NULL;
    uint64_t rhash = replicas != NULL ? fnv1a(replicas, rlen) : 0;
    for (struct events_conn *c = w->events, *next; c != NULL; c = next) {
        next = c->next;
        if (c->in_flight) {
            if (!c->dropped && (now - c->in_flight_since >= EVENTS_STALL_MS || stopping)) {
                tally_debug("events: dropping a client that took no write for %" PRId64 " ms",
                            now - c->in_flight_since);
                c->dropped = 1;
                atomic_fetch_add(&g_replica.events_dropped, 1);
                drop(c);
            }
            continue;
        }
        int expired = c->end_ms != 0 && now >= c->end_ms;
        if (stopping || expired) { /* the drain or its lifetime: end the stream (the client may reconnect) */
            h2o_req_t *req = c->req;
            if (expired)
                atomic_fetch_add(&g_replica.events_expired, 1);
            unlink_conn(c); /* h2o forgets the generator with the final send: no on_stop */
            h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
            continue;
        }
        if (compose(c, now, replicas, rlen, rhash))
            send_now(c, now);
    }
    free(replicas);
}

void events_handle(struct worker *w, h2o_req_t *req, int head)
{
    int max = g_replica.cfg.events_max_clients;
    if (head) {
        tally_http_respond(req, 200, "OK", "text/event-stream", NULL, SIZE_MAX);
        return;
    }
    if (atomic_fetch_add(&g_replica.events_clients, 1) >= max) {
        atomic_fetch_sub(&g_replica.events_clients, 1);
        atomic_fetch_add(&g_replica.events_refused, 1);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
        static const char body[] = "{\"error\":\"too_many_event_clients\",\"message\":\"EVENTS_MAX_CLIENTS "
                                   "event streams are open on this replica; try again later\"}";
        tally_http_respond(req, 503, "Service Unavailable", "application/json", body, sizeof(body) - 1);
        return;
    }
    struct events_conn *c = h2o_mem_alloc_pool(&req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->gen.proceed = on_proceed;
    c->gen.stop = on_stop;
    c->req = req;
    c->w = w;
    c->next = w->events;
    if (w->events != NULL)
        w->events->prev = c;
    w->events = c;
    int64_t now = tally_now_ms();
    if (g_replica.cfg.events_max_lifetime_s > 0) {
        int64_t life = (int64_t)g_replica.cfg.events_max_lifetime_s * 1000;
        uint64_t spread = fnv1a((const char *)&c, sizeof(c)) ^ (uint64_t)now;
        c->end_ms = now + life - (int64_t)(spread % (uint64_t)(life / 10 + 1));
    }
    tally_http_answer(req, 200, "OK", "text/event-stream", SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    h2o_start_response(req, &c->gen);
    size_t rlen = 0;
    char *replicas = tally_presence_json(&g_replica.presence, &rlen);
    compose(c, now, replicas, rlen, replicas != NULL ? fnv1a(replicas, rlen) : 0);
    free(replicas);
    send_now(c, now); /* at least retry: goes out, so the client sees the stream open */
}
