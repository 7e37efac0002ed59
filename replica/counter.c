/* The group commit: every counted request of one loop pass rides on one increment.
 *
 * counter_submit() parks a request in the worker's open batch. At the end of the loop
 * pass (uv_check) counter_flush() sends the batch (batch_script below: INCRBY total_count n)
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

#include "idempotency.h"
#include "log.h"
#include "replica.h"
#include "resp.h"

/* The fate of an Idempotency-Key in its batch (struct pending's key_state). */
enum {
    KEY_SENT,   /* no answer from Redis yet */
    KEY_STORED, /* new: counted by this batch, its answer stored with it */
    KEY_REPLAY, /* Redis held an answer: not counted, that answer is given */
    KEY_GONE,   /* the batch was applied, but the key's answer is not in Redis any more */
};

/* KEYS[1] total_count, KEYS[2] the worker's ring, KEYS[3] the lift mark, KEYS[4] the cluster
 * epoch, KEYS[5..] the batch's Idempotency-Keys (tally:idem:K, each once); ARGV: seq, n (the
 * requests without a key), ring size, ring TTL (ms), resend (1 if the batch was sent before),
 * floor (the highest total this replica knows of now), sent floor (the same when the batch
 * was first sent), the epoch the floor belongs to; with keys also: the keys' TTL (ms), this
 * instance, then each key's N. Only a resend can find its own record: a first send skips the
 * lookup. The ring's expiry is refreshed every 256th batch. Returns {total after the batch,
 * amount lifted, refused (0 or 1), the cluster epoch}, and with keys a fifth element: for
 * each key, its M if this call stored its answer, else the answer Redis held ("N M
 * instance") or nil.
 *
 * Idempotency-Keys: a key Redis does not hold is new: it counts, and its answer is written
 * in this same call, so the count and the key move together or not at all. A key Redis holds
 * counts nothing and gets its stored answer. The requests without a key take the top of the
 * batch's range, so a resend that finds its record can still hand them their totals; its
 * keys' answers are read back.
 *
 * The epoch (tally:epoch, absent: 0) is raised by hand after a deliberate restore of an
 * older Redis (docs/operations.md). A floor learned in another epoch than Redis's is not
 * used: what was handed out before the restore must not lift the restored total back.
 *
 * The floor repairs a Redis that came back with less than it had handed out (an AOF that
 * lost its last second): if the total before this batch is below a total already seen,
 * Redis is first raised to it (still INCRBY only), so no M is ever handed out twice. The
 * common case costs nothing more than the INCRBY.
 *
 * A lift stands for increments Redis lost, and among them may be a batch whose reply never
 * arrived: its effect was seen (a peer's later total, the publisher's GET), its record went
 * with the lost writes. Applying its resend would count it twice. So every lift leaves its
 * top in the lift mark, and a resend not found in the ring, first sent while the replica
 * knew less than that top, is refused: its requests get 503 (counted once or not at all,
 * which the Jepsen rule allows; never twice). A resend first sent above the top cannot lie
 * inside the lifted range and is applied as usual. A mark that is not a number counts as
 * none, and the next lift writes over it. Totals pass through Lua numbers and are
 * written with %d: exact up to 2^53. */
