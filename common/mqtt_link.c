#include "mqtt_link.h"
#include "log.h"
#include "metrics.h"
#include "sign.h"

#include <string.h>
#include <time.h>

/* Connection state as the main thread sees it. paho's automatic reconnect only starts after
 * a first successful connect, so until then the main thread retries from tally_mqtt_link_tick. */
enum { ST_IDLE = 0, ST_CONNECTING, ST_FAILED, ST_ESTABLISHED, ST_STOPPED };

static void on_subscribe_ok(void *context, MQTTAsync_successData5 *response)
{
    tally_mqtt_link_t *link = context;
    if (response != NULL && response->reasonCode >= 0x80) {
        tally_error("mqtt %s: subscription refused by the broker: %s (check the ACL)", link->url,
                    MQTTReasonCode_toString(response->reasonCode));
        return;
    }
    if ((size_t)atomic_fetch_add(&link->subacks_, 1) + 1 == link->ntopics) {
        atomic_store(&link->subscribed, 1);
        tally_info("mqtt %s: subscribed", link->url);
    }
}

static void on_subscribe_fail(void *context, MQTTAsync_failureData5 *response)
{
    tally_mqtt_link_t *link = context;
    tally_error("mqtt %s: subscribe failed: %s", link->url,
                response ? MQTTReasonCode_toString(response->reasonCode) : "no answer");
}

/* Called by paho after every successful connect, first or automatic: (re)subscribe here,
 * since a clean start forgets subscriptions. */
static void on_connected(void *context, char *cause)
{
    tally_mqtt_link_t *link = context;
    (void)cause;
    atomic_store(&link->state_, ST_ESTABLISHED);
    atomic_store(&link->connected, 1);
    atomic_store(&link->failures_, 0);
    atomic_store(&link->subscribed, 0);
    atomic_store(&link->subacks_, 0);
    atomic_fetch_add(&link->connects, 1);
    tally_info("mqtt %s: connected as %s", link->url, link->client_id);
    for (size_t i = 0; i < link->ntopics; i++) {
        MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
        opts.onSuccess5 = on_subscribe_ok;
        opts.onFailure5 = on_subscribe_fail;
        opts.context = link;
        opts.subscribeOptions.noLocal = link->no_local ? 1 : 0;
        opts.subscribeOptions.retainAsPublished = link->retain_as_published ? 1 : 0;
        int rc = MQTTAsync_subscribe(link->client_, link->topics[i], 0, &opts);
        if (rc != MQTTASYNC_SUCCESS)
            tally_error("mqtt %s: cannot subscribe to %s (code %d)", link->url, link->topics[i], rc);
    }
    if (link->on_connect != NULL)
        link->on_connect(link->data);
}

static void on_connect_fail(void *context, MQTTAsync_failureData5 *response)
{
    tally_mqtt_link_t *link = context;
    int expected = ST_CONNECTING;
    if (!atomic_compare_exchange_strong(&link->state_, &expected, ST_FAILED))
        return;
    /* Throttled: the failures in a row that are a power of two. */
    unsigned long long n = atomic_fetch_add(&link->failures_, 1) + 1;
    if (!tally_log_every_power_of_two(n))
        return;
    if (response != NULL && response->reasonCode != MQTTREASONCODE_SUCCESS)
        tally_warn("mqtt %s: connection refused: %s (attempt %llu)", link->url,
                   MQTTReasonCode_toString(response->reasonCode), n);
    else
        tally_warn("mqtt %s: cannot connect (%s; attempt %llu)", link->url,
                   response && response->message ? response->message : "no answer", n);
}

static void on_connection_lost(void *context, char *cause)
{
    tally_mqtt_link_t *link = context;
    atomic_store(&link->connected, 0);
    atomic_store(&link->subscribed, 0);
    tally_warn("mqtt %s: connection lost (%s); reconnecting", link->url, cause ? cause : "no reason given");
}

static int is_property(const MQTTProperty *p, const char *name, size_t len)
{
    return p->identifier == MQTTPROPERTY_CODE_USER_PROPERTY && p->value.data.len == (int)len &&
           memcmp(p->value.data.data, name, len) == 0;
}

