/* The INSTANCE_ID claim's decisions (replica/claim_rule.c) and the lease's deadline
 * (common/lease.c). */
#include <criterion/criterion.h>

#include "claim.h"

/* An answer naming another holder with @p pttl ms left (< 0: ours), at @p now. */
static enum claim_action look(struct claim_state *s, long long pttl, int64_t now, int wait_ms)
{
    tally_lease_answer_t a = {.ours = pttl < 0, .holder = "h pid 1 since 0", .pttl = pttl};
    return claim_rule(s, &a, now, wait_ms);
}

Test(claim_rule, a_holder_that_lets_its_claim_run_down_is_waited_out)
{
    struct claim_state s = {0};
    cr_assert_eq(look(&s, 2800, 1000, 0), CLAIM_WAIT);
    cr_assert_eq(look(&s, 2600, 1200, 0), CLAIM_WAIT, "its PTTL went down: maybe a dead process");
    cr_assert_eq(look(&s, 2400, 1400, 0), CLAIM_WAIT);
    cr_assert_eq(look(&s, -1, 4000, 0), CLAIM_HELD, "it lapsed: ours");
    cr_assert_eq(s.contested, 0);
}

Test(claim_rule, a_holder_that_renews_is_alive_and_refuses_the_newcomer)
{
    struct claim_state s = {0};
    cr_assert_eq(look(&s, 2000, 1000, 0), CLAIM_WAIT);
    cr_assert_eq(look(&s, 2900, 1200, 0), CLAIM_REFUSE, "its PTTL went up: it renewed");
}

Test(claim_rule, instance_id_wait_ms_lets_a_draining_holder_finish_first)
{
    struct claim_state s = {0};
    cr_assert_eq(look(&s, 2000, 1000, 5000), CLAIM_WAIT);
    cr_assert_eq(look(&s, 2900, 1200, 5000), CLAIM_WAIT, "renewed, but the wait is not over");
    cr_assert_eq(look(&s, 2950, 6000, 5000), CLAIM_REFUSE);
}

Test(claim_rule, once_held_another_holder_means_taken_not_refused)
{
    struct claim_state s = {0};
    cr_assert_eq(look(&s, -1, 1000, 0), CLAIM_HELD);
    cr_assert_eq(look(&s, 2000, 9000, 0), CLAIM_TAKEN, "an outage never stops a running replica");
    cr_assert_eq(look(&s, 2900, 9200, 0), CLAIM_TAKEN);
}

Test(lease, the_deadline_starts_when_the_ask_was_sent_less_a_tenth)
{
    cr_assert_eq(tally_lease_deadline(10000, 3000), 12700);
    cr_assert_eq(tally_lease_deadline(0, 300), 270);
}
