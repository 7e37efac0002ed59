/* The replica process: its configuration, its process-wide state, and the per-thread
 * workers that serve HTTP. One struct replica per process (g_replica); one struct worker
 * per loop thread, each with its own h2o context, listening socket (SO_REUSEPORT) and
 * Redis connection. */
#ifndef TALLY_REPLICA_H
#define TALLY_REPLICA_H

#include "http_listener.h"
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "config.h"
#include "http_format.h"
#include "metrics.h"
#include "mqtt_link.h"
#include "presence.h"
#include "redis_link.h"
#include "total.h"

#define REPLICA_TOPIC_TOTAL TALLY_TOTAL_TOPIC
#define REPLICA_REDIS_KEY TALLY_TOTAL_KEY
/* The highest total a batch script raised total_count to after lost writes (see counter.c). */
#define REPLICA_LIFT_KEY "tally:lifted"

struct replica_config {
    char service_host[256];
    int service_port;
    int max_connections;
    char instance_id[65];
    int instance_id_wait_ms;
    char redis_host[256];
    int redis_port;
    char redis_password[512];
    char redis_username[65];
    char redis_sentinels[1024];
    char redis_master_name[65];
    char redis_sentinel_password[512];
    char redis_sentinel_username[65];
    int redis_timeout_ms;
    int redis_wait_replicas;
    int redis_wait_timeout_ms;
    char mqtt_url[300];
    char mqtt_username[128];
    char mqtt_password[512];
    char mqtt_client_id[128];
    char cluster_secret[256];
    int publish_interval_us;
    int publish_eager_rps;
    int presence_interval_ms;
    int presence_expire_s;
    int threads;
    int shutdown_timeout_ms;
    int shutdown_delay_ms;
    int events_max_clients;
    int events_max_lifetime_s;
    int idempotency_ttl_s;
    int log_level;
    char log_file[TALLY_LOG_FILE_MAX];
};

/** The option table of the replica (see config.h), and its length. */
extern const tally_opt_t replica_options[];
extern const size_t replica_noptions;
#define REPLICA_SUMMARY                                                                                      \
    "tally replica: counts the HTTP requests it serves in Redis and shares the cluster total over MQTT."

/* HTTP status classes counted in tally_http_responses_total. */
enum { RS_200, RS_400, RS_404, RS_405, RS_500, RS_503, RS_MAX };

struct replica_stats {
    atomic_ullong route_requests[TALLY_ROUTE_METRICS + 1]; /* by enum tally_route */
    atomic_ullong responses[RS_MAX];
    atomic_ullong redis_errors;        /* failed INCRBY batches (connection lost, error reply, timeout) */
    atomic_ullong redis_timeouts;      /* connections dropped because a reply took too long */
    atomic_ullong publish_interval_ns; /* the publish rule's current interval (any thread's) */
    atomic_ullong redis_lifted;  /* increments added to raise a total_count found below a total handed out */
    atomic_ullong redis_batches; /* INCRBY commands sent */
    atomic_ullong redis_batched; /* requests carried by those commands */
    atomic_ullong redis_retries; /* batches sent again after a lost connection */
    atomic_ullong redis_refused; /* resends refused: a lift may already hold them (503) */
    atomic_ullong redis_waits;   /* WAIT commands sent (REDIS_WAIT_REPLICAS) */
    atomic_ullong redis_wait_timeouts; /* WAITs that confirmed fewer replicas than asked (503) */
    atomic_ullong mqtt_dropped;        /* total_count payloads that were not a valid total */
    atomic_ullong mqtt_totals;         /* valid totals received */
    atomic_ullong status_dropped;      /* replicas/+/status payloads that were not a valid status */
    atomic_ullong idem_stored;         /* answers stored for a new Idempotency-Key */
    atomic_ullong idem_replays;        /* requests answered with a stored answer (not counted) */
    atomic_ullong idem_bad;            /* requests refused for a bad Idempotency-Key (400) */
    atomic_ullong idem_gone;           /* keyed requests whose stored answer was gone on a resend (503) */
};

