/* Small helpers every part of tally uses: the return convention, clocks, backoff. */
#ifndef TALLY_UTIL_H
#define TALLY_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* One return convention project-wide. */
#define TALLY_OK 0
#define TALLY_ERR -1

#define TALLY_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The buffer of an id: INSTANCE_ID, a Redis user or master name (at most 64 characters). */
#define TALLY_ID_SIZE 65

/** Milliseconds on the monotonic clock: for ages and deadlines. */
int64_t tally_now_ms(void);
/** Microseconds on the monotonic clock: for durations shorter than a millisecond adds up. */
int64_t tally_now_us(void);
/** Milliseconds since the Unix epoch: for timestamps users read. */
int64_t tally_wall_ms(void);
/** Wall-clock time in nanoseconds since the Unix epoch (shared by every process on a host). */
int64_t tally_wall_ns(void);

/* Exponential backoff with jitter: each failure doubles the delay up to max_ms, a success
 * resets it. The jitter (up to a quarter of the delay) keeps replicas that lost the same
 * server from reconnecting in lockstep. */
typedef struct tally_backoff {
    unsigned min_ms, max_ms, cur_ms;
    uint64_t seed;
} tally_backoff_t;

/** Prepares @p b; the first delay will be @p min_ms. */
void tally_backoff_init(tally_backoff_t *b, unsigned min_ms, unsigned max_ms);
/** Returns the delay before the next attempt and doubles the base for the one after. */
unsigned tally_backoff_next(tally_backoff_t *b);
/** Forgets past failures. */
void tally_backoff_reset(tally_backoff_t *b);

/** Copies @p src into @p dst of @p size bytes, always terminated; returns TALLY_ERR if cut. */
int tally_strlcpy(char *dst, const char *src, size_t size);

#endif
