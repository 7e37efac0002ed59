/* One asynchronous Redis connection on a libuv loop, kept alive by tally.
 *
 * The link connects, authenticates (if a password is set), reports "up" to its owner,
 * and on any failure reports "down" and reconnects with exponential backoff. Replies to
 * commands in flight when the connection drops arrive as NULL (hiredis semantics): the
 * caller cannot know whether such a command was applied.
 *
 * Threading: a link belongs to the thread running its loop; nothing here is thread-safe. */
#ifndef TALLY_REDIS_LINK_H
#define TALLY_REDIS_LINK_H

#include <hiredis.h>
#include <async.h>
#include <uv.h>

#include "util.h"

enum tally_redis_state { TALLY_REDIS_DOWN = 0, TALLY_REDIS_CONNECTING, TALLY_REDIS_UP };

typedef struct tally_redis_link tally_redis_link_t;

struct tally_redis_link {
    /* set by the owner before tally_redis_link_start */
    uv_loop_t *loop;
    const char *host; /* not copied: must outlive the link */
    int port;
    const char *password; /* NULL or "" for none */
    void (*on_up)(tally_redis_link_t *link);
    void (*on_down)(tally_redis_link_t *link, const char *why);
    void *data;

    /* read-only for the owner */
    enum tally_redis_state state;
    redisAsyncContext *ac;
    unsigned long long connects, failures;
    char errstr[128];

    /* private */
    uv_timer_t retry_timer_;
    tally_backoff_t backoff_;
    int stopping_;
};

/** Attaches hiredis context @p ac to @p loop. Refuses (TALLY_ERR) a context already attached. */
int tally_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/** Writes what hiredis has queued on @p ac now instead of at the end of the loop pass. */
void tally_redis_uv_flush(redisAsyncContext *ac);

/** Starts connecting; the link keeps itself connected until tally_redis_link_stop. */
int tally_redis_link_start(tally_redis_link_t *link);
/** Drops the connection now (e.g. a command timed out): callbacks in flight get NULL,
 *  on_down is called, and a reconnect is scheduled. @p why is logged. */
void tally_redis_link_drop(tally_redis_link_t *link, const char *why);
/** Closes the connection and the timer for good; callbacks in flight get NULL. The link's
 *  handles are closed when the loop next runs. */
void tally_redis_link_stop(tally_redis_link_t *link);

#endif