struct worker;

struct replica {
    struct replica_config cfg;
    char instance[400];      /* "<host>:<port>" */
    char instance_json[800]; /* the same, escaped for a JSON string */
    int64_t started_ms, started_wall_ms;

    tally_sentinels_t sentinels; /* REDIS_SENTINELS, parsed */
    tally_cache_t cache;         /* the cached cluster total */
    atomic_ullong served;        /* N: counted requests answered 200 by this process */
    struct replica_stats stats;
    tally_mqtt_link_t mqtt;
    tally_presence_t presence; /* replicas heard of on replicas/+/status */
    char status_topic[96];     /* replicas/<id>/status */
    char will[TALLY_STATUS_MAX_PAYLOAD];

    struct worker *workers;
    int nworkers;
    atomic_int redis_ready;       /* workers whose Redis link is up and seeded */
    atomic_int draining;          /* SIGTERM seen: unready, still serving (SHUTDOWN_DELAY_MS) */
    atomic_int stopping;          /* not accepting any more: answering what was read, then exit */
    atomic_int started_up;        /* the start-up gate of /readyz passed once (see routes.c) */
    atomic_int events_clients;    /* open GET /events streams (EVENTS_MAX_CLIENTS) */
    atomic_ullong events_refused; /* GET /events answered 503: the cap was reached */
    atomic_ullong events_dropped; /* event clients dropped for not reading */
    atomic_ullong events_expired; /* event streams ended at EVENTS_MAX_LIFETIME_S */
    int mqtt_started;             /* the MQTT link runs (it starts once INSTANCE_ID is claimed) */
    int exit_code;
};

extern struct replica g_replica;

/* What became of a counted request: counted (n is this process's N, m the cluster's M), or
 * not (message says why: the caller answers 503). A request with an Idempotency-Key whose
 * answer Redis already held is "replayed": it did not count now, and its n, m and instance
 * are the stored answer's (instance NULL: this replica's own). */
struct counter_result {
    int counted;
    uint64_t n, m;
    const char *message;
    int replayed;
    const char *instance;
    size_t instance_len;
};

/** A counted request's completion, registered with counter_submit: called exactly once per
 *  request still alive, on the worker's thread; @p tag is the caller's, passed back. */
typedef void (*counter_done_fn)(h2o_req_t *req, int tag, const struct counter_result *result);

/* A counted request waiting for its INCRBY reply. Lives in a batch, outside the request's
 * memory pool, because the client may go away (and h2o free the request) first. */
struct pending {
    h2o_req_t *req;         /* NULL once h2o disposed of the request */
    struct pending **slot_; /* the request-pool slot that points back here; NULL when detached */
    counter_done_fn done;
    int tag;
    /* Idempotency-Key: -1 without one; else the index of the batch's first item with the
     * same key (its own index for that first item, which alone carries the fields below). */
    int lead;
    uint32_t key_off, inst_off; /* the key, and a stored answer's instance, in the batch's keys */
    uint16_t key_len, inst_len;
    int key_state;            /* KEY_* in counter.c */
    uint64_t key_n;           /* the N taken at the first send (sent with every send) */
    uint64_t answer_n, key_m; /* the key's answer: its N and M */
};

#define BATCH_MAX 512
#define BATCH_KEY_SLOTS 1024 /* the batch's key lookup table: twice BATCH_MAX */

