#include "redis_link.h"
#include "log.h"
#include "metrics.h"
#include "total.h"

#include <stdio.h>
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
static void ask_master(tally_redis_link_t *link);

static int use_sentinels(const tally_redis_link_t *link)
{
    return link->sentinels != NULL && link->sentinels->n > 0;
}

int tally_redis_reply_not_master(const char *err)
{
    return err != NULL && (strncmp(err, "READONLY", 8) == 0 || strncmp(err, "MASTERDOWN", 10) == 0);
}

int tally_redis_reply_total(const redisReply *r, uint64_t *v)
{
    *v = 0;
    if (r->type == REDIS_REPLY_NIL)
        return TALLY_OK;
    if (r->type == REDIS_REPLY_STRING && tally_total_parse(r->str, r->len, v) == TALLY_OK)
        return TALLY_OK;
    *v = 0;
    return TALLY_ERR;
}

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
    if (was == TALLY_REDIS_UP) {
        pthread_mutex_lock(&link->shown_lock_);
        link->down_since_us_ = tally_now_us();
        pthread_mutex_unlock(&link->shown_lock_);
    }
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

/* The node answers and, with sentinels, says it is the master: report the link up. */
static void link_up(tally_redis_link_t *link)
{
    link->state = TALLY_REDIS_UP;
    link->connects++;
    pthread_mutex_lock(&link->shown_lock_);
    snprintf(link->shown_, sizeof(link->shown_), "%s:%d", link->host, link->port);
    if (link->down_since_us_ > 0)
        link->down_us_total_ += tally_now_us() - link->down_since_us_;
    link->down_since_us_ = 0;
    pthread_mutex_unlock(&link->shown_lock_);
    if (link->connects > 1 || link->failures > 0 || use_sentinels(link))
        tally_info("redis %s:%d: connected%s", link->host, link->port,
                   use_sentinels(link) ? " (master)" : "");
    tally_backoff_reset(&link->backoff_);
    link->failures = 0;
    if (link->on_up != NULL)
        link->on_up(link);
}

/* With sentinels, the answer to ROLE: a sentinel's answer may be stale, and a node may have
 * been demoted since; nothing is written to a node that does not say "master". */
static void on_role(redisAsyncContext *ac, void *r, void *privdata)
{
    tally_redis_link_t *link = privdata;
    redisReply *reply = r;
    if (link->ac != ac || reply == NULL)
        return;
    const char *role = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                               reply->element[0]->type == REDIS_REPLY_STRING
                           ? reply->element[0]->str
                           : NULL;
    if (role == NULL || strcmp(role, "master") != 0) {
        atomic_fetch_add(&link->not_master, 1);
        tally_warn(
            "redis %s:%d: the sentinels named it master of %s, but it answers as %s; asking them again",
            link->host, link->port, link->master_name, role != NULL ? role : "something else");
        tally_redis_link_drop(link, "not the master");
        return;
    }
    link_up(link);
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
        tally_error("redis %s:%d: %s (check REDIS_USERNAME and REDIS_PASSWORD)", link->host, link->port, why);
        tally_redis_link_drop(link, why);
        return;
    }
    if (!use_sentinels(link))
        link_up(link);
    else if (redisAsyncCommand(ac, on_role, link, "ROLE") != REDIS_OK)
        tally_redis_link_drop(link, "cannot send ROLE");
}

/* Connects to the node at link->host:link->port. */
static void connect_node(tally_redis_link_t *link)
{
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
    if (link->password != NULL && link->password[0] != '\0' && link->username != NULL &&
        link->username[0] != '\0')
        redisAsyncCommand(ac, on_hello, link, "AUTH %s %s", link->username, link->password);
    else if (link->password != NULL && link->password[0] != '\0')
        redisAsyncCommand(ac, on_hello, link, "AUTH %s", link->password);
    else
        redisAsyncCommand(ac, on_hello, link, "PING");
}

static void connect_now(tally_redis_link_t *link)
{
    if (link->stopping_ || link->state != TALLY_REDIS_DOWN)
        return;
    if (use_sentinels(link) && link->has_hint_) {
        /* a sentinel announced the new master: try it at once (ROLE still decides) */
        link->has_hint_ = 0;
        link->master = link->hint_;
        link->host = link->master.host;
        link->port = link->master.port;
        connect_node(link);
        return;
    }
    if (use_sentinels(link)) {
        link->asked_ = 0;
        link->state = TALLY_REDIS_CONNECTING;
        ask_master(link); /* then connect_node, from the answer */
        return;
    }
    connect_node(link);
}