static const char batch_script[] =
    "local seq = ARGV[1] "
    "local slot = tostring(tonumber(seq) % tonumber(ARGV[3])) "
    "local floor = tonumber(ARGV[6]) "
    "local epoch = tonumber(redis.call('GET', KEYS[4]) or 0) or 0 "
    "if epoch ~= tonumber(ARGV[8]) then floor = 0 end "
    "local nk = #KEYS - 4 "
    "local function reply(total, lifted, refused, answers) "
    "  if nk == 0 then return {total, lifted, refused, epoch} end "
    "  if not answers then "
    "    answers = {} "
    "    for i = 1, nk do answers[i] = redis.call('GET', KEYS[4 + i]) end "
    "  end "
    "  return {total, lifted, refused, epoch, answers} "
    "end "
    "local function mark() return tonumber(redis.call('GET', KEYS[3]) or 0) or 0 end "
    "local function lift_to(before) "
    "  local lift = floor - before "
    "  if lift <= 0 then return 0 end "
    "  redis.call('INCRBY', KEYS[1], lift) "
    "  if floor > mark() then "
    "    redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[4]) "
    "  end "
    "  return lift "
    "end "
    "local lifted = 0 "
    "if ARGV[5] == '1' then "
    "  local prev = redis.call('HGET', KEYS[2], slot) "
    "  if prev then "
    "    local sep = string.find(prev, ':', 1, true) "
    "    if sep and string.sub(prev, 1, sep - 1) == seq then "
    "      local t = string.sub(prev, sep + 1) "
    "      if t == 'r' then return reply(tonumber(redis.call('GET', KEYS[1]) or 0), 0, 1) end "
    "      return reply(tonumber(t), 0, 0) "
    "    end "
    "  end "
    "  lifted = lift_to(tonumber(redis.call('GET', KEYS[1]) or 0)) "
    "  if tonumber(ARGV[7]) < mark() then "
    "    redis.call('HSET', KEYS[2], slot, seq .. ':r') "
    "    redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
    "    return reply(tonumber(redis.call('GET', KEYS[1]) or 0), lifted, 1) "
    "  end "
    "end "
    "local function record(total) "
    "  redis.call('HSET', KEYS[2], slot, seq .. ':' .. string.format('%d', total)) "
    "  if ARGV[5] == '1' or tonumber(seq) % 256 == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end "
    "end "
    "if nk == 0 then "
    "  local n = tonumber(ARGV[2]) "
    "  local total = redis.call('INCRBY', KEYS[1], n) "
    "  local more = lift_to(total - n) "
    "  total = total + more "
    "  record(total) "
    "  return reply(total, lifted + more, 0) "
    "end "
    /* With keys: the total first (nothing is written if it is not a number), then each key
     * SET only if absent (NX), its old answer returned if present (GET): one call a key. */
    "local before = tonumber(redis.call('GET', KEYS[1]) or 0) "
    "if not before then return redis.error_reply('ERR total_count is not an integer') end "
    "local more = lift_to(before) "
    "local m = before + more "
    "local answers = {} "
    "for i = 1, nk do "
    "  local held = redis.call('SET', KEYS[4 + i], "
    "                          ARGV[10 + i] .. ' ' .. string.format('%d', m + 1) .. ' ' .. ARGV[10], "
    "                          'NX', 'PX', ARGV[9], 'GET') "
    "  if held then answers[i] = held else m = m + 1; answers[i] = m end "
    "end "
    "local total = redis.call('INCRBY', KEYS[1], m - before - more + tonumber(ARGV[2])) "
    "record(total) "
    "return reply(total, lifted + more, 0, answers)";

/* The ring must outlast any batch that can still be retried: far more slots than batches in
 * flight, and an hour (a retry never waits longer than REDIS_TIMEOUT_MS). */
#define RING_SLOTS 4096
#define RING_TTL_MS 3600000

static void fifo_push(struct batch **head, struct batch **tail, struct batch *b)
{
    b->next = NULL;
    if (*tail != NULL)
        (*tail)->next = b;
    else
        *head = b;
    *tail = b;
}

static struct batch *fifo_pop(struct batch **head, struct batch **tail)
{
    struct batch *b = *head;
    if (b != NULL) {
        *head = b->next;
        if (*head == NULL)
            *tail = NULL;
        b->next = NULL;
    }
    return b;
}

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
    if (b != NULL) {
        w->free_batches = b->next;
    } else {
        if ((b = malloc(sizeof(*b))) == NULL)
            return NULL;
        b->keys = NULL; /* grown by the first key, kept across reuse */
        b->keys_cap = 0;
    }
    b->next = NULL;
    b->worker = w;
    b->n = 0;
    b->nplain = 0;
    b->nkeys = 0;
    b->keys_len = 0;
    b->sent_ms = 0;
    return b;
}

static void batch_release(struct worker *w, struct batch *b)
{
    b->next = w->free_batches;
    w->free_batches = b;
}

/* Hands every request of @p b the result "not counted: @p message"; the batch is left empty. */
static void batch_fail(struct worker *w, struct batch *b, const char *message)
{
    const struct counter_result failed = {.message = message};
    for (size_t i = 0; i < b->n; i++) {
        h2o_req_t *req = detach(&b->items[i]);
        if (req != NULL)
            b->items[i].done(req, b->items[i].tag, &failed);
    }
    w->waiting -= b->n;
    b->n = 0;
}

static void on_batch_reply(redisAsyncContext *ac, void *r, void *privdata);
static void read_answers(struct batch *b, const redisReply *answers);
static void batch_answer(struct worker *w, struct batch *b, int counted, const char *message);
static long keys_append(struct batch *b, const char *bytes, size_t len);

