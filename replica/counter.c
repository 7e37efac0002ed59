/* The group commit: every counted request of one loop pass rides on one increment.
 *
 * counter_submit() parks a request in the worker's open batch. At the end of the loop
 * pass (uv_check) counter_flush() sends the batch (batch_script.c: INCRBY total_count n)
 * pipelined on the worker's one Redis connection and moves it to the in-flight FIFO. Redis
 * answers T, the total after the batch; the batch owns the totals T-n+1 .. T and hands them
 * out in arrival order, so every counted request gets its own M. Replies come back in the
 * order the commands were sent, so the FIFO's head is always the batch being answered.
 *
 * Exactly once across reconnects: if the connection fails, hiredis answers every command
 * in flight with NULL, and nobody can tell whether those increments were applied. So each
 * batch carries a sequence number, and the script records "seq:total" in a small ring (a
 * hash per worker and process life) atomically with its INCRBY. Lost batches wait in the
 * retry FIFO and are sent again, in order, with the same numbers once Redis is back: a
 * batch that was applied gets its recorded total back instead of a second increment, so
 * its requests still get their real totals. A batch still unanswered REDIS_TIMEOUT_MS
 * after its first send gets 503 (attempted, not acknowledged: the Jepsen counter rule). */
#include <stdlib.h>
#include <string.h>

#include "batch_script.h"
#include "counter.h"
#include "log.h"
#include "publish.h"
#include "replica.h"

static void on_req_dispose(void *obj)
{
    struct pending **slot = obj;
    if (*slot != NULL)
        (*slot)->req = NULL;
}

static struct batch *batch_new(struct worker *w)
{
    struct batch *b = w->free_batches;
    if (b != NULL) {
        w->free_batches = b->next;
    } else {
        if ((b = malloc(sizeof(*b))) == NULL)
            return NULL;
        b->keys = NULL; /* grown by the first key, kept across reuse */
        b->keys_cap = 0;
    }
    batch_reset(b, w);
    return b;
}

static void batch_release(struct worker *w, struct batch *b)
{
    b->next = w->free_batches;
    w->free_batches = b;
}

/* Hands every request of @p b the result "not counted: @p message" and frees the batch. */
static void batch_fail(struct worker *w, struct batch *b, const char *message)
{
    const struct counter_result failed = {.message = message};
    for (size_t i = 0; i < b->n; i++) {
        h2o_req_t *req = batch_detach(&b->items[i]);
        if (req != NULL)
            b->items[i].done(req, b->items[i].tag, &failed);
    }
    w->waiting -= b->n;
    b->n = 0;
    batch_release(w, b);
}

static const char lost_message[] =
    "the connection to Redis was lost and did not come back in time; the request "
    "may or may not have been counted";

/* A batch whose fate is unknown or that Redis refused: 503 for its requests. */
static void batch_error(struct worker *w, struct batch *b, const char *message)
{
    atomic_fetch_add_explicit(&g_replica.stats.redis_errors, 1, memory_order_relaxed);
    batch_fail(w, b, message);
}

void counter_offer(uint64_t epoch, uint64_t total, int64_t now_ms)
{
    tally_mqtt_link_set_epoch(&g_replica.mqtt, epoch);
    if (tally_cache_offer_epoch(&g_replica.cache, epoch, total, now_ms) == 2)
        tally_warn("cluster epoch %llu (Redis was restored on purpose): the cached total starts again from "
                   "%llu; totals of earlier epochs move nothing any more",
                   (unsigned long long)epoch, (unsigned long long)total);
}

static void on_batch_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Queues @p b on the connection (first send or retry). Returns TALLY_ERR if it cannot. */
static int send_batch(struct worker *w, struct batch *b)
{
    if (!w->redis_seeded || w->redis.ac == NULL)
        return TALLY_ERR;
    struct batch_send a = {.key_ttl_ms = (uint64_t)g_replica.cfg.idempotency_ttl_s * 1000,
                           .instance = g_replica.instance};
    tally_cache_snapshot(&g_replica.cache, &a.epoch, &a.floor);
    if (b->sends == 0) {
        b->sent_floor = a.floor;
        /* A keyed answer is written in Redis with its N, so the N is taken now, once. */
        if (b->nkeys > 0) {
            uint64_t base = atomic_fetch_add_explicit(&g_replica.served, b->nkeys, memory_order_relaxed);
            for (size_t j = 0; j < b->nkeys; j++)
                b->items[b->leaders[j]].key_n = base + j + 1;
        }
    }
    size_t len;
    const char *cmd = batch_script_command(&w->script, b, &a, &len);
    if (cmd == NULL || redisAsyncFormattedCommand(w->redis.ac, on_batch_reply, b, cmd, len) != REDIS_OK)
        return TALLY_ERR;
    b->sent_ms = tally_now_ms();
    b->sent_ns = uv_hrtime();
    b->sends++;
    batch_fifo_push(&w->inflight, b);
    return TALLY_OK;
}

