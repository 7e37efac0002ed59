/* The publish rule's arithmetic (replica/publish_rule.c). */
#include <criterion/criterion.h>

#include "publish.h"

Test(publish_rule, rate_of_the_cached_total)
{
    cr_assert_float_eq(publish_rule_rate(2000, 1000, 1, 500000000ull), 2000.0, 1e-9);
    cr_assert_float_eq(publish_rule_rate(2000, 1000, 0, 500000000ull), 0.0, 1e-9,
                       "the first window is no rate");
    cr_assert_float_eq(publish_rule_rate(900, 1000, 1, 500000000ull), 0.0, 1e-9,
                       "a total that fell: no rate");
}

Test(publish_rule, eager_below_the_rate_interval_above_scaled_by_the_peers)
{
    cr_assert_eq(publish_rule_interval_ns(999.0, 1, 1000, 5000), 0);
    cr_assert_eq(publish_rule_interval_ns(1000.0, 1, 1000, 5000), 5000000ull);
    cr_assert_eq(publish_rule_interval_ns(1000.0, 2, 1000, 5000), 5000000ull, "two replicas: one peer");
    /* Five online: each publish reaches four peers, so 250 req/s already count as 1000. */
    cr_assert_eq(publish_rule_interval_ns(249.0, 5, 1000, 5000), 0);
    cr_assert_eq(publish_rule_interval_ns(250.0, 5, 1000, 5000), 20000000ull);
    cr_assert_eq(publish_rule_interval_ns(0.0, 1, 0, 5000), 5000000ull, "PUBLISH_EAGER_RPS=0: never eager");
}

Test(publish_rule, the_interval_since_the_last_publish)
{
    cr_assert_eq(publish_rule_wait_ns(1000, 0, 0, 0, 1, 0), 0, "eager: at once");
    cr_assert_eq(publish_rule_wait_ns(1300, 1000, 1000, 0, 1, 0), 700);
    cr_assert_eq(publish_rule_wait_ns(2000, 1000, 1000, 0, 1, 0), 0);
}

Test(publish_rule, each_replica_publishes_early_in_its_own_slot)
{
    /* Two online, interval 1000: rank 0 owns [0, 500), publishes in [0, 250); rank 1 owns
     * [500, 1000), publishes in [500, 750). The last publish is long past. */
    uint64_t now = 1000000;
    cr_assert_eq(publish_rule_wait_ns(now, 0, 1000, 1, 2, 5100), 400, "before its slot: until 500");
    cr_assert_eq(publish_rule_wait_ns(now, 0, 1000, 1, 2, 5600), 0, "early in its slot");
    cr_assert_eq(publish_rule_wait_ns(now, 0, 1000, 1, 2, 5800), 700, "late in its slot: the next one");
    cr_assert_eq(publish_rule_wait_ns(now, 0, 1000, 0, 2, 5100), 0);
    cr_assert_eq(publish_rule_wait_ns(now, 0, 1000, 0, 2, 5300), 700);
    cr_assert_eq(publish_rule_wait_ns(now, 0, 1000, 2, 2, 5300), 0, "not listed online: no slot");
    cr_assert_eq(publish_rule_wait_ns(now, 0, 0, 1, 2, 5100), 0, "eager: no slots");
    /* The longer of the two waits wins. */
    cr_assert_eq(publish_rule_wait_ns(now, now - 100, 1000, 0, 2, 5000), 900);
}