/* The counted requests of one loop pass, group-committed with one INCRBY. */
struct batch {
    struct batch *next; /* in the worker's in-flight FIFO, retry FIFO or free list */
    struct worker *worker;
    uint64_t seq;          /* the batch's id in the worker's dedup ring: retries reuse it */
    int64_t first_sent_ms; /* its requests get 503 once this is REDIS_TIMEOUT_MS old */
    int64_t sent_ms;       /* the latest send */
    uint64_t sent_ns;      /* the same, uv_hrtime(): its round trip goes into the histogram */
    int sends;             /* how often it was sent: a resend must check the ring first */
    uint64_t sent_floor;   /* the cached total at the first send: its range lies above it */
    uint64_t epoch;        /* the cluster epoch Redis answered it in */
    uint64_t first, total; /* REDIS_WAIT_REPLICAS: its totals, held until WAIT confirms them */
    size_t n;
    size_t nplain;                       /* items without an Idempotency-Key */
    size_t nkeys;                        /* distinct keys: their first items are in leaders */
    uint16_t leaders[BATCH_MAX];         /* item index of each key's first item, in order */
    uint16_t key_slots[BATCH_KEY_SLOTS]; /* open addressing by key hash: leader index + 1, 0: free */
    char *keys;                          /* the keys' bytes (and stored answers' instances) */
    size_t keys_len, keys_cap;
    struct pending items[BATCH_MAX];
};

struct worker {
    int index;
    pthread_t thread;
    uv_loop_t loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    tally_http_listener_t listener;
    uv_check_t flush;                    /* end of each loop pass: send the batch, publish the newest total */
    uv_timer_t watchdog;                 /* Redis reply deadline; drain progress while stopping */
    uv_async_t wakeup;                   /* cross-thread: "stop now" */
    uv_signal_t sigterm, sigint, sighup; /* worker 0 only */
    uv_timer_t delay_timer;              /* worker 0: SHUTDOWN_DELAY_MS after SIGTERM */
    struct events_conn *events;          /* open GET /events streams on this thread (events.c) */
    tally_histogram_t http_duration;     /* request read -> answer written, on this thread */
    tally_histogram_t redis_duration;    /* batch sent -> its reply, on this thread */

    tally_redis_link_t redis;
    int redis_seeded;     /* GET total_count answered on the current connection */
    char script_sha[48];  /* SHA of the batch script, loaded on the current connection */
    char batch_head[440]; /* RESP of "EVALSHA <sha> 4 total_count <ring> tally:lifted tally:epoch" */
    size_t batch_head_len;
    size_t batch_head_sha_end; /* where the SHA ends in batch_head (the key count follows) */
    char *keyed_cmd;           /* a batch with keys is written here (grown as needed) */
    size_t keyed_cmd_cap;

    struct batch *open;                          /* collecting this pass; NULL when none */
    struct batch *inflight_head, *inflight_tail; /* sent, waiting for replies, in order */
    struct batch *retry_head, *retry_tail;       /* lost with a connection, to resend in order */
    struct batch *confirm_head, *confirm_tail;   /* applied, waiting for WAIT (REDIS_WAIT_REPLICAS) */
    int64_t wait_sent_ms;                        /* the oldest WAIT not answered yet (0: none) */
    int waits_pending;                           /* at most 1: see send_wait */
    int wait_needed;                             /* batches were sent while a WAIT was pending */
    uint64_t next_seq;
    char dedup_key[200]; /* tally:batches:<instance>:<start ms>:<thread> */
    struct batch *free_batches;
    size_t waiting; /* counted requests not yet answered */

    uint64_t newest_total;    /* highest total from this worker's INCRBY replies */
    uint64_t published_total; /* highest total this worker published */
    uint64_t last_publish_ns; /* uv_hrtime() of the last publish */
    uv_timer_t publish_timer; /* trailing publish when the interval held one back */
    int publish_timer_armed;
    uint64_t window_total; /* cached cluster total at window_start_ns (the publish rule) */
    uint64_t window_start_ns;
    int window_valid;        /* 0 until the first window has ended: window_total means nothing before */
    uint64_t interval_ns;    /* least time between two publishes now: 0 (eager) or the scaled interval */
    size_t rank, ranks;      /* this replica's place among the online ones (sorted by id), their number */
    int64_t last_request_ms; /* uv_now() when the last request arrived (the drain's quiet time) */
    int64_t stop_deadline_ms;
};

