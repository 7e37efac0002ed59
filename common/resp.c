#include "resp.h"

#include <string.h>

#include "total.h"

static size_t header(char *buf, char kind, size_t n)
{
    buf[0] = kind;
    size_t len = 1 + tally_total_format(buf + 1, (uint64_t)n);
    buf[len++] = '\r';
    buf[len++] = '\n';
    return len;
}

size_t tally_resp_array(char *buf, size_t n)
{
    return header(buf, '*', n);
}

size_t tally_resp_bulk(char *buf, const char *s, size_t len)
{
    size_t at = header(buf, '$', len);
    memcpy(buf + at, s, len);
    at += len;
    buf[at++] = '\r';
    buf[at++] = '\n';
    return at;
}

size_t tally_resp_bulk_u64(char *buf, uint64_t v)
{
    char digits[21];
    size_t n = tally_total_format(digits, v);
    return tally_resp_bulk(buf, digits, n);
}
