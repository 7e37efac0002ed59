#include "http_listener.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Each accepted connection remembers its listener to keep the count. */
struct conn {
    uv_tcp_t tcp; /* first: h2o closes the uv handle and calls on_conn_close with it */
    tally_http_listener_t *listener;
};

void tally_http_config_init(h2o_globalconf_t *conf, const char *server_name)
{
    h2o_config_init(conf);
    conf->server_name = h2o_iovec_init(server_name, strlen(server_name));
    conf->max_request_entity_size = 0;
    conf->http1.upgrade_to_http2 = 0;
    conf->http2.max_concurrent_requests_per_connection = TALLY_HTTP2_MAX_STREAMS;
}

static void accept_one(tally_http_listener_t *l);

static void on_conn_close(uv_handle_t *handle)
{
    struct conn *c = (struct conn *)handle;
    tally_http_listener_t *l = c->listener;
    atomic_fetch_sub_explicit(&l->conns, 1, memory_order_relaxed);
    free(c);
    if (l->held && l->open) { /* a slot is free: the connection libuv holds takes it */
        l->held = 0;
        accept_one(l);
    }
}

static void accept_one(tally_http_listener_t *l)
{
    uv_stream_t *server = (uv_stream_t *)&l->tcp;
    struct conn *c = malloc(sizeof(*c));
    if (c == NULL)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->listener = l;
    atomic_fetch_add_explicit(&l->conns, 1, memory_order_relaxed);
    h2o_accept(l->accept_ctx, h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close));
}

static void on_accept(uv_stream_t *server, int status)
{
    tally_http_listener_t *l = server->data;
    if (status != 0)
        return;
    if (l->max_conns != 0 && atomic_load_explicit(&l->conns, memory_order_relaxed) >= l->max_conns) {
        /* At the cap: not taking the connection makes libuv keep it and stop watching the
         * listening socket until uv_accept (on_conn_close calls it); the rest wait in the
         * kernel's backlog. */
        l->held = 1;
        atomic_fetch_add_explicit(&l->cap_reached, 1, memory_order_relaxed);
        return;
    }
    accept_one(l);
}

int tally_http_listen(tally_http_listener_t *l, uv_loop_t *loop, const char *host, int port, int reuseport,
                      size_t max_conns, h2o_accept_ctx_t *accept_ctx)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    memset(l, 0, sizeof(*l));
    atomic_init(&l->conns, 0);
    atomic_init(&l->cap_reached, 0);
    l->max_conns = max_conns;
    l->accept_ctx = accept_ctx;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        tally_error("cannot resolve %s: %s", host, gai_strerror(rc));
        return TALLY_ERR;
    }
    /* Opened by hand: libuv sets SO_REUSEPORT nowhere. */
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        tally_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return TALLY_ERR;
    }
    freeaddrinfo(res);
    l->tcp.data = l;
    if (uv_tcp_init(loop, &l->tcp) != 0 || uv_tcp_open(&l->tcp, fd) != 0 ||
        uv_listen((uv_stream_t *)&l->tcp, 4096, on_accept) != 0) {
        tally_error("cannot watch the listening socket on %s:%d", host, port);
        close(fd);
        return TALLY_ERR;
    }
    l->tcp.data = l;
    l->open = 1;
    return TALLY_OK;
}

void tally_http_listeners_metrics(struct tally_metrics_buf *m, tally_http_listener_t *const *ls, int n)
{
    double open = 0, reached = 0;
    for (int i = 0; i < n; i++) {
        open += (double)atomic_load_explicit(&ls[i]->conns, memory_order_relaxed);
        reached += (double)atomic_load_explicit(&ls[i]->cap_reached, memory_order_relaxed);
    }
    tally_metrics_add(m, "tally_http_connections", "gauge", "Open HTTP connections.", open);
    tally_metrics_add(m, "tally_http_connection_cap_reached_total", "counter",
                      "Times the HTTP port stopped accepting at MAX_CONNECTIONS (new connections waited in "
                      "the kernel's backlog until one closed).",
                      reached);
}

void tally_http_unlisten(tally_http_listener_t *l)
{
    if (l->open) {
        uv_close((uv_handle_t *)&l->tcp, NULL);
        l->open = 0;
    }
}

int tally_http_more_pipelined(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return 0;
    /* h2o parses HTTP/1 requests one at a time from the start of the input buffer and stops
     * reading while one is answered: this request's head and body come first, anything
     * after them is the next request. */
    const h2o_buffer_t *in = sock->input;
    if (in != NULL && in->size > 0) {
        const char *end = memmem(in->bytes, in->size, "\r\n\r\n", 4);
        size_t used = end != NULL ? (size_t)(end - in->bytes) + 4 + req->entity.len : in->size;
        if (in->size > used)
            return 1;
    }
    int fd = h2o_socket_get_fd(sock), unread = 0;
    return fd >= 0 && ioctl(fd, FIONREAD, &unread) == 0 && unread > 0;
}