static int expired(const struct batch *b, int64_t now_ms)
{
    return now_ms - b->first_sent_ms >= g_replica.cfg.redis_timeout_ms;
}

/* Lost with the connection (NULL), applied or not; or not applied: a script cache flushed
 * under us (NOSCRIPT), or a node demoted under us by a Sentinel failover, which refuses the
 * script's first write. Returns 1 if @p b waits to be sent again once Redis is back (the
 * link reconnects, which loads the script again and finds the master). */
static int resend_later(struct worker *w, struct batch *b, const redisReply *reply)
{
    int noscript =
        reply != NULL && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
    int demoted =
        reply != NULL && reply->type == REDIS_REPLY_ERROR && tally_redis_reply_not_master(reply->str);
    if ((reply != NULL && !noscript && !demoted) || expired(b, tally_now_ms()) ||
        atomic_load(&g_replica.stopping))
        return 0;
    batch_fifo_push(&w->retry, b);
    if (noscript)
        tally_redis_link_drop(&w->redis, "the batch script vanished from Redis's script cache");
    else if (demoted) {
        atomic_fetch_add(&w->redis.not_master, 1);
        tally_redis_link_drop(&w->redis, "the node is no longer the master (READONLY)");
    }
    return 1;
}

/* Answers every request of @p b and returns the batch to the free list. @p counted: the
 * requests without a key count (the top of the batch's range is theirs), else they fail with
 * @p message. A keyed request gets its key's answer: its own, or a stored one (replayed). */
static void batch_answer(struct worker *w, struct batch *b, int counted, const char *message)
{
    if (counted && b->total > w->newest_total)
        w->newest_total = b->total;
    size_t plain = 0;
    unsigned long long stored = 0, replays = 0, gone = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct pending *it = &b->items[i];
        struct counter_result res = batch_result(b, i, plain, counted, message);
        if (it->lead < 0) {
            plain++;
        } else if (it->lead == (int)i) {
            stored += b->items[i].key_state == KEY_STORED;
            gone += b->items[i].key_state == KEY_GONE;
        }
        replays += res.replayed;
        /* A request whose client left was still counted in Redis: it keeps its M, unseen. */
        h2o_req_t *req = batch_detach(it);
        if (req == NULL)
            continue;
        if (res.counted && it->lead < 0)
            res.n = atomic_fetch_add_explicit(&g_replica.served, 1, memory_order_relaxed) + 1;
        it->done(req, it->tag, &res);
    }
    if (b->nkeys > 0) {
        atomic_fetch_add_explicit(&g_replica.stats.idem_stored, stored, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_replica.stats.idem_replays, replays, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_replica.stats.idem_gone, gone, memory_order_relaxed);
    }
    w->waiting -= b->n;
    b->n = 0;
    batch_release(w, b);
}

/* The script answered @p b with @p r (read): lifts, the cache, then the answers. */
static void batch_applied(struct worker *w, struct batch *b, const struct batch_reply *r)
{
    if (r->answers != NULL)
        batch_read_answers(b, r->answers, g_replica.instance);
    if (r->lifted > 0) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_lifted, r->lifted, memory_order_relaxed);
        tally_warn("redis: %s was %llu below the highest total already handed out; raised it back so no "
                   "total is given twice (did Redis restart from an AOF that lost writes?)",
                   TALLY_TOTAL_KEY, (unsigned long long)r->lifted);
    }
    b->epoch = r->epoch;
    b->first = r->first;
    b->total = r->total;
    /* In synchronous mode a total enters the cache (and so the lift floor and MQTT) only
     * once confirmed: one a failover loses must not be taken for handed out. */
    if (g_replica.cfg.redis_wait_replicas == 0 || r->refused)
        counter_offer(b->epoch, b->total, tally_now_ms());
    if (r->refused) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_refused, 1, memory_order_relaxed);
        tally_warn("redis: lost writes were lifted back over a batch of %zu whose reply never came; not "
                   "applying it again (503: counted once or not at all, never twice)",
                   b->n);
        /* Its keys Redis still holds have their answers; the rest: 503. */
        batch_answer(w, b, 0,
                     "Redis lost writes and this request's increment may be among those restored; it was "
                     "not applied again");
        return;
    }
    if (g_replica.cfg.redis_wait_replicas > 0) {
        /* Synchronous mode: applied on the master, answered once the WAIT sent after it
         * confirms the replicas hold it (on_wait_reply). */
        batch_fifo_push(&w->confirm, b);
        return;
    }
    batch_answer(w, b, 1, NULL);
}

