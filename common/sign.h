/* Proof of origin for tally's MQTT messages: an HMAC-SHA256, keyed with the cluster secret
 * (CLUSTER_SECRET), over the topic and the payload. It travels in the MQTT v5 user property
 * TALLY_SIG_PROPERTY as 64 lower-case hex digits, so the payload itself stays what watchers
 * read (plain decimal totals, JSON statuses).
 *
 * What is signed: "tally1" NUL topic NUL payload. The topic is part of it, so a signed status
 * cannot be replayed as a total, nor one replica's status under another's topic. Nothing in
 * it is secret, and nothing stops a replay of a message a holder of the secret did sign:
 * docs/mqtt.md says what a replay can and cannot do.
 *
 * Epochs. A message of cluster epoch E > 0 (the Redis key tally:epoch, raised after a
 * deliberate restore) carries E in the user property TALLY_EPOCH_PROPERTY as decimal, and
 * what is signed is "tally2" NUL E NUL topic NUL payload: the epoch cannot be changed
 * without the secret, so a total recorded before a restore stays in its epoch. Epoch 0 is
 * the original form, unchanged, so a cluster that never restored signs as before. */
#ifndef TALLY_SIGN_H
#define TALLY_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define TALLY_SIG_PROPERTY "tally-sig"
#define TALLY_EPOCH_PROPERTY "tally-epoch"
#define TALLY_SIG_HEX_LEN 64
/* Longest signed text ("tally1" NUL topic NUL payload): every message tally signs is far
 * shorter; a longer one received cannot be tally's and matches nothing. */
#define TALLY_SIG_MAX_SIGNED 2048
/* Shortest CLUSTER_SECRET accepted: a guessable key would make the proof worthless. */
#define TALLY_SECRET_MIN_LEN 16

/** Writes the signature of (@p topic, @p payload of @p len bytes) under @p secret of
 *  @p secret_len bytes into @p out as TALLY_SIG_HEX_LEN hex digits and a NUL. */
void tally_sign(const char *secret, size_t secret_len, const char *topic, const void *payload, size_t len,
                char out[TALLY_SIG_HEX_LEN + 1]);

/** Returns TALLY_OK when @p sig (@p sig_len bytes, not NUL-terminated) is the signature of
 *  (@p topic, @p payload) under @p secret; TALLY_ERR otherwise (wrong length, not hex, wrong
 *  key, other topic or payload). The comparison takes the same time wherever it differs. */
int tally_sign_verify(const char *secret, size_t secret_len, const char *topic, const void *payload,
                      size_t len, const char *sig, size_t sig_len);

/** tally_sign and tally_sign_verify for a message of cluster epoch @p epoch (0: the same
 *  as they). */
void tally_sign_epoch(const char *secret, size_t secret_len, uint64_t epoch, const char *topic,
                      const void *payload, size_t len, char out[TALLY_SIG_HEX_LEN + 1]);
int tally_sign_verify_epoch(const char *secret, size_t secret_len, uint64_t epoch, const char *topic,
                            const void *payload, size_t len, const char *sig, size_t sig_len);

/** Parses an epoch property value (1 to 19 digits, no leading zero, at most INT64_MAX; not
 *  NUL-terminated). Returns TALLY_OK and sets *out, or TALLY_ERR. */
int tally_epoch_parse(const char *s, size_t len, uint64_t *out);

/** Config check for CLUSTER_SECRET: empty (no signing) or at least TALLY_SECRET_MIN_LEN bytes. */
int tally_check_secret(char *value, size_t size, char *why, size_t whylen);

#endif
