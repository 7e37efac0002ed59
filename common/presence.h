/* Presence: the retained status each replica publishes on replicas/<id>/status, its
 * strict parser, and the table of replicas a process has heard of (GET /replicas).
 *
 * Payload (one flat JSON object; more fields may follow and are ignored):
 *   {"id":"web-1","host":"web-1:8080","version":"0.1.0","started_at":1795425208123,
 *    "served":42,"state":"online"}
 * started_at is Unix time in ms; state is "online" or "offline". */
#ifndef TALLY_PRESENCE_H
#define TALLY_PRESENCE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define TALLY_STATUS_TOPIC_PREFIX "replicas/"
#define TALLY_STATUS_TOPIC_SUFFIX "/status"
#define TALLY_STATUS_MAX_PAYLOAD 1024

typedef struct tally_status {
    char id[TALLY_ID_SIZE];
    char host[128];
    char version[32];
    int64_t started_at; /* Unix ms */
    uint64_t served;
    int online;
} tally_status_t;

/** Parses a status payload (not NUL-terminated). Requires id, host, state; id must be a
 *  valid instance id. Returns TALLY_OK, or TALLY_ERR leaving @p out undefined. */
int tally_status_parse(const void *payload, size_t len, tally_status_t *out);
/** Writes @p s as a status payload; returns its length or (size_t)-1 if it did not fit. */
size_t tally_status_format(char *buf, size_t size, const tally_status_t *s);
/** Extracts <id> from "replicas/<id>/status" into @p id (65 bytes). TALLY_ERR if the topic
 *  does not have that shape or the id is not valid. */
int tally_status_topic_id(const char *topic, char *id);

#define TALLY_PRESENCE_MAX 1024

/* The replicas a process knows, keyed by id. Written from paho's thread, read from HTTP
 * threads: every call takes the table's mutex. */
typedef struct tally_presence {
    pthread_mutex_t lock;
    size_t n;
    struct tally_presence_entry {
        tally_status_t status;
        int64_t last_seen_ms; /* Unix ms of the last message */
    } entries[TALLY_PRESENCE_MAX];
} tally_presence_t;

/** Prepares an empty table. */
void tally_presence_init(tally_presence_t *p);
/** Records @p s, seen at @p now_ms. Returns TALLY_ERR if the table is full. */
int tally_presence_update(tally_presence_t *p, const tally_status_t *s, int64_t now_ms);
/** Forgets the replica @p id (its retained status was cleared). */
void tally_presence_remove(tally_presence_t *p, const char *id);
/** Forgets every replica offline and unheard of for at least @p max_age_ms, at most
 *  @p max_ids of them; their ids go to @p ids (may be NULL). Returns how many it forgot. */
size_t tally_presence_expire(tally_presence_t *p, int64_t now_ms, int64_t max_age_ms,
                             char (*ids)[TALLY_ID_SIZE], size_t max_ids);
/** Sets *@p online to how many replicas the table holds as online, and returns how many of
 *  them have an id below @p id (the rank of @p id among them, if it is online). */
size_t tally_presence_rank(tally_presence_t *p, const char *id, size_t *online);
/** Writes {"replicas":[...]} sorted by id into a malloc'd string; *len gets its length.
 *  Returns NULL when out of memory. */
char *tally_presence_json(tally_presence_t *p, size_t *len);

#endif
