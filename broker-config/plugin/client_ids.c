/* tally-client-ids: a mosquitto 2.0 plugin that keeps the services' client ids out of reach
 * of the watcher listeners.
 *
 * mosquitto's client ids are global to the broker: whoever connects with a client id that is
 * already connected takes its session over, and the broker then publishes the old session's
 * Last Will. Watchers hold a password that is effectively public (browsers carry it), and a
 * replica's client id is its public INSTANCE_ID, so without this plugin any watcher could
 * knock a replica off the broker and make its signed "offline" status fire, in a loop.
 *
 * The rule. The plugin is loaded once per listener (per_listener_settings true) with
 *     plugin_opt_role services   on the services listener: every client id that connects
 *                                there is reserved for the life of the broker;
 *     plugin_opt_role watchers   on every watcher listener: a client id that is reserved is
 *                                refused (CONNACK "not authorized") before the broker looks
 *                                for a session to take over, so nothing of the service moves.
 * The check runs in the basic-auth event, which mosquitto calls before it takes over an
 * existing session; the plugin only ever refuses or defers, so the listener's password file
 * and ACL still decide everything else.
 *
 * Why a reservation and not a list: instance ids are chosen by the operator (or are task
 * ids on swarm), so the broker learns them from the services listener itself. A watcher that
 * takes an id first, e.g. just after a broker restart, only holds it until the service
 * connects: the service's connection takes the watcher's session over (a watcher's Will can
 * publish nothing, its ACL is read only), and from then on the id is refused to watchers.
 * The table is bounded (TALLY_MAX_IDS); only the services listener, on the internal network,
 * can fill it, and a full table is logged once and then refuses every watcher id it cannot
 * prove is not reserved. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define TALLY_MAX_IDS 65536 /* reserved ids; the table has twice as many slots */

enum role { ROLE_SERVICES, ROLE_WATCHERS };

struct listener {
    mosquitto_plugin_id_t *pid;
    enum role role;
};

/* One table for the whole broker: each listener's init gets its own struct listener, but
 * the shared object is loaded once, so the services listener and the watcher listeners see
 * the same reservations. mosquitto runs plugins on its one main thread. */
static char *ids[2 * TALLY_MAX_IDS];
static size_t nids;
static bool full_logged;
static int listeners; /* plugin instances alive: the last one frees the table */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* The slot of id, or of the empty slot where it would go. */
static size_t slot_of(const char *id)
{
    size_t mask = 2 * TALLY_MAX_IDS - 1;
    size_t i = (size_t)hash_id(id) & mask;
    while (ids[i] != NULL && strcmp(ids[i], id) != 0)
        i = (i + 1) & mask;
    return i;
}

static void reserve(const char *id)
{
    size_t i = slot_of(id);
    if (ids[i] != NULL)
        return;
    if (nids == TALLY_MAX_IDS) {
        if (!full_logged)
            mosquitto_log_printf(MOSQ_LOG_WARNING,
                                 "tally-client-ids: %d service client ids reserved, the table is "
                                 "full; watcher listeners now refuse every client id",
                                 TALLY_MAX_IDS);
        full_logged = true;
        return;
    }
    ids[i] = mosquitto_strdup(id);
    if (ids[i] != NULL)
        nids++;
}

static bool reserved(const char *id)
{
    return nids == TALLY_MAX_IDS || ids[slot_of(id)] != NULL;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ev = event_data;
    struct listener *l = userdata;
    const char *id = mosquitto_client_id(ev->client);
    (void)event;
    if (id == NULL || id[0] == '\0')
        return MOSQ_ERR_PLUGIN_DEFER;
    if (l->role == ROLE_SERVICES) {
        reserve(id);
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    if (reserved(id)) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "tally-client-ids: refused client id %s on a watcher listener (a "
                             "service's id), from %s",
                             id, mosquitto_client_address(ev->client));
        return MOSQ_ERR_AUTH;
    }
    return MOSQ_ERR_PLUGIN_DEFER;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5)
            return 5;
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
                          int option_count)
{
    struct listener *l = mosquitto_calloc(1, sizeof *l);
    const char *role = NULL;
    if (l == NULL)
        return MOSQ_ERR_NOMEM;
    for (int i = 0; i < option_count; i++)
        if (strcmp(options[i].key, "role") == 0)
            role = options[i].value;
    if (role != NULL && strcmp(role, "services") == 0) {
        l->role = ROLE_SERVICES;
    } else if (role != NULL && strcmp(role, "watchers") == 0) {
        l->role = ROLE_WATCHERS;
    } else {
        mosquitto_log_printf(MOSQ_LOG_ERR, "tally-client-ids: plugin_opt_role must be services or watchers");
        mosquitto_free(l);
        return MOSQ_ERR_INVAL;
    }
    l->pid = identifier;
    *userdata = l;
    listeners++;
    return mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, l);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
    struct listener *l = userdata;
    (void)options;
    (void)option_count;
    if (l != NULL) {
        mosquitto_callback_unregister(l->pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
        mosquitto_free(l);
        if (--listeners == 0) {
            for (size_t i = 0; i < 2 * TALLY_MAX_IDS; i++) {
                mosquitto_free(ids[i]);
                ids[i] = NULL;
            }
            nids = 0;
            full_logged = false;
        }
    }
    return MOSQ_ERR_SUCCESS;
}
