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

#include "batch_script.h"
#include "config.h"
#include "http_format.h"
#include "metrics.h"
#include "mqtt_link.h"
#include "presence.h"
#include "redis_link.h"
#include "total.h"

struct replica_config {
    char service_host[256];
    int service_port;
    int max_connections;
    char instance_id[TALLY_ID_SIZE];
    char site[TALLY_SITE_MAX + 1]; /* "": one site */
    int instance_id_wait_ms;
    tally_redis_settings_t redis; /* REDIS_HOST ... REDIS_SENTINEL_USERNAME */
    int redis_timeout_ms;
    int redis_wait_replicas;
    int redis_wait_timeout_ms;
    tally_mqtt_settings_t mqtt; /* MQTT_URL ... MQTT_CLIENT_ID, CLUSTER_SECRET */
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
    char log_format[8];
};

/** The replica as its start sees it: its option table (options.c) and the checks across it. */
extern const tally_program_t replica_program;

/* HTTP status classes counted in tally_http_responses_total. */
enum { RS_200, RS_400, RS_404, RS_405, RS_500, RS_503, RS_MAX };

struct replica_stats {
    atomic_ullong route_requests[TALLY_ROUTE_METRICS + 1]; /* by enum tally_route */
    atomic_ullong responses[RS_MAX];
    atomic_ullong redis_errors;        /* failed batches (connection lost, error reply, timeout) */
    atomic_ullong redis_timeouts;      /* connections dropped because a reply took too long */
    atomic_ullong publish_interval_ns; /* the publish rule's current interval (any thread's) */
    atomic_ullong redis_lifted;  /* increments added to raise a total_count found below a total handed out */
    atomic_ullong redis_batches; /* batches sent (one script call each) */
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
    int redis_seeded;           /* the seed (MGET total_count tally:epoch) answered on this connection */
    struct batch_script script; /* the batch script's SHA and commands on this connection */

    struct batch *open;         /* collecting this pass; NULL when none */
    struct batch_fifo inflight; /* sent, waiting for replies, in order */
    struct batch_fifo retry;    /* lost with a connection, to resend in order */
    struct batch_fifo confirm;  /* applied, waiting for WAIT (REDIS_WAIT_REPLICAS) */
    int64_t wait_sent_ms;       /* the oldest WAIT not answered yet (0: none) */
    int waits_pending;          /* at most 1: see send_wait */
    int wait_needed;            /* batches were sent while a WAIT was pending */
    uint64_t next_seq;
    char dedup_key[200]; /* tally:batches:<instance>:<start ms>:<thread> */
    struct batch *free_batches;
    size_t waiting; /* counted requests not yet answered */

    uint64_t newest_total;    /* highest total from this worker's batch replies */
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
/** Starts draining (SIGTERM, SIGINT, a refused start): logs @p why once, stops every worker. */
void replica_request_stop(const char *why);

/* routes.c */
/** h2o on_req handler: every path goes through here. */
int routes_handle(h2o_handler_t *self, h2o_req_t *req);
/** Counts, times (and while draining, closes) every answer; before any request. */
void routes_init(void);

/* GET /dashboard, /dashboard.js, /dashboard.css (dashboard.c). */
void dashboard_handle(h2o_req_t *req, int head);

/* GET /events (events.c): starts a stream, or answers HEAD, or 503 beyond EVENTS_MAX_CLIENTS. */
void events_handle(struct worker *w, h2o_req_t *req, int head);
/** Sends each of the worker's event streams what changed; called on its watchdog tick. */
void events_tick(struct worker *w, int64_t now);

/* presence.c */
/** Fills @p s with this replica's status. */
void presence_status(tally_status_t *s, int online);
/** Publishes this replica's status, retained, QoS 1. Any thread. */
int presence_publish(int online);
/** Handles a message on replicas/+/status (paho thread). */
void presence_on_message(const char *topic, const void *payload, size_t len);

#endif
