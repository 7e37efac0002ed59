/* One INSTANCE_ID, one process (claim.c over the common lease; its decisions in
 * claim_rule.c, unit-tested in tests/unit/test_claim_rule.c). */
#ifndef TALLY_REPLICA_CLAIM_H
#define TALLY_REPLICA_CLAIM_H

#include <stdint.h>

#include "lease.h"

struct worker;

/* What the claim does with an answer about INSTANCE_ID's lease. */
enum claim_action {
    CLAIM_HELD,   /* ours: the replica may go on (the first time: connect to the broker) */
    CLAIM_WAIT,   /* another token: ask again soon */
    CLAIM_TAKEN,  /* we ran with this id and another process took it while Redis was away */
    CLAIM_REFUSE, /* a live process holds it: refuse to start (exit 2) */
};

/* What the rule remembers between answers. */
struct claim_state {
    int contested;           /* another token seen before we ever held it */
    int64_t contested_since; /* ...since then */
    long long last_pttl;     /* the other holder's PTTL at the previous look */
    int ran;                 /* we held it once, or the replica has been ready once */
};

/** Decides on an answer at @p now_ms: a holder whose PTTL went up since the last look
 *  renewed it, so it lives; after @p wait_ms (INSTANCE_ID_WAIT_MS) of that, refuse. */
enum claim_action claim_rule(struct claim_state *s, const tally_lease_answer_t *a, int64_t now_ms,
                             int wait_ms);

/** Makes the claim's key and token, before any worker starts. @p on_held runs (on worker 0)
 *  each time the claim is confirmed ours; @p on_refused gets the one line to log when a live
 *  process holds the id. */
void claim_init(void (*on_held)(void), void (*on_refused)(const char *line));
/** Worker 0's Redis link is up: claim (or renew) now. */
void claim_on_redis_up(struct worker *w);
/** Worker 0, every watchdog tick: renews the claim, or asks again while it is contested. */
void claim_tick(struct worker *w, int64_t now_ms);
/** Worker 0 at exit: deletes the claim if it is ours (queued; the caller flushes). */
void claim_release(struct worker *w);

#endif