/* Returns 1 when @p message carries a valid signature for @p topic under the link's secret,
 * and sets *epoch to the epoch it was signed in (no epoch property: 0; a malformed one or
 * two of them: not authentic). */
static int authentic(const tally_mqtt_link_t *link, const char *topic, const MQTTAsync_message *message,
                     uint64_t *epoch)
{
    const MQTTProperties *props = &message->properties;
    const MQTTProperty *sig = NULL;
    int epochs = 0;
    *epoch = 0;
    for (int i = 0; i < props->count; i++) {
        const MQTTProperty *p = &props->array[i];
        if (sig == NULL && is_property(p, TALLY_SIG_PROPERTY, sizeof(TALLY_SIG_PROPERTY) - 1)) {
            sig = p;
        } else if (is_property(p, TALLY_EPOCH_PROPERTY, sizeof(TALLY_EPOCH_PROPERTY) - 1)) {
            if (epochs++ > 0 || p->value.value.len <= 0 ||
                tally_epoch_parse(p->value.value.data, (size_t)p->value.value.len, epoch) != TALLY_OK ||
                *epoch == 0)
                return 0;
        }
    }
    if (sig == NULL)
        return 0;
    return tally_sign_verify_epoch(link->secret, link->secret_len, *epoch, topic, message->payload,
                                   (size_t)(message->payloadlen > 0 ? message->payloadlen : 0),
                                   sig->value.value.data,
                                   (size_t)(sig->value.value.len > 0 ? sig->value.value.len : 0)) == TALLY_OK;
}

void tally_mqtt_link_set_epoch(tally_mqtt_link_t *link, uint64_t epoch)
{
    uint64_t cur = atomic_load(&link->epoch);
    while (epoch > cur && !atomic_compare_exchange_weak(&link->epoch, &cur, epoch))
        ;
}

static int on_message_arrived(void *context, char *topic, int topiclen, MQTTAsync_message *message)
{
    tally_mqtt_link_t *link = context;
    (void)topiclen;
    uint64_t epoch = atomic_load(&link->epoch);
    atomic_fetch_add(&link->received, 1);
    int secret = link->secret != NULL && link->secret_len > 0;
    if (secret && !authentic(link, topic, message, &epoch)) {
        unsigned long long n = atomic_fetch_add(&link->forged, 1) + 1;
        if (tally_log_every_power_of_two(n))
            tally_warn("mqtt %s: dropped a%s message on %s without a valid signature (%llu dropped so far; "
                       "is someone publishing with an account that should not, or does a sender lack "
                       "CLUSTER_SECRET?)",
                       link->url, message->retained ? " retained" : "", topic, n);
    } else if (secret && epoch < atomic_load(&link->epoch)) {
        unsigned long long n = atomic_fetch_add(&link->stale_epoch, 1) + 1;
        if (tally_log_every_power_of_two(n))
            tally_warn("mqtt %s: dropped a%s message on %s of cluster epoch %llu, older than this one's %llu "
                       "(signed before a restore of Redis; %llu dropped so far)",
                       link->url, message->retained ? " retained" : "", topic, (unsigned long long)epoch,
                       (unsigned long long)atomic_load(&link->epoch), n);
    } else {
        if (secret)
            tally_mqtt_link_set_epoch(link, epoch); /* a signed newer epoch: Redis was restored */
        if (link->on_message != NULL)
            link->on_message(link->data, topic, message->payload,
                             (size_t)(message->payloadlen > 0 ? message->payloadlen : 0), message->retained,
                             epoch);
    }
    MQTTAsync_freeMessage(&message);
    MQTTAsync_free(topic);
    return 1;
}

/* Adds the signature of (@p topic, @p payload) to @p props when the link has a secret.
 * Returns TALLY_OK when one was added (free @p props after use), TALLY_ERR when none was. */
