#include "http_format.h"
#include "total.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *path;
    enum tally_route route;
    const char *name;
} routes[] = {
    {"/", TALLY_ROUTE_COUNT, "count"},
    {"/total", TALLY_ROUTE_TOTAL, "total"},
    {"/healthz", TALLY_ROUTE_HEALTHZ, "healthz"},
    {"/readyz", TALLY_ROUTE_READYZ, "readyz"},
    {"/replicas", TALLY_ROUTE_REPLICAS, "replicas"},
    {"/events", TALLY_ROUTE_EVENTS, "events"},
    {"/dashboard", TALLY_ROUTE_DASHBOARD, "dashboard"},
    {"/dashboard.js", TALLY_ROUTE_DASHBOARD, "dashboard"},
    {"/dashboard.css", TALLY_ROUTE_DASHBOARD, "dashboard"},
    {"/metrics", TALLY_ROUTE_METRICS, "metrics"},
};

enum tally_route tally_route_find(const char *path, size_t len)
{
    for (size_t i = 0; i < TALLY_ARRAY_SIZE(routes); i++)
        if (strlen(routes[i].path) == len && memcmp(routes[i].path, path, len) == 0)
            return routes[i].route;
    return TALLY_ROUTE_UNKNOWN;
}

const char *tally_route_name(enum tally_route route)
{
    for (size_t i = 0; i < TALLY_ARRAY_SIZE(routes); i++)
        if (routes[i].route == route)
            return routes[i].name;
    return "unknown";
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Parses a q value ("1", "0.5", "0.125") into thousandths; malformed counts as 0. */
static int parse_qvalue(const char *p, size_t len)
{
    if (len == 0 || len > 5)
        return 0;
    if (p[0] == '1') {
        for (size_t i = 1; i < len; i++)
            if (!(i == 1 ? p[i] == '.' : p[i] == '0'))
                return 0;
        return 1000;
    }
    if (p[0] != '0')
        return 0;
    if (len == 1)
        return 0;
    if (p[1] != '.')
        return 0;
    int v = 0, scale = 100;
    for (size_t i = 2; i < len; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v += (p[i] - '0') * scale;
    }
    return v;
}

static int range_is(const char *r, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(r, lit, len) == 0;
}

int tally_accept_wants_json(const char *accept, size_t len)
{
    /* -1 = not mentioned; the most specific mention of each wins. */
    int q_json = -1, q_json_spec = 0, q_text = -1, q_text_spec = 0;
    size_t i = 0;
    if (accept == NULL)
        return 0;
    while (i < len) {
        size_t start = i;
        while (i < len && accept[i] != ',')
            i++;
        size_t end = i++; /* one element: accept[start, end) */
        while (start < end && is_ows(accept[start]))
            start++;
        size_t type_end = start;
        while (type_end < end && accept[type_end] != ';' && !is_ows(accept[type_end]))
            type_end++;
        int q = 1000;
        for (size_t p = type_end; p < end; p++) {
            if (accept[p] != ';')
                continue;
            size_t a = p + 1;
            while (a < end && is_ows(accept[a]))
                a++;
            if (a + 2 <= end && (accept[a] == 'q' || accept[a] == 'Q') && accept[a + 1] == '=') {
                size_t v = a + 2, w = v;
                while (w < end && accept[w] != ';' && !is_ows(accept[w]))
                    w++;
                q = parse_qvalue(accept + v, w - v);
            }
        }
        const char *t = accept + start;
        size_t tl = type_end - start;
        if (range_is(t, tl, "application/json") && q_json_spec < 2) {
            q_json = q, q_json_spec = 2;
        } else if (range_is(t, tl, "application/*") && q_json_spec < 1) {
            q_json = q, q_json_spec = 1;
        } else if (range_is(t, tl, "text/plain") && q_text_spec < 2) {
            q_text = q, q_text_spec = 2;
        } else if (range_is(t, tl, "text/*") && q_text_spec < 1) {
            q_text = q, q_text_spec = 1;
        }
    }
    return q_json > 0 && q_json >= q_text;
}

size_t tally_json_escape(char *dst, size_t size, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *s = (const unsigned char *)src; *s != '\0'; s++) {
        char esc[7];
        size_t n;
        if (*s == '"' || *s == '\\') {
            esc[0] = '\\', esc[1] = (char)*s, n = 2;
        } else if (*s < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*s >> 4], esc[5] = hex[*s & 15], n = 6;
        } else {
            esc[0] = (char)*s, n = 1;
        }
        if (o + n >= size)
            return (size_t)-1;
        memcpy(dst + o, esc, n);
        o += n;
    }
    if (o >= size)
        return (size_t)-1;
    dst[o] = '\0';
    return o;
}

static size_t fit(int n, size_t size)
{
    return n < 0 || (size_t)n >= size ? (size_t)-1 : (size_t)n;
}

/* The two counted answers are built by concatenation: they are on the hot path, and
 * printf's format parsing was a measurable share of a request's user time. */
struct out {
    char *buf;
    size_t size, len;
    int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->len + n >= o->size) {
        o->overflow = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    put(o, tmp, tally_total_format(tmp, v));
}

static size_t finish(struct out *o)
{
    if (o->overflow || o->len >= o->size)
        return (size_t)-1;
    o->buf[o->len] = '\0';
    return o->len;
}

size_t tally_format_count_text(char *buf, size_t size, const char *instance, uint64_t n, uint64_t m)
{
    struct out o = {buf, size, 0, 0};
    PUT_LIT(&o, "You are talking to instance ");
    put(&o, instance, strlen(instance));
    PUT_LIT(&o, ".\nThis is request ");
    put_u64(&o, n);
    PUT_LIT(&o, " to this instance and request ");
    put_u64(&o, m);
    PUT_LIT(&o, " to the cluster.\n");
    return finish(&o);
}

size_t tally_format_count_json(char *buf, size_t size, const char *instance_json, const char *site,
                               uint64_t n, uint64_t m)
{
    struct out o = {buf, size, 0, 0};
    PUT_LIT(&o, "{\"instance\":\"");
    put(&o, instance_json, strlen(instance_json));
    if (site[0] != '\0') {
        PUT_LIT(&o, "\",\"site\":\"");
        put(&o, site, strlen(site));
    }
    PUT_LIT(&o, "\",\"instance_count\":");
    put_u64(&o, n);
    PUT_LIT(&o, ",\"cluster_total\":");
    put_u64(&o, m);
    PUT_LIT(&o, "}");
    return finish(&o);
}

size_t tally_format_total_json(char *buf, size_t size, uint64_t total, int64_t age_ms)
{
    if (age_ms < 0)
        return fit(snprintf(buf, size, "{\"cluster_total\":%" PRIu64 ",\"age_ms\":null}", total), size);
    return fit(snprintf(buf, size, "{\"cluster_total\":%" PRIu64 ",\"age_ms\":%" PRId64 "}", total, age_ms),
               size);
}

size_t tally_format_error_json(char *buf, size_t size, const char *code, const char *message)
{
    char c[64], m[256];
    if (tally_json_escape(c, sizeof(c), code) == (size_t)-1 ||
        tally_json_escape(m, sizeof(m), message) == (size_t)-1)
        return (size_t)-1;
    return fit(snprintf(buf, size, "{\"error\":\"%s\",\"message\":\"%s\"}", c, m), size);
}