/* ---- Sentinel: asking for the master, following failovers ------------------------------ */

/* A sentinel connection: attached to the loop, authenticated if a password is set. */
static redisAsyncContext *sentinel_connect(tally_redis_link_t *link, const tally_sentinel_addr_t *a,
                                           void (*on_disconnect_cb)(const redisAsyncContext *, int),
                                           void (*on_connect_cb)(const redisAsyncContext *, int))
{
    redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
    if (ac == NULL)
        return NULL;
    if (ac->err || tally_redis_uv_attach(ac, link->loop) != TALLY_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = link;
    redisAsyncSetDisconnectCallback(ac, on_disconnect_cb);
    redisAsyncSetConnectCallback(ac, on_connect_cb); /* a refused connect is reported here only */
    if (link->sentinel_password != NULL && link->sentinel_password[0] != '\0' &&
        link->sentinel_username != NULL && link->sentinel_username[0] != '\0')
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", link->sentinel_username, link->sentinel_password);
    else if (link->sentinel_password != NULL && link->sentinel_password[0] != '\0')
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", link->sentinel_password);
    return ac;
}

static void on_ask_disconnect(const redisAsyncContext *ac, int status)
{
    tally_redis_link_t *link = ac->data;
    (void)status;
    if (link->ask_ac_ != ac)
        return;
    link->ask_ac_ = NULL; /* that sentinel is away: ask the next one */
    ask_master(link);
}

static void on_ask_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        on_ask_disconnect(ac, status);
}

static void on_master_addr(redisAsyncContext *ac, void *r, void *privdata)
{
    tally_redis_link_t *link = privdata;
    redisReply *reply = r;
    if (link->ask_ac_ != ac || reply == NULL)
        return; /* on_ask_disconnect goes on */
    link->ask_ac_ = NULL;
    int port = -1;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[0]->len > 0 && reply->element[0]->len < sizeof(link->master.host))
        port = tally_port_parse(reply->element[1]->str, reply->element[1]->len);
    const tally_sentinel_addr_t *asked =
        &link->sentinels->addr[(link->ask_next_ + link->sentinels->n - 1) % link->sentinels->n];
    if (port < 0) {
        if (link->failures == 0 || (link->failures & (link->failures - 1)) == 0)
            tally_warn("redis sentinel %s:%d: %s for master %s", asked->host, asked->port,
                       reply->type == REDIS_REPLY_ERROR ? reply->str : "no address", link->master_name);
        redisAsyncDisconnect(ac);
        ask_master(link);
        return;
    }
    memcpy(link->master.host, reply->element[0]->str, reply->element[0]->len);
    link->master.host[reply->element[0]->len] = '\0';
    link->master.port = port;
    link->host = link->master.host;
    link->port = port;
    tally_debug("redis sentinel %s:%d: master %s is %s:%d", asked->host, asked->port, link->master_name,
                link->master.host, port);
    redisAsyncDisconnect(ac);
    connect_node(link);
}

/* Asks the next sentinel; after a whole round without an answer, waits (backoff). */
static void ask_master(tally_redis_link_t *link)
{
    const tally_sentinels_t *ss = link->sentinels;
    while (link->asked_ < ss->n) {
        const tally_sentinel_addr_t *a = &ss->addr[link->ask_next_];
        link->ask_next_ = (link->ask_next_ + 1) % ss->n;
        link->asked_++;
        redisAsyncContext *ac = sentinel_connect(link, a, on_ask_disconnect, on_ask_connect);
        if (ac == NULL)
            continue;
        link->ask_ac_ = ac;
        if (redisAsyncCommand(ac, on_master_addr, link, "SENTINEL get-master-addr-by-name %s",
                              link->master_name) == REDIS_OK)
            return;
        link->ask_ac_ = NULL;
        redisAsyncFree(ac);
    }
    went_down(link, "no sentinel named a master");
}

static void watch_start(tally_redis_link_t *link);