void counter_offer(uint64_t epoch, uint64_t total, int64_t now_ms)
{
    tally_mqtt_link_set_epoch(&g_replica.mqtt, epoch);
    if (tally_cache_offer_epoch(&g_replica.cache, epoch, total, now_ms) == 2)
        tally_warn("cluster epoch %llu (Redis was restored on purpose): the cached total starts again from "
                   "%llu; totals of earlier epochs move nothing any more",
                   (unsigned long long)epoch, (unsigned long long)total);
}

/* The eight arguments every batch carries (see batch_script). */
static size_t put_args(char *cmd, const struct batch *b, uint64_t floor, uint64_t epoch)
{
    size_t len = tally_resp_bulk_u64(cmd, b->seq);
    len += tally_resp_bulk_u64(cmd + len, b->nplain);
    len += tally_resp_bulk_u64(cmd + len, RING_SLOTS);
    len += tally_resp_bulk_u64(cmd + len, RING_TTL_MS);
    len += tally_resp_bulk_u64(cmd + len, b->sends > 0);
    len += tally_resp_bulk_u64(cmd + len, floor);
    len += tally_resp_bulk_u64(cmd + len, b->sent_floor);
    len += tally_resp_bulk_u64(cmd + len, epoch);
    return len;
}

/* A batch with Idempotency-Keys: the head with 4 + k keys, the k keys, the eight arguments,
 * the keys' TTL, this instance and each key's N. Returns the length, 0 if out of memory. */
static size_t format_keyed(struct worker *w, const struct batch *b, uint64_t floor, uint64_t epoch)
{
    size_t inst = strlen(g_replica.instance);
    size_t need = w->batch_head_len + 2 * TALLY_RESP_U64_MAX + (10 + b->nkeys) * TALLY_RESP_U64_MAX + inst +
                  16 + b->nkeys * (sizeof(TALLY_IDEM_PREFIX) + TALLY_IDEM_KEY_MAX + 16);
    if (need > w->keyed_cmd_cap) {
        char *c = realloc(w->keyed_cmd, need);
        if (c == NULL)
            return 0;
        w->keyed_cmd = c;
        w->keyed_cmd_cap = need;
    }
    char *cmd = w->keyed_cmd;
    /* batch_head is *15, EVALSHA, the SHA, the key count 4, then the four keys: the same
     * with a longer array and 4 + k keys. */
    const size_t array_len = sizeof("*15\r\n") - 1, count_len = sizeof("$1\r\n4\r\n") - 1;
    size_t len = tally_resp_array(cmd, 15 + 2 + 2 * b->nkeys);
    memcpy(cmd + len, w->batch_head + array_len, w->batch_head_sha_end - array_len);
    len += w->batch_head_sha_end - array_len;
    len += tally_resp_bulk_u64(cmd + len, 4 + b->nkeys);
    size_t keys_at = w->batch_head_sha_end + count_len;
    memcpy(cmd + len, w->batch_head + keys_at, w->batch_head_len - keys_at);
    len += w->batch_head_len - keys_at;
    char name[sizeof(TALLY_IDEM_PREFIX) + TALLY_IDEM_KEY_MAX];
    memcpy(name, TALLY_IDEM_PREFIX, sizeof(TALLY_IDEM_PREFIX) - 1);
    for (size_t j = 0; j < b->nkeys; j++) {
        const struct pending *p = &b->items[b->leaders[j]];
        memcpy(name + sizeof(TALLY_IDEM_PREFIX) - 1, b->keys + p->key_off, p->key_len);
        len += tally_resp_bulk(cmd + len, name, sizeof(TALLY_IDEM_PREFIX) - 1 + p->key_len);
    }
    len += put_args(cmd + len, b, floor, epoch);
    len += tally_resp_bulk_u64(cmd + len, (uint64_t)g_replica.cfg.idempotency_ttl_s * 1000);
    len += tally_resp_bulk(cmd + len, g_replica.instance, inst);
    for (size_t j = 0; j < b->nkeys; j++)
        len += tally_resp_bulk_u64(cmd + len, b->items[b->leaders[j]].key_n);
    return len;
}

