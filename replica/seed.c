/* What a new Redis connection does before its worker counts: load the batch script, then
 * seed the cache with the total and the cluster epoch; then the batches the last connection
 * lost are resent. */
#include "seed.h"

#include <string.h>

#include "counter.h"
#include "log.h"
#include "replica.h"

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
        tally_error("redis: key " TALLY_TOTAL_KEY " or " TALLY_EPOCH_KEY
                    " does not hold a number (%s); not serving",
                    reply->type == REDIS_REPLY_ERROR ? reply->str : "not an integer");
        tally_redis_link_drop(&w->redis, "bad " TALLY_TOTAL_KEY);
        return;
    }
    if (w->script.sha[0] == '\0')
        return; /* the script did not load; the link is reconnecting */
    counter_offer(epoch, total, tally_now_ms());
    if (!w->redis_seeded) {
        w->redis_seeded = 1;
        atomic_fetch_add(&g_replica.redis_ready, 1);
    }
    tally_debug("redis: seeded the cache with %llu", (unsigned long long)total);
    counter_resend_lost(w);
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    struct worker *w = privdata;
    redisReply *reply = r;
    (void)ac;
    if (reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_STRING ||
        batch_script_loaded(&w->script, reply->str, reply->len, w->dedup_key) != TALLY_OK) {
        tally_error("redis: cannot load the batch script (%s)",
                    reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        tally_redis_link_drop(&w->redis, "SCRIPT LOAD failed");
    }
}

void seed_on_redis_up(tally_redis_link_t *link)
{
    struct worker *w = link->data;
    /* The script first (batches name it by SHA), then the seed: pipelined, answered in
     * order, so the SHA is known before the worker counts again. Ready only once the cache
     * holds the Redis total: a fresh process never knows less. */
    batch_script_unload(&w->script);
    if (redisAsyncCommand(link->ac, on_script_loaded, w, "SCRIPT LOAD %s", batch_script_text) != REDIS_OK ||
        redisAsyncCommand(link->ac, on_seed, w, "MGET " TALLY_TOTAL_KEY " " TALLY_EPOCH_KEY) != REDIS_OK)
        tally_redis_link_drop(link, "cannot send SCRIPT LOAD and MGET");
}

void seed_on_redis_down(tally_redis_link_t *link, const char *why)
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