static void on_watch_timer(uv_timer_t *t)
{
    watch_start(t->data);
}

static size_t watch_index(const tally_redis_link_t *link, const redisAsyncContext *ac)
{
    for (size_t i = 0; i < link->sentinels->n; i++)
        if (link->watch_ac_[i] == ac)
            return i;
    return TALLY_SENTINELS_MAX;
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status)
{
    tally_redis_link_t *link = ac->data;
    (void)status;
    size_t i = watch_index(link, ac);
    if (i == TALLY_SENTINELS_MAX)
        return;
    link->watch_ac_[i] = NULL; /* the timer subscribes again */
}

static void on_watch_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        on_watch_disconnect(ac, status);
}

/* A sentinel announced that @p to is master now: go there unless the link is already on
 * it. A stale or repeated announcement costs at most one ROLE check. */
static void follow(tally_redis_link_t *link, const tally_sentinel_addr_t *to, const char *what)
{
    int same = strcmp(to->host, link->master.host) == 0 && to->port == link->master.port;
    if (same && (link->state == TALLY_REDIS_UP || link->ac != NULL))
        return; /* already there, or connecting there */
    if (link->has_hint_ && strcmp(to->host, link->hint_.host) == 0 && to->port == link->hint_.port)
        return; /* heard from another sentinel already */
    atomic_fetch_add(&link->failovers, 1);
    tally_warn("redis sentinel: %s: master %s is %s:%d now; following", what, link->master_name, to->host,
               to->port);
    link->hint_ = *to;
    link->has_hint_ = 1;
    tally_backoff_reset(&link->backoff_);
    if (link->ask_ac_ != NULL) { /* an answer on the way would be older than this news */
        redisAsyncContext *ask = link->ask_ac_;
        link->ask_ac_ = NULL;
        redisAsyncFree(ask);
        link->state = TALLY_REDIS_DOWN;
    }
    if (link->ac != NULL)
        tally_redis_link_drop(link, "failover announced by a sentinel");
    if (link->state == TALLY_REDIS_DOWN) {
        uv_timer_stop(&link->retry_timer_);
        connect_now(link);
    }
}

static void on_watch_message(redisAsyncContext *ac, void *r, void *privdata)
{
    tally_redis_link_t *link = privdata;
    redisReply *reply = r;
    tally_sentinel_addr_t to;
    if (watch_index(link, ac) == TALLY_SENTINELS_MAX || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "message") != 0 || reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return; /* the subscription's own confirmations */
    const char *channel = reply->element[1]->str, *msg = reply->element[2]->str;
    size_t len = reply->element[2]->len;
    if (strcmp(channel, "+switch-master") == 0 &&
        tally_switch_master_parse(msg, len, link->master_name, &to) == TALLY_OK)
        follow(link, &to, "+switch-master");
    else if (strcmp(channel, "+promoted-slave") == 0 &&
             tally_promoted_parse(msg, len, link->master_name, &to) == TALLY_OK)
        follow(link, &to, "+promoted-slave"); /* the leader saw it answer as master */
}

/* Subscribes on every sentinel that has no subscription yet (again every 500 ms). */
static void watch_start(tally_redis_link_t *link)
{
    const tally_sentinels_t *ss = link->sentinels;
    if (link->stopping_)
        return;
    for (size_t i = 0; i < ss->n; i++) {
        if (link->watch_ac_[i] != NULL)
            continue;
        redisAsyncContext *ac = sentinel_connect(link, &ss->addr[i], on_watch_disconnect, on_watch_connect);
        if (ac == NULL)
            continue;
        if (redisAsyncCommand(ac, on_watch_message, link, "SUBSCRIBE +switch-master +promoted-slave") !=
            REDIS_OK) {
            redisAsyncFree(ac);
            continue;
        }
        link->watch_ac_[i] = ac;
    }
}

int tally_redis_link_shown(tally_redis_link_t *link, char *out, size_t size)
{
    pthread_mutex_lock(&link->shown_lock_);
    snprintf(out, size, "%s", link->shown_);
    int up = link->down_since_us_ == 0;
    pthread_mutex_unlock(&link->shown_lock_);
    return up;
}

