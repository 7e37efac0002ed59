/* The publish rule's arithmetic (see publish.h and publish.c). */
#include "publish.h"

double publish_rule_rate(uint64_t total, uint64_t window_total, int window_valid, uint64_t elapsed_ns)
{
    if (!window_valid || total <= window_total || elapsed_ns == 0)
        return 0.0;
    return (double)(total - window_total) * 1e9 / (double)elapsed_ns;
}

uint64_t publish_rule_interval_ns(double rate, size_t online, int eager_rps, int interval_us)
{
    double fanout = online > 2 ? (double)(online - 1) : 1.0;
    if (rate * fanout < (double)eager_rps)
        return 0;
    return (uint64_t)((double)interval_us * 1000.0 * fanout);
}

uint64_t publish_rule_wait_ns(uint64_t now_ns, uint64_t last_publish_ns, uint64_t interval_ns, size_t rank,
                              size_t ranks, uint64_t wall_ns)
{
    uint64_t wait_ns = now_ns - last_publish_ns < interval_ns ? last_publish_ns + interval_ns - now_ns : 0;
    if (interval_ns == 0 || ranks <= 1 || rank >= ranks)
        return wait_ns;
    /* Under load, replicas take turns: the interval is cut into one slot per online replica
     * (by rank of id, on the wall clock all share), and a replica publishes only early in
     * its own slot. Two replicas' totals then leave half a slot apart or more, after each
     * heard the other's last one, so a watcher rarely sees the total step back
     * (docs/benchmarks.md). The delay this adds is at most one interval. */
    uint64_t slot = interval_ns / ranks;
    uint64_t offset = wall_ns % interval_ns, mine = slot * rank;
    /* Only the first half of the slot: the second keeps this publish and the next replica's
     * apart even when this one goes out late in its slot. */
    if (offset < mine || offset >= mine + slot / 2) {
        uint64_t to_slot = offset < mine ? mine - offset : interval_ns - offset + mine;
        if (to_slot > wait_ns)
            wait_ns = to_slot;
    }
    return wait_ns;
}
