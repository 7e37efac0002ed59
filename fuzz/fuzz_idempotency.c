/* libFuzzer target: the Idempotency-Key header a client sends and the stored answer read
 * back from Redis. Properties: never crashes; a key is 1..255 visible ASCII characters;
 * parsing a key written back bare gives the same key; a parsed answer's instance lies
 * inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idempotency.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char key[TALLY_IDEM_KEY_MAX], again[TALLY_IDEM_KEY_MAX];
    size_t n = tally_idem_key_parse(in, size, key);
    if (n > TALLY_IDEM_KEY_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            abort();
    if (n > 0 && key[0] != '"' && (tally_idem_key_parse(key, n, again) != n || memcmp(key, again, n) != 0))
        abort();
    tally_idem_answer_t a;
    if (tally_idem_answer_parse(in, size, &a) == TALLY_OK &&
        (a.instance < in || a.instance + a.instance_len > in + size || a.instance_len == 0 || a.m == 0))
        abort();
    return 0;
}
