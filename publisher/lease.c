/* Leader election by a Redis lease.
 *
 * The lease is one key holding the leader's token, with an expiry:
 *   acquire: SET key token NX PX ttl            (only if nobody holds it)
 *   renew:   if GET key == token then PEXPIRE   (only the holder, atomically, in Lua)
 *   release: if GET key == token then DEL       (only the holder)
 * A standby tries to acquire every ttl/10; the leader renews every ttl/3.
 *
 * The leader trusts its lease until (time the acquire/renew was *sent*) + ttl - ttl/10:
 * Redis started the expiry after that moment, so the key cannot have expired earlier, and
 * the tenth covers clock-rate differences. A leader that was paused (SIGSTOP) or cut off
 * finds that deadline passed when it wakes and publishes nothing until it holds the lease
 * again; by then a standby may lead. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "publisher.h"

static const char renew_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then return "
                                   "redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
static const char release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

struct lease_op {
    int64_t sent_ms;
    int renew;
};

static void step_down(const char *why)
{
    if (!g_pub.leader)
        return;
    g_pub.leader = 0;
    g_pub.lease_until_ms = 0;
    g_pub.stats.lost++;
    tally_warn("lease: no longer leading (%s)", why);
}

int lease_held(int64_t now_ms)
{
    if (g_pub.leader && now_ms >= g_pub.lease_until_ms)
        step_down("the lease ran out before it could be renewed");
    return g_pub.leader;
}

static void on_lease_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct lease_op *op = privdata;
    redisReply *reply = r;
    (void)ac;
    g_pub.lease_op_inflight = 0;
    int64_t ttl = g_pub.cfg.lease_ttl_ms;
    if (reply == NULL) { /* connection lost: the lease runs out by itself */
        free(op);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && tally_redis_reply_not_master(reply->str)) {
        /* A demoted node (Sentinel failover): find the master again; the lease, if held,
         * runs out by itself meanwhile. */
        atomic_fetch_add(&g_pub.redis.not_master, 1);
        tally_warn("lease: %s; asking the sentinels for the master", reply->str);
        tally_redis_link_drop(&g_pub.redis, "the node is no longer the master (READONLY)");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        tally_error("lease: Redis refused the lease command: %s", reply->str);
    } else if (!op->renew) {
        if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0) {
            g_pub.leader = 1;
            g_pub.lease_until_ms = op->sent_ms + ttl - ttl / 10;
            g_pub.last_renew_ms = op->sent_ms;
            g_pub.stats.acquired++;
            tally_info("lease: leading (key %s, ttl %lld ms)", g_pub.cfg.lease_key, (long long)ttl);
        }
    } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        if (g_pub.leader) {
            g_pub.lease_until_ms = op->sent_ms + ttl - ttl / 10;
            g_pub.last_renew_ms = op->sent_ms;
        }
    } else {
        step_down("another publisher holds the lease");
    }
    free(op);
}

static void on_lease_timer(uv_timer_t *t)
{
    (void)t;
    int64_t now = tally_now_ms();
    int leading = lease_held(now);
    if (g_pub.stopping || g_pub.lease_op_inflight || g_pub.redis.state != TALLY_REDIS_UP)
        return;
    if (leading && now - g_pub.last_renew_ms < g_pub.cfg.lease_ttl_ms / 3)
        return;
    struct lease_op *op = malloc(sizeof(*op));
    if (op == NULL)
        return;
    op->sent_ms = now;
    op->renew = leading;
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", g_pub.cfg.lease_ttl_ms);
    int rc = leading ? redisAsyncCommand(g_pub.redis.ac, on_lease_reply, op, "EVAL %s 1 %s %s %s",
                                         renew_script, g_pub.cfg.lease_key, g_pub.token, ttl)
                     : redisAsyncCommand(g_pub.redis.ac, on_lease_reply, op, "SET %s %s NX PX %s",
                                         g_pub.cfg.lease_key, g_pub.token, ttl);
    if (rc != REDIS_OK) {
        free(op);
        return;
    }
    g_pub.lease_op_inflight = 1;
}

void lease_start(void)
{
    unsigned rnd = (unsigned)(tally_now_ms() ^ (int64_t)getpid() << 16);
    snprintf(g_pub.token, sizeof(g_pub.token), "%s:%d:%08x", g_pub.cfg.instance_id, (int)getpid(),
             rand_r(&rnd) ^ (unsigned)tally_wall_ms());
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
    int was_leader = lease_held(tally_now_ms());
    g_pub.leader = 0;
    release_done = done;
    if (!was_leader || g_pub.redis.state != TALLY_REDIS_UP ||
        redisAsyncCommand(g_pub.redis.ac, on_release_reply, NULL, "EVAL %s 1 %s %s", release_script,
                          g_pub.cfg.lease_key, g_pub.token) != REDIS_OK) {
        done();
        return;
    }
    tally_redis_uv_flush(g_pub.redis.ac);
}
