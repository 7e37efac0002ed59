/* Proof of origin for tally's MQTT messages: an HMAC-SHA256, keyed with the cluster secret
 * (CLUSTER_SECRET), over the topic and the payload. It travels in the MQTT v5 user property
 * TALLY_SIG_PROPERTY as 64 lower-case hex digits, so the payload itself stays what watchers
 * read (plain decimal totals, JSON statuses).
 *
 * What is signed: "tally1" NUL topic NUL payload. The topic is part of it, so a signed status
 * cannot be replayed as a total, nor one replica's status under another's topic. Nothing in
 * it is secret, and nothing stops a replay of a message a holder of the secret did sign:
 * docs/mqtt.md says what a replay can and cannot do. */
#ifndef TALLY_SIGN_H
#define TALLY_SIGN_H

#include <stddef.h>

#define TALLY_SIG_PROPERTY "tally-sig"
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

/** Config check for CLUSTER_SECRET: empty (no signing) or at least TALLY_SECRET_MIN_LEN bytes. */
int tally_check_secret(char *value, size_t size, char *why, size_t whylen);

#endif