/* worker.c */
/** Sets up the worker's loop, listening socket, h2o context and Redis link. */
int worker_init(struct worker *w, int index, h2o_globalconf_t *hconf);
/** Runs the worker's loop until it has drained after a stop request. */
void worker_run(struct worker *w);
/** Asks the worker (from any thread) to stop accepting and drain. */
void worker_request_stop(struct worker *w);

/** Starts draining (SIGTERM, SIGINT, a refused start): logs @p why once, stops every worker. */
void replica_request_stop(const char *why);

/* main.c */
/** INSTANCE_ID is ours (claim.c, worker 0): connects to the broker the first time. */
void replica_claimed(struct worker *w);
/** Another live process holds INSTANCE_ID: logs one error line and stops with exit code 2. */
void replica_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* claim.c: INSTANCE_ID held in Redis by one process at a time */
/** Makes the claim's key and token; before any worker starts. */
void claim_init(void);
/** Worker 0's Redis link is up: claim (or renew) now. */
void claim_on_redis_up(struct worker *w);
/** Worker 0, every watchdog tick: renews the claim, or asks again while it is contested. */
void claim_tick(struct worker *w, int64_t now_ms);
/** Worker 0 at exit: deletes the claim if it is ours (queued; the caller flushes). */
void claim_release(struct worker *w);

/* counter.c: the group commit */
/** Queues a counted request on @p w; @p done learns its result once its INCRBY returns (or at
 *  once, when it cannot be counted). The counter knows nothing of HTTP answers. */
void counter_submit(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag);
/** The same for a request with an Idempotency-Key (@p key, @p key_len bytes, copied). */
void counter_submit_keyed(struct worker *w, h2o_req_t *req, counter_done_fn done, int tag, const char *key,
                          size_t key_len);
/** Offers a total learned in cluster @p epoch (Redis's answer or a signed MQTT message) to the
 *  cache and the MQTT link: a newer epoch replaces the cached total (logged). Any thread. */
void counter_offer(uint64_t epoch, uint64_t total, int64_t now_ms);
/** Returns 1 when @p w could count a request now (its Redis link is up and seeded). */
int counter_can_count(const struct worker *w);
/** End of a loop pass: sends the open batch and publishes the newest total. */
void counter_flush(struct worker *w);
/** Publishes the newest total if one is due (also from the trailing timer). */
void counter_publish(struct worker *w);
/** Re-decides the publish rule from the cluster's request rate; called every watchdog tick. */
void counter_update_rate(struct worker *w);
/** Fails batches whose reply is overdue by dropping the Redis connection. */
void counter_check_deadline(struct worker *w, int64_t now_ms);
/** Answers 503 to every batch waiting to be resent (at shutdown). */
void counter_fail_waiting(struct worker *w);
/** Redis link callbacks. */
void counter_on_redis_up(tally_redis_link_t *link);
void counter_on_redis_down(tally_redis_link_t *link, const char *why);

/* routes.c */
/** h2o on_req handler: every path goes through here. */
int routes_handle(h2o_handler_t *self, h2o_req_t *req);

/* GET /dashboard, /dashboard.js, /dashboard.css (dashboard.c). */
void dashboard_handle(h2o_req_t *req, int head);

/* GET /events (events.c): starts a stream, or answers HEAD, or 503 beyond EVENTS_MAX_CLIENTS. */
void events_handle(struct worker *w, h2o_req_t *req, int head);
/** Sends each of the worker's event streams what changed; called on its watchdog tick. */
void events_tick(struct worker *w, int64_t now);
/** Answers @p req with @p status and a body; @p content_type NULL means JSON. */
void routes_respond(h2o_req_t *req, int status, const char *reason, const char *content_type,
                    const char *body, size_t len);
/** Returns 1 when the process is ready to take traffic (/readyz). */
int replica_is_ready(void);

/* presence.c */
/** Fills @p s with this replica's status. */
void presence_status(tally_status_t *s, int online);
/** Publishes this replica's status, retained, QoS 1. Any thread. */
int presence_publish(int online);
/** Handles a message on replicas/+/status (paho thread). */
void presence_on_message(const char *topic, const void *payload, size_t len);

#endif
