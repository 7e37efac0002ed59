/* The publisher's HTTP port: /healthz, /readyz (Redis up and subscribed), /metrics. */
#include <stdio.h>
#include <string.h>

#include "http_respond.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"

static int ready(void)
{
    return !g_pub.stopping && g_pub.redis.state == TALLY_REDIS_UP && atomic_load(&g_pub.mqtt.subscribed);
}

static void metrics(h2o_req_t *req)
{
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    int leading = lease_held(tally_now_ms());
    tally_metrics_add(&m, "tally_publisher_leader", "gauge", "1 while this publisher holds the lease.",
                      leading);
    tally_metrics_add(&m, "tally_publisher_lease_acquired_total", "counter",
                      "Times this publisher became leader.", (double)g_pub.lease.acquired);
    tally_metrics_add(&m, "tally_publisher_lease_lost_total", "counter", "Times it stopped leading.",
                      (double)g_pub.lease.lost);
    tally_metrics_add(&m, "tally_publisher_publishes_total", "counter",
                      "Retained totals published (changed).", (double)g_pub.stats.publishes);
    tally_metrics_add(&m, "tally_publisher_heartbeats_total", "counter",
                      "Retained totals republished unchanged.", (double)g_pub.stats.heartbeats);
    tally_metrics_add(&m, "tally_publisher_held_back_total", "counter",
                      "Redis totals not published because they were below the retained one.",
                      (double)g_pub.stats.held_back);
    tally_metrics_add(&m, "tally_publisher_redis_read_errors_total", "counter", "Failed reads of the total.",
                      (double)g_pub.stats.read_errors);
    tally_metrics_add(&m, "tally_publisher_retained_requests", "gauge", "Highest total known retained.",
                      (double)tally_cache_value(&g_pub.floor));
    tally_metrics_add(&m, "tally_redis_connected", "gauge", "1 while Redis is connected.",
                      g_pub.redis.state == TALLY_REDIS_UP);
    tally_metrics_add(&m, "tally_redis_failovers_total", "counter",
                      "Failovers announced by a sentinel (+switch-master, +promoted-slave) and followed.",
                      (double)atomic_load(&g_pub.redis.failovers));
    tally_metrics_add(&m, "tally_redis_not_master_total", "counter",
                      "Connections dropped because the node answered as no master (ROLE, -READONLY).",
                      (double)atomic_load(&g_pub.redis.not_master));
    tally_redis_link_t *link = &g_pub.redis;
    tally_redis_links_metrics(&m, &link, 1);
    tally_http_listener_t *listener = &g_pub.listener;
    tally_http_listeners_metrics(&m, &listener, 1);
    tally_mqtt_link_metrics(&m, &g_pub.mqtt);
    tally_metrics_add(&m, "tally_publisher_statuses_cleared_total", "counter",
                      "Retained statuses of replicas offline for PRESENCE_EXPIRE_S cleared by this leader.",
                      (double)atomic_load(&g_pub.stats.statuses_cleared));
    tally_metrics_add(
        &m, "tally_cluster_epoch", "gauge",
        "The cluster epoch (Redis key tally:epoch, raised after a deliberate restore) this process "
        "publishes in.",
        (double)tally_cache_epoch(&g_pub.floor));
    tally_metrics_add(&m, "tally_ready", "gauge", "1 while /readyz answers 200.", ready());
    tally_metrics_process(&m, g_pub.started_wall_ms);
    tally_http_respond_metrics(req, &m);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    h2o_iovec_t p = req->path_normalized;
    int known = h2o_memis(p.base, p.len, H2O_STRLIT("/healthz")) ||
                h2o_memis(p.base, p.len, H2O_STRLIT("/readyz")) ||
                h2o_memis(p.base, p.len, H2O_STRLIT("/metrics"));
    if (!known) {
        tally_http_respond_not_found(req, "the publisher serves /healthz, /readyz and /metrics");
    } else if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        tally_http_respond_bad_method(req, "GET", "only GET is allowed here");
    } else if (h2o_memis(p.base, p.len, H2O_STRLIT("/healthz"))) {
        tally_http_respond_alive(req);
    } else if (h2o_memis(p.base, p.len, H2O_STRLIT("/readyz"))) {
        char body[128];
        int r = ready();
        size_t len = (size_t)snprintf(body, sizeof(body), "{\"ready\":%s,\"leader\":%s}",
                                      r ? "true" : "false", lease_held(tally_now_ms()) ? "true" : "false");
        tally_http_respond(req, r ? 200 : 503, r ? "OK" : "Service Unavailable", TALLY_CT_JSON, body, len);
    } else {
        metrics(req);
    }
    return 0;
}

int publisher_http_start(void)
{
    tally_http_config_init(&g_pub.hconf, "tally-publisher");
    h2o_hostconf_t *host =
        h2o_config_register_host(&g_pub.hconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;
    h2o_context_init(&g_pub.ctx, &g_pub.loop, &g_pub.hconf);
    g_pub.accept_ctx.ctx = &g_pub.ctx;
    g_pub.accept_ctx.hosts = g_pub.hconf.hosts;
    return tally_http_listen(&g_pub.listener, &g_pub.loop, g_pub.cfg.http_host, g_pub.cfg.http_port, 0,
                             (size_t)g_pub.cfg.max_connections, &g_pub.accept_ctx);
}
