/* The settings of the two links both programs keep, as their option tables fill them
 * (shared_options.h), and as tally_redis_link_configure / tally_mqtt_link_configure take them. */
#ifndef TALLY_SETTINGS_H
#define TALLY_SETTINGS_H

#include "util.h"

/* A link's settings as both programs' option tables fill them (shared_options.h:
 * TALLY_OPTS_REDIS), so the programs wire their links alike. */
typedef struct tally_redis_settings {
    char host[256];
    int port;
    char password[512];
    char username[TALLY_ID_SIZE];
    char sentinels[1024]; /* REDIS_SENTINELS as given (parsed into a tally_sentinels_t) */
    char master_name[TALLY_ID_SIZE];
    char sentinel_password[512];
    char sentinel_username[TALLY_ID_SIZE];
} tally_redis_settings_t;

/* A link's settings as both programs' option tables fill them (shared_options.h:
 * TALLY_OPTS_MQTT and TALLY_OPTS_CLUSTER_SECRET). */
typedef struct tally_mqtt_settings {
    char url[300];
    char username[128];
    char password[512];
    char client_id[128];
    char cluster_secret[256];
} tally_mqtt_settings_t;

#endif
