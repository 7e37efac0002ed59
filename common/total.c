#include "total.h"
#include "util.h"

int tally_total_parse(const void *payload, size_t len, uint64_t *out)
{
    const unsigned char *p = payload;
    if (p == NULL || len == 0 || len > TALLY_TOTAL_MAX_DIGITS)
        return TALLY_ERR;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return TALLY_ERR;
        v = v * 10 + (uint64_t)(p[i] - '0'); /* 19 digits cannot overflow uint64_t */
    }
    if (v > (uint64_t)INT64_MAX)
        return TALLY_ERR;
    *out = v;
    return TALLY_OK;
}

size_t tally_total_format(char *buf, uint64_t v)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

void tally_cache_init(tally_cache_t *c)
{
    atomic_init(&c->value, 0);
    atomic_init(&c->updated_ms, 0);
    atomic_init(&c->epoch, 0);
    pthread_mutex_init(&c->lock_, NULL);
}

static int offer_locked(tally_cache_t *c, uint64_t v, int64_t now_ms)
{
    uint64_t cur = atomic_load_explicit(&c->value, memory_order_relaxed);
    int raised = v > cur;
    if (raised)
        atomic_store_explicit(&c->value, v, memory_order_relaxed);
    if (raised || v == cur)
        atomic_store_explicit(&c->updated_ms, now_ms > 0 ? now_ms : 1, memory_order_relaxed);
    return raised;
}

int tally_cache_offer(tally_cache_t *c, uint64_t v, int64_t now_ms)
{
    pthread_mutex_lock(&c->lock_);
    int raised = offer_locked(c, v, now_ms);
    pthread_mutex_unlock(&c->lock_);
    return raised;
}

int tally_cache_offer_epoch(tally_cache_t *c, uint64_t epoch, uint64_t v, int64_t now_ms)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock_);
    uint64_t cur = atomic_load_explicit(&c->epoch, memory_order_relaxed);
    if (epoch == cur) {
        rc = offer_locked(c, v, now_ms);
    } else if (epoch > cur) {
        atomic_store_explicit(&c->epoch, epoch, memory_order_relaxed);
        atomic_store_explicit(&c->value, v, memory_order_relaxed);
        atomic_store_explicit(&c->updated_ms, now_ms > 0 ? now_ms : 1, memory_order_relaxed);
        rc = 2;
    }
    pthread_mutex_unlock(&c->lock_);
    return rc;
}

void tally_cache_snapshot(tally_cache_t *c, uint64_t *epoch, uint64_t *value)
{
    pthread_mutex_lock(&c->lock_);
    *epoch = atomic_load_explicit(&c->epoch, memory_order_relaxed);
    *value = atomic_load_explicit(&c->value, memory_order_relaxed);
    pthread_mutex_unlock(&c->lock_);
}

uint64_t tally_cache_epoch(const tally_cache_t *c)
{
    return atomic_load_explicit(&c->epoch, memory_order_relaxed);
}

uint64_t tally_cache_value(const tally_cache_t *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}

int64_t tally_cache_age_ms(const tally_cache_t *c, int64_t now_ms)
{
    int64_t t = atomic_load_explicit(&c->updated_ms, memory_order_relaxed);
    if (t == 0)
        return -1;
    return now_ms > t ? now_ms - t : 0;
}

int tally_batch_first(long long reply, size_t n, uint64_t *first)
{
    if (n == 0 || reply < 0 || (unsigned long long)reply < n)
        return TALLY_ERR;
    *first = (uint64_t)reply - n + 1;
    return TALLY_OK;
}
