/* Option rows both programs have, word for word: one definition, expanded into each
 * program's table (config.h). Each takes the table's OPT(field) macro; the Redis rows fill a
 * tally_redis_settings_t named redis, the MQTT rows a tally_mqtt_settings_t named mqtt, the
 * log rows log_file and log_level. */
#ifndef TALLY_SHARED_OPTIONS_H
#define TALLY_SHARED_OPTIONS_H

#include "config.h"
#include "sentinel.h"
#include "sign.h"

/** REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_USERNAME, then the Sentinel rows. */
#define TALLY_OPTS_REDIS(OPT)                                                                                \
    {"REDIS_HOST", TALLY_OPT_STRING, OPT(redis.host), 0, 0, "127.0.0.1", "Redis server", tally_check_host},  \
        {"REDIS_PORT", TALLY_OPT_INT, OPT(redis.port), 1, 65535, "6379", "Redis port", NULL},                \
        {"REDIS_PASSWORD", TALLY_OPT_SECRET, OPT(redis.password), 0, 0, "", "Redis password (AUTH)", NULL},  \
        TALLY_OPTS_REDIS_USERNAME(OPT), TALLY_OPTS_SENTINEL(OPT)

/** REDIS_USERNAME: the Redis ACL user the program authenticates as. */
#define TALLY_OPTS_REDIS_USERNAME(OPT)                                                                       \
    {                                                                                                        \
        "REDIS_USERNAME", TALLY_OPT_STRING, OPT(redis.username), 0, 0, "",                                   \
            "Redis ACL user (AUTH user password; docs/security.md has each role's user); empty: Redis's "    \
            "default user, deprecated",                                                                      \
            tally_check_redis_user                                                                           \
    }

/** REDIS_SENTINELS, REDIS_MASTER_NAME, REDIS_SENTINEL_PASSWORD, REDIS_SENTINEL_USERNAME. */
#define TALLY_OPTS_SENTINEL(OPT)                                                                             \
    {"REDIS_SENTINELS",                                                                                      \
     TALLY_OPT_STRING,                                                                                       \
     OPT(redis.sentinels),                                                                                   \
     0,                                                                                                      \
     0,                                                                                                      \
     "",                                                                                                     \
     "Redis Sentinel: host:port,host:port,... of the sentinels to ask for the master (then REDIS_HOST and "  \
     "REDIS_PORT are not used); empty: no Sentinel",                                                         \
     tally_check_sentinels},                                                                                 \
        {"REDIS_MASTER_NAME",                                                                                \
         TALLY_OPT_STRING,                                                                                   \
         OPT(redis.master_name),                                                                             \
         0,                                                                                                  \
         0,                                                                                                  \
         "tally",                                                                                            \
         "the master's name in the sentinels' configuration",                                                \
         tally_check_master_name},                                                                           \
        {"REDIS_SENTINEL_PASSWORD",                                                                          \
         TALLY_OPT_SECRET,                                                                                   \
         OPT(redis.sentinel_password),                                                                       \
         0,                                                                                                  \
         0,                                                                                                  \
         "",                                                                                                 \
         "password of the sentinels (AUTH)",                                                                 \
         NULL},                                                                                              \
    {                                                                                                        \
        "REDIS_SENTINEL_USERNAME", TALLY_OPT_STRING, OPT(redis.sentinel_username), 0, 0, "",                 \
            "the sentinels' ACL user for this program (AUTH user password); empty: their default user",      \
            tally_check_redis_user                                                                           \
    }

/** MAX_CONNECTIONS: the HTTP port's cap on open connections. */
#define TALLY_OPTS_MAX_CONNECTIONS(OPT)                                                                      \
    {                                                                                                        \
        "MAX_CONNECTIONS", TALLY_OPT_INT, OPT(max_connections), 1, 1000000, "1024",                          \
            "most HTTP connections open at once in this process (shared evenly by its threads); at the cap " \
            "it stops accepting until one closes, and new connections wait in the kernel's backlog",         \
            NULL                                                                                             \
    }

