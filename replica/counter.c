/* The group commit: every counted request of one loop pass rides on one INCRBY.
 *
 * counter_submit() parks a request in the worker's open batch. At the end of the loop
 * pass (uv_check) counter_flush() sends "INCRBY total_count n" pipelined on the worker's
 * one Redis connection and moves the batch to the in-flight FIFO. Redis answers T, the
 * total after the batch; the batch owns the totals T-n+1 .. T and hands them out in
 * arrival order, so every counted request gets its own M. Replies come back in the order
 * the commands were sent, so the FIFO's head is always the batch being answered.
 *
 * If the connection fails, hiredis answers every command in flight with NULL: those
 * requests get 503, since nobody can tell whether their increment was applied (the Jepsen
 * counter rule allows that: attempted, not acknowledged). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "replica.h"

static void on_req_dispose(void *obj)
{
    struct pending **slot = obj;
    if (*slot != NULL)
        (*slot)->req = NULL;
}

/* Detaches @p p from its request so the request pool no longer points at the batch.
 * Returns the request, or NULL if the client is already gone. */
static h2o_req_t *detach(struct pending *p)
{
    if (p->slot_ != NULL)
        *p->slot_ = NULL;
    p->slot_ = NULL;
    h2o_req_t *req = p->req;
    p->req = NULL;
    return req;
}

static struct batch *batch_new(struct worker *w)
{
    struct batch *b = w->free_batches;
    if (b != NULL)
        w->free_batches = b->next;
    else if ((b = malloc(sizeof(*b))) == NULL)
        return NULL;
    b->next = NULL;
    b->worker = w;
    b->n = 0;
    b->sent_ms = 0;
    return b;
}

static void batch_release(struct worker *w, struct batch *b)
{
    b->next = w->free_batches;
    w->free_batches = b;
}

/* Answers every request of @p b with 503; the batch is left empty. */
static void batch_fail(struct worker *w, struct batch *b, const char *message)
{
    for (size_t i = 0; i < b->n; i++) {
        h2o_req_t *req = detach(&b->items[i]);
        if (req != NULL)
            routes_unavailable(req, message);
    }
    w->waiting -= b->n;
    b->n = 0;
}

static void on_incrby(redisAsyncContext *ac, void *r, void *privdata)
{
    struct batch *b = privdata;
    struct worker *w = b->worker;
    redisReply *reply = r;
    uint64_t first;
    (void)ac;

    /* Replies arrive in send order: this batch is the FIFO head. */
    w->inflight_head = b->next;
    if (w->inflight_head == NULL)
        w->inflight_tail = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER ||
        tally_batch_first(reply->integer, b->n, &first) != TALLY_OK) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_errors, 1, memory_order_relaxed);
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
            tally_error("redis: INCRBY failed: %s", reply->str);
        else if (reply != NULL)
            tally_error("redis: INCRBY answered something that is not a total for %zu requests", b->n);
        batch_fail(w, b,
                   reply == NULL ? "the connection to Redis was lost; the request was not counted"
                                 : "Redis refused the increment");
        batch_release(w, b);
        return;
    }

    uint64_t total = (uint64_t)reply->integer;
    tally_cache_offer(&g_replica.cache, total, tally_now_ms());
    if (total > w->newest_total)
        w->newest_total = total;
    for (size_t i = 0; i < b->n; i++) {
        h2o_req_t *req = detach(&b->items[i]);
        /* A request whose client left was still counted in Redis: it keeps its M, unseen. */
        if (req != NULL) {
            uint64_t n = atomic_fetch_add_explicit(&g_replica.served, 1, memory_order_relaxed) + 1;
            routes_counted(req, b->items[i].json, n, first + i);
        }
    }
    w->waiting -= b->n;
    b->n = 0;
    batch_release(w, b);
}

static void send_open_batch(struct worker *w)
{
    struct batch *b = w->open;
    if (b == NULL || b->n == 0)
        return;
    w->open = NULL;
    if (w->redis.state != TALLY_REDIS_UP || w->redis.ac == NULL ||
        redisAsyncCommand(w->redis.ac, on_incrby, b, "INCRBY " REPLICA_REDIS_KEY " %llu",
                          (unsigned long long)b->n) != REDIS_OK) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_errors, 1, memory_order_relaxed);
        batch_fail(w, b, "Redis is not reachable; the request was not counted");
        batch_release(w, b);
        return;
    }
    b->sent_ms = tally_now_ms();
    atomic_fetch_add_explicit(&g_replica.stats.redis_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_replica.stats.redis_batched, b->n, memory_order_relaxed);
    if (w->inflight_tail != NULL)
        w->inflight_tail->next = b;
    else
        w->inflight_head = b;
    w->inflight_tail = b;
    /* On the wire in this pass, not the next. A failed write answers the batch (NULL reply)
     * from inside this call, so it must already be in the FIFO. */
    tally_redis_uv_flush(w->redis.ac);
}

