/* libFuzzer target: the replicas/<id>/status JSON parser. Properties: never crashes, and
 * a status it accepts survives format -> parse unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tally_status_t s, back;
    if (tally_status_parse(data, size, &s) != TALLY_OK)
        return 0;
    char buf[TALLY_STATUS_MAX_PAYLOAD * 2];
    size_t n = tally_status_format(buf, sizeof(buf), &s);
    if (n == (size_t)-1 || tally_status_parse(buf, n, &back) != TALLY_OK)
        abort();
    if (strcmp(s.id, back.id) != 0 || strcmp(s.host, back.host) != 0 ||
        strcmp(s.version, back.version) != 0 || s.started_at != back.started_at || s.served != back.served ||
        s.online != back.online)
        abort();
    return 0;
}
