#include "sentinel.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

int tally_port_parse(const char *s, size_t len)
{
    int port = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        port = port * 10 + (s[i] - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

/* One "host:port" of @p len bytes. */
static int parse_addr(const char *s, size_t len, tally_sentinel_addr_t *a, char *why, size_t whylen)
{
    const char *host = s, *colon;
    size_t hlen;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL || close + 1 >= s + len || close[1] != ':') {
            snprintf(why, whylen, "\"%.*s\" is not [ipv6]:port", (int)len, s);
            return TALLY_ERR;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (s[i] == ':')
                colon = s + i;
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            snprintf(why, whylen, "\"%.*s\" is not host:port", (int)len, s);
            return TALLY_ERR;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= sizeof(a->host)) {
        snprintf(why, whylen, "\"%.*s\" has %s host", (int)len, s, hlen == 0 ? "no" : "too long a");
        return TALLY_ERR;
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_' || c == ':')) {
            snprintf(why, whylen, "\"%.*s\": the host has a character that no host name has", (int)len, s);
            return TALLY_ERR;
        }
    }
    int port = tally_port_parse(colon + 1, (size_t)(s + len - colon - 1));
    if (port < 0) {
        snprintf(why, whylen, "\"%.*s\": the port must be 1 to 65535", (int)len, s);
        return TALLY_ERR;
    }
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    a->port = port;
    return TALLY_OK;
}

int tally_sentinels_parse(const char *list, tally_sentinels_t *out, char *why, size_t whylen)
{
    out->n = 0;
    const char *p = list;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return TALLY_OK;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == 0) {
            snprintf(why, whylen, "an empty element in the list (host:port,host:port,...)");
            return TALLY_ERR;
        }
        if (out->n == TALLY_SENTINELS_MAX) {
            snprintf(why, whylen, "more than %d sentinels", TALLY_SENTINELS_MAX);
            return TALLY_ERR;
        }
        if (parse_addr(p, len, &out->addr[out->n], why, whylen) != TALLY_OK)
            return TALLY_ERR;
        out->n++;
        if (end == NULL)
            return TALLY_OK;
        p = end + 1;
        while (*p == ' ')
            p++;
    }
}

int tally_check_sentinels(char *value, size_t size, char *why, size_t whylen)
{
    static tally_sentinels_t scratch; /* config loading is single-threaded */
    (void)size;
    return tally_sentinels_parse(value, &scratch, why, whylen);
}

int tally_check_master_name(char *value, size_t size, char *why, size_t whylen)
{
    size_t n = strlen(value);
    (void)size;
    int ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) {
        char c = value[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
             c == '-' || c == '_';
    }
    if (!ok)
        snprintf(why, whylen, "must be 1 to 64 of A-Z a-z 0-9 . _ -");
    return ok ? TALLY_OK : TALLY_ERR;
}

int tally_check_redis_user(char *value, size_t size, char *why, size_t whylen)
{
    if (value[0] == '\0')
        return TALLY_OK; /* the default user */
    return tally_check_master_name(value, size, why, whylen);
}

/* Splits @p msg at single spaces into at most @p max fields; returns how many, or 0 when
 * there are more than @p max or a field is empty. */
static size_t split_fields(const char *msg, size_t len, const char **f, size_t *flen, size_t max)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || msg[i] == ' ') {
            if (k == max || i == start)
                return 0;
            f[k] = msg + start;
            flen[k++] = i - start;
            start = i + 1;
        }
    }
    return k;
}

static int field_is(const char *f, size_t flen, const char *word)
{
    return strlen(word) == flen && memcmp(word, f, flen) == 0;
}

/* host and port fields into @p out: printable host that fits, port 1..65535. */
static int take_addr(const char *host, size_t hlen, const char *port, size_t plen, tally_sentinel_addr_t *out)
{
    if (hlen == 0 || hlen >= sizeof(out->host))
        return TALLY_ERR;
    for (size_t i = 0; i < hlen; i++)
        if (host[i] <= ' ' || host[i] > '~')
            return TALLY_ERR;
    int p = tally_port_parse(port, plen);
    if (p < 0)
        return TALLY_ERR;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = p;
    return TALLY_OK;
}

int tally_switch_master_parse(const char *msg, size_t len, const char *name, tally_sentinel_addr_t *out)
{
    /* "<name> <old ip> <old port> <new ip> <new port>" */
    const char *f[5];
    size_t flen[5];
    if (split_fields(msg, len, f, flen, 5) != 5 || !field_is(f[0], flen[0], name))
        return TALLY_ERR;
    return take_addr(f[3], flen[3], f[4], flen[4], out);
}

int tally_promoted_parse(const char *msg, size_t len, const char *name, tally_sentinel_addr_t *out)
{
    /* "slave <ip>:<port> <ip> <port> @ <name> <master ip> <master port>" */
    const char *f[8];
    size_t flen[8];
    if (split_fields(msg, len, f, flen, 8) != 8 ||
        !(field_is(f[0], flen[0], "slave") || field_is(f[0], flen[0], "replica")) ||
        !field_is(f[4], flen[4], "@") || !field_is(f[5], flen[5], name))
        return TALLY_ERR;
    return take_addr(f[2], flen[2], f[3], flen[3], out);
}
