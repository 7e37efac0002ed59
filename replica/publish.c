/* Coalesced publishing of the totals Redis returned (the rule: publish.h). */
#include "publish.h"

#include "replica.h"

static void on_publish_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    w->publish_timer_armed = 0;
    publish_total(w);
}

/* Only totals Redis returned, at most one per loop pass, and at most one per w->interval_ns
 * (see publish_update_rate). After a quiet spell the total goes out at once; one held back
 * by the interval goes out on the next pass or from the trailing timer, so the newest total
 * is never left unpublished. */
void publish_total(struct worker *w)
{
    /* Only a total above everything this replica knows is news: one below a peer's total
     * would show a watcher of total_count a step back (and tells the peers nothing). */
    if (w->newest_total <= w->published_total || w->newest_total < tally_cache_value(&g_replica.cache) ||
        !atomic_load_explicit(&g_replica.mqtt.connected, memory_order_relaxed))
        return;
    uint64_t now = uv_hrtime();
    uint64_t wait_ns = publish_rule_wait_ns(now, w->last_publish_ns, w->interval_ns, w->rank, w->ranks,
                                            (uint64_t)tally_wall_ns());
    if (wait_ns > 0) {
        if (!w->publish_timer_armed) {
            uv_timer_start(&w->publish_timer, on_publish_timer, (wait_ns + 999999) / 1000000, 0);
            w->publish_timer_armed = 1;
        }
        return;
    }
    char payload[24];
    size_t len = tally_total_format(payload, w->newest_total);
    if (tally_mqtt_link_publish(&g_replica.mqtt, TALLY_TOTAL_TOPIC, payload, len, 0, 0) == TALLY_OK) {
        w->published_total = w->newest_total;
        w->last_publish_ns = now;
    }
}

/* Re-decided every 100 ms or more. Every publish is delivered to the other N-1 replicas (N:
 * replicas online in the presence table), so the broker's traffic grows with N times the
 * publish rate. While the cluster's request rate (how fast the cached total moves) times
 * max(1, N-1) stays below PUBLISH_EAGER_RPS, every loop pass publishes: peers learn each
 * total within one broker hop. Above it, at most one publish per PUBLISH_INTERVAL_US x
 * max(1, N-1) per thread, which keeps the deliveries the broker makes per second bounded
 * however many replicas there are, and leaves a saturated replica's CPU to its requests. */
void publish_update_rate(struct worker *w)
{
    uint64_t now = uv_hrtime();
    uint64_t elapsed = now - w->window_start_ns;
    if (elapsed < 100000000ull)
        return;
    uint64_t total = tally_cache_value(&g_replica.cache);
    double rate = publish_rule_rate(total, w->window_total, w->window_valid, elapsed);
    size_t online;
    w->rank = tally_presence_rank(&g_replica.presence, g_replica.cfg.instance_id, &online);
    w->ranks = online;
    w->interval_ns = publish_rule_interval_ns(rate, online, g_replica.cfg.publish_eager_rps,
                                              g_replica.cfg.publish_interval_us);
    atomic_store_explicit(&g_replica.stats.publish_interval_ns, w->interval_ns, memory_order_relaxed);
    w->window_total = total;
    w->window_valid = 1;
    w->window_start_ns = now;
}