static int add_signature(const tally_mqtt_link_t *link, MQTTProperties *props, const char *topic,
                         const void *payload, size_t len)
{
    char sig[TALLY_SIG_HEX_LEN + 1], epoch_s[24];
    uint64_t epoch = atomic_load((_Atomic uint64_t *)&link->epoch);
    if (link->secret == NULL || link->secret_len == 0)
        return TALLY_ERR;
    tally_sign_epoch(link->secret, link->secret_len, epoch, topic, payload, len, sig);
    if (epoch > 0) {
        MQTTProperty e;
        e.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
        e.value.data.data = (char *)TALLY_EPOCH_PROPERTY;
        e.value.data.len = (int)sizeof(TALLY_EPOCH_PROPERTY) - 1;
        e.value.value.data = epoch_s;
        e.value.value.len = snprintf(epoch_s, sizeof(epoch_s), "%llu", (unsigned long long)epoch);
        if (MQTTProperties_add(props, &e) != 0)
            return TALLY_ERR;
    }
    MQTTProperty p;
    p.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
    p.value.data.data = (char *)TALLY_SIG_PROPERTY;
    p.value.data.len = (int)sizeof(TALLY_SIG_PROPERTY) - 1;
    p.value.value.data = sig;
    p.value.value.len = TALLY_SIG_HEX_LEN;
    return MQTTProperties_add(props, &p) == 0 ? TALLY_OK : TALLY_ERR;
}

static void connect_now(tally_mqtt_link_t *link)
{
    MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer5;
    opts.keepAliveInterval = link->keepalive_s > 0 ? link->keepalive_s : 10;
    opts.cleanstart = 1;
    opts.automaticReconnect = 1;
    opts.minRetryInterval = 1;
    opts.maxRetryInterval = 4;
    opts.connectTimeout = 5;
    opts.onFailure5 = on_connect_fail;
    opts.context = link;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTProperties will_props = MQTTProperties_initializer;
    if (link->will_topic != NULL) {
        will.topicName = link->will_topic;
        will.message = NULL;
        will.payload.data = link->will_payload;
        will.payload.len = (int)link->will_len;
        will.retained = 1;
        will.qos = 1;
        opts.will = &will;
        if (add_signature(link, &will_props, link->will_topic, link->will_payload, link->will_len) ==
            TALLY_OK)
            opts.willProperties = &will_props;
    }
    if (link->username != NULL && link->username[0] != '\0')
        opts.username = link->username;
    if (link->password != NULL && link->password[0] != '\0')
        opts.password = link->password;
    atomic_store(&link->state_, ST_CONNECTING);
    int rc = MQTTAsync_connect(link->client_, &opts);
    MQTTProperties_free(&will_props);
    if (rc != MQTTASYNC_SUCCESS) {
        atomic_store(&link->state_, ST_FAILED);
        tally_warn("mqtt %s: connect refused locally (code %d)", link->url, rc);
    }
}

static void set_secret(tally_mqtt_link_t *link, const char *secret)
{
    link->secret = secret;
    link->secret_len = strlen(secret);
    if (link->secret_len == 0)
        tally_warn(
            "CLUSTER_SECRET is not set: totals and statuses are neither signed nor checked, so any client "
            "allowed to publish on the broker can move this cluster's count (see docs/mqtt.md)");
}

int tally_mqtt_link_start(tally_mqtt_link_t *link)
{
    atomic_init(&link->connected, 0);
    atomic_init(&link->subscribed, 0);
    atomic_init(&link->subacks_, 0);
    atomic_init(&link->state_, ST_IDLE);
    atomic_init(&link->published, 0);
    atomic_init(&link->publish_failures, 0);
    atomic_init(&link->received, 0);
    atomic_init(&link->connects, 0);
    atomic_init(&link->forged, 0);
    atomic_init(&link->failures_, 0);
    tally_backoff_init(&link->backoff_, 250, 4000);
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer5;
    int rc = MQTTAsync_createWithOptions(&link->client_, link->url, link->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &create);
    if (rc != MQTTASYNC_SUCCESS) {
        tally_error("mqtt %s: cannot create a client (code %d)", link->url, rc);
        return TALLY_ERR;
    }
    rc = MQTTAsync_setCallbacks(link->client_, link, on_connection_lost, on_message_arrived, NULL);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setConnected(link->client_, link, on_connected);
    if (rc != MQTTASYNC_SUCCESS) {
        tally_error("mqtt %s: cannot set callbacks (code %d)", link->url, rc);
        MQTTAsync_destroy(&link->client_);
        return TALLY_ERR;
    }
    connect_now(link);
    link->next_attempt_ms_ = tally_now_ms() + tally_backoff_next(&link->backoff_);
    return TALLY_OK;
}

