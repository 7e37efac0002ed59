/* An h2o HTTP listener on a libuv loop, shared by the replica and the publisher. */
#ifndef TALLY_HTTP_LISTENER_H
#define TALLY_HTTP_LISTENER_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stddef.h>
#include <uv.h>

typedef struct tally_http_listener {
    uv_tcp_t tcp;
    h2o_accept_ctx_t *accept_ctx;
    size_t conns; /* open connections accepted through this listener */
    int open;
} tally_http_listener_t;

/** Binds @p host:@p port (SO_REUSEADDR, and SO_REUSEPORT when @p reuseport, so several
 *  threads and processes can share the port) and hands connections to @p accept_ctx.
 *  Returns TALLY_ERR with the reason logged. */
int tally_http_listen(tally_http_listener_t *l, uv_loop_t *loop, const char *host, int port, int reuseport,
                      h2o_accept_ctx_t *accept_ctx);
/** Stops accepting; open connections are left to h2o. */
void tally_http_unlisten(tally_http_listener_t *l);

/** For an HTTP/1 request about to be answered: returns 1 when its connection already holds
 *  bytes beyond it (pipelined requests in h2o's buffer, or unread in the kernel), 0 when
 *  nothing follows it yet (or the request is not HTTP/1). A drain keeps such a connection
 *  open until its last request read is answered, and closes it after that answer. */
int tally_http_more_pipelined(h2o_req_t *req);

#endif
