#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "total.h"
#include "util.h"

static int parse(const char *s, uint64_t *out)
{
    return tally_total_parse(s, strlen(s), out);
}

Test(total_parse, accepts_plain_decimal)
{
    uint64_t v = 7;
    cr_assert_eq(parse("0", &v), TALLY_OK);
    cr_assert_eq(v, 0);
    cr_assert_eq(parse("12345", &v), TALLY_OK);
    cr_assert_eq(v, 12345);
    cr_assert_eq(parse("9223372036854775807", &v), TALLY_OK);
    cr_assert_eq(v, 9223372036854775807ULL);
    cr_assert_eq(parse("007", &v), TALLY_OK);
    cr_assert_eq(v, 7);
}

Test(total_parse, rejects_garbage_and_leaves_output_alone)
{
    const char *bad[] = {"",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "1\n",
                         "abc",
                         "12a",
                         "1.5",
                         "0x10",
                         "9223372036854775808",
                         "99999999999999999999",
                         "18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 42;
        cr_assert_eq(parse(bad[i], &v), TALLY_ERR, "accepted \"%s\"", bad[i]);
        cr_assert_eq(v, 42);
    }
    uint64_t v = 42;
    cr_assert_eq(tally_total_parse(NULL, 0, &v), TALLY_ERR);
    cr_assert_eq(tally_total_parse("12\0003", 4, &v), TALLY_ERR, "an embedded NUL must not end the number");
}

Test(total_parse, payload_is_not_nul_terminated)
{
    uint64_t v = 0;
    const char buf[] = {'4', '2', '9'};
    cr_assert_eq(tally_total_parse(buf, 2, &v), TALLY_OK);
    cr_assert_eq(v, 42);
}

Test(total_format, round_trips)
{
    char buf[24];
    uint64_t vals[] = {0, 1, 10, 999, 123456789, 9223372036854775807ULL, 18446744073709551615ULL};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        size_t n = tally_total_format(buf, vals[i]);
        cr_assert_eq(n, strlen(buf));
        char expect[24];
        snprintf(expect, sizeof(expect), "%llu", (unsigned long long)vals[i]);
        cr_assert_str_eq(buf, expect);
    }
}

Test(cache, only_grows)
{
    tally_cache_t c;
    tally_cache_init(&c);
    cr_assert_eq(tally_cache_value(&c), 0);
    cr_assert_eq(tally_cache_age_ms(&c, 1000), -1, "never learned: no age");
    cr_assert_eq(tally_cache_offer(&c, 10, 100), 1);
    cr_assert_eq(tally_cache_offer(&c, 5, 200), 0);
    cr_assert_eq(tally_cache_value(&c), 10);
    cr_assert_eq(tally_cache_age_ms(&c, 250), 150, "a lower total must not refresh the age");
    cr_assert_eq(tally_cache_offer(&c, 10, 300), 0);
    cr_assert_eq(tally_cache_age_ms(&c, 350), 50, "the same total confirms the cache");
    cr_assert_eq(tally_cache_offer(&c, 11, 400), 1);
    cr_assert_eq(tally_cache_value(&c), 11);
}

#include <pthread.h>

static tally_cache_t shared;

static void *offer_many(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < 100000; i++)
        tally_cache_offer(&shared, base + i * 4, 1);
    return NULL;
}

Test(cache, concurrent_offers_keep_the_maximum)
{
    pthread_t t[4];
    tally_cache_init(&shared);
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, offer_many, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(tally_cache_value(&shared), 3 + 99999 * 4);
}

Test(batch, hands_out_the_returned_range)
{
    uint64_t first = 0;
    cr_assert_eq(tally_batch_first(100, 5, &first), TALLY_OK);
    cr_assert_eq(first, 96, "a batch of 5 ending at 100 owns 96..100");
    cr_assert_eq(tally_batch_first(1, 1, &first), TALLY_OK);
    cr_assert_eq(first, 1);
    cr_assert_eq(tally_batch_first(3, 3, &first), TALLY_OK);
    cr_assert_eq(first, 1);
}

Test(batch, refuses_impossible_replies)
{
    uint64_t first = 77;
    cr_assert_eq(tally_batch_first(2, 3, &first), TALLY_ERR, "the key was reset under us");
    cr_assert_eq(tally_batch_first(-1, 1, &first), TALLY_ERR);
    cr_assert_eq(tally_batch_first(10, 0, &first), TALLY_ERR);
    cr_assert_eq(first, 77);
}

Test(backoff, doubles_with_jitter_and_resets)
{
    tally_backoff_t b;
    tally_backoff_init(&b, 100, 1000);
    unsigned d1 = tally_backoff_next(&b);
    unsigned d2 = tally_backoff_next(&b);
    cr_assert(d1 >= 100 && d1 <= 125, "first delay %u", d1);
    cr_assert(d2 >= 200 && d2 <= 250, "second delay %u", d2);
    for (int i = 0; i < 20; i++)
        cr_assert_leq(tally_backoff_next(&b), 1250);
    tally_backoff_reset(&b);
    d1 = tally_backoff_next(&b);
    cr_assert(d1 >= 100 && d1 <= 125, "after reset %u", d1);
}

Test(cache, a_newer_epoch_replaces_an_older_one_is_ignored)
{
    tally_cache_t c;
    tally_cache_init(&c);
    cr_assert_eq(tally_cache_offer_epoch(&c, 0, 10, 100), 1);
    cr_assert_eq(tally_cache_offer_epoch(&c, 7, 4, 200), 2, "a restore: the lower total of the new epoch");
    cr_assert_eq(tally_cache_value(&c), 4);
    cr_assert_eq(tally_cache_epoch(&c), 7);
    cr_assert_eq(tally_cache_offer_epoch(&c, 0, 1000, 300), 0, "an old epoch moves nothing");
    cr_assert_eq(tally_cache_value(&c), 4);
    cr_assert_eq(tally_cache_offer(&c, 6, 400), 1, "offers without an epoch are in the current one");
    cr_assert_eq(tally_cache_offer_epoch(&c, 7, 5, 500), 0);
    uint64_t e, v;
    tally_cache_snapshot(&c, &e, &v);
    cr_assert_eq(e, 7);
    cr_assert_eq(v, 6);
}
