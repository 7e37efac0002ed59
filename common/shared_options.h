/* Option rows both programs have, word for word: one definition, expanded into each
 * program's table (config.h). Each takes the table's OPT(field) macro, so the fields must
 * carry these names in both config structs. */
#ifndef TALLY_SHARED_OPTIONS_H
#define TALLY_SHARED_OPTIONS_H

#include "config.h"
#include "sentinel.h"
#include "sign.h"

/** REDIS_USERNAME (field redis_username): the Redis ACL user the program authenticates as. */
#define TALLY_OPTS_REDIS_USERNAME(OPT)                                                                       \
    {                                                                                                        \
        "REDIS_USERNAME", TALLY_OPT_STRING, OPT(redis_username), 0, 0, "",                                   \
            "Redis ACL user (AUTH user password; docs/security.md has each role's user); empty: Redis's "    \
            "default user, deprecated",                                                                      \
            tally_check_redis_user                                                                           \
    }

/** REDIS_SENTINELS, REDIS_MASTER_NAME, REDIS_SENTINEL_PASSWORD, REDIS_SENTINEL_USERNAME (fields
 *  redis_sentinels, redis_master_name, redis_sentinel_password, redis_sentinel_username). */
#define TALLY_OPTS_SENTINEL(OPT)                                                                             \
    {"REDIS_SENTINELS",                                                                                      \
     TALLY_OPT_STRING,                                                                                       \
     OPT(redis_sentinels),                                                                                   \
     0,                                                                                                      \
     0,                                                                                                      \
     "",                                                                                                     \
     "Redis Sentinel: host:port,host:port,... of the sentinels to ask for the master (then REDIS_HOST and "  \
     "REDIS_PORT are not used); empty: no Sentinel",                                                         \
     tally_check_sentinels},                                                                                 \
        {"REDIS_MASTER_NAME",                                                                                \
         TALLY_OPT_STRING,                                                                                   \
         OPT(redis_master_name),                                                                             \
         0,                                                                                                  \
         0,                                                                                                  \
         "tally",                                                                                            \
         "the master's name in the sentinels' configuration",                                                \
         tally_check_master_name},                                                                           \
        {"REDIS_SENTINEL_PASSWORD",                                                                          \
         TALLY_OPT_SECRET,                                                                                   \
         OPT(redis_sentinel_password),                                                                       \
         0,                                                                                                  \
         0,                                                                                                  \
         "",                                                                                                 \
         "password of the sentinels (AUTH)",                                                                 \
         NULL},                                                                                              \
    {                                                                                                        \
        "REDIS_SENTINEL_USERNAME", TALLY_OPT_STRING, OPT(redis_sentinel_username), 0, 0, "",                 \
            "the sentinels' ACL user for this program (AUTH user password); empty: their default user",      \
            tally_check_redis_user                                                                           \
    }

/** MAX_CONNECTIONS (field max_connections): the HTTP port's cap on open connections. */
#define TALLY_OPTS_MAX_CONNECTIONS(OPT)                                                                      \
    {                                                                                                        \
        "MAX_CONNECTIONS", TALLY_OPT_INT, OPT(max_connections), 1, 1000000, "1024",                          \
            "most HTTP connections open at once in this process (shared evenly by its threads); at the cap " \
            "it stops accepting until one closes, and new connections wait in the kernel's backlog",         \
            NULL                                                                                             \
    }

/** CLUSTER_SECRET (field cluster_secret). */
#define TALLY_OPTS_CLUSTER_SECRET(OPT)                                                                       \
    {                                                                                                        \
        "CLUSTER_SECRET", TALLY_OPT_SECRET, OPT(cluster_secret), 0, 0, "",                                   \
            "shared secret that signs totals and statuses on MQTT; messages without a valid signature are "  \
            "dropped "                                                                                       \
            "(empty: nothing is signed or checked)",                                                         \
            tally_check_secret                                                                               \
    }

#endif
