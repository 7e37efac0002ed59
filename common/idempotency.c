#include "idempotency.h"

#include <string.h>

#include "total.h"
#include "util.h"

static int visible(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

size_t tally_idem_key_parse(const char *value, size_t len, char *out)
{
    while (len > 0 && (value[0] == ' ' || value[0] == '\t'))
        value++, len--;
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len == 0)
        return 0;
    size_t n = 0;
    if (value[0] != '"') {
        /* A bare token: taken as it is. */
        if (len > TALLY_IDEM_KEY_MAX)
            return 0;
        for (size_t i = 0; i < len; i++)
            if (!visible((unsigned char)value[i]))
                return 0;
        memcpy(out, value, len);
        return len;
    }
    /* A structured-field string (RFC 8941 3.3.3): nothing may follow the closing quote
     * (no parameters). Its characters may include spaces; a key may not. */
    size_t i = 1;
    for (;;) {
        if (i >= len)
            return 0; /* no closing quote */
        char c = value[i++];
        if (c == '"')
            break;
        if (c == '\\') {
            if (i >= len || (value[i] != '"' && value[i] != '\\'))
                return 0;
            c = value[i++];
        }
        if (!visible((unsigned char)c) || n == TALLY_IDEM_KEY_MAX)
            return 0;
        out[n++] = c;
    }
    return i == len ? n : 0;
}

int tally_idem_answer_parse(const char *text, size_t len, tally_idem_answer_t *a)
{
    const char *end = text + len;
    const char *sp1 = memchr(text, ' ', len);
    if (sp1 == NULL)
        return TALLY_ERR;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
    if (sp2 == NULL || sp2 + 1 == end)
        return TALLY_ERR;
    uint64_t n, m;
    if (tally_total_parse(text, (size_t)(sp1 - text), &n) != TALLY_OK ||
        tally_total_parse(sp1 + 1, (size_t)(sp2 - sp1 - 1), &m) != TALLY_OK || m == 0)
        return TALLY_ERR;
    a->n = n;
    a->m = m;
    a->instance = sp2 + 1;
    a->instance_len = (size_t)(end - sp2 - 1);
    return TALLY_OK;
}
