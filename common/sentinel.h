/* Redis Sentinel, the parts tally parses: the REDIS_SENTINELS list, the +switch-master
 * announcement, and the answers that name a master (kept free of hiredis, so they can be
 * unit-tested and fuzzed). The link that uses them is common/redis_link.c. */
#ifndef TALLY_SENTINEL_H
#define TALLY_SENTINEL_H

#include <stddef.h>

#define TALLY_SENTINELS_MAX 16
#define TALLY_SENTINEL_HOST_MAX 256

typedef struct tally_sentinel_addr {
    char host[TALLY_SENTINEL_HOST_MAX];
    int port;
} tally_sentinel_addr_t;

typedef struct tally_sentinels {
    size_t n; /* 0: no Sentinel, REDIS_HOST/REDIS_PORT are used */
    tally_sentinel_addr_t addr[TALLY_SENTINELS_MAX];
} tally_sentinels_t;

/** Parses "host:port,host:port,..." (IPv6 literals as [addr]:port; spaces around commas
 *  allowed; an empty string is an empty list). Returns TALLY_OK, or TALLY_ERR with the
 *  reason in @p why (which element, what is wrong). */
int tally_sentinels_parse(const char *list, tally_sentinels_t *out, char *why, size_t whylen);

/** Config check for REDIS_SENTINELS (the value is kept as text; the programs parse it). */
int tally_check_sentinels(char *value, size_t size, char *why, size_t whylen);

/** Config check for REDIS_MASTER_NAME: 1-64 of [A-Za-z0-9._-]. */
int tally_check_master_name(char *value, size_t size, char *why, size_t whylen);
/** Option check of REDIS_USERNAME and REDIS_SENTINEL_USERNAME: empty (the default user), or
 *  the same characters as a master name. */
int tally_check_redis_user(char *value, size_t size, char *why, size_t whylen);

/** Parses the payload of a +switch-master message ("<name> <old ip> <old port> <new ip>
 *  <new port>", not NUL-terminated). Returns TALLY_OK and the new master when it names
 *  @p name; TALLY_ERR for another master or a malformed message. */
int tally_switch_master_parse(const char *msg, size_t len, const char *name, tally_sentinel_addr_t *out);

/** Parses the payload of a +promoted-slave event ("slave <ip>:<port> <ip> <port> @ <name>
 *  <master ip> <master port>"): the replica the leading sentinel has just seen answer as
 *  master of @p name. Returns TALLY_OK and its address, TALLY_ERR otherwise. */
int tally_promoted_parse(const char *msg, size_t len, const char *name, tally_sentinel_addr_t *out);

/** Takes a port from text of @p len bytes: 1..65535, digits only. Returns -1 if it is not one. */
int tally_port_parse(const char *s, size_t len);

#endif
