/* Answers over HTTP (see http_respond.h). */
#include "http_respond.h"

#include <stdio.h>
#include <string.h>

#include "http_format.h"
#include "metrics.h"

static tally_http_observer_fn observer;

void tally_http_set_observer(tally_http_observer_fn fn)
{
    observer = fn;
}

void tally_http_answer(h2o_req_t *req, int status, const char *reason, const char *content_type, size_t len)
{
    if (observer != NULL)
        observer(req, status);
    req->res.status = status;
    req->res.reason = reason;
    /* h2o_send_inline would otherwise answer chunked; SIZE_MAX sends no length. */
    req->res.content_length = len;
    if (content_type == NULL)
        content_type = TALLY_CT_JSON;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
}

void tally_http_respond(h2o_req_t *req, int status, const char *reason, const char *content_type,
                        const char *body, size_t len)
{
    tally_http_answer(req, status, reason, content_type, len);
    h2o_send_inline(req, body, len == SIZE_MAX ? 0 : len);
}

void tally_http_respond_error(h2o_req_t *req, int status, const char *reason, const char *code,
                              const char *message)
{
    char body[512];
    size_t len = tally_format_error_json(body, sizeof(body), code, message);
    if (len == (size_t)-1)
        len = (size_t)snprintf(body, sizeof(body), "{\"error\":\"%s\"}", code);
    tally_http_respond(req, status, reason, TALLY_CT_JSON, body, len);
}

void tally_http_respond_metrics(h2o_req_t *req, struct tally_metrics_buf *m)
{
    if (m->failed)
        tally_http_respond_error(req, 500, "Internal Server Error", "internal", "out of memory");
    else
        tally_http_respond(req, 200, "OK", TALLY_CT_PROM, m->data, m->len);
    tally_metrics_free(m);
}

void tally_http_respond_alive(h2o_req_t *req)
{
    tally_http_respond(req, 200, "OK", TALLY_CT_JSON, H2O_STRLIT("{\"status\":\"ok\"}"));
}

void tally_http_respond_not_found(h2o_req_t *req, const char *hint)
{
    tally_http_respond_error(req, 404, "Not Found", "not_found", hint);
}

void tally_http_respond_bad_method(h2o_req_t *req, const char *allow, const char *message)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    tally_http_respond_error(req, 405, "Method Not Allowed", "method_not_allowed", message);
}
