#include "util.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tally_now_ms(void)
{
    return clock_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t tally_now_us(void)
{
    return clock_ns(CLOCK_MONOTONIC) / 1000;
}

int64_t tally_wall_ms(void)
{
    return clock_ns(CLOCK_REALTIME) / 1000000;
}

int64_t tally_wall_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

void tally_backoff_init(tally_backoff_t *b, unsigned min_ms, unsigned max_ms)
{
    b->min_ms = min_ms ? min_ms : 1;
    b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
    b->cur_ms = b->min_ms;
    b->seed = (uint64_t)tally_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)b;
}

unsigned tally_backoff_next(tally_backoff_t *b)
{
    /* xorshift64: enough randomness for jitter, no shared state between threads. */
    b->seed ^= b->seed << 13;
    b->seed ^= b->seed >> 7;
    b->seed ^= b->seed << 17;
    unsigned base = b->cur_ms;
    unsigned jitter = base / 4 ? (unsigned)(b->seed % (base / 4 + 1)) : 0;
    b->cur_ms = base > b->max_ms / 2 ? b->max_ms : base * 2;
    return base + jitter;
}

void tally_backoff_reset(tally_backoff_t *b)
{
    b->cur_ms = b->min_ms;
}

int tally_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);
    if (size == 0)
        return TALLY_ERR;
    if (n >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = '\0';
        return TALLY_ERR;
    }
    memcpy(dst, src, n + 1);
    return TALLY_OK;
}