double tally_redis_link_down_seconds(tally_redis_link_t *link)
{
    pthread_mutex_lock(&link->shown_lock_);
    int64_t us = link->down_us_total_;
    if (link->down_since_us_ > 0)
        us += tally_now_us() - link->down_since_us_;
    pthread_mutex_unlock(&link->shown_lock_);
    return (double)us / 1e6;
}

void tally_redis_links_metrics(struct tally_metrics_buf *m, tally_redis_link_t *const *links, int n)
{
    char addr[sizeof(links[0]->shown_)] = "";
    int up = 0;
    double down = 0;
    for (int i = 0; i < n; i++) {
        char a[sizeof(addr)];
        int u = tally_redis_link_shown(links[i], a, sizeof(a));
        if (addr[0] == '\0' || (u && !up)) { /* the first, or the first one up */
            memcpy(addr, a, sizeof(addr));
            up = u;
        }
        double d = tally_redis_link_down_seconds(links[i]);
        down = d > down ? d : down;
    }
    tally_metrics_family(m, "tally_redis_master", "gauge",
                         "The Redis node written to (the master, with Sentinel): 1 while connected, 0 while "
                         "not (the last one used).");
    if (addr[0] != '\0')
        tally_metrics_sample(m, "tally_redis_master", "address", addr, up);
    tally_metrics_add(m, "tally_redis_without_master_seconds_total", "counter",
                      "Seconds without a connected Redis master since start (the worst worker thread).",
                      down);
}

/* The single password of earlier releases authenticates as Redis's default user, which may
 * run every command; it still works, with this warning once per process. */
static void warn_default_user(const tally_redis_link_t *link)
{
    static atomic_flag warned = ATOMIC_FLAG_INIT;
    int node = link->password != NULL && link->password[0] != '\0' &&
               (link->username == NULL || link->username[0] == '\0');
    if (node && !atomic_flag_test_and_set(&warned))
        tally_warn(
            "REDIS_PASSWORD without REDIS_USERNAME authenticates as Redis's default user, which may run "
            "every command (FLUSHALL, CONFIG, SET total_count); give this program its own ACL user "
            "(docs/security.md): the single password is deprecated and goes in a later release");
}

int tally_redis_link_start(tally_redis_link_t *link)
{
    warn_default_user(link);
    link->state = TALLY_REDIS_DOWN;
    link->ac = NULL;
    link->stopping_ = 0;
    link->connects = link->failures = 0;
    link->errstr[0] = '\0';
    tally_backoff_init(&link->backoff_, 50, 2000);
    if (uv_timer_init(link->loop, &link->retry_timer_) != 0)
        return TALLY_ERR;
    link->retry_timer_.data = link;
    link->ask_ac_ = NULL;
    link->ask_next_ = 0;
    memset(link->watch_ac_, 0, sizeof(link->watch_ac_));
    link->has_hint_ = 0;
    memset(&link->master, 0, sizeof(link->master));
    atomic_init(&link->failovers, 0);
    atomic_init(&link->not_master, 0);
    pthread_mutex_init(&link->shown_lock_, NULL);
    link->shown_[0] = '\0';
    link->down_since_us_ = tally_now_us();
    link->down_us_total_ = 0;
    if (uv_timer_init(link->loop, &link->watch_timer_) != 0)
        return TALLY_ERR;
    link->watch_timer_.data = link;
    if (use_sentinels(link)) {
        link->host = "(master not found yet)";
        link->port = 0;
        watch_start(link);
        uv_timer_start(&link->watch_timer_, on_watch_timer, 500, 500);
    }
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
    uv_timer_stop(&link->watch_timer_);
    if (!uv_is_closing((uv_handle_t *)&link->watch_timer_))
        uv_close((uv_handle_t *)&link->watch_timer_, NULL);
    redisAsyncContext *ac = link->ac, *ask = link->ask_ac_;
    link->ac = link->ask_ac_ = NULL;
    link->state = TALLY_REDIS_DOWN;
    if (ac != NULL)
        redisAsyncFree(ac);
    if (ask != NULL)
        redisAsyncFree(ask);
    for (size_t i = 0; i < TALLY_SENTINELS_MAX; i++) {
        redisAsyncContext *watch = link->watch_ac_[i];
        link->watch_ac_[i] = NULL;
        if (watch != NULL)
            redisAsyncFree(watch);
    }
}
