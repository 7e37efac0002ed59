/* The publish rule: when a worker sends the newest total it got from Redis to total_count.
 * publish.c does it; publish_rule.c holds its arithmetic, free of I/O and unit-tested
 * (tests/unit/test_publish_rule.c). */
#ifndef TALLY_REPLICA_PUBLISH_H
#define TALLY_REPLICA_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

struct worker;

/** Publishes the worker's newest total if it is news and due (end of a loop pass, and the
 *  trailing timer). */
void publish_total(struct worker *w);
/** Re-decides the publish interval from the cluster's request rate; every watchdog tick. */
void publish_update_rate(struct worker *w);

/** The cluster's request rate, requests/s: how far the cached total moved from
 *  @p window_total in @p elapsed_ns. 0 for the first window (@p window_valid 0), whose
 *  start total means nothing. */
double publish_rule_rate(uint64_t total, uint64_t window_total, int window_valid, uint64_t elapsed_ns);

/** The least time between two publishes for @p rate with @p online replicas: 0 (every total
 *  at once) while rate x max(1, online - 1) stays below @p eager_rps, else
 *  @p interval_us x max(1, online - 1), in ns. */
uint64_t publish_rule_interval_ns(double rate, size_t online, int eager_rps, int interval_us);

/** How long a total due now (@p now_ns) must wait, 0 for not at all: until @p interval_ns
 *  after the last publish, and, with several replicas online (@p rank of @p ranks; rank ==
 *  ranks when this one is not listed), until the first half of this replica's slot of the
 *  interval on the wall clock (@p wall_ns). */
uint64_t publish_rule_wait_ns(uint64_t now_ns, uint64_t last_publish_ns, uint64_t interval_ns, size_t rank,
                              size_t ranks, uint64_t wall_ns);

#endif