void counter_submit(struct worker *w, h2o_req_t *req, int json)
{
    if (!w->redis_seeded) {
        routes_unavailable(req, "Redis is not reachable; the request was not counted");
        return;
    }
    if (w->open == NULL && (w->open = batch_new(w)) == NULL) {
        routes_unavailable(req, "out of memory");
        return;
    }
    struct pending **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_dispose);
    struct pending *p = &w->open->items[w->open->n++];
    p->req = req;
    p->json = json;
    p->slot_ = slot;
    *slot = p;
    w->waiting++;
    if (w->open->n == BATCH_MAX)
        send_open_batch(w); /* a full batch goes now; the pass may bring more */
}

static void on_publish_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    w->publish_timer_armed = 0;
    counter_publish(w);
}

/* Coalesced publishing: only totals Redis returned, at most one per loop pass, and under
 * load at most one per PUBLISH_INTERVAL_US. After a quiet spell the total goes out at once;
 * one held back by the interval goes out on the next pass or from the trailing timer, so
 * the newest total is never left unpublished. */
void counter_publish(struct worker *w)
{
    if (w->newest_total <= w->published_total ||
        !atomic_load_explicit(&g_replica.mqtt.connected, memory_order_relaxed))
        return;
    uint64_t now = uv_hrtime();
    uint64_t interval = (uint64_t)g_replica.cfg.publish_interval_us * 1000;
    if (now - w->last_publish_ns < interval) {
        if (!w->publish_timer_armed) {
            uint64_t wait_ms = (w->last_publish_ns + interval - now + 999999) / 1000000;
            uv_timer_start(&w->publish_timer, on_publish_timer, wait_ms, 0);
            w->publish_timer_armed = 1;
        }
        return;
    }
    char payload[24];
    size_t len = tally_total_format(payload, w->newest_total);
    if (tally_mqtt_link_publish(&g_replica.mqtt, REPLICA_TOPIC_TOTAL, payload, len, 0, 0) == TALLY_OK) {
        w->published_total = w->newest_total;
        w->last_publish_ns = now;
    }
}

void counter_flush(struct worker *w)
{
    send_open_batch(w);
    counter_publish(w);
}

void counter_check_deadline(struct worker *w, int64_t now_ms)
{
    struct batch *head = w->inflight_head;
    if (head == NULL || now_ms - head->sent_ms <= g_replica.cfg.redis_timeout_ms)
        return;
    atomic_fetch_add_explicit(&g_replica.stats.redis_timeouts, 1, memory_order_relaxed);
    tally_warn("redis: no reply within %d ms; dropping the connection", g_replica.cfg.redis_timeout_ms);
    tally_redis_link_drop(&w->redis, "reply timeout");
}

static void on_seed(redisAsyncContext *ac, void *r, void *privdata)
{
    struct worker *w = privdata;
    redisReply *reply = r;
    uint64_t total = 0;
    (void)ac;
    if (reply == NULL)
        return; /* connection lost again; the link reconnects */
    if (reply->type == REDIS_REPLY_STRING && tally_total_parse(reply->str, reply->len, &total) == TALLY_OK) {
        /* parsed */
    } else if (reply->type != REDIS_REPLY_NIL) {
        tally_error("redis: key " REPLICA_REDIS_KEY " does not hold a total (%s); not serving",
                    reply->type == REDIS_REPLY_ERROR ? reply->str : "not an integer");
        tally_redis_link_drop(&w->redis, "bad " REPLICA_REDIS_KEY);
        return;
    }
    tally_cache_offer(&g_replica.cache, total, tally_now_ms());
    if (!w->redis_seeded) {
        w->redis_seeded = 1;
        atomic_fetch_add(&g_replica.redis_ready, 1);
    }
    tally_debug("redis: seeded the cache with %llu", (unsigned long long)total);
}

void counter_on_redis_up(tally_redis_link_t *link)
{
    struct worker *w = link->data;
    /* Ready only once the cache holds the Redis total: a fresh process never knows less. */
    if (redisAsyncCommand(link->ac, on_seed, w, "GET " REPLICA_REDIS_KEY) != REDIS_OK)
        tally_redis_link_drop(link, "cannot send GET");
}

void counter_on_redis_down(tally_redis_link_t *link, const char *why)
{
    struct worker *w = link->data;
    (void)why;
    if (w->redis_seeded) {
        w->redis_seeded = 0;
        atomic_fetch_sub(&g_replica.redis_ready, 1);
    }
    /* hiredis has already answered every command in flight with NULL: the FIFO is empty. */
}