/* Queues @p b on the connection (first send or retry). Returns TALLY_ERR if it cannot. */
static int send_batch(struct worker *w, struct batch *b)
{
    if (!w->redis_seeded || w->redis.ac == NULL)
        return TALLY_ERR;
    uint64_t floor, epoch;
    tally_cache_snapshot(&g_replica.cache, &epoch, &floor);
    if (b->sends == 0) {
        b->sent_floor = floor;
        /* A keyed answer is written in Redis with its N, so the N is taken now, once. */
        if (b->nkeys > 0) {
            uint64_t base = atomic_fetch_add_explicit(&g_replica.served, b->nkeys, memory_order_relaxed);
            for (size_t j = 0; j < b->nkeys; j++)
                b->items[b->leaders[j]].key_n = base + j + 1;
        }
    }
    int rc;
    if (b->nkeys == 0) {
        /* The constant head was encoded when the script loaded; only the eight arguments
         * are written here (profiling showed hiredis's format-string path at ~2,000
         * instructions a batch). */
        char cmd[sizeof(w->batch_head) + 8 * TALLY_RESP_U64_MAX];
        memcpy(cmd, w->batch_head, w->batch_head_len);
        size_t len = w->batch_head_len + put_args(cmd + w->batch_head_len, b, floor, epoch);
        rc = redisAsyncFormattedCommand(w->redis.ac, on_batch_reply, b, cmd, len);
    } else {
        size_t len = format_keyed(w, b, floor, epoch);
        rc = len == 0 ? REDIS_ERR
                      : redisAsyncFormattedCommand(w->redis.ac, on_batch_reply, b, w->keyed_cmd, len);
    }
    if (rc != REDIS_OK)
        return TALLY_ERR;
    b->sent_ms = tally_now_ms();
    b->sent_ns = uv_hrtime();
    b->sends++;
    fifo_push(&w->inflight_head, &w->inflight_tail, b);
    return TALLY_OK;
}

static int expired(const struct batch *b, int64_t now_ms)
{
    return now_ms - b->first_sent_ms >= g_replica.cfg.redis_timeout_ms;
}

static void on_batch_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct batch *b = privdata;
    struct worker *w = b->worker;
    redisReply *reply = r;
    uint64_t first = 0;
    (void)ac;

    /* Replies arrive in send order: this batch is the FIFO head. */
    fifo_pop(&w->inflight_head, &w->inflight_tail);
    if (reply != NULL)
        tally_histogram_observe(&w->redis_duration, uv_hrtime() - b->sent_ns);

    int noscript =
        reply != NULL && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
    /* A node demoted under us (a Sentinel failover) refuses the script's first write, so
     * nothing of the batch was applied there: resend it to the master, once found. */
    int demoted =
        reply != NULL && reply->type == REDIS_REPLY_ERROR && tally_redis_reply_not_master(reply->str);
    if ((reply == NULL || noscript || demoted) && !expired(b, tally_now_ms()) &&
        !atomic_load(&g_replica.stopping)) {
        /* Lost with the connection, applied or not: send it again once Redis is back. A
         * script cache flushed under us (not applied): reconnect, which loads it again. */
        fifo_push(&w->retry_head, &w->retry_tail, b);
        if (noscript)
            tally_redis_link_drop(&w->redis, "the batch script vanished from Redis's script cache");
        else if (demoted) {
            atomic_fetch_add(&w->redis.not_master, 1);
            tally_redis_link_drop(&w->redis, "the node is no longer the master (READONLY)");
        }
        return;
    }
    long long total_reply = -1, lifted = 0, refused = 0, epoch = -1;
    const redisReply *answers = NULL;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == (b->nkeys > 0 ? 5u : 4u) &&
        reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[1]->type == REDIS_REPLY_INTEGER &&
        reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[3]->type == REDIS_REPLY_INTEGER) {
        total_reply = reply->element[0]->integer;
        lifted = reply->element[1]->integer;
        refused = reply->element[2]->integer;
        epoch = reply->element[3]->integer;
        if (b->nkeys > 0) {
            answers = reply->element[4];
            if (answers->type != REDIS_REPLY_ARRAY || answers->elements != b->nkeys)
                total_reply = -1;
        }
    }
    if (total_reply < 0 || lifted < 0 || epoch < 0 ||
        (!refused && b->nplain > 0 && tally_batch_first(total_reply, b->nplain, &first) != TALLY_OK)) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_errors, 1, memory_order_relaxed);
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
            tally_error("redis: the increment failed: %s", reply->str);
        else if (reply != NULL)
            tally_error("redis: the increment answered something that is not a total for %zu requests", b->n);
        batch_fail(w, b,
                   reply == NULL
                       ? "the connection to Redis was lost and did not come back in time; the request "
                         "may or may not have been counted"
                       : "Redis refused the increment");
        batch_release(w, b);
        return;
    }
    if (answers != NULL)
        read_answers(b, answers);

    if (lifted > 0) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_lifted, (unsigned long long)lifted,
                                  memory_order_relaxed);
        tally_warn("redis: %s was %lld below the highest total already handed out; raised it back so no "
                   "total is given twice (did Redis restart from an AOF that lost writes?)",
                   REPLICA_REDIS_KEY, lifted);
    }
    uint64_t total = (uint64_t)total_reply;
    b->epoch = (uint64_t)epoch;
    /* In synchronous mode a total enters the cache (and so the lift floor and MQTT) only
     * once confirmed: one a failover loses must not be taken for handed out. */
    if (g_replica.cfg.redis_wait_replicas == 0 || refused)
        counter_offer(b->epoch, total, tally_now_ms());
    b->first = first;
    b->total = total;
    if (refused) {
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
        fifo_push(&w->confirm_head, &w->confirm_tail, b);
        return;
    }
    batch_answer(w, b, 1, NULL);
}

