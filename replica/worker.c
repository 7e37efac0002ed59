/* One event-loop thread: its listening socket (SO_REUSEPORT, so several threads and
 * processes share the port), its h2o context, its Redis link, the end-of-pass flush and
 * the shutdown drain. */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "replica.h"

#define WATCHDOG_MS 50

static void on_conn_close(uv_handle_t *handle)
{
    struct worker *w = handle->loop->data;
    w->conns--;
    free(handle);
}

static void on_accept(uv_stream_t *listener, int status)
{
    struct worker *w = listener->loop->data;
    if (status != 0)
        return;
    uv_tcp_t *conn = malloc(sizeof(*conn));
    if (conn == NULL)
        return;
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    w->conns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_close);
    h2o_accept(&w->accept_ctx, sock);
}

/* Opens the listening socket by hand: libuv sets SO_REUSEPORT nowhere. */
static int open_listener(struct worker *w)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port[8];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", g_replica.cfg.service_port);
    int rc = getaddrinfo(g_replica.cfg.service_host, port, &hints, &res);
    if (rc != 0) {
        tally_error("SERVICE_HOST %s: %s", g_replica.cfg.service_host, gai_strerror(rc));
        return TALLY_ERR;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        tally_error("cannot listen on %s:%d: %s", g_replica.cfg.service_host, g_replica.cfg.service_port,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return TALLY_ERR;
    }
    freeaddrinfo(res);
    if (uv_tcp_init(&w->loop, &w->listener) != 0 || uv_tcp_open(&w->listener, fd) != 0 ||
        uv_listen((uv_stream_t *)&w->listener, 4096, on_accept) != 0) {
        tally_error("cannot watch the listening socket");
        close(fd);
        return TALLY_ERR;
    }
    w->listening = 1;
    return TALLY_OK;
}

static void on_flush(uv_check_t *check)
{
    counter_flush(check->data);
}

static void finish(struct worker *w)
{
    counter_publish(w); /* the last total goes out if the broker is there */
    uv_timer_stop(&w->publish_timer);
    uv_timer_stop(&w->watchdog);
    uv_check_stop(&w->flush);
    tally_redis_link_stop(&w->redis);
    uv_stop(&w->loop);
}

static void on_watchdog(uv_timer_t *t)
{
    struct worker *w = t->data;
    int64_t now = tally_now_ms();
    counter_check_deadline(w, now);
    if (!atomic_load(&g_replica.stopping))
        return;
    /* Draining: requests in flight get their answers; idle keep-alive connections get a
     * short grace to close, since HTTP/1 has no way to tell them to go. */
    if (w->waiting != 0 || (w->open != NULL && w->open->n != 0)) {
        w->drain_since_ms = 0;
    } else if (w->drain_since_ms == 0) {
        w->drain_since_ms = now;
    }
    if ((w->drain_since_ms != 0 && (w->conns == 0 || now - w->drain_since_ms >= 200)) ||
        now >= w->stop_deadline_ms) {
        if (w->waiting != 0)
            tally_warn("shutdown: %zu requests still waiting for Redis after %d ms", w->waiting,
                       g_replica.cfg.shutdown_timeout_ms);
        finish(w);
    }
}

static void on_wakeup(uv_async_t *a)
{
    struct worker *w = a->data;
    if (w->listening) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        w->listening = 0;
    }
    h2o_context_request_shutdown(&w->ctx);
    w->stop_deadline_ms = tally_now_ms() + g_replica.cfg.shutdown_timeout_ms;
    w->drain_since_ms = 0;
    on_watchdog(&w->watchdog);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (atomic_exchange(&g_replica.stopping, 1))
        return;
    tally_info("%s: no longer accepting connections; draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    for (int i = 0; i < g_replica.nworkers; i++)
        worker_request_stop(&g_replica.workers[i]);
}

void worker_request_stop(struct worker *w)
{
    uv_async_send(&w->wakeup);
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
    if (open_listener(w) != TALLY_OK)
        return TALLY_ERR;

    uv_check_init(&w->loop, &w->flush);
    w->flush.data = w;
    uv_check_start(&w->flush, on_flush);
    uv_timer_init(&w->loop, &w->watchdog);
    w->watchdog.data = w;
    uv_timer_start(&w->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
    uv_timer_init(&w->loop, &w->publish_timer);
    w->publish_timer.data = w;
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    if (index == 0) {
        uv_signal_init(&w->loop, &w->sigterm);
        uv_signal_start(&w->sigterm, on_signal, SIGTERM);
        uv_signal_init(&w->loop, &w->sigint);
        uv_signal_start(&w->sigint, on_signal, SIGINT);
    }

    w->redis.loop = &w->loop;
    w->redis.host = g_replica.cfg.redis_host;
    w->redis.port = g_replica.cfg.redis_port;
    w->redis.password = g_replica.cfg.redis_password;
    w->redis.on_up = counter_on_redis_up;
    w->redis.on_down = counter_on_redis_down;
    w->redis.data = w;
    return tally_redis_link_start(&w->redis);
}

void worker_run(struct worker *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
}
