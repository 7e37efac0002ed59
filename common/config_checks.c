/* The checks of single values both programs' option tables use (config.h): integers,
 * bind addresses, instance ids, site names, MQTT URLs, and the default instance id. */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

int tally_parse_ll(const char *s, long long min, long long max, long long *out)
{
    const char *p = s;
    int neg = 0;
    unsigned long long v = 0;
    if (*p == '-')
        neg = 1, p++;
    if (*p == '\0')
        return TALLY_ERR;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return TALLY_ERR;
        if (v > (unsigned long long)LLONG_MAX / 10)
            return TALLY_ERR;
        v = v * 10 + (unsigned long long)(*p - '0');
        if (v > (unsigned long long)LLONG_MAX + (unsigned long long)neg)
            return TALLY_ERR;
    }
    long long r = neg ? (long long)(0 - v) : (long long)v;
    if (r < min || r > max)
        return TALLY_ERR;
    *out = r;
    return TALLY_OK;
}

int tally_check_host(char *value, size_t size, char *why, size_t whylen)
{
    (void)size;
    unsigned char buf[16];
    if (inet_pton(AF_INET, value, buf) == 1 || inet_pton(AF_INET6, value, buf) == 1)
        return TALLY_OK;
    size_t n = strlen(value);
    if (n == 0 || n > 253) {
        snprintf(why, whylen, "must be an IP address or a host name");
        return TALLY_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_')) {
            snprintf(why, whylen, "must be an IP address or a host name");
            return TALLY_ERR;
        }
    }
    return TALLY_OK;
}

int tally_check_instance_id(char *value, size_t size, char *why, size_t whylen)
{
    (void)size;
    size_t n = strlen(value);
    if (n > 64) {
        snprintf(why, whylen, "must be at most 64 characters");
        return TALLY_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_')) {
            snprintf(why, whylen, "may only hold letters, digits, '.', '-' and '_'");
            return TALLY_ERR;
        }
    }
    return TALLY_OK;
}

int tally_check_site(char *value, size_t size, char *why, size_t whylen)
{
    (void)size;
    size_t n = strlen(value);
    int ok = n <= TALLY_SITE_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (value[i] >= 'a' && value[i] <= 'z') || (value[i] >= '0' && value[i] <= '9') || value[i] == '-';
    if (!ok)
        snprintf(why, whylen, "must be 1 to %d of a-z, 0-9 and '-' (or empty: one site)", TALLY_SITE_MAX);
    return ok ? TALLY_OK : TALLY_ERR;
}

int tally_check_log_format(char *value, size_t size, char *why, size_t whylen)
{
    (void)size;
    if (tally_log_format_from_name(value) >= 0)
        return TALLY_OK;
    snprintf(why, whylen, "must be text or json");
    return TALLY_ERR;
}

int tally_check_mqtt_url(char *value, size_t size, char *why, size_t whylen)
{
    const char *rest;
    if (strncmp(value, "tcp://", 6) == 0)
        rest = value + 6;
    else if (strncmp(value, "mqtt://", 7) == 0)
        rest = value + 7;
    else {
        snprintf(why, whylen, "must look like tcp://host:1883 (or mqtt://host:1883)");
        return TALLY_ERR;
    }
    char host[256];
    long long port = 1883;
    const char *colon = strrchr(rest, ':');
    const char *close = strrchr(rest, ']');
    size_t hostlen =
        colon != NULL && (close == NULL || colon > close) ? (size_t)(colon - rest) : strlen(rest);
    if (hostlen == 0 || hostlen >= sizeof(host) || strchr(rest, '/') != NULL || strchr(rest, '@') != NULL) {
        snprintf(why, whylen, "must look like tcp://host:1883 (or mqtt://host:1883)");
        return TALLY_ERR;
    }
    memcpy(host, rest, hostlen);
    host[hostlen] = '\0';
    if (hostlen < strlen(rest) && tally_parse_ll(rest + hostlen + 1, 1, 65535, &port) != TALLY_OK) {
        snprintf(why, whylen, "port must be an integer from 1 to 65535");
        return TALLY_ERR;
    }
    char *h = host;
    if (h[0] == '[' && hostlen > 2 && h[hostlen - 1] == ']')
        h[hostlen - 1] = '\0', h++;
    char hwhy[64];
    if (tally_check_host(h, sizeof(host), hwhy, sizeof(hwhy)) != TALLY_OK) {
        snprintf(why, whylen, "host must be an IP address or a host name");
        return TALLY_ERR;
    }
    int n = snprintf(value, size, "tcp://%s%s%s:%lld", h == host ? "" : "[", h, h == host ? "" : "]", port);
    if (n < 0 || (size_t)n >= size) {
        snprintf(why, whylen, "too long");
        return TALLY_ERR;
    }
    return TALLY_OK;
}

void tally_default_instance_id(char *id, size_t size, const char *fallback)
{
    char host[256] = "";
    if (id[0] != '\0')
        return;
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        tally_strlcpy(host, fallback, sizeof(host));
    tally_strlcpy(id, host, size);
}
