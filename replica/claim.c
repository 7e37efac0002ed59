/* One INSTANCE_ID, one process. Two replicas started with the same id would take each
 * other's MQTT session (the broker keeps one client per id) and show the live one offline.
 * So a replica claims its id in Redis before it connects to the broker: the lease
 * tally:instance:<id> (common/lease.h) holds the holder's token ("<host> pid <pid> since
 * <ms>") for CLAIM_TTL_MS, renewed every CLAIM_RENEW_MS by worker 0.
 *
 * A newcomer that finds another token cannot tell at once a live holder from a killed one
 * whose claim has not expired yet. It keeps asking: if the claim lapses, it was a dead
 * process's and the newcomer takes it (a restart after kill -9 waits at most CLAIM_TTL_MS);
 * if the holder renews it meanwhile (its TTL goes up), the holder lives, and the newcomer
 * refuses to start with one line and exit code 2 - after INSTANCE_ID_WAIT_MS (default 0):
 * a start-first rolling update starts the new task while the old one with the same id still
 * drains, and the new one must wait for it rather than give up. A clean exit deletes the
 * claim. If Redis is away longer than the TTL, the claim lapses; the replica claims it again
 * when Redis is back and only says so if someone else took it meanwhile: an outage never
 * stops it. */
#include "claim.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "replica.h"

#define CLAIM_TTL_MS 3000
#define CLAIM_RENEW_MS 1000
#define CLAIM_RETRY_MS 200

static struct {
    tally_lease_t lease;
    struct claim_state rule;
    int64_t next_ms; /* when to claim or renew next */
    int taken_logged;
    void (*on_held)(void);
    void (*on_refused)(const char *line);
} claim;

static void on_answer(tally_lease_t *lease, const tally_lease_answer_t *a, int64_t now)
{
    const char *id = g_replica.cfg.instance_id;
    if (atomic_load(&g_replica.started_up))
        claim.rule.ran = 1;
    char line[512];
    int first_look = !claim.rule.contested;
    switch (claim_rule(&claim.rule, a, now, g_replica.cfg.instance_id_wait_ms)) {
    case CLAIM_HELD:
        if (claim.taken_logged)
            tally_info("instance %s: claim on %s held again", id, lease->key);
        claim.taken_logged = 0;
        claim.next_ms = now + CLAIM_RENEW_MS;
        claim.on_held();
        return;
    case CLAIM_TAKEN:
        if (!claim.taken_logged)
            tally_error(
                "instance %s: another process (%s) claimed this INSTANCE_ID while Redis was away; two "
                "replicas must not share an INSTANCE_ID",
                id, a->holder);
        claim.taken_logged = 1;
        break;
    case CLAIM_REFUSE:
        snprintf(
            line, sizeof(line),
            "INSTANCE_ID %s is already in use by a live replica (%s); give every replica its own INSTANCE_ID",
            id, a->holder);
        claim.on_refused(line);
        return;
    case CLAIM_WAIT:
        if (first_look)
            tally_info("instance %s: %s holds the claim on %s; waiting %s", id, a->holder, lease->key,
                       g_replica.cfg.instance_id_wait_ms > 0 ? "for it to exit (INSTANCE_ID_WAIT_MS)"
                                                             : "to see whether it is alive");
        break;
    }
    claim.next_ms = now + CLAIM_RETRY_MS;
}

void claim_init(void (*on_held)(void), void (*on_refused)(const char *line))
{
    char host[128] = "?";
    gethostname(host, sizeof(host) - 1);
    tally_lease_t *l = &claim.lease;
    snprintf(l->key, sizeof(l->key), "tally:instance:%s", g_replica.cfg.instance_id);
    snprintf(l->token, sizeof(l->token), "%.100s pid %d since %lld", host, (int)getpid(),
             (long long)g_replica.started_wall_ms);
    l->ttl_ms = CLAIM_TTL_MS;
    l->on_answer = on_answer;
    claim.on_held = on_held;
    claim.on_refused = on_refused;
}

void claim_on_redis_up(struct worker *w)
{
    claim.lease.redis = &w->redis;
    tally_lease_on_redis_up(&claim.lease);
    tally_lease_ask(&claim.lease, tally_now_ms());
}

void claim_tick(struct worker *w, int64_t now_ms)
{
    claim.lease.redis = &w->redis;
    if (now_ms >= claim.next_ms)
        tally_lease_ask(&claim.lease, now_ms);
}

void claim_release(struct worker *w)
{
    claim.lease.redis = &w->redis;
    tally_lease_release(&claim.lease, NULL, NULL);
}
