/* One event-loop thread: its listening socket (SO_REUSEPORT, so several threads and
 * processes share the port), its h2o context, its Redis link, the end-of-pass flush and
 * the shutdown drain. */
#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "counter.h"
#include "log.h"
#include "publish.h"
#include "replica.h"
#include "seed.h"

#define WATCHDOG_MS 50
#define DRAIN_IDLE_MS 200 /* no request for this long while draining: the rest are idle */

static void on_flush(uv_check_t *check)
{
    counter_flush(check->data);
}

static void finish(struct worker *w)
{
    publish_total(w); /* the last total goes out if the broker is there */
    if (w->index == 0)
        uv_timer_stop(&w->delay_timer);
    if (w->index == 0 && w->redis.ac != NULL) {
        claim_release(w);
        tally_redis_uv_flush(w->redis.ac);
    }
    uv_timer_stop(&w->publish_timer);
    uv_timer_stop(&w->watchdog);
    uv_check_stop(&w->flush);
    tally_redis_link_stop(&w->redis);
    counter_fail_waiting(w);
    uv_stop(&w->loop);
}

static void on_watchdog(uv_timer_t *t)
{
    struct worker *w = t->data;
    int64_t now = tally_now_ms();
    counter_check_deadline(w, now);
    publish_update_rate(w);
    events_tick(w, now);
    if (w->index == 0 && !atomic_load(&g_replica.stopping))
        claim_tick(w, now);
    if (!atomic_load(&g_replica.stopping))
        return;
    /* Draining: requests in flight get their answers. HTTP/1 cannot tell an idle keep-alive
     * connection to go (its next answer says Connection: close), so the worker ends once no
     * request has arrived for DRAIN_IDLE_MS. The quiet time is measured from the last request,
     * not sampled on these ticks: a busy worker is idle at most instants between two batches. */
    int busy = w->waiting != 0 || (w->open != NULL && w->open->n != 0);
    int64_t quiet = (int64_t)uv_now(&w->loop) - w->last_request_ms;
    if ((!busy && (w->listener.conns == 0 || quiet >= DRAIN_IDLE_MS)) || now >= w->stop_deadline_ms) {
        if (w->waiting != 0)
            tally_warn("shutdown: %zu requests still waiting for Redis after %d ms", w->waiting,
                       g_replica.cfg.shutdown_timeout_ms);
        finish(w);
    }
}

static void on_wakeup(uv_async_t *a)
{
    struct worker *w = a->data;
    tally_http_unlisten(&w->listener);
    h2o_context_request_shutdown(&w->ctx);
    w->stop_deadline_ms = tally_now_ms() + g_replica.cfg.shutdown_timeout_ms;
    w->last_request_ms = (int64_t)uv_now(&w->loop);
    on_watchdog(&w->watchdog);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)s, (void)signum;
    tally_config_reload_log();
}

/* Asks @p w (from any thread) to stop accepting and drain. */
static void worker_request_stop(struct worker *w)
{
    uv_async_send(&w->wakeup);
}

void replica_request_stop(const char *why)
{
    atomic_store(&g_replica.draining, 1);
    if (atomic_exchange(&g_replica.stopping, 1))
        return;
    tally_info("%s: no longer accepting connections; draining", why);
    for (int i = 0; i < g_replica.nworkers; i++)
        worker_request_stop(&g_replica.workers[i]);
}

static void on_delay_over(uv_timer_t *t)
{
    (void)t;
    replica_request_stop("SIGTERM");
}

/* SIGTERM: unready at once, so load balancers stop sending here; SHUTDOWN_DELAY_MS later
 * (their health checks have seen it), stop accepting and drain. A second signal, or
 * SIGINT, drains at once. */
static void on_signal(uv_signal_t *s, int signum)
{
    struct worker *w = s->data;
    int delay = g_replica.cfg.shutdown_delay_ms;
    if (signum == SIGINT || delay == 0 || atomic_exchange(&g_replica.draining, 1)) {
        replica_request_stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
    tally_info("SIGTERM: /readyz answers 503 now; draining in %d ms (SHUTDOWN_DELAY_MS)", delay);
    uv_timer_start(&w->delay_timer, on_delay_over, (uint64_t)delay, 0);
}

static void on_redis_up(tally_redis_link_t *link)
{
    struct worker *w = link->data;
    seed_on_redis_up(link);
    if (w->index == 0)
        claim_on_redis_up(w);
}

int worker_init(struct worker *w, int index, h2o_globalconf_t *hconf)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    if (uv_loop_init(&w->loop) != 0)
        return TALLY_ERR;
    w->loop.data = w;
    h2o_context_init(&w->ctx, &w->loop, hconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = hconf->hosts;
    /* MAX_CONNECTIONS is the process's: each thread's listener takes its share. */
    int n = g_replica.cfg.threads;
    size_t share = (size_t)((g_replica.cfg.max_connections + n - 1) / n);
    if (tally_http_listen(&w->listener, &w->loop, g_replica.cfg.service_host, g_replica.cfg.service_port, 1,
                          share, &w->accept_ctx) != TALLY_OK)
        return TALLY_ERR;

    uv_check_init(&w->loop, &w->flush);
    w->flush.data = w;
    uv_check_start(&w->flush, on_flush);
    uv_timer_init(&w->loop, &w->watchdog);
    w->watchdog.data = w;
    uv_timer_start(&w->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
    uv_timer_init(&w->loop, &w->publish_timer);
    /* An idle replica publishes every total at once (PUBLISH_EAGER_RPS=0: never). */
    w->interval_ns =
        g_replica.cfg.publish_eager_rps > 0 ? 0 : (uint64_t)g_replica.cfg.publish_interval_us * 1000;
    w->window_start_ns = uv_hrtime();
    atomic_store(&g_replica.stats.publish_interval_ns, w->interval_ns);
    w->publish_timer.data = w;
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    if (index == 0) {
        uv_signal_init(&w->loop, &w->sigterm);
        w->sigterm.data = w;
        uv_signal_start(&w->sigterm, on_signal, SIGTERM);
        uv_timer_init(&w->loop, &w->delay_timer);
        uv_signal_init(&w->loop, &w->sigint);
        w->sigint.data = w;
        uv_signal_start(&w->sigint, on_signal, SIGINT);
        uv_signal_init(&w->loop, &w->sighup);
        uv_signal_start(&w->sighup, on_sighup, SIGHUP);
    }

    snprintf(w->dedup_key, sizeof(w->dedup_key), "tally:batches:%s:%lld:%d", g_replica.cfg.instance_id,
             (long long)g_replica.started_wall_ms, index);
    tally_redis_link_configure(&w->redis, &w->loop, &g_replica.cfg.redis, &g_replica.sentinels);
    w->redis.on_up = on_redis_up;
    w->redis.on_down = seed_on_redis_down;
    w->redis.data = w;
    return tally_redis_link_start(&w->redis);
}

void worker_run(struct worker *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
}
