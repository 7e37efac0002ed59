#include "redis_link.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* ---- hiredis <-> libuv ----------------------------------------------------------------
 *
 * Reads are watched with a uv_poll_t. Writes on a connected socket are not: hiredis asks
 * for "writable" after every command, and watching for it would cost a loop iteration of
 * latency per command plus epoll_ctl calls each time the interest changes (uv_poll_start
 * drops the fd from epoll at once). Instead the output buffer is written at the end of the
 * loop pass (a uv_check) or at once through tally_redis_uv_flush; only a partial write
 * (socket buffer full) falls back to polling for writable. Connecting still polls. */

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

/* ---- the link ------------------------------------------------------------------------- */

static void connect_now(tally_redis_link_t *link);

static void on_retry_timer(uv_timer_t *t)
{
    connect_now(t->data);
}

/* The connection is gone (hiredis freed or is freeing the context): tell the owner once
 * and schedule the next attempt. */
static void went_down(tally_redis_link_t *link, const char *why)
{
    enum tally_redis_state was = link->state;
    link->ac = NULL;
    link->state = TALLY_REDIS_DOWN;
    tally_strlcpy(link->errstr, why, sizeof(link->errstr));
    if (link->stopping_)
        return;
    link->failures++;
    unsigned delay = tally_backoff_next(&link->backoff_);
    if (was == TALLY_REDIS_UP)
        tally_warn("redis %s:%d: connection lost (%s); reconnecting in %u ms", link->host, link->port, why,
                   delay);
    else if (link->failures == 1 || (link->failures & (link->failures - 1)) == 0)
        tally_warn("redis %s:%d: cannot connect (%s); attempt %llu, next in %u ms", link->host, link->port,
                   why, link->failures, delay);
    uv_timer_start(&link->retry_timer_, on_retry_timer, delay, 0);
    if (was == TALLY_REDIS_UP && link->on_down != NULL)
        link->on_down(link, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tally_redis_link_t *link = ac->data;
    if (status != REDIS_OK && link->ac == ac)
        went_down(link, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tally_redis_link_t *link = ac->data;
    if (link->ac == ac)
        went_down(link, status == REDIS_OK ? "closed" : ac->errstr[0] ? ac->errstr : "connection error");
}

/* First reply on a new connection (AUTH or PING): the link is usable once it is not an error. */
static void on_hello(redisAsyncContext *ac, void *r, void *privdata)
{
    tally_redis_link_t *link = privdata;
    redisReply *reply = r;
    if (link->ac != ac || reply == NULL)
        return; /* connection failed; on_connect/on_disconnect handle it */
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[128];
        snprintf(why, sizeof(why), "%s", reply->str);
        tally_error("redis %s:%d: %s (check REDIS_PASSWORD)", link->host, link->port, why);
        tally_redis_link_drop(link, why);
        return;
    }
    link->state = TALLY_REDIS_UP;
    link->connects++;
    if (link->connects > 1 || link->failures > 0)
        tally_info("redis %s:%d: connected", link->host, link->port);
    tally_backoff_reset(&link->backoff_);
    link->failures = 0;
    if (link->on_up != NULL)
        link->on_up(link);
}

static void connect_now(tally_redis_link_t *link)
{
    if (link->stopping_ || link->state != TALLY_REDIS_DOWN)
        return;
    redisAsyncContext *ac = redisAsyncConnect(link->host, link->port);
    if (ac == NULL) {
        link->state = TALLY_REDIS_CONNECTING; /* so went_down reports a failed attempt */
        went_down(link, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        link->state = TALLY_REDIS_CONNECTING;
        went_down(link, why);
        return;
    }
    ac->data = link;
    if (tally_redis_uv_attach(ac, link->loop) != TALLY_OK) {
        redisAsyncFree(ac);
        link->state = TALLY_REDIS_CONNECTING;
        went_down(link, "cannot watch the socket");
        return;
    }
    link->ac = ac;
    link->state = TALLY_REDIS_CONNECTING;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* hiredis connects lazily, on the first write: queue the hello now. */
    if (link->password != NULL && link->password[0] != '\0')
        redisAsyncCommand(ac, on_hello, link, "AUTH %s", link->password);
    else
        redisAsyncCommand(ac, on_hello, link, "PING");
}

int tally_redis_link_start(tally_redis_link_t *link)
{
    link->state = TALLY_REDIS_DOWN;
    link->ac = NULL;
    link->stopping_ = 0;
    link->connects = link->failures = 0;
    link->errstr[0] = '\0';
    tally_backoff_init(&link->backoff_, 50, 2000);
    if (uv_timer_init(link->loop, &link->retry_timer_) != 0)
        return TALLY_ERR;
    link->retry_timer_.data = link;
    connect_now(link);
    return TALLY_OK;
}

void tally_redis_link_drop(tally_redis_link_t *link, const char *why)
{
    redisAsyncContext *ac = link->ac;
    if (ac == NULL)
        return;
    enum tally_redis_state was = link->state;
    link->ac = NULL; /* on_disconnect sees a stale context and stays quiet */
    redisAsyncFree(ac);
    link->state = was;
    went_down(link, why);
}

void tally_redis_link_stop(tally_redis_link_t *link)
{
    link->stopping_ = 1;
    uv_timer_stop(&link->retry_timer_);
    if (!uv_is_closing((uv_handle_t *)&link->retry_timer_))
        uv_close((uv_handle_t *)&link->retry_timer_, NULL);
    redisAsyncContext *ac = link->ac;
    link->ac = NULL;
    link->state = TALLY_REDIS_DOWN;
    if (ac != NULL)
        redisAsyncFree(ac);
}
