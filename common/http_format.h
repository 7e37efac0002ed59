/* What a replica says over HTTP, kept free of h2o so it can be unit-tested and fuzzed:
 * route lookup, content negotiation, and the exact bodies docs/api.md promises. */
#ifndef TALLY_HTTP_FORMAT_H
#define TALLY_HTTP_FORMAT_H

#include <stddef.h>
#include <stdint.h>

enum tally_route {
    TALLY_ROUTE_UNKNOWN = 0,
    TALLY_ROUTE_COUNT,     /* GET /        : counts */
    TALLY_ROUTE_TOTAL,     /* GET /total   : cached total */
    TALLY_ROUTE_HEALTHZ,   /* GET /healthz : liveness */
    TALLY_ROUTE_READYZ,    /* GET /readyz  : readiness */
    TALLY_ROUTE_REPLICAS,  /* GET /replicas: replicas known on MQTT */
    TALLY_ROUTE_EVENTS,    /* GET /events  : Server-Sent Events of the total and presence */
    TALLY_ROUTE_DASHBOARD, /* GET /dashboard (and its .js, .css): the live view */
    TALLY_ROUTE_METRICS,   /* GET /metrics : Prometheus text (last: metrics arrays end here) */
};

/** Maps a normalized path (no query string) to its route; anything else is UNKNOWN. */
enum tally_route tally_route_find(const char *path, size_t len);
/** Returns the route's name as used in metrics labels ("count", "total", ...). */
const char *tally_route_name(enum tally_route route);

/** Returns 1 when an Accept header value asks for JSON rather than text: application/json
 *  (or application/any) is acceptable with a q at least as high as text/plain (or text/any).
 *  An absent or empty header (@p accept NULL or @p len 0) means text. */
int tally_accept_wants_json(const char *accept, size_t len);

/** Writes @p src as the inside of a JSON string (quotes not included) into @p dst of @p size
 *  bytes, NUL-terminated. Returns the length written, or (size_t)-1 if it did not fit. */
size_t tally_json_escape(char *dst, size_t size, const char *src);

/* The answers below return the body length, or (size_t)-1 if @p size was too small.
 * @p instance is "<host>:<port>"; the JSON forms take it already escaped. */

/** The text answer of GET / (docs/api.md, exactly). */
size_t tally_format_count_text(char *buf, size_t size, const char *instance, uint64_t n, uint64_t m);
/** The JSON answer of GET /: {"instance":...,"instance_count":N,"cluster_total":M}, and
 *  "site":... after the instance when @p site is not "" (a name of [a-z0-9-], as it is). */
size_t tally_format_count_json(char *buf, size_t size, const char *instance_json, const char *site,
                               uint64_t n, uint64_t m);
/** The answer of GET /total. @p age_ms < 0 (never learned) is written as null. */
size_t tally_format_total_json(char *buf, size_t size, uint64_t total, int64_t age_ms);
/** An error body: {"error":"<code>","message":"<message>"}; both are escaped here. */
size_t tally_format_error_json(char *buf, size_t size, const char *code, const char *message);

#endif
