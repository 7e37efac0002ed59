/* The cluster total as tally passes it around: parsing MQTT payloads, the cached total
 * that only ever grows, and handing out the totals of one group-committed INCRBY. */
#ifndef TALLY_TOTAL_H
#define TALLY_TOTAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Longest payload accepted on total_count: the digits of INT64_MAX (Redis integers are
 * signed 64-bit, so no real total is larger). */
#define TALLY_TOTAL_MAX_DIGITS 19

/** Parses a total_count payload (not NUL-terminated): 1 to 19 ASCII digits, nothing else,
 *  at most INT64_MAX. Returns TALLY_OK and sets *out, or TALLY_ERR leaving *out alone. */
int tally_total_parse(const void *payload, size_t len, uint64_t *out);

/** Writes @p v in decimal into @p buf (at least 21 bytes), NUL-terminated; returns length. */
size_t tally_total_format(char *buf, uint64_t v);

/* The cached cluster total: a maximum over every total this process has learned (its own
 * INCRBY replies, the Redis seed, MQTT messages). Safe to offer from any thread. */
typedef struct tally_cache {
    _Atomic uint64_t value;
    _Atomic int64_t updated_ms; /* monotonic ms of the last offer >= value; 0 = never */
} tally_cache_t;

/** Empties @p c (value 0, never updated). */
void tally_cache_init(tally_cache_t *c);
/** Offers @p v learned at @p now_ms. Returns 1 if it raised the total, 0 if not. Never lowers it. */
int tally_cache_offer(tally_cache_t *c, uint64_t v, int64_t now_ms);
/** Returns the cached total. */
uint64_t tally_cache_value(const tally_cache_t *c);
/** Returns milliseconds since the cache last learned a total at least as new, or -1 if never. */
int64_t tally_cache_age_ms(const tally_cache_t *c, int64_t now_ms);

/** For a batch of @p n increments answered by INCRBY with @p reply (the total after the
 *  batch), sets *first to the total of the batch's first request: the batch owns
 *  first .. first+n-1. Returns TALLY_ERR if @p reply cannot be such an answer (n == 0,
 *  reply < n, which would mean the key was reset). */
int tally_batch_first(long long reply, size_t n, uint64_t *first);

#endif
