/* One Redis connection kept alive (redis_link.h): connect, authenticate, check ROLE with
 * sentinels, report up and down, reconnect with backoff, follow announced failovers. The
 * libuv adapter is redis_uv.c; asking and watching the sentinels, redis_sentinel.c. */
#include "redis_link.h"
#include "log.h"
#include "metrics.h"
#include "redis_sentinel.h"
#include "total.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the link ------------------------------------------------------------------------- */

/* How long a replica selected for promotion is asked again before the sentinels are: the
 * leader sends REPLICAOF NO ONE within a tick (100 ms) of announcing it; past this, the
 * failover is taken for aborted. */
#define TALLY_PROMOTION_WAIT_MS 3000

static void connect_now(tally_redis_link_t *link);

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
    else if (tally_log_every_power_of_two(link->failures))
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

/* The node in use is the replica a failover leader selected, and its promotion is still
 * awaited. */
static int awaiting_promotion(const tally_redis_link_t *link)
{
    return link->selected_until_ms_ != 0 && tally_now_ms() < link->selected_until_ms_ &&
           strcmp(link->master.host, link->selected_.host) == 0 && link->master.port == link->selected_.port;
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
        if (awaiting_promotion(link)) { /* the leader's REPLICAOF NO ONE is on its way */
            link->hint_ = link->master;
            link->has_hint_ = 1;
            tally_redis_link_drop(link, "selected for promotion, not master yet");
            return;
        }
        atomic_fetch_add(&link->not_master, 1);
        tally_warn(
            "redis %s:%d: the sentinels named it master of %s, but it answers as %s; asking them again",
            link->host, link->port, link->master_name, role != NULL ? role : "something else");
        tally_redis_link_drop(link, "not the master");
        return;
    }
    link->selected_until_ms_ = 0;
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
        tally_redis_sentinel_ask(link); /* then connect_node (found_), from the answer */
        return;
    }
    connect_node(link);
}

/* A sentinel announced that @p to is master now, or (+selected-slave) is about to be: go
 * there unless the link is already on it. A stale or repeated announcement costs at most one
 * ROLE check.
 *
 * Why leave at the selection and not at the promotion: a master the sentinels take for down
 * may be alive (a manual SENTINEL FAILOVER, a loaded machine missing down-after), and it
 * keeps its other replicas until the sentinels demote it. Whatever it applies once the
 * selected replica stopped following it is lost at the demotion, even what WAIT saw another
 * replica confirm, and +promoted-slave comes up to a second after the promotion (the
 * leader's INFO period). So the link leaves the old master at the selection, which the
 * leader announces before it sends REPLICAOF NO ONE, and asks the selected node until it
 * says master (the sentinels go on naming the old one until then). */
static void follow(tally_redis_link_t *link, const tally_sentinel_addr_t *to, const char *what)
{
    int selected = strcmp(what, TALLY_SENTINEL_SELECTED) == 0;
    int same = strcmp(to->host, link->master.host) == 0 && to->port == link->master.port;
    if (selected) {
        link->selected_ = *to;
        link->selected_until_ms_ = tally_now_ms() + TALLY_PROMOTION_WAIT_MS;
    } else {
        link->selected_until_ms_ = 0;
    }
    if (same && (link->state == TALLY_REDIS_UP || link->ac != NULL))
        return; /* already there, or connecting there */
    if (link->has_hint_ && strcmp(to->host, link->hint_.host) == 0 && to->port == link->hint_.port) {
        /* heard already; promoted now, so no use waiting for the retry timer */
        if (!selected && link->state == TALLY_REDIS_DOWN) {
            uv_timer_stop(&link->retry_timer_);
            connect_now(link);
        }
        return;
    }
    atomic_fetch_add(&link->failovers, 1);
    if (selected)
        tally_warn("sentinel: %s: %s:%d is to be promoted master of %s; leaving %s:%d now", what, to->host,
                   to->port, link->master_name, link->master.host, link->master.port);
    else
        tally_warn("sentinel: %s: master %s is %s:%d now; following", what, link->master_name, to->host,
                   to->port);
    link->hint_ = *to;
    link->has_hint_ = 1;
    tally_backoff_reset(&link->backoff_);
    if (tally_redis_sentinel_cancel_ask(link)) /* an answer on the way would be older than this news */
        link->state = TALLY_REDIS_DOWN;
    if (link->ac != NULL)
        tally_redis_link_drop(link, "failover announced by a sentinel");
    if (link->state == TALLY_REDIS_DOWN) {
        uv_timer_stop(&link->retry_timer_);
        connect_now(link);
    }
}

/* "host:port" of the node in use (the last one connected) into @p out, or "" before the
 * first connect; returns 1 while the link is up. Any thread. */
static int link_shown(tally_redis_link_t *link, char *out, size_t size)
{
    pthread_mutex_lock(&link->shown_lock_);
    snprintf(out, size, "%s", link->shown_);
    int up = link->down_since_us_ == 0;
    pthread_mutex_unlock(&link->shown_lock_);
    return up;
}

/* Seconds without a usable node (master) since the start, the current outage included. Any
 * thread. */
static double link_down_seconds(tally_redis_link_t *link)
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
        int u = link_shown(links[i], a, sizeof(a));
        if (addr[0] == '\0' || (u && !up)) { /* the first, or the first one up */
            memcpy(addr, a, sizeof(addr));
            up = u;
        }
        double d = link_down_seconds(links[i]);
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
    link->has_hint_ = 0;
    link->selected_until_ms_ = 0;
    link->found_ = connect_node;
    link->none_ = went_down;
    link->announced_ = follow;
    memset(&link->master, 0, sizeof(link->master));
    atomic_init(&link->failovers, 0);
    atomic_init(&link->not_master, 0);
    pthread_mutex_init(&link->shown_lock_, NULL);
    link->shown_[0] = '\0';
    link->down_since_us_ = tally_now_us();
    link->down_us_total_ = 0;
    if (tally_redis_sentinel_init(link) != TALLY_OK)
        return TALLY_ERR;
    if (use_sentinels(link)) {
        link->host = "(master not found yet)";
        link->port = 0;
        tally_redis_sentinel_watch(link);
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
    tally_redis_sentinel_stop(link);
    redisAsyncContext *ac = link->ac;
    link->ac = NULL;
    link->state = TALLY_REDIS_DOWN;
    if (ac != NULL)
        redisAsyncFree(ac);
}

void tally_redis_link_configure(tally_redis_link_t *link, uv_loop_t *loop, const tally_redis_settings_t *s,
                                const tally_sentinels_t *sentinels)
{
    link->loop = loop;
    link->host = s->host;
    link->port = s->port;
    link->password = s->password;
    link->username = s->username;
    link->sentinels = sentinels;
    link->master_name = s->master_name;
    link->sentinel_password = s->sentinel_password;
    link->sentinel_username = s->sentinel_username;
}

void tally_redis_settings_describe(const tally_redis_settings_t *s, char *out, size_t size)
{
    if (s->sentinels[0] != '\0')
        snprintf(out, size, "master %s through sentinels %s", s->master_name, s->sentinels);
    else
        snprintf(out, size, "%s:%d", s->host, s->port);
}