/** INSTANCE_ID, with the program's own help. */
#define TALLY_OPTS_INSTANCE_ID(OPT, help)                                                                    \
    {                                                                                                        \
        "INSTANCE_ID", TALLY_OPT_STRING, OPT(instance_id), 0, 0, "", help, tally_check_instance_id           \
    }

/** SITE: the site this program belongs to (docs/sites.md). */
#define TALLY_OPTS_SITE(OPT)                                                                                 \
    {                                                                                                        \
        "SITE", TALLY_OPT_STRING, OPT(site), 0, 0, "",                                                       \
            "this deployment's site when several sites add up to one total: 1-32 of a-z, 0-9 and '-' "       \
            "(docs/sites.md); empty: one site",                                                              \
            tally_check_site                                                                                 \
    }

/** PRESENCE_EXPIRE_S, with the program's own help. */
#define TALLY_OPTS_PRESENCE_EXPIRE(OPT, help)                                                                \
    {                                                                                                        \
        "PRESENCE_EXPIRE_S", TALLY_OPT_INT, OPT(presence_expire_s), 1, 31536000, "600", help, NULL           \
    }

/** CLUSTER_SECRET. */
#define TALLY_OPTS_CLUSTER_SECRET(OPT)                                                                       \
    {                                                                                                        \
        "CLUSTER_SECRET", TALLY_OPT_SECRET, OPT(mqtt.cluster_secret), 0, 0, "",                              \
            "shared secret that signs totals and statuses on MQTT; messages without a valid signature are "  \
            "dropped "                                                                                       \
            "(empty: nothing is signed or checked)",                                                         \
            tally_check_secret                                                                               \
    }

/** MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD, MQTT_CLIENT_ID (whose default differs by program: its
 *  help says which) and CLUSTER_SECRET. */
#define TALLY_OPTS_MQTT(OPT, client_id_help)                                                                 \
    {"MQTT_URL", TALLY_OPT_STRING,       OPT(mqtt.url), 0,                                                   \
     0,          "tcp://127.0.0.1:1883", "MQTT broker", tally_check_mqtt_url},                               \
        {"MQTT_USERNAME",                                                                                    \
         TALLY_OPT_STRING,                                                                                   \
         OPT(mqtt.username),                                                                                 \
         0,                                                                                                  \
         0,                                                                                                  \
         "",                                                                                                 \
         "MQTT user name (empty: anonymous)",                                                                \
         NULL},                                                                                              \
        {"MQTT_PASSWORD", TALLY_OPT_SECRET, OPT(mqtt.password), 0, 0, "", "MQTT password", NULL},            \
        {"MQTT_CLIENT_ID", TALLY_OPT_STRING,       OPT(mqtt.client_id), 0, 0, "",                            \
         client_id_help,   tally_check_instance_id},                                                         \
        TALLY_OPTS_CLUSTER_SECRET(OPT)

/** LOG_FILE, LOG_LEVEL and LOG_FORMAT. */
#define TALLY_OPTS_LOG(OPT)                                                                                  \
    {"LOG_FILE",                                                                                             \
     TALLY_OPT_STRING,                                                                                       \
     OPT(log_file),                                                                                          \
     0,                                                                                                      \
     0,                                                                                                      \
     "",                                                                                                     \
     "append the log to this file instead of stderr; SIGHUP reopens it (log rotation) and reloads "          \
     "LOG_LEVEL",                                                                                            \
     NULL},                                                                                                  \
        {"LOG_LEVEL", TALLY_OPT_LOGLEVEL, OPT(log_level), 0, 0, "info", "debug, info, warn or error", NULL}, \
    {                                                                                                        \
        "LOG_FORMAT", TALLY_OPT_STRING, OPT(log_format), 0, 0, "text",                                       \
            "text (one line a message, for people) or json (one object a line: time, level, program, pid, "  \
            "instance, message, fields; for log shippers); SIGHUP reloads it",                               \
            tally_check_log_format                                                                           \
    }

#endif
