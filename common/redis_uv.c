/* hiredis on a libuv loop (redis_uv.h).
 *
 * Reads are watched with a uv_poll_t. Writes on a connected socket are not: hiredis asks
 * for "writable" after every command, and watching for it would cost a loop iteration of
 * latency per command plus epoll_ctl calls each time the interest changes (uv_poll_start
 * drops the fd from epoll at once). Instead the output buffer is written at the end of the
 * loop pass (a uv_check) or at once through tally_redis_uv_flush; only a partial write
 * (socket buffer full) falls back to polling for writable. Connecting still polls. */
#include "redis_uv.h"

#include <stdlib.h>

#include "util.h"

struct uv_events {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up; the handles may still be closing */
    uv_poll_t poll;
    uv_check_t check;
    int events;        /* what the poll handle watches */
    int write_pending; /* a write is owed at the end of this pass */
    int open_handles;
};

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct uv_events *ev = handle->data;
    /* An error on the socket (e.g. a refused connect) is reported as a status, not an event:
     * hand hiredis both directions so its own read/write finds the error and cleans up. */
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    if (ev->ac != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(ev->ac);
    if (ev->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(ev->ac);
}

static void start_poll(struct uv_events *ev, int events)
{
    if (events == ev->events)
        return;
    ev->events = events;
    if (events != 0)
        uv_poll_start(&ev->poll, events, on_poll);
    else
        uv_poll_stop(&ev->poll);
}

static void write_now(struct uv_events *ev)
{
    uv_check_stop(&ev->check);
    if (!ev->write_pending || ev->ac == NULL)
        return;
    ev->write_pending = 0;
    redisAsyncContext *ac = ev->ac;
    redisAsyncHandleWrite(ac);
    /* Not all written (or hiredis freed the context): let the poll handle wait for room. */
    if (ev->ac == ac && ev->write_pending) {
        ev->write_pending = 0;
        start_poll(ev, ev->events | UV_WRITABLE);
    }
}

static void on_check(uv_check_t *check)
{
    write_now(check->data);
}

static void ev_add_read(void *p)
{
    struct uv_events *ev = p;
    start_poll(ev, ev->events | UV_READABLE);
}

static void ev_del_read(void *p)
{
    struct uv_events *ev = p;
    start_poll(ev, ev->events & ~UV_READABLE);
}

static void ev_add_write(void *p)
{
    struct uv_events *ev = p;
    if (!(ev->ac->c.flags & REDIS_CONNECTED) || (ev->events & UV_WRITABLE)) {
        start_poll(ev, ev->events | UV_WRITABLE); /* connecting, or already waiting for room */
        return;
    }
    if (!ev->write_pending) {
        ev->write_pending = 1;
        uv_check_start(&ev->check, on_check);
    }
}

static void ev_del_write(void *p)
{
    struct uv_events *ev = p;
    ev->write_pending = 0;
    uv_check_stop(&ev->check);
    start_poll(ev, ev->events & ~UV_WRITABLE);
}

static void ev_free(uv_handle_t *handle)
{
    struct uv_events *ev = handle->data;
    if (--ev->open_handles == 0)
        free(ev);
}

static void ev_cleanup(void *p)
{
    struct uv_events *ev = p;
    ev->ac = NULL;
    ev->write_pending = 0;
    uv_close((uv_handle_t *)&ev->poll, ev_free);
    uv_close((uv_handle_t *)&ev->check, ev_free);
}

int tally_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return TALLY_ERR;
    struct uv_events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return TALLY_ERR;
    if (uv_poll_init_socket(loop, &ev->poll, ac->c.fd) != 0) {
        free(ev);
        return TALLY_ERR;
    }
    uv_check_init(loop, &ev->check);
    ev->open_handles = 2;
    ev->ac = ac;
    ev->poll.data = ev;
    ev->check.data = ev;
    ac->ev.data = ev;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return TALLY_OK;
}

void tally_redis_uv_flush(redisAsyncContext *ac)
{
    if (ac != NULL && ac->ev.data != NULL)
        write_now(ac->ev.data);
}
