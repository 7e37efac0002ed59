/* GET /dashboard, /dashboard.js, /dashboard.css: the live view (replica/dashboard/), built
 * into the binary, so it works without any other server and makes no request outside its
 * own origin (its Content-Security-Policy allows nothing else). Never counted. */
#include <string.h>

#include "http_respond.h"
#include "replica.h"

extern const unsigned char tally_dashboard_html[], tally_dashboard_js[], tally_dashboard_css[];
extern const size_t tally_dashboard_html_len, tally_dashboard_js_len, tally_dashboard_css_len;

void dashboard_handle(h2o_req_t *req, int head)
{
    const char *path = req->path_normalized.base;
    size_t plen = req->path_normalized.len;
    const unsigned char *body = tally_dashboard_html;
    size_t len = tally_dashboard_html_len;
    const char *type = "text/html; charset=utf-8";
    if (plen == strlen("/dashboard.js") && memcmp(path, "/dashboard.js", plen) == 0) {
        body = tally_dashboard_js, len = tally_dashboard_js_len, type = "text/javascript; charset=utf-8";
    } else if (plen == strlen("/dashboard.css") && memcmp(path, "/dashboard.css", plen) == 0) {
        body = tally_dashboard_css, len = tally_dashboard_css_len, type = "text/css; charset=utf-8";
    }
    h2o_add_header_by_str(
        &req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
        H2O_STRLIT("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                   "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                          H2O_STRLIT("no-referrer"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL,
                          H2O_STRLIT("DENY"));
    tally_http_respond(req, 200, "OK", type, head ? NULL : (const char *)body, head ? SIZE_MAX : len);
}
