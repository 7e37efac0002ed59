/* libFuzzer target: what the replica does with request data before anything else:
 * route lookup on the path, Accept negotiation, JSON escaping of text. The first byte
 * picks the split between path and Accept value. Properties: never crashes, the escape
 * never leaves a raw control character or an unescaped quote. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = data[0] % size;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    if (split > len)
        split = len;
    enum tally_route r = tally_route_find(rest, split);
    if (r != TALLY_ROUTE_UNKNOWN && rest[0] != '/')
        abort();
    (void)tally_accept_wants_json(rest + split, len - split);

    char *text = malloc(len + 1), out[512];
    memcpy(text, rest, len);
    text[len] = '\0';
    size_t n = tally_json_escape(out, sizeof(out), text);
    if (n != (size_t)-1) {
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)out[i] < 0x20)
                abort();
            if (out[i] == '"' && (i == 0 || out[i - 1] != '\\'))
                abort();
        }
    }
    free(text);
    return 0;
}
