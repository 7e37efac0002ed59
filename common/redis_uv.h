/* hiredis on a libuv loop (redis_uv.c): reads are polled, writes go out at the end of the
 * loop pass or at once on request. */
#ifndef TALLY_REDIS_UV_H
#define TALLY_REDIS_UV_H

#include <async.h>
#include <hiredis.h>
#include <uv.h>

/** Attaches hiredis context @p ac to @p loop. Refuses (TALLY_ERR) a context already attached. */
int tally_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/** Writes what hiredis has queued on @p ac now instead of at the end of the loop pass. */
void tally_redis_uv_flush(redisAsyncContext *ac);

#endif