static void on_batch_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct batch *b = privdata;
    struct worker *w = b->worker;
    redisReply *reply = r;
    (void)ac;
    /* Replies arrive in send order: this batch is the FIFO head. */
    batch_fifo_pop(&w->inflight);
    if (reply != NULL)
        tally_histogram_observe(&w->redis_duration, uv_hrtime() - b->sent_ns);
    if (resend_later(w, b, reply))
        return;
    struct batch_reply read;
    if (reply == NULL) {
        batch_error(w, b, lost_message);
    } else if (batch_reply_read(b, reply, &read) != TALLY_OK) {
        if (reply->type == REDIS_REPLY_ERROR)
            tally_error("redis: the increment failed: %s", reply->str);
        else
            tally_error("redis: the increment answered something that is not a total for %zu requests", b->n);
        batch_error(w, b, "Redis refused the increment");
    } else {
        batch_applied(w, b, &read);
    }
}

static void send_wait(struct worker *w);

static void wait_warn(const redisReply *reply)
{
    atomic_fetch_add_explicit(&g_replica.stats.redis_wait_timeouts, 1, memory_order_relaxed);
    unsigned long long k = atomic_load(&g_replica.stats.redis_wait_timeouts);
    if (tally_log_every_power_of_two(k))
        tally_warn("redis: WAIT confirmed %lld of %d replicas within %d ms; answering 503 (%llu so far)",
                   reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1LL,
                   g_replica.cfg.redis_wait_replicas, g_replica.cfg.redis_wait_timeout_ms, k);
}

/* Synchronous mode: the replicas hold everything written before it once WAIT says so.
 * Replies come in order, so when its answer arrives the confirm FIFO holds exactly the
 * batches sent before it. */
static void on_wait_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct worker *w = privdata;
    redisReply *reply = r;
    int64_t now = tally_now_ms();
    (void)ac;
    /* Approximate for the WAITs still pending: their deadline starts now. */
    w->wait_sent_ms = --w->waits_pending > 0 ? now : 0;
    int confirmed = reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
                    reply->integer >= g_replica.cfg.redis_wait_replicas;
    if (reply != NULL && !confirmed)
        wait_warn(reply);
    struct batch *b;
    while ((b = batch_fifo_pop(&w->confirm)) != NULL) {
        if (confirmed) {
            counter_offer(b->epoch, b->total, now);
            batch_answer(w, b, 1, NULL);
        } else if (reply == NULL && !expired(b, now) && !atomic_load(&g_replica.stopping)) {
            /* Applied on a master that is gone: resend with its id. The ring answers its
             * total if the next master has it, or it is applied there once. */
            batch_fifo_push(&w->retry, b);
        } else {
            batch_fail(w, b,
                       "Redis did not confirm in time that enough replicas hold this increment "
                       "(REDIS_WAIT_REPLICAS); it may or may not be counted");
        }
    }
    /* Batches sent while this one waited: one WAIT for them all, written at the end of the
     * pass (not from inside this reply callback). */
    if (w->wait_needed && reply != NULL)
        send_wait(w);
}

/* One WAIT at a time: Redis blocks the connection while a WAIT waits, so batches sent
 * meanwhile queue behind it; a single WAIT sent when it returns covers all of them (group
 * commit, again). */
static void send_wait(struct worker *w)
{
    if (g_replica.cfg.redis_wait_replicas == 0 || w->redis.ac == NULL)
        return;
    if (w->waits_pending > 0) {
        w->wait_needed = 1;
        return;
    }
    w->wait_needed = 0;
    if (redisAsyncCommand(w->redis.ac, on_wait_reply, w, "WAIT %d %d", g_replica.cfg.redis_wait_replicas,
                          g_replica.cfg.redis_wait_timeout_ms) == REDIS_OK) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_waits, 1, memory_order_relaxed);
        w->waits_pending++;
        if (w->wait_sent_ms == 0)
            w->wait_sent_ms = tally_now_ms();
    }
}

