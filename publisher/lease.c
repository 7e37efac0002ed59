/* The publisher's leader election, over the common Redis lease (common/lease.h).
 *
 * A standby asks every ttl/10 and leads once the key is its own; the leader renews every
 * ttl/3 and stops leading when another publisher holds the key or its deadline passes
 * before a renewal (a pause, a cut): by then a standby may lead. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "publisher.h"

static void on_answer(tally_lease_t *lease, const tally_lease_answer_t *a, int64_t now_ms)
{
    (void)now_ms;
    if (a->acquired)
        tally_info("lease: leading (key %s, ttl %d ms)", lease->key, lease->ttl_ms);
    else if (a->lost)
        tally_warn("lease: no longer leading (another publisher holds the lease)");
}

int lease_held(int64_t now_ms)
{
    return tally_lease_held(&g_pub.lease, now_ms);
}

static void on_lease_timer(uv_timer_t *t)
{
    (void)t;
    int64_t now = tally_now_ms();
    int leading = lease_held(now);
    if (g_pub.stopping || (leading && now - g_pub.lease.asked_ms < g_pub.cfg.lease_ttl_ms / 3))
        return;
    tally_lease_ask(&g_pub.lease, now);
}

void lease_start(void)
{
    tally_lease_t *l = &g_pub.lease;
    unsigned rnd = (unsigned)(tally_now_ms() ^ (int64_t)getpid() << 16);
    snprintf(l->token, sizeof(l->token), "%s:%d:%08x", g_pub.cfg.instance_id, (int)getpid(),
             rand_r(&rnd) ^ (unsigned)tally_wall_ms());
    snprintf(l->key, sizeof(l->key), "%s", g_pub.cfg.lease_key);
    l->redis = &g_pub.redis;
    l->ttl_ms = g_pub.cfg.lease_ttl_ms;
    l->on_answer = on_answer;
    uv_timer_init(&g_pub.loop, &g_pub.lease_timer);
    uint64_t every = (uint64_t)(g_pub.cfg.lease_ttl_ms / 10 > 0 ? g_pub.cfg.lease_ttl_ms / 10 : 1);
    uv_timer_start(&g_pub.lease_timer, on_lease_timer, 0, every);
}

static void (*release_done)(void);

static void on_release_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    (void)ac, (void)privdata;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        tally_info("lease: released");
    release_done();
}

void lease_release(void (*done)(void))
{
    uv_timer_stop(&g_pub.lease_timer);
    lease_held(tally_now_ms());
    release_done = done;
    if (tally_lease_release(&g_pub.lease, on_release_reply, NULL) != TALLY_OK) {
        done();
        return;
    }
    tally_redis_uv_flush(g_pub.redis.ac);
}
