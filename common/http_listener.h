/* An h2o HTTP listener on a libuv loop, shared by the replica and the publisher, and the
 * h2o settings both programs serve with. */
#ifndef TALLY_HTTP_LISTENER_H
#define TALLY_HTTP_LISTENER_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

/* HTTP/2 streams one connection may have open at once (prior knowledge only: the HTTP/1
 * upgrade to h2c is off). Low, so one connection cannot queue a large share of a batch. */
#define TALLY_HTTP2_MAX_STREAMS 16

/** h2o_config_init, then what every tally HTTP port serves with: no request body is read
 *  (no route takes one: a request announcing one gets h2o's 413 with Connection: close at
 *  once, before any handler runs, so it is never counted), no HTTP/1 upgrade to h2c (a
 *  proxy in front would pass the switched connection as an opaque tunnel), and at most
 *  TALLY_HTTP2_MAX_STREAMS streams per HTTP/2 connection. @p server_name is not copied. */
void tally_http_config_init(h2o_globalconf_t *conf, const char *server_name);

typedef struct tally_http_listener {
    uv_tcp_t tcp;
    h2o_accept_ctx_t *accept_ctx;
    atomic_size_t conns;       /* open connections accepted through this listener (any thread reads) */
    size_t max_conns;          /* most open at once (0: no cap); see tally_http_listen */
    int held;                  /* libuv holds an accepted connection until a slot frees */
    atomic_ullong cap_reached; /* times accepting paused at max_conns (any thread reads) */
    int open;
} tally_http_listener_t;

/** Binds @p host:@p port (SO_REUSEADDR, and SO_REUSEPORT when @p reuseport, so several
 *  threads and processes can share the port) and hands connections to @p accept_ctx.
 *  With @p max_conns open, it stops accepting until one closes: the connections it has keep
 *  being served, and new ones wait in the kernel's listen backlog (bounded; past it the
 *  kernel drops SYNs), so no flood of connections can exhaust memory or descriptors.
 *  Returns TALLY_ERR with the reason logged. */
int tally_http_listen(tally_http_listener_t *l, uv_loop_t *loop, const char *host, int port, int reuseport,
                      size_t max_conns, h2o_accept_ctx_t *accept_ctx);
struct tally_metrics_buf;
/** Appends tally_http_connections (open now) and tally_http_connection_cap_reached_total
 *  for the @p n listeners of one program. Any thread may call it. */
void tally_http_listeners_metrics(struct tally_metrics_buf *m, tally_http_listener_t *const *ls, int n);

/** Stops accepting; open connections are left to h2o. */
void tally_http_unlisten(tally_http_listener_t *l);

/** For an HTTP/1 request about to be answered: returns 1 when its connection already holds
 *  bytes beyond it (pipelined requests in h2o's buffer, or unread in the kernel), 0 when
 *  nothing follows it yet (or the request is not HTTP/1). A drain keeps such a connection
 *  open until its last request read is answered, and closes it after that answer. */
int tally_http_more_pipelined(h2o_req_t *req);

#endif