void tally_mqtt_link_tick(tally_mqtt_link_t *link, int64_t now_ms)
{
    int st = atomic_load(&link->state_);
    if (st == ST_ESTABLISHED) {
        tally_backoff_reset(&link->backoff_);
        return;
    }
    if (st != ST_FAILED || now_ms < link->next_attempt_ms_)
        return;
    link->next_attempt_ms_ = now_ms + tally_backoff_next(&link->backoff_);
    connect_now(link);
}

int tally_mqtt_link_publish(tally_mqtt_link_t *link, const char *topic, const void *payload, size_t len,
                            int qos, int retained)
{
    if (!atomic_load_explicit(&link->connected, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&link->publish_failures, 1, memory_order_relaxed);
        return TALLY_ERR;
    }
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)len;
    msg.qos = qos;
    msg.retained = retained;
    /* paho 1.3 takes a message's v5 properties only when response options are passed too. */
    MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
    add_signature(link, &msg.properties, topic, payload, len);
    int rc = MQTTAsync_sendMessage(link->client_, topic, &msg, &opts);
    MQTTProperties_free(&msg.properties); /* paho sends a copy */
    if (rc != MQTTASYNC_SUCCESS) {
        atomic_fetch_add_explicit(&link->publish_failures, 1, memory_order_relaxed);
        return TALLY_ERR;
    }
    atomic_fetch_add_explicit(&link->published, 1, memory_order_relaxed);
    return TALLY_OK;
}

void tally_mqtt_link_stop(tally_mqtt_link_t *link, int timeout_ms)
{
    if (atomic_exchange(&link->state_, ST_STOPPED) == ST_STOPPED)
        return;
    if (MQTTAsync_isConnected(link->client_)) {
        MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;
        opts.timeout = timeout_ms;
        MQTTAsync_disconnect(link->client_, &opts);
        /* disconnect is asynchronous: give paho the time it asked for to flush. */
        int64_t deadline = tally_now_ms() + timeout_ms;
        while (MQTTAsync_isConnected(link->client_) && tally_now_ms() < deadline) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    atomic_store(&link->connected, 0);
    atomic_store(&link->subscribed, 0);
    MQTTAsync_destroy(&link->client_);
}

#define LOAD(x) ((double)atomic_load_explicit(&(x), memory_order_relaxed))

void tally_mqtt_link_metrics(struct tally_metrics_buf *m, tally_mqtt_link_t *link)
{
    tally_metrics_add(m, "tally_mqtt_connected", "gauge", "1 while the MQTT session is up.",
                      (double)atomic_load(&link->connected));
    tally_metrics_add(m, "tally_mqtt_messages_received_total", "counter", "MQTT messages received.",
                      LOAD(link->received));
    tally_metrics_add(m, "tally_mqtt_messages_published_total", "counter",
                      "MQTT messages handed to the broker.", LOAD(link->published));
    tally_metrics_add(m, "tally_mqtt_publish_failures_total", "counter",
                      "MQTT publishes that could not be sent (broker unreachable).",
                      LOAD(link->publish_failures));
    tally_metrics_add(m, "tally_mqtt_unsigned_dropped_total", "counter",
                      "MQTT messages dropped because they carried no valid CLUSTER_SECRET signature.",
                      LOAD(link->forged));
    tally_metrics_add(m, "tally_mqtt_stale_epoch_dropped_total", "counter",
                      "Signed MQTT messages dropped because they belong to an older cluster epoch (before a "
                      "restore of Redis).",
                      LOAD(link->stale_epoch));
}

void tally_mqtt_link_configure(tally_mqtt_link_t *link, const tally_mqtt_settings_t *s)
{
    link->url = s->url;
    link->client_id = s->client_id;
    link->username = s->username;
    link->password = s->password;
    set_secret(link, s->cluster_secret);
}
