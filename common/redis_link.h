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
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "redis_uv.h"
#include "settings.h"
#include "sentinel.h"
#include "util.h"

enum tally_redis_state { TALLY_REDIS_DOWN = 0, TALLY_REDIS_CONNECTING, TALLY_REDIS_UP };

typedef struct tally_redis_link tally_redis_link_t;

struct tally_redis_link {
    /* set by the owner before tally_redis_link_start */
    uv_loop_t *loop;
    const char *host; /* not copied: must outlive the link */
    int port;
    const char *password; /* NULL or "" for none */
    const char *username; /* ACL user for AUTH; NULL or "": Redis's default user */
    /* Redis Sentinel (optional, not copied): when sentinels->n > 0, host and port above are
     * not used. Before every connect the link asks the sentinels in turn for master_name's
     * master, checks ROLE on the node before reporting it up, and drops the connection as
     * soon as a sentinel announces +switch-master for it (or the owner calls
     * tally_redis_link_drop on a -READONLY answer): it never stays on a node that is not the
     * master. */
    const tally_sentinels_t *sentinels;
    const char *master_name;
    const char *sentinel_password; /* NULL or "" for none */
    const char *sentinel_username; /* NULL or "": the sentinels' default user */
    void (*on_up)(tally_redis_link_t *link);
    void (*on_down)(tally_redis_link_t *link, const char *why);
    void *data;

    /* read-only for the owner */
    enum tally_redis_state state;
    redisAsyncContext *ac;
    unsigned long long connects, failures;
    char errstr[128];
    /* with sentinels: the master in use (or last asked for), and what was followed */
    tally_sentinel_addr_t master;
    atomic_ullong failovers;  /* announced failovers followed (any thread may read) */
    atomic_ullong not_master; /* nodes dropped for answering ROLE or a write as no master */

    /* private */
    uv_timer_t retry_timer_;
    tally_backoff_t backoff_;
    int stopping_;
    redisAsyncContext *ask_ac_; /* asking a sentinel for the master */
    size_t ask_next_;           /* the sentinel to ask next */
    size_t asked_;              /* sentinels asked in this round */
    /* one subscription to +switch-master, +promoted-slave and +selected-slave per sentinel:
     * the first to announce a failover is heard, whether or not it led the failover */
    redisAsyncContext *watch_ac_[TALLY_SENTINELS_MAX];
    int selected_refused_;       /* a sentinel refused +selected-slave (an older ACL) */
    uv_timer_t watch_timer_;     /* resubscribes to sentinels that went away */
    tally_sentinel_addr_t hint_; /* announced new master: the next connect tries it first */
    int has_hint_;
    /* a replica a failover leader selected (+selected-slave): until it answers ROLE as master
     * or the deadline passes, the link asks it again rather than the sentinels, who still
     * name the old master (see follow in redis_link.c) */
    tally_sentinel_addr_t selected_;
    int64_t selected_until_ms_; /* 0: none awaited */
    /* what the Sentinel side (redis_sentinel.c) tells the link: a master named, none named
     * in a whole round, a failover announced */
    void (*found_)(tally_redis_link_t *link);
    void (*none_)(tally_redis_link_t *link, const char *why);
    void (*announced_)(tally_redis_link_t *link, const tally_sentinel_addr_t *to, const char *what);
    /* what other threads may read (tally_redis_links_metrics), under shown_lock_ */
    pthread_mutex_t shown_lock_;
    char shown_[TALLY_SENTINEL_HOST_MAX + 8]; /* "host:port" of the node last connected */
    int64_t down_since_us_;                   /* 0 while up; microseconds, as a switch of master
                                               * on loopback takes less than a millisecond */
    int64_t down_us_total_;
};

/** Points @p link at @p loop, the settings @p s and the parsed @p sentinels (none copied). */
void tally_redis_link_configure(tally_redis_link_t *link, uv_loop_t *loop, const tally_redis_settings_t *s,
                                const tally_sentinels_t *sentinels);
/** Where the settings lead, for the start-up line: "host:port" or "master M through sentinels S". */
void tally_redis_settings_describe(const tally_redis_settings_t *s, char *out, size_t size);

/** Starts connecting; the link keeps itself connected until tally_redis_link_stop. */
int tally_redis_link_start(tally_redis_link_t *link);
/** Returns 1 when an error reply says the node is no master (-READONLY, a demoted node):
 *  the caller drops the link, which finds the master again. */
int tally_redis_reply_not_master(const char *err);
/** Reads a total from a GET or MGET element: a number (tally_total_parse) or nil (0).
 *  Returns TALLY_OK and sets *v, or TALLY_ERR (*v is then 0) for anything else. */
int tally_redis_reply_total(const redisReply *r, uint64_t *v);

struct tally_metrics_buf;
/** Appends tally_redis_master{address} (the node in use, 1 while up) and
 *  tally_redis_without_master_seconds_total (the longest of the links' down times) for the
 *  @p n links of one program. */
void tally_redis_links_metrics(struct tally_metrics_buf *m, tally_redis_link_t *const *links, int n);

/** Drops the connection now (e.g. a command timed out): callbacks in flight get NULL,
 *  on_down is called, and a reconnect is scheduled. @p why is logged. */
void tally_redis_link_drop(tally_redis_link_t *link, const char *why);
/** Closes the connection and the timer for good; callbacks in flight get NULL. The link's
 *  handles are closed when the loop next runs. */
void tally_redis_link_stop(tally_redis_link_t *link);

#endif
