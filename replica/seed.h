/* A worker's Redis connection comes up or goes down (seed.c). */
#ifndef TALLY_REPLICA_SEED_H
#define TALLY_REPLICA_SEED_H

#include "redis_link.h"

/** The link is up: loads the batch script and seeds the cache; the worker counts once both
 *  are answered. */
void seed_on_redis_up(tally_redis_link_t *link);
/** The link is down: the worker stops counting until it is seeded again. */
void seed_on_redis_down(tally_redis_link_t *link, const char *why);

#endif
