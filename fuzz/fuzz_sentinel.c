/* libFuzzer target: the Sentinel parsers (common/sentinel.c), REDIS_SENTINELS lists,
 * +switch-master and +promoted-slave messages. Properties: never crashes; what a parser
 * accepts has a non-empty host and a port from 1 to 65535; a message is accepted only for
 * its master's name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sentinel.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[4096];
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    tally_sentinels_t s;
    char why[256];
    if (tally_sentinels_parse(text, &s, why, sizeof(why)) == TALLY_OK) {
        if (s.n > TALLY_SENTINELS_MAX)
            abort();
        for (size_t i = 0; i < s.n; i++)
            if (s.addr[i].host[0] == '\0' || s.addr[i].port < 1 || s.addr[i].port > 65535)
                abort();
    } else if (why[0] == '\0') {
        abort(); /* a refusal always says why */
    }

    tally_sentinel_addr_t a;
    if (tally_switch_master_parse((const char *)data, size, "tally", &a) == TALLY_OK) {
        if (size < 6 || memcmp(data, "tally ", 6) != 0 || a.host[0] == '\0' || a.port < 1 || a.port > 65535)
            abort();
    }
    if (tally_promoted_parse((const char *)data, size, "tally", &a) == TALLY_OK) {
        if (a.host[0] == '\0' || a.port < 1 || a.port > 65535 || memmem(data, size, " @ tally ", 9) == NULL)
            abort();
    }
    return 0;
}
