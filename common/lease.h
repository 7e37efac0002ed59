/* A Redis lease: one key holds its holder's token, with an expiry. Two users: the replica's
 * INSTANCE_ID claim (one process per id) and the publisher's leader election (one leader).
 *
 *   ask:     if GET key is nil or our token then SET key token PX ttl (acquire or renew)
 *            else answer the holder's token and PTTL              (one Lua call)
 *   release: if GET key == our token then DEL                     (only the holder)
 *
 * The holder trusts its lease until (the time the ask was *sent*) + ttl - ttl/10: Redis
 * started the expiry after that moment, so the key cannot have expired earlier, and the
 * tenth covers clock-rate differences. A holder that was paused (SIGSTOP) or cut off finds
 * that deadline passed when it wakes and holds nothing until an ask succeeds again. The
 * users decide when to ask and what another holder means. */
#ifndef TALLY_LEASE_H
#define TALLY_LEASE_H

#include <stdint.h>

#include "redis_link.h"

#define TALLY_LEASE_TOKEN_MAX 200

typedef struct tally_lease tally_lease_t;

/* What an ask found, passed to on_answer. */
typedef struct tally_lease_answer {
    int ours;           /* the lease is ours now (acquired or renewed) */
    int acquired;       /* ...and was not before this answer */
    int lost;           /* it was ours before this answer and is not any more */
    const char *holder; /* not ours: the holder's token ("?" if unreadable) */
    long long pttl;     /* not ours: the holder's remaining ms (-1 if unknown) */
} tally_lease_answer_t;

struct tally_lease {
    /* set by the user before the first ask */
    tally_redis_link_t *redis; /* the connection the lease's commands go on */
    char key[128];
    char token[TALLY_LEASE_TOKEN_MAX];
    int ttl_ms;
    void (*on_answer)(tally_lease_t *lease, const tally_lease_answer_t *answer, int64_t now_ms);
    void *data;
    /* state */
    int held;         /* ours, as of the last answer, and its deadline not passed */
    int64_t until_ms; /* the deadline (tally_lease_deadline) while held */
    int64_t asked_ms; /* when the last successful ask was sent */
    int inflight;     /* an ask waits for its answer */
    int64_t sent_ms;  /* ...sent at this time */
    unsigned long long acquired, lost, errors;
};

/** The last moment a lease asked for at @p sent_ms with @p ttl_ms may be trusted. */
int64_t tally_lease_deadline(int64_t sent_ms, int ttl_ms);

/** Sends an ask unless one is on the way or the link is down. Returns TALLY_OK if sent. */
int tally_lease_ask(tally_lease_t *lease, int64_t now_ms);
/** Returns 1 while the lease is ours and its deadline has not passed; at the deadline it is
 *  given up (counted in lost) and @p on_answer is not called. */
int tally_lease_held(tally_lease_t *lease, int64_t now_ms);
/** Gives up the lease: deletes the key if it holds our token. @p done (may be NULL) is called
 *  with the reply when one comes; returns TALLY_ERR if nothing was sent (not held, link
 *  down). The caller flushes. */
int tally_lease_release(tally_lease_t *lease, redisCallbackFn *done, void *privdata);
/** The link came up: an answer lost with the old connection never comes. */
void tally_lease_on_redis_up(tally_lease_t *lease);

#endif
