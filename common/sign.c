#include "sign.h"
#include "util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#define SIGN_DOMAIN "tally1"
#define SIGN_DOMAIN_EPOCH "tally2"

static int sign_raw(const char *secret, size_t secret_len, uint64_t epoch, const char *topic,
                    const void *payload, size_t len, unsigned char mac[32])
{
    unsigned char buf[TALLY_SIG_MAX_SIGNED + 32];
    char head[48];
    size_t tlen = strlen(topic), dlen;
    unsigned int maclen = 32;
    if (epoch == 0) {
        memcpy(head, SIGN_DOMAIN, sizeof(SIGN_DOMAIN));
        dlen = sizeof(SIGN_DOMAIN);
    } else { /* "tally2" NUL epoch NUL */
        int n = snprintf(head, sizeof(head), "%s%c%llu", SIGN_DOMAIN_EPOCH, '\0', (unsigned long long)epoch);
        dlen = (size_t)n + 1;
    }
    if (sizeof(SIGN_DOMAIN) + tlen + 1 + len > TALLY_SIG_MAX_SIGNED)
        return TALLY_ERR;
    memcpy(buf, head, dlen);
    memcpy(buf + dlen, topic, tlen + 1);
    if (len > 0)
        memcpy(buf + dlen + tlen + 1, payload, len);
    if (HMAC(EVP_sha256(), secret, (int)secret_len, buf, dlen + tlen + 1 + len, mac, &maclen) == NULL)
        return TALLY_ERR;
    return TALLY_OK;
}

static void to_hex(const unsigned char mac[32], char out[TALLY_SIG_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[TALLY_SIG_HEX_LEN] = '\0';
}

void tally_sign(const char *secret, size_t secret_len, const char *topic, const void *payload, size_t len,
                char out[TALLY_SIG_HEX_LEN + 1])
{
    tally_sign_epoch(secret, secret_len, 0, topic, payload, len, out);
}

int tally_sign_verify(const char *secret, size_t secret_len, const char *topic, const void *payload,
                      size_t len, const char *sig, size_t sig_len)
{
    return tally_sign_verify_epoch(secret, secret_len, 0, topic, payload, len, sig, sig_len);
}

void tally_sign_epoch(const char *secret, size_t secret_len, uint64_t epoch, const char *topic,
                      const void *payload, size_t len, char out[TALLY_SIG_HEX_LEN + 1])
{
    unsigned char mac[32];
    if (sign_raw(secret, secret_len, epoch, topic, payload, len, mac) != TALLY_OK)
        memset(mac, 0, sizeof(mac)); /* too long to be tally's: tally_sign_verify refuses it first */
    to_hex(mac, out);
}

int tally_sign_verify_epoch(const char *secret, size_t secret_len, uint64_t epoch, const char *topic,
                            const void *payload, size_t len, const char *sig, size_t sig_len)
{
    unsigned char mac[32];
    char want[TALLY_SIG_HEX_LEN + 1];
    if (sig == NULL || sig_len != TALLY_SIG_HEX_LEN ||
        sign_raw(secret, secret_len, epoch, topic, payload, len, mac) != TALLY_OK)
        return TALLY_ERR;
    to_hex(mac, want);
    unsigned char diff = 0;
    for (size_t i = 0; i < TALLY_SIG_HEX_LEN; i++)
        diff |= (unsigned char)(want[i] ^ sig[i]);
    return diff == 0 ? TALLY_OK : TALLY_ERR;
}

int tally_epoch_parse(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
        return TALLY_ERR;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TALLY_ERR;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return TALLY_ERR;
    *out = v;
    return TALLY_OK;
}

int tally_check_secret(char *value, size_t size, char *why, size_t whylen)
{
    (void)size;
    size_t n = strlen(value);
    if (n != 0 && n < TALLY_SECRET_MIN_LEN) {
        snprintf(why, whylen, "must be at least %d characters (make one with broker-config/make-secrets.sh)",
                 TALLY_SECRET_MIN_LEN);
        return TALLY_ERR;
    }
    return TALLY_OK;
}
