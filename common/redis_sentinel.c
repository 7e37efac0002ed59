/* The Sentinel side of a Redis link (redis_sentinel.h): asking the sentinels in turn which
 * node is master_name's master, and one subscription per sentinel to +switch-master,
 * +promoted-slave and +selected-slave, so the first to announce a failover is heard. What
 * it learns goes to the link through its found_, none_ and announced_ callbacks. */
#include "redis_sentinel.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "redis_uv.h"

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
    tally_redis_sentinel_ask(link);
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
        if (link->failures == 0 || tally_log_every_power_of_two(link->failures))
            tally_warn("sentinel %s:%d: %s for master %s", asked->host, asked->port,
                       reply->type == REDIS_REPLY_ERROR ? reply->str : "no address", link->master_name);
        redisAsyncDisconnect(ac);
        tally_redis_sentinel_ask(link);
        return;
    }
    memcpy(link->master.host, reply->element[0]->str, reply->element[0]->len);
    link->master.host[reply->element[0]->len] = '\0';
    link->master.port = port;
    link->host = link->master.host;
    link->port = port;
    tally_debug("sentinel %s:%d: master %s is %s:%d", asked->host, asked->port, link->master_name,
                link->master.host, port);
    redisAsyncDisconnect(ac);
    link->found_(link);
}

/* Asks the next sentinel; after a whole round without an answer, waits (backoff). */
void tally_redis_sentinel_ask(tally_redis_link_t *link)
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
    link->none_(link, "no sentinel named a master");
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

/* A sentinel ACL of an earlier release (make-secrets.sh) lets the programs' user subscribe
 * to +switch-master and +promoted-slave only. A refused SUBSCRIBE subscribes to none of its
 * channels, and hiredis drops the connection at the error: the next round leaves
 * +selected-slave out, so failovers are followed at the promotion, as before. */
static void selected_refused(tally_redis_link_t *link, const redisAsyncContext *ac, size_t i)
{
    static atomic_flag warned = ATOMIC_FLAG_INIT;
    if (ac->err == 0 || strncmp(ac->errstr, "NOPERM", 6) != 0 || link->selected_refused_)
        return;
    link->selected_refused_ = 1;
    if (!atomic_flag_test_and_set(&warned))
        tally_warn("sentinel %s:%d: may not subscribe to " TALLY_SENTINEL_SELECTED
                   " (%s): failovers are followed only once the new master is promoted; give the "
                   "sentinels' client user the channel (make-secrets.sh of this release, docs/security.md)",
                   link->sentinels->addr[i].host, link->sentinels->addr[i].port, ac->errstr);
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status)
{
    tally_redis_link_t *link = ac->data;
    (void)status;
    size_t i = watch_index(link, ac);
    if (i == TALLY_SENTINELS_MAX)
        return;
    selected_refused(link, ac, i);
    link->watch_ac_[i] = NULL; /* the timer subscribes again */
}

static void on_watch_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        on_watch_disconnect(ac, status);
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
        link->announced_(link, &to, "+switch-master");
    else if (strcmp(channel, "+promoted-slave") == 0 &&
             tally_promoted_parse(msg, len, link->master_name, &to) == TALLY_OK)
        link->announced_(link, &to, "+promoted-slave"); /* the leader saw it answer as master */
    else if (strcmp(channel, TALLY_SENTINEL_SELECTED) == 0 &&
             tally_promoted_parse(msg, len, link->master_name, &to) == TALLY_OK)
        link->announced_(link, &to, TALLY_SENTINEL_SELECTED); /* about to be promoted */
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
        const char *subscribe = link->selected_refused_
                                    ? "SUBSCRIBE +switch-master +promoted-slave"
                                    : "SUBSCRIBE +switch-master +promoted-slave " TALLY_SENTINEL_SELECTED;
        if (redisAsyncCommand(ac, on_watch_message, link, subscribe) != REDIS_OK) {
            redisAsyncFree(ac);
            continue;
        }
        link->watch_ac_[i] = ac;
    }
}

int tally_redis_sentinel_cancel_ask(tally_redis_link_t *link)
{
    redisAsyncContext *ask = link->ask_ac_;
    if (ask == NULL)
        return 0;
    link->ask_ac_ = NULL;
    redisAsyncFree(ask);
    return 1;
}

int tally_redis_sentinel_init(tally_redis_link_t *link)
{
    link->ask_ac_ = NULL;
    link->ask_next_ = 0;
    link->selected_refused_ = 0;
    memset(link->watch_ac_, 0, sizeof(link->watch_ac_));
    if (uv_timer_init(link->loop, &link->watch_timer_) != 0)
        return TALLY_ERR;
    link->watch_timer_.data = link;
    return TALLY_OK;
}

void tally_redis_sentinel_watch(tally_redis_link_t *link)
{
    watch_start(link);
    uv_timer_start(&link->watch_timer_, on_watch_timer, 500, 500);
}

void tally_redis_sentinel_stop(tally_redis_link_t *link)
{
    uv_timer_stop(&link->watch_timer_);
    if (!uv_is_closing((uv_handle_t *)&link->watch_timer_))
        uv_close((uv_handle_t *)&link->watch_timer_, NULL);
    tally_redis_sentinel_cancel_ask(link);
    for (size_t i = 0; i < TALLY_SENTINELS_MAX; i++) {
        redisAsyncContext *watch = link->watch_ac_[i];
        link->watch_ac_[i] = NULL;
        if (watch != NULL)
            redisAsyncFree(watch);
    }
}
