/* The publisher: owns the retained total_count message. Several may run; one leads,
 * elected by a Redis lease (lease.c). The leader reads the authoritative total from Redis
 * and publishes it retained (QoS 1) when it changed, at most every PUBLISH_INTERVAL_MS,
 * and at least every HEARTBEAT_MS. The retained total never goes backwards. */
#ifndef TALLY_PUBLISHER_H
#define TALLY_PUBLISHER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "lease.h"
#include "http_listener.h"
#include "mqtt_link.h"
#include "total.h"
#include "presence.h"
#include "redis_link.h"

#define PUBLISHER_TOPIC TALLY_TOTAL_TOPIC
#define PUBLISHER_REDIS_KEY TALLY_TOTAL_KEY

struct publisher_config {
    char instance_id[TALLY_ID_SIZE];
    char site[TALLY_SITE_MAX + 1]; /* "": one site */
    char http_host[256];
    int http_port;
    int max_connections;
    tally_redis_settings_t redis; /* REDIS_HOST ... REDIS_SENTINEL_USERNAME */
    tally_mqtt_settings_t mqtt;   /* MQTT_URL ... MQTT_CLIENT_ID, CLUSTER_SECRET */
    int publish_interval_ms;
    int heartbeat_ms;
    char lease_key[128];
    int lease_ttl_ms;
    int presence_expire_s;
    char forget_replica[TALLY_ID_SIZE];
    int log_level;
    char log_file[TALLY_LOG_FILE_MAX];
    char log_format[8];
};

/** The publisher as its start sees it: its option table (options.c). */
extern const tally_program_t publisher_program;

struct publisher {
    struct publisher_config cfg;
    int64_t started_wall_ms; /* process_start_time_seconds */
    uv_loop_t loop;
    tally_redis_link_t redis;
    tally_sentinels_t sentinels; /* REDIS_SENTINELS, parsed */
    tally_mqtt_link_t mqtt;

    /* lease.c */
    tally_lease_t lease; /* the leader's lease: held while we lead */
    uv_timer_t lease_timer;

    /* publishing */
    tally_cache_t
        floor; /* highest total known retained, in the newest cluster epoch: never publish below it */
    atomic_int retained_seen; /* a retained total arrived since subscribing */
    int64_t subscribed_ms;    /* when the subscription went live (0: not live) */
    int64_t last_publish_ms;
    int read_inflight;
    uv_timer_t publish_timer, mqtt_tick, stop_timer;
    uv_signal_t sigterm, sigint, sighup;
    int stopping;

    /* HTTP: /healthz, /readyz, /metrics */
    h2o_globalconf_t hconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    tally_http_listener_t listener;

    /* presence.c: every replica's status, to clear the retained ones long offline */
    tally_presence_t presence;

    struct {
        unsigned long long publishes, heartbeats, held_back, read_errors;
        atomic_ullong statuses_cleared;
    } stats;
};

extern struct publisher g_pub;

/* lease.c */
/** Starts the lease timer: acquire (SET NX PX) as standby, renew as leader. */
void lease_start(void);
/** Returns 1 while we hold a lease that has surely not expired yet. */
int lease_held(int64_t now_ms);
/** Releases the lease if held (only our own token); calls @p done when answered or not sent. */
void lease_release(void (*done)(void));

/* presence.c */
/** Handles a message on replicas/+/status (paho thread). */
void publisher_presence_on_message(const char *topic, const void *payload, size_t len);
/** The leader, every publish tick: clears the retained status of every replica offline for
 *  PRESENCE_EXPIRE_S (a signed empty retained message), so /replicas forgets it everywhere. */
void publisher_presence_expire(void);
/** FORGET_REPLICA mode: clears replicas/<id>/status once and returns the exit status. */
int publisher_forget(const char *id);

/* http.c */
int publisher_http_start(void);

#endif
