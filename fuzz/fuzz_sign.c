/* libFuzzer target: the signature check of MQTT messages (common/sign.c). The input is cut
 * into a topic, a payload and a claimed signature. Properties: never crashes; a claimed
 * signature is accepted only if it is exactly the one tally_sign makes; the signature
 * tally_sign makes is accepted, unless the message is too long to be tally's; a one-bit
 * change of the payload is refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"
#include "util.h"

#define KEY "fuzz-cluster-secret-0123"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* layout: topic length (1 byte), topic, signature length (1 byte), signature, payload */
    if (size < 2)
        return 0;
    size_t tlen = data[0];
    if (1 + tlen + 1 > size)
        return 0;
    char topic[256];
    memcpy(topic, data + 1, tlen);
    topic[tlen] = '\0';
    size_t slen = data[1 + tlen];
    const char *claimed = (const char *)data + 2 + tlen;
    if (2 + tlen + slen > size)
        return 0;
    const uint8_t *payload = data + 2 + tlen + slen;
    size_t plen = size - 2 - tlen - slen;
    size_t topic_len = strlen(topic); /* a NUL inside ends the topic, as in MQTT it cannot occur */

    char real[TALLY_SIG_HEX_LEN + 1];
    tally_sign(KEY, strlen(KEY), topic, payload, plen, real);
    int ok = tally_sign_verify(KEY, strlen(KEY), topic, payload, plen, claimed, slen) == TALLY_OK;
    if (ok && (slen != TALLY_SIG_HEX_LEN || memcmp(claimed, real, TALLY_SIG_HEX_LEN) != 0))
        abort(); /* accepted something that is not the signature */
    int fits = sizeof("tally1") + topic_len + 1 + plen <= TALLY_SIG_MAX_SIGNED;
    if (fits !=
        (tally_sign_verify(KEY, strlen(KEY), topic, payload, plen, real, TALLY_SIG_HEX_LEN) == TALLY_OK))
        abort(); /* its own signature refused, or an oversized message accepted */
    if (fits && plen > 0) {
        uint8_t *copy = malloc(plen);
        memcpy(copy, payload, plen);
        copy[plen / 2] ^= 1;
        if (tally_sign_verify(KEY, strlen(KEY), topic, copy, plen, real, TALLY_SIG_HEX_LEN) == TALLY_OK)
            abort();
        free(copy);
    }
    return 0;
}
