/* One INSTANCE_ID, one process. Two replicas started with the same id would take each
 * other's MQTT session (the broker keeps one client per id) and show the live one offline.
 * So a replica claims its id in Redis before it connects to the broker: the key
 * tally:instance:<id> holds the holder's token ("<host> pid <pid> since <ms>") for
 * CLAIM_TTL_MS, renewed every CLAIM_RENEW_MS by worker 0.
 *
 * A newcomer that finds another token cannot tell at once a live holder from a killed one
 * whose claim has not expired yet. It keeps asking: if the claim lapses, it was a dead
 * process's and the newcomer takes it (a restart after kill -9 waits at most CLAIM_TTL_MS);
 * if the holder renews it meanwhile (its TTL goes up), the holder lives, and the newcomer
 * refuses to start with one line and exit code 2 - after INSTANCE_ID_WAIT_MS (default 0):
 * a start-first rolling update starts the new task while the old one with the same id
 * still drains, and the new one must wait for it rather than give up. A clean exit deletes the claim. If
 * Redis is away longer than the TTL, the claim lapses; the replica claims it again when Redis is back and
 * only says so if someone else took it meanwhile: an outage never stops it. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "replica.h"

#define CLAIM_TTL_MS 3000
#define CLAIM_RENEW_MS 1000
#define CLAIM_RETRY_MS 200

/* KEYS[1] the claim; ARGV[1] our token, ARGV[2] TTL. Returns {1} when the claim is ours now,
 * {0, holder's token, its PTTL} when someone else holds it. */
static const char claim_script[] = "local cur = redis.call('GET', KEYS[1]) "
                                   "if cur == false or cur == ARGV[1] then "
                                   "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
                                   "  return {1} "
                                   "end "
                                   "return {0, cur, redis.call('PTTL', KEYS[1])}";
static const char release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

static struct {
    char key[128];
    char token[200];
    int held;      /* the claim is ours (as of the last answer) */
    int inflight;  /* a claim command waits for its answer */
    int contested; /* another token seen before we ever held it */
    int64_t contested_since;
    long long last_ttl; /* the other holder's PTTL at the previous look */
    int64_t next_ms;    /* when to claim or renew next */
    int lost_logged;
} claim;

static void on_claim(redisAsyncContext *ac, void *r, void *privdata)
{
    struct worker *w = privdata;
    redisReply *reply = r;
    (void)ac;
    claim.inflight = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER)
        return; /* Redis away or odd: try again on the next tick */
    int64_t now = tally_now_ms();
    if (reply->element[0]->integer == 1) {
        if (!claim.held && claim.lost_logged)
            tally_info("instance %s: claim on %s held again", g_replica.cfg.instance_id, claim.key);
        claim.held = 1;
        claim.contested = 0;
        claim.lost_logged = 0;
        claim.next_ms = now + CLAIM_RENEW_MS;
        replica_claimed(w);
        return;
    }
    const char *holder =
        reply->elements >= 2 && reply->element[1]->type == REDIS_REPLY_STRING ? reply->element[1]->str : "?";
    long long ttl = reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_INTEGER
                        ? reply->element[2]->integer
                        : -1;
    claim.next_ms = now + CLAIM_RETRY_MS;
    if (atomic_load(&g_replica.started_up) || claim.held) {
        /* We ran with this id, Redis went away, and another process took it meanwhile. */
        claim.held = 0;
        if (!claim.lost_logged)
            tally_error(
                "instance %s: another process (%s) claimed this INSTANCE_ID while Redis was away; two "
                "replicas must not share an INSTANCE_ID",
                g_replica.cfg.instance_id, holder);
        claim.lost_logged = 1;
        return;
    }
    if (claim.contested && ttl > claim.last_ttl &&
        now - claim.contested_since >= g_replica.cfg.instance_id_wait_ms) {
        replica_refuse("INSTANCE_ID %s is already in use by a live replica (%s); give every replica its own "
                       "INSTANCE_ID",
                       g_replica.cfg.instance_id, holder);
        return;
    }
    if (!claim.contested) {
        tally_info("instance %s: %s holds the claim on %s; waiting %s", g_replica.cfg.instance_id, holder,
                   claim.key,
                   g_replica.cfg.instance_id_wait_ms > 0 ? "for it to exit (INSTANCE_ID_WAIT_MS)"
                                                         : "to see whether it is alive");
        claim.contested_since = now;
    }
    claim.contested = 1;
    claim.last_ttl = ttl;
}

static void send_claim(struct worker *w)
{
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", CLAIM_TTL_MS);
    if (w->redis.state != TALLY_REDIS_UP || claim.inflight)
        return;
    if (redisAsyncCommand(w->redis.ac, on_claim, w, "EVAL %s 1 %s %s %s", claim_script, claim.key,
                          claim.token, ttl) == REDIS_OK)
        claim.inflight = 1;
}

void claim_init(void)
{
    char host[128] = "?";
    gethostname(host, sizeof(host) - 1);
    snprintf(claim.key, sizeof(claim.key), "tally:instance:%s", g_replica.cfg.instance_id);
    snprintf(claim.token, sizeof(claim.token), "%.100s pid %d since %lld", host, (int)getpid(),
             (long long)g_replica.started_wall_ms);
}

void claim_on_redis_up(struct worker *w)
{
    claim.inflight = 0; /* an answer lost with the old connection never comes */
    send_claim(w);
}

void claim_tick(struct worker *w, int64_t now_ms)
{
    if (now_ms >= claim.next_ms)
        send_claim(w);
}

void claim_release(struct worker *w)
{
    if (claim.held && w->redis.state == TALLY_REDIS_UP)
        redisAsyncCommand(w->redis.ac, NULL, NULL, "EVAL %s 1 %s %s", release_script, claim.key, claim.token);
}