static void send_open_batch(struct worker *w)
{
    struct batch *b = w->open;
    if (b == NULL || b->n == 0)
        return;
    w->open = NULL;
    b->seq = w->next_seq++;
    b->sends = 0;
    b->first_sent_ms = tally_now_ms();
    if (send_batch(w, b) != TALLY_OK) {
        batch_error(w, b, "Redis is not reachable; the request was not counted");
        return;
    }
    atomic_fetch_add_explicit(&g_replica.stats.redis_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_replica.stats.redis_batched, b->n, memory_order_relaxed);
    send_wait(w);
    /* On the wire in this pass, not the next. A failed write answers the batch (NULL reply)
     * from inside this call, so it must already be in the FIFO. */
    tally_redis_uv_flush(w->redis.ac);
}

void counter_resend_lost(struct worker *w)
{
    int64_t now = tally_now_ms();
    struct batch *b;
    int sent = 0;
    while ((b = batch_fifo_pop(&w->retry)) != NULL) {
        if (expired(b, now) || send_batch(w, b) != TALLY_OK) {
            batch_error(w, b, lost_message);
            continue;
        }
        atomic_fetch_add_explicit(&g_replica.stats.redis_retries, 1, memory_order_relaxed);
        sent++;
    }
    /* No flush here: this runs inside a hiredis reply callback, where a failed write would
     * free the context under hiredis's feet. The adapter writes at the end of this pass. */
    if (sent > 0) {
        send_wait(w);
        tally_info("redis: resent %d batch%s lost with the connection", sent, sent == 1 ? "" : "es");
    }
}

void counter_fail_waiting(struct worker *w)
{
    static const char stopping[] = "the replica is stopping; the request may or may not have been counted";
    struct batch *b;
    while ((b = batch_fifo_pop(&w->confirm)) != NULL)
        batch_fail(w, b, stopping);
    while ((b = batch_fifo_pop(&w->retry)) != NULL)
        batch_fail(w, b, stopping);
}

int counter_can_count(const struct worker *w)
{
    return w->redis_seeded;
}

/* Parks @p req in the open batch; returns its item, or NULL once @p done has had a failure. */
static struct pending *submit(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag)
{
    if (!w->redis_seeded || (w->open == NULL && (w->open = batch_new(w)) == NULL)) {
        const struct counter_result failed = {
            .message =
                w->redis_seeded ? "out of memory" : "Redis is not reachable; the request was not counted"};
        done(req, tag, &failed);
        return NULL;
    }
    struct pending **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_dispose);
    struct pending *p = &w->open->items[w->open->n++];
    p->req = req;
    p->done = done;
    p->tag = tag;
    p->slot_ = slot;
    p->lead = -1;
    *slot = p;
    w->waiting++;
    return p;
}

void counter_submit(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag)
{
    if (submit(w, req, done, tag) == NULL)
        return;
    w->open->nplain++;
    if (w->open->n == BATCH_MAX)
        send_open_batch(w); /* a full batch goes now; the pass may bring more */
}

void counter_submit_keyed(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag, const char *key,
                          size_t key_len)
{
    struct pending *p = submit(w, req, done, tag);
    if (p == NULL)
        return;
    struct batch *b = w->open;
    if (batch_add_key(b, (size_t)(p - b->items), key, key_len) != TALLY_OK) {
        /* Out of memory: this request fails alone (it is the batch's last item). */
        batch_detach(p);
        b->n--;
        w->waiting--;
        const struct counter_result failed = {.message = "out of memory"};
        done(req, tag, &failed);
        return;
    }
    if (b->n == BATCH_MAX)
        send_open_batch(w);
}

void counter_flush(struct worker *w)
{
    send_open_batch(w);
    publish_total(w);
}

void counter_check_deadline(struct worker *w, int64_t now_ms)
{
    /* Lost batches whose time ran out while Redis stayed away. */
    while (w->retry.head != NULL && expired(w->retry.head, now_ms))
        batch_error(w, batch_fifo_pop(&w->retry), lost_message);
    int wait_limit = g_replica.cfg.redis_timeout_ms + g_replica.cfg.redis_wait_timeout_ms;
    if (w->wait_sent_ms != 0 && now_ms - w->wait_sent_ms > wait_limit) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_timeouts, 1, memory_order_relaxed);
        tally_warn("redis: no answer to WAIT within %d ms; dropping the connection", wait_limit);
        tally_redis_link_drop(&w->redis, "WAIT timeout");
        return;
    }
    struct batch *head = w->inflight.head;
    if (head == NULL || now_ms - head->sent_ms <= g_replica.cfg.redis_timeout_ms)
        return;
    atomic_fetch_add_explicit(&g_replica.stats.redis_timeouts, 1, memory_order_relaxed);
    tally_warn("redis: no reply within %d ms; dropping the connection", g_replica.cfg.redis_timeout_ms);
    tally_redis_link_drop(&w->redis, "reply timeout");
}
