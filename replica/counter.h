/* The group commit (counter.c): every counted request of a loop pass rides on one batch. */
#ifndef TALLY_REPLICA_COUNTER_H
#define TALLY_REPLICA_COUNTER_H

#include <stdint.h>

#include "batch.h"

struct worker;

/** Queues a counted request on @p w; @p done learns its result once its batch is answered (or
 *  at once, when it cannot be counted). The counter knows nothing of HTTP answers. */
void counter_submit(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag);
/** The same for a request with an Idempotency-Key (@p key, @p key_len bytes, copied). */
void counter_submit_keyed(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag, const char *key,
                          size_t key_len);
/** Offers a total learned in cluster @p epoch (Redis's answer or a signed MQTT message) to the
 *  cache and the MQTT link: a newer epoch replaces the cached total (logged). Any thread. */
void counter_offer(uint64_t epoch, uint64_t total, int64_t now_ms);
/** Returns 1 when @p w could count a request now (its Redis link is up and seeded). */
int counter_can_count(const struct worker *w);
/** End of a loop pass: sends the open batch and publishes the newest total. */
void counter_flush(struct worker *w);
/** Redis is back and seeded (seed.c): resends what the last connection lost, oldest first,
 *  before anything new. */
void counter_resend_lost(struct worker *w);
/** Fails batches whose reply is overdue by dropping the Redis connection. */
void counter_check_deadline(struct worker *w, int64_t now_ms);
/** Answers 503 to every batch waiting to be resent or confirmed (at shutdown). */
void counter_fail_waiting(struct worker *w);

#endif
