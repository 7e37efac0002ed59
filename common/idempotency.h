/* Idempotent retries (docs/api.md "Idempotency-Key"): reading the header a client sends, and
 * reading the answer Redis keeps for it. Pure functions, no I/O: the replica's batch script
 * stores the answer in the same call as the increment (replica/counter.c). */
#ifndef TALLY_IDEMPOTENCY_H
#define TALLY_IDEMPOTENCY_H

#include <stddef.h>
#include <stdint.h>

/* The request header, as h2o hands it over (lower case). */
#define TALLY_IDEM_HEADER "idempotency-key"
/* The answer to key K is kept in the Redis key "tally:idem:K". */
#define TALLY_IDEM_PREFIX "tally:idem:"
#define TALLY_IDEM_KEY_MAX 255

/** Reads an Idempotency-Key value (@p len bytes, not NUL-terminated): a structured-field
 *  string ("..." with \" and \\ as its only escapes) or a bare token, with optional spaces
 *  or tabs around it. The key it names must be 1..255 visible ASCII characters (0x21..0x7e);
 *  a quoted "abc" and a bare abc name the same key. Writes the key to @p out (at least
 *  TALLY_IDEM_KEY_MAX bytes, not NUL-terminated) and returns its length, or 0 when the
 *  value is not a key. */
size_t tally_idem_key_parse(const char *value, size_t len, char *out);

/* A stored answer: "<N> <M> <instance>" (the batch script writes it). */
typedef struct tally_idem_answer {
    uint64_t n, m;
    const char *instance; /* points into the parsed text */
    size_t instance_len;
} tally_idem_answer_t;

/** Parses a stored answer (@p len bytes). Returns TALLY_OK and fills @p a, or TALLY_ERR
 *  (not two numbers and a non-empty instance): the key was written by something else. */
int tally_idem_answer_parse(const char *text, size_t len, tally_idem_answer_t *a);

#endif