/* The fifth element of a keyed batch's reply: for each key, its M (stored by this call), or
 * the answer Redis held ("N M instance"), or nil. */
static void read_answers(struct batch *b, const redisReply *answers)
{
    size_t inst_len = strlen(g_replica.instance);
    for (size_t j = 0; j < b->nkeys; j++) {
        struct pending *p = &b->items[b->leaders[j]];
        const redisReply *e = answers->element[j];
        tally_idem_answer_t a;
        p->key_state = KEY_GONE;
        if (e->type == REDIS_REPLY_INTEGER && e->integer > 0) {
            p->key_state = KEY_STORED;
            p->answer_n = p->key_n;
            p->key_m = (uint64_t)e->integer;
        } else if (e->type == REDIS_REPLY_STRING && tally_idem_answer_parse(e->str, e->len, &a) == TALLY_OK &&
                   a.instance_len <= UINT16_MAX) {
            if (b->sends > 1 && a.n == p->key_n && a.instance_len == inst_len &&
                memcmp(a.instance, g_replica.instance, inst_len) == 0) {
                /* A resend of a batch Redis had applied: the answer is this request's own. */
                p->key_state = KEY_STORED;
                p->answer_n = p->key_n;
                p->key_m = a.m;
                continue;
            }
            long off = keys_append(b, a.instance, a.instance_len);
            if (off < 0)
                continue;
            p->key_state = KEY_REPLAY;
            p->answer_n = a.n;
            p->key_m = a.m;
            p->inst_off = (uint32_t)off;
            p->inst_len = (uint16_t)a.instance_len;
        }
    }
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
        struct counter_result res = {.message = message != NULL ? message : "Redis did not answer this key"};
        if (it->lead < 0) {
            res.counted = counted;
            res.m = b->first + plain++;
        } else {
            const struct pending *lead = &b->items[it->lead];
            int first = it->lead == (int)i;
            switch (lead->key_state) {
            case KEY_STORED:
                res.counted = 1;
                res.replayed = !first;
                stored += first;
                break;
            case KEY_REPLAY:
                res.counted = 1;
                res.replayed = 1;
                res.instance = b->keys + lead->inst_off;
                res.instance_len = lead->inst_len;
                break;
            case KEY_GONE:
                gone += first;
                res.message = "this request was counted, but the answer kept for its Idempotency-Key is "
                              "gone (expired or removed), so it cannot be given";
                break;
            default:
                break;
            }
            replays += res.replayed;
            res.n = lead->answer_n;
            res.m = lead->key_m;
        }
        /* A request whose client left was still counted in Redis: it keeps its M, unseen. */
        h2o_req_t *req = detach(it);
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

static void send_wait(struct worker *w);

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
    int need = g_replica.cfg.redis_wait_replicas;
    int confirmed = reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer >= need;
    if (reply != NULL && !confirmed) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_wait_timeouts, 1, memory_order_relaxed);
        unsigned long long k = atomic_load(&g_replica.stats.redis_wait_timeouts);
        if ((k & (k - 1)) == 0)
            tally_warn("redis: WAIT confirmed %lld of %d replicas within %d ms; answering 503 (%llu so far)",
                       reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1LL, need,
                       g_replica.cfg.redis_wait_timeout_ms, k);
    }
    struct batch *b;
    while ((b = fifo_pop(&w->confirm_head, &w->confirm_tail)) != NULL) {
        if (confirmed) {
            counter_offer(b->epoch, b->total, now);
            batch_answer(w, b, 1, NULL);
        } else if (reply == NULL && !expired(b, now) && !atomic_load(&g_replica.stopping)) {
            /* Applied on a master that is gone: resend with its id. The ring answers its
             * total if the next master has it, or it is applied there once. */
            fifo_push(&w->retry_head, &w->retry_tail, b);
        } else {
            batch_fail(w, b,
                       "Redis did not confirm in time that enough replicas hold this increment "
                       "(REDIS_WAIT_REPLICAS); it may or may not be counted");
            batch_release(w, b);
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
        atomic_fetch_add_explicit(&g_replica.stats.redis_errors, 1, memory_order_relaxed);
        batch_fail(w, b, "Redis is not reachable; the request was not counted");
        batch_release(w, b);
        return;
    }
    atomic_fetch_add_explicit(&g_replica.stats.redis_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_replica.stats.redis_batched, b->n, memory_order_relaxed);
    send_wait(w);
    /* On the wire in this pass, not the next. A failed write answers the batch (NULL reply)
     * from inside this call, so it must already be in the FIFO. */
    tally_redis_uv_flush(w->redis.ac);
}

