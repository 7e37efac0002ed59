/* The INSTANCE_ID claim's decisions (see claim.h and claim.c). */
#include "claim.h"

enum claim_action claim_rule(struct claim_state *s, const tally_lease_answer_t *a, int64_t now_ms,
                             int wait_ms)
{
    if (a->ours) {
        s->contested = 0;
        s->ran = 1;
        return CLAIM_HELD;
    }
    if (s->ran)
        return CLAIM_TAKEN;
    /* A holder that renews (its PTTL went up) is alive; one that lets it run down was a
     * killed process's, whose claim the next ask takes once it lapses. */
    if (s->contested && a->pttl > s->last_pttl && now_ms - s->contested_since >= wait_ms)
        return CLAIM_REFUSE;
    if (!s->contested)
        s->contested_since = now_ms;
    s->contested = 1;
    s->last_pttl = a->pttl;
    return CLAIM_WAIT;
}
