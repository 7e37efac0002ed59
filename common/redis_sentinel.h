/* The Sentinel side of a Redis link (redis_sentinel.c), used by redis_link.c only. */
#ifndef TALLY_REDIS_SENTINEL_H
#define TALLY_REDIS_SENTINEL_H

#include "redis_link.h"

/** The announcement of a failover leader's choice: the named replica is about to be promoted
 *  (link->announced_'s @p what; redis_link.c). */
#define TALLY_SENTINEL_SELECTED "+selected-slave"

/** Sets up the link's Sentinel state and timer (whether or not it uses sentinels). */
int tally_redis_sentinel_init(tally_redis_link_t *link);
/** Asks the sentinels in turn, from where the last round stopped, which node is master:
 *  link->found_ once one names it (link->master, host and port are set), link->none_ after a
 *  whole round without an answer. */
void tally_redis_sentinel_ask(tally_redis_link_t *link);
/** Forgets an ask on the way; returns 1 if there was one. */
int tally_redis_sentinel_cancel_ask(tally_redis_link_t *link);
/** Subscribes to every sentinel's announcements (again every 500 ms for those that went
 *  away); each announced master goes to link->announced_. */
void tally_redis_sentinel_watch(tally_redis_link_t *link);
/** Closes the asks, the subscriptions and the timer. */
void tally_redis_sentinel_stop(tally_redis_link_t *link);

#endif
