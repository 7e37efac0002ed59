/* How both programs answer over HTTP: one place sets the status, Content-Type,
 * Cache-Control: no-store and the length, and the answers every port gives alike (liveness,
 * unknown route, wrong method, a JSON error). A program that counts its answers, times them
 * or closes connections while draining does it in one observer, called for every answer. */
#ifndef TALLY_HTTP_RESPOND_H
#define TALLY_HTTP_RESPOND_H

#include <h2o.h>

#define TALLY_CT_TEXT "text/plain; charset=utf-8"
#define TALLY_CT_JSON "application/json"
#define TALLY_CT_PROM "text/plain; version=0.0.4; charset=utf-8"

/** Called with every answer just before it goes out (h2o's thread of @p req). */
typedef void (*tally_http_observer_fn)(h2o_req_t *req, int status);
/** Sets the process's observer (NULL: none); before any request. */
void tally_http_set_observer(tally_http_observer_fn fn);

/** Sets the answer's status, reason, @p content_type (NULL: JSON), no-store and length
 *  (SIZE_MAX: none, a stream or a HEAD that cannot know the GET's length) and tells the
 *  observer; the caller then sends the body (h2o_start_response for a stream). */
void tally_http_answer(h2o_req_t *req, int status, const char *reason, const char *content_type, size_t len);
/** tally_http_answer, then @p body (@p len bytes; none when @p len is SIZE_MAX). */
void tally_http_respond(h2o_req_t *req, int status, const char *reason, const char *content_type,
                        const char *body, size_t len);
struct tally_metrics_buf;
/** 200 with @p m in Prometheus text, or 500 if building it ran out of memory; frees @p m. */
void tally_http_respond_metrics(h2o_req_t *req, struct tally_metrics_buf *m);
/** A JSON error: {"error":"<code>","message":"<message>"}. */
void tally_http_respond_error(h2o_req_t *req, int status, const char *reason, const char *code,
                              const char *message);
/** 200 {"status":"ok"}: the process is alive (GET /healthz). */
void tally_http_respond_alive(h2o_req_t *req);
/** 404 for a path this port does not serve; @p hint says what it does. */
void tally_http_respond_not_found(h2o_req_t *req, const char *hint);
/** 405 with Allow: @p allow (kept, not copied: a literal) and @p message. */
void tally_http_respond_bad_method(h2o_req_t *req, const char *allow, const char *message);

#endif