/* Redis is back and seeded: resend what the last connection lost, oldest first, before
 * anything new. */
static void resend_lost(struct worker *w)
{
    int64_t now = tally_now_ms();
    struct batch *b;
    int sent = 0;
    while ((b = fifo_pop(&w->retry_head, &w->retry_tail)) != NULL) {
        if (expired(b, now) || send_batch(w, b) != TALLY_OK) {
            atomic_fetch_add_explicit(&g_replica.stats.redis_errors, 1, memory_order_relaxed);
            batch_fail(w, b,
                       "the connection to Redis was lost and did not come back in time; the request may "
                       "or may not have been counted");
            batch_release(w, b);
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
    struct batch *b;
    while ((b = fifo_pop(&w->confirm_head, &w->confirm_tail)) != NULL) {
        batch_fail(w, b, "the replica is stopping; the request may or may not have been counted");
        batch_release(w, b);
    }
    while ((b = fifo_pop(&w->retry_head, &w->retry_tail)) != NULL) {
        batch_fail(w, b, "the replica is stopping; the request may or may not have been counted");
        batch_release(w, b);
    }
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

static uint32_t key_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

/* Copies @p len bytes to the end of the batch's key space; returns their offset or -1. */
static long keys_append(struct batch *b, const char *bytes, size_t len)
{
    if (b->keys_len + len > b->keys_cap) {
        size_t cap = b->keys_cap != 0 ? b->keys_cap : 4096;
        while (cap < b->keys_len + len)
            cap *= 2;
        char *k = realloc(b->keys, cap);
        if (k == NULL)
            return -1;
        b->keys = k;
        b->keys_cap = cap;
    }
    memcpy(b->keys + b->keys_len, bytes, len);
    b->keys_len += len;
    return (long)(b->keys_len - len);
}

void counter_submit_keyed(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag, const char *key,
                          size_t key_len)
{
    struct pending *p = submit(w, req, done, tag);
    if (p == NULL)
        return;
    struct batch *b = w->open;
    int self = (int)(p - b->items);
    if (b->nkeys == 0)
        memset(b->key_slots, 0, sizeof(b->key_slots));
    /* The same key twice in one batch is sent once; the later items follow the first. */
    size_t i = key_hash(key, key_len) % BATCH_KEY_SLOTS;
    for (; b->key_slots[i] != 0; i = (i + 1) % BATCH_KEY_SLOTS) {
        const struct pending *lead = &b->items[b->key_slots[i] - 1];
        if (lead->key_len == key_len && memcmp(b->keys + lead->key_off, key, key_len) == 0) {
            p->lead = b->key_slots[i] - 1;
            break;
        }
    }
    if (p->lead < 0) {
        long off = keys_append(b, key, key_len);
        if (off < 0) {
            /* Out of memory: this request fails alone (it is the batch's last item). */
            detach(p);
            b->n--;
            w->waiting--;
            const struct counter_result failed = {.message = "out of memory"};
            done(req, tag, &failed);
            return;
        }
        p->lead = self;
        p->key_off = (uint32_t)off;
        p->key_len = (uint16_t)key_len;
        p->key_state = KEY_SENT;
        b->key_slots[i] = (uint16_t)(self + 1);
        b->leaders[b->nkeys++] = (uint16_t)self;
    }
    if (b->n == BATCH_MAX)
        send_open_batch(w);
}

static void on_publish_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    w->publish_timer_armed = 0;
    counter_publish(w);
}

/* Coalesced publishing: only totals Redis returned, at most one per loop pass, and at most
 * one per w->interval_ns (see counter_update_rate). After a quiet spell the total goes out
 * at once; one held back by the interval goes out on the next pass or from the trailing
 * timer, so the newest total is never left unpublished. */
void counter_publish(struct worker *w)
{
    /* Only a total above everything this replica knows is news: one below a peer's total
     * would show a watcher of total_count a step back (and tells the peers nothing). */
    if (w->newest_total <= w->published_total || w->newest_total < tally_cache_value(&g_replica.cache) ||
        !atomic_load_explicit(&g_replica.mqtt.connected, memory_order_relaxed))
        return;
    uint64_t now = uv_hrtime();
    uint64_t interval = w->interval_ns;
    uint64_t wait_ns = now - w->last_publish_ns < interval ? w->last_publish_ns + interval - now : 0;
    if (interval > 0 && w->ranks > 1 && w->rank < w->ranks) { /* rank < ranks: we are listed online */
        /* Under load, replicas take turns: the interval is cut into one slot per online
         * replica (by rank of id, on the wall clock all share), and a replica publishes only
         * early in its own slot. Two replicas' totals then leave half a slot apart or more,
         * after each heard the other's last one, so a watcher rarely sees the total step back
         * (docs/benchmarks.md). The delay this adds is at most one interval, as before. */
        uint64_t slot = interval / w->ranks, wall = (uint64_t)tally_wall_ns();
        uint64_t offset = wall % interval, mine = slot * w->rank;
        /* Only the first half of the slot: the second keeps this publish and the next
         * replica's apart even when this one goes out late in its slot. */
        if (offset < mine || offset >= mine + slot / 2) {
            uint64_t to_slot = offset < mine ? mine - offset : interval - offset + mine;
            if (to_slot > wait_ns)
                wait_ns = to_slot;
        }
    }
    if (wait_ns > 0) {
        if (!w->publish_timer_armed) {
            uv_timer_start(&w->publish_timer, on_publish_timer, (wait_ns + 999999) / 1000000, 0);
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

/* The publish rule, re-decided every 100 ms or more. Every publish is delivered to the
 * other N-1 replicas (N: replicas online in the presence table), so the broker's traffic
 * grows with N times the publish rate. While the cluster's request rate (how fast the
 * cached total moves) times max(1, N-1) stays below PUBLISH_EAGER_RPS, every loop pass
 * publishes: peers learn each total within one broker hop. Above it, at most one publish
 * per PUBLISH_INTERVAL_US x max(1, N-1) per thread, which keeps the deliveries the broker
 * makes per second bounded however many replicas there are, and leaves a saturated
 * replica's CPU to its requests. */
void counter_update_rate(struct worker *w)
{
    uint64_t now = uv_hrtime();
    uint64_t elapsed = now - w->window_start_ns;
    if (elapsed < 100000000ull)
        return;
    uint64_t total = tally_cache_value(&g_replica.cache);
    /* The first window after start has no earlier total to compare with: not a rate. */
    double rate = w->window_valid && total > w->window_total
                      ? (double)(total - w->window_total) * 1e9 / (double)elapsed
                      : 0.0;
    size_t online;
    w->rank = tally_presence_rank(&g_replica.presence, g_replica.cfg.instance_id, &online);
    w->ranks = online;
    double fanout = online > 2 ? (double)(online - 1) : 1.0;
    if (rate * fanout < (double)g_replica.cfg.publish_eager_rps)
        w->interval_ns = 0;
    else
        w->interval_ns = (uint64_t)((double)g_replica.cfg.publish_interval_us * 1000.0 * fanout);
    atomic_store_explicit(&g_replica.stats.publish_interval_ns, w->interval_ns, memory_order_relaxed);
    w->window_total = total;
    w->window_valid = 1;
    w->window_start_ns = now;
}

void counter_flush(struct worker *w)
{
    send_open_batch(w);
    counter_publish(w);
}

void counter_check_deadline(struct worker *w, int64_t now_ms)
{
    /* Lost batches whose time ran out while Redis stayed away. */
    while (w->retry_head != NULL && expired(w->retry_head, now_ms)) {
        struct batch *b = fifo_pop(&w->retry_head, &w->retry_tail);
        atomic_fetch_add_explicit(&g_replica.stats.redis_errors, 1, memory_order_relaxed);
        batch_fail(w, b,
                   "the connection to Redis was lost and did not come back in time; the request may or may "
                   "not have been counted");
        batch_release(w, b);
    }
    if (w->wait_sent_ms != 0 &&
        now_ms - w->wait_sent_ms > g_replica.cfg.redis_timeout_ms + g_replica.cfg.redis_wait_timeout_ms) {
        atomic_fetch_add_explicit(&g_replica.stats.redis_timeouts, 1, memory_order_relaxed);
        tally_warn("redis: no answer to WAIT within %d ms; dropping the connection",
                   g_replica.cfg.redis_timeout_ms + g_replica.cfg.redis_wait_timeout_ms);
        tally_redis_link_drop(&w->redis, "WAIT timeout");
        return;
    }
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
    uint64_t total = 0, epoch = 0;
    (void)ac;
    if (reply == NULL)
        return; /* connection lost again; the link reconnects */
    /* MGET total_count tally:epoch: each a number or nil (0) */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        tally_redis_reply_total(reply->element[0], &total) != TALLY_OK ||
        tally_redis_reply_total(reply->element[1], &epoch) != TALLY_OK) {
        tally_error("redis: key " REPLICA_REDIS_KEY " or " TALLY_EPOCH_KEY
                    " does not hold a number (%s); not serving",
                    reply->type == REDIS_REPLY_ERROR ? reply->str : "not an integer");
        tally_redis_link_drop(&w->redis, "bad " REPLICA_REDIS_KEY);
        return;
    }
    if (w->script_sha[0] == '\0')
        return; /* the script did not load; the link is reconnecting */
    counter_offer(epoch, total, tally_now_ms());
    if (!w->redis_seeded) {
        w->redis_seeded = 1;
        atomic_fetch_add(&g_replica.redis_ready, 1);
    }
    tally_debug("redis: seeded the cache with %llu", (unsigned long long)total);
    resend_lost(w);
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    struct worker *w = privdata;
    redisReply *reply = r;
    (void)ac;
    if (reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_STRING || reply->len >= sizeof(w->script_sha)) {
        tally_error("redis: cannot load the batch script (%s)",
                    reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        tally_redis_link_drop(&w->redis, "SCRIPT LOAD failed");
        return;
    }
    memcpy(w->script_sha, reply->str, reply->len);
    w->script_sha[reply->len] = '\0';
    /* 15 parts: EVALSHA sha 4 key ring mark epoch, then seq n slots ttl resend floor
     * sent-floor floor-epoch (send_batch). */
    char *h = w->batch_head;
    size_t len = tally_resp_array(h, 15);
    len += tally_resp_bulk(h + len, "EVALSHA", 7);
    len += tally_resp_bulk(h + len, w->script_sha, reply->len);
    w->batch_head_sha_end = len;
    len += tally_resp_bulk(h + len, "4", 1);
    len += tally_resp_bulk(h + len, REPLICA_REDIS_KEY, strlen(REPLICA_REDIS_KEY));
    len += tally_resp_bulk(h + len, w->dedup_key, strlen(w->dedup_key));
    len += tally_resp_bulk(h + len, REPLICA_LIFT_KEY, strlen(REPLICA_LIFT_KEY));
    len += tally_resp_bulk(h + len, TALLY_EPOCH_KEY, strlen(TALLY_EPOCH_KEY));
    w->batch_head_len = len;
}

void counter_on_redis_up(tally_redis_link_t *link)
{
    struct worker *w = link->data;
    /* The script first (batches name it by SHA), then the seed: pipelined, answered in
     * order, so the SHA is known before the worker counts again. Ready only once the cache
     * holds the Redis total: a fresh process never knows less. */
    w->script_sha[0] = '\0';
    if (redisAsyncCommand(link->ac, on_script_loaded, w, "SCRIPT LOAD %s", batch_script) != REDIS_OK ||
        redisAsyncCommand(link->ac, on_seed, w, "MGET " REPLICA_REDIS_KEY " " TALLY_EPOCH_KEY) != REDIS_OK)
        tally_redis_link_drop(link, "cannot send SCRIPT LOAD and MGET");
}

void counter_on_redis_down(tally_redis_link_t *link, const char *why)
{
    struct worker *w = link->data;
    (void)why;
    if (w->redis_seeded) {
        w->redis_seeded = 0;
        atomic_fetch_sub(&g_replica.redis_ready, 1);
    }
    /* hiredis has already answered every command in flight with NULL: the in-flight FIFO
     * is empty and what may be retried waits in the retry FIFO. */
}
