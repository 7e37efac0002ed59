/* A Redis lease (see lease.h). */
#include "lease.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* KEYS[1] the lease; ARGV[1] our token, ARGV[2] TTL (ms). Returns {1} when the lease is ours
 * now, {0, holder's token, its PTTL} when someone else holds it. */
static const char ask_script[] = "local cur = redis.call('GET', KEYS[1]) "
                                 "if cur == false or cur == ARGV[1] then "
                                 "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
                                 "  return {1} "
                                 "end "
                                 "return {0, cur, redis.call('PTTL', KEYS[1])}";
static const char release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

int64_t tally_lease_deadline(int64_t sent_ms, int ttl_ms)
{
    return sent_ms + ttl_ms - ttl_ms / 10;
}

static void give_up(tally_lease_t *lease)
{
    if (!lease->held)
        return;
    lease->held = 0;
    lease->until_ms = 0;
    lease->lost++;
}

int tally_lease_held(tally_lease_t *lease, int64_t now_ms)
{
    if (lease->held && now_ms >= lease->until_ms) {
        give_up(lease);
        tally_warn("lease %s: ran out before it could be renewed", lease->key);
    }
    return lease->held;
}

/* The answer of one ask, read: {1}, or {0, token, pttl}. Returns TALLY_ERR for anything else. */
static int read_answer(const redisReply *reply, tally_lease_answer_t *a)
{
    memset(a, 0, sizeof(*a));
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER)
        return TALLY_ERR;
    a->ours = reply->element[0]->integer == 1;
    a->holder =
        reply->elements >= 2 && reply->element[1]->type == REDIS_REPLY_STRING ? reply->element[1]->str : "?";
    a->pttl = reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_INTEGER
                  ? reply->element[2]->integer
                  : -1;
    return TALLY_OK;
}

static void on_ask(redisAsyncContext *ac, void *r, void *privdata)
{
    tally_lease_t *lease = privdata;
    redisReply *reply = r;
    tally_lease_answer_t a;
    (void)ac;
    lease->inflight = 0;
    if (reply == NULL)
        return; /* the connection is gone: a held lease runs out by itself */
    if (reply->type == REDIS_REPLY_ERROR && tally_redis_reply_not_master(reply->str)) {
        /* A demoted node (Sentinel failover): find the master again; the lease, if held,
         * runs out by itself meanwhile. */
        atomic_fetch_add(&lease->redis->not_master, 1);
        tally_warn("lease %s: %s; asking the sentinels for the master", lease->key, reply->str);
        tally_redis_link_drop(lease->redis, "the node is no longer the master (READONLY)");
        return;
    }
    if (read_answer(reply, &a) != TALLY_OK) {
        if (tally_log_every_power_of_two(++lease->errors))
            tally_error("lease %s: Redis refused the lease command: %s (%llu so far)", lease->key,
                        reply->type == REDIS_REPLY_ERROR ? reply->str : "an answer of another shape",
                        lease->errors);
        return;
    }
    int64_t now = tally_now_ms();
    if (a.ours) {
        a.acquired = !lease->held;
        lease->acquired += a.acquired;
        lease->held = 1;
        lease->asked_ms = lease->sent_ms;
        lease->until_ms = tally_lease_deadline(lease->sent_ms, lease->ttl_ms);
    } else {
        a.lost = lease->held;
        give_up(lease);
    }
    if (lease->on_answer != NULL)
        lease->on_answer(lease, &a, now);
}

int tally_lease_ask(tally_lease_t *lease, int64_t now_ms)
{
    if (lease->inflight || lease->redis->state != TALLY_REDIS_UP)
        return TALLY_ERR;
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", lease->ttl_ms);
    if (redisAsyncCommand(lease->redis->ac, on_ask, lease, "EVAL %s 1 %s %s %s", ask_script, lease->key,
                          lease->token, ttl) != REDIS_OK)
        return TALLY_ERR;
    lease->inflight = 1;
    lease->sent_ms = now_ms;
    return TALLY_OK;
}

int tally_lease_release(tally_lease_t *lease, redisCallbackFn *done, void *privdata)
{
    int held = lease->held;
    lease->held = 0;
    if (!held || lease->redis->state != TALLY_REDIS_UP)
        return TALLY_ERR;
    return redisAsyncCommand(lease->redis->ac, done, privdata, "EVAL %s 1 %s %s", release_script, lease->key,
                             lease->token) == REDIS_OK
               ? TALLY_OK
               : TALLY_ERR;
}

void tally_lease_on_redis_up(tally_lease_t *lease)
{
    lease->inflight = 0;
}
