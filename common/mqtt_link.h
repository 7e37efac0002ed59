/* One MQTT connection (paho MQTTAsync, protocol version 5) that tally keeps alive and
 * subscribed.
 *
 * Threading: paho runs its callbacks on its own threads. on_message is called there and
 * must only touch thread-safe state (atomics). The link's flags are atomics, readable
 * from any thread. tally_mqtt_link_publish may be called from any thread;
 * tally_mqtt_link_start, _tick and _stop from the owning (main) thread only, never from a
 * paho callback. */
#ifndef TALLY_MQTT_LINK_H
#define TALLY_MQTT_LINK_H

#include <MQTTAsync.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"
#include "util.h"

#define TALLY_MQTT_MAX_TOPICS 4

typedef struct tally_mqtt_link {
    /* set by the owner before start; strings are not copied and must outlive the link */
    const char *url;
    const char *client_id;
    const char *username; /* NULL or "" for anonymous */
    const char *password;
    const char *topics[TALLY_MQTT_MAX_TOPICS]; /* subscribed (QoS 0) after every connect */
    size_t ntopics;
    int no_local;            /* MQTT 5 No Local: our own publishes do not come back */
    int retain_as_published; /* keep the retained flag on messages forwarded live */
    int keepalive_s;
    /* Last Will (optional): published retained, QoS 1, by the broker if we vanish. */
    const char *will_topic;
    const void *will_payload;
    size_t will_len;
    /* Cluster secret (optional, not copied): when set, every publish and the Will carry a
     * signature (sign.h), and a message received without a valid one is dropped before
     * on_message, counted in `forged` and logged (1st, 2nd, 4th, 8th... time). */
    const char *secret;
    size_t secret_len;
    /* called on a paho thread after every connect, once subscriptions are requested */
    void (*on_connect)(void *data);
    /* called on a paho thread; payload is not NUL-terminated and only valid during the call;
     * epoch is the message's cluster epoch (with a secret: signed; without: the link's) */
    void (*on_message)(void *data, const char *topic, const void *payload, size_t len, int retained,
                       uint64_t epoch);
    void *data;

    /* any thread may read */
    atomic_int connected;  /* the TCP/MQTT session is up */
    atomic_int subscribed; /* every topic's SUBACK arrived on the current session */
    atomic_ullong published, publish_failures, received, connects;
    atomic_ullong forged; /* messages dropped for want of a valid signature */
    /* The cluster epoch (sign.h) publishes are signed in: raised by the owner from Redis
     * (tally_mqtt_link_set_epoch) and by any signed message of a newer epoch. With a
     * secret, a message of an older epoch is dropped before on_message and counted here. */
    _Atomic uint64_t epoch;
    atomic_ullong stale_epoch;

    /* private */
    MQTTAsync client_;
    atomic_int subacks_;
    atomic_int state_;       /* see mqtt_link.c */
    atomic_ullong failures_; /* connect failures in a row, for log throttling */
    tally_backoff_t backoff_;
    int64_t next_attempt_ms_;
} tally_mqtt_link_t;

/** Raises the link's cluster epoch to @p epoch (never lowers it). Any thread. */
void tally_mqtt_link_set_epoch(tally_mqtt_link_t *link, uint64_t epoch);
/** Creates the client and starts connecting. Returns TALLY_ERR (logged) on a bad setting. */
int tally_mqtt_link_start(tally_mqtt_link_t *link);
/** Retries a first connection that failed, after a backoff; call a few times per second. */
void tally_mqtt_link_tick(tally_mqtt_link_t *link, int64_t now_ms);
/** Publishes @p len bytes on @p topic. Returns TALLY_ERR (and counts a failure) when not
 *  connected or paho refuses; never blocks on the network. */
int tally_mqtt_link_publish(tally_mqtt_link_t *link, const char *topic, const void *payload, size_t len,
                            int qos, int retained);
/** Disconnects (waiting at most @p timeout_ms for queued messages) and destroys the client. */
void tally_mqtt_link_stop(tally_mqtt_link_t *link, int timeout_ms);

/** Points @p link at the settings @p s (not copied; the secret is taken as it is now). */
void tally_mqtt_link_configure(tally_mqtt_link_t *link, const tally_mqtt_settings_t *s);

struct tally_metrics_buf;
/** Writes the link's families: tally_mqtt_connected, its messages received, published and
 *  not sent, and those dropped unsigned or of an older epoch. */
void tally_mqtt_link_metrics(struct tally_metrics_buf *m, tally_mqtt_link_t *link);

#endif
