/* The cluster total as tally passes it around: parsing MQTT payloads, the cached total
 * that only ever grows, and handing out the totals of one group-committed INCRBY. */
#ifndef TALLY_TOTAL_H
#define TALLY_TOTAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The wire names of the total: the Redis key (INCRBY only) and the MQTT topic. */
#define TALLY_TOTAL_KEY "total_count"
#define TALLY_TOTAL_TOPIC "total_count"

/* The Redis key of the cluster epoch (absent: 0), raised by hand after a deliberate restore. */
#define TALLY_EPOCH_KEY "tally:epoch"

/* Longest payload accepted on total_count: the digits of INT64_MAX (Redis integers are
 * signed 64-bit, so no real total is larger). */
#define TALLY_TOTAL_MAX_DIGITS 19

/** Parses a total_count payload (not NUL-terminated): 1 to 19 ASCII digits, nothing else,
 *  at most INT64_MAX. Returns TALLY_OK and sets *out, or TALLY_ERR leaving *out alone. */
int tally_total_parse(const void *payload, size_t len, uint64_t *out);

/** Writes @p v in decimal into @p buf (at least 21 bytes), NUL-terminated; returns length. */
size_t tally_total_format(char *buf, uint64_t v);

/* The cached cluster total: a maximum over every total this process has learned (its own
 * INCRBY replies, the Redis seed, MQTT messages) in the newest cluster epoch it has heard
 * of (tally:epoch, raised after a deliberate restore of Redis). A total of a newer epoch
 * replaces the value, even a lower one (that is what a restore is); a total of an older
 * epoch is ignored. Safe to offer from any thread; reads are lock-free. */
typedef struct tally_cache {
    _Atomic uint64_t value;
    _Atomic int64_t updated_ms; /* monotonic ms of the last offer >= value; 0 = never */
    _Atomic uint64_t epoch;
    /* Offers take it, so no offer of an old epoch lands after an epoch change (one per
     * batch reply or MQTT message, never per request). */
    pthread_mutex_t lock_;
} tally_cache_t;

/** Empties @p c (value 0, epoch 0, never updated). */
void tally_cache_init(tally_cache_t *c);
/** Offers @p v learned at @p now_ms in the cache's current epoch. Returns 1 if it raised the
 *  total, 0 if not. Never lowers it. */
int tally_cache_offer(tally_cache_t *c, uint64_t v, int64_t now_ms);
/** Offers @p v of cluster epoch @p epoch: the maximum within the cache's epoch, the new
 *  value (raised or not) for a newer epoch, nothing for an older one. Returns 1 if the value
 *  changed, 2 if the epoch did (the caller may log it), 0 if nothing changed. */
int tally_cache_offer_epoch(tally_cache_t *c, uint64_t epoch, uint64_t v, int64_t now_ms);
/** The epoch and the value at one moment (an offer of a new epoch changes both at once). */
void tally_cache_snapshot(tally_cache_t *c, uint64_t *epoch, uint64_t *value);
/** The newest epoch the cache has heard of. */
uint64_t tally_cache_epoch(const tally_cache_t *c);
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
