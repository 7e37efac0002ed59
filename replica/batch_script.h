/* The script that applies a batch in Redis, and the command that carries a batch to it.
 * The text of the script, with what each of its keys and arguments means, is in
 * batch_script.c; counter.c sends the commands, seed.c loads the script. */
#ifndef TALLY_REPLICA_BATCH_SCRIPT_H
#define TALLY_REPLICA_BATCH_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "resp.h"

/** The script's Lua text (SCRIPT LOAD). */
extern const char batch_script_text[];

/* The ring must outlast any batch that can still be retried: far more slots than batches in
 * flight, and an hour (a retry never waits longer than REDIS_TIMEOUT_MS). */
#define BATCH_RING_SLOTS 4096
#define BATCH_RING_TTL_MS 3600000

/* The commands of one connection. The constant head (EVALSHA, the SHA, the four keys) is
 * encoded once the script is loaded; a batch without keys then costs only its eight
 * arguments (profiling showed hiredis's format-string path at ~2,000 instructions a batch). */
struct batch_script {
    char sha[48];                             /* "" until the script is loaded on the current connection */
    char plain[440 + 8 * TALLY_RESP_U64_MAX]; /* the head, then a batch's arguments */
    size_t head_len;
    size_t sha_end; /* where the SHA ends in the head (the key count follows) */
    char *keyed;    /* a batch with keys is written here (grown as needed) */
    size_t keyed_cap;
};

/* What a batch's arguments take from the replica at the moment it is sent. */
struct batch_send {
    uint64_t floor, epoch; /* the highest total known now, and its cluster epoch */
    uint64_t key_ttl_ms;   /* IDEMPOTENCY_TTL_S, in ms */
    const char *instance;  /* written into every key's answer */
};

/** The script is loaded as @p sha on a connection whose ring is @p ring_key: encodes the
 *  head. Returns TALLY_ERR if they do not fit. */
int batch_script_loaded(struct batch_script *s, const char *sha, size_t sha_len, const char *ring_key);
/** Forgets the SHA (a new connection must load the script again). */
void batch_script_unload(struct batch_script *s);
/** Encodes the command that sends @p b; sets *len. Returns the bytes (owned by @p s, valid
 *  until the next call), or NULL if out of memory. */
const char *batch_script_command(struct batch_script *s, const struct batch *b, const struct batch_send *a,
                                 size_t *len);
/** Frees what @p s owns. */
void batch_script_free(struct batch_script *s);

#endif
