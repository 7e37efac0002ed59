#include <criterion/criterion.h>
#include <string.h>

#include "http_format.h"

static int wants_json(const char *accept)
{
    return tally_accept_wants_json(accept, accept ? strlen(accept) : 0);
}

Test(routes, exact_paths_only)
{
    cr_assert_eq(tally_route_find("/", 1), TALLY_ROUTE_COUNT);
    cr_assert_eq(tally_route_find("/total", 6), TALLY_ROUTE_TOTAL);
    cr_assert_eq(tally_route_find("/healthz", 8), TALLY_ROUTE_HEALTHZ);
    cr_assert_eq(tally_route_find("/readyz", 7), TALLY_ROUTE_READYZ);
    cr_assert_eq(tally_route_find("/metrics", 8), TALLY_ROUTE_METRICS);
    cr_assert_eq(tally_route_find("/favicon.ico", 12), TALLY_ROUTE_UNKNOWN);
    cr_assert_eq(tally_route_find("/total/", 7), TALLY_ROUTE_UNKNOWN);
    cr_assert_eq(tally_route_find("/totalx", 7), TALLY_ROUTE_UNKNOWN);
    cr_assert_eq(tally_route_find("/tot", 4), TALLY_ROUTE_UNKNOWN);
    cr_assert_eq(tally_route_find("", 0), TALLY_ROUTE_UNKNOWN);
    cr_assert_eq(tally_route_find("/totalXYZ", 6), TALLY_ROUTE_TOTAL, "the length bounds the path");
    cr_assert_str_eq(tally_route_name(TALLY_ROUTE_COUNT), "count");
}

Test(accept, text_unless_json_is_preferred)
{
    cr_assert_eq(wants_json(NULL), 0);
    cr_assert_eq(wants_json(""), 0);
    cr_assert_eq(wants_json("*/*"), 0);
    cr_assert_eq(wants_json("text/plain"), 0);
    cr_assert_eq(wants_json("application/json"), 1);
    cr_assert_eq(wants_json("Application/JSON"), 1);
    cr_assert_eq(wants_json("application/json; charset=utf-8"), 1);
    cr_assert_eq(wants_json("text/html, application/json;q=0.9, */*;q=0.8"), 1);
    cr_assert_eq(wants_json("application/json;q=0.5, text/plain"), 0);
    cr_assert_eq(wants_json("text/plain;q=0.2, application/json;q=0.5"), 1);
    cr_assert_eq(wants_json("application/json;q=0"), 0);
    cr_assert_eq(wants_json("application/*"), 1);
    cr_assert_eq(wants_json("application/json, text/*;q=1"), 1, "a tie goes to JSON");
    cr_assert_eq(wants_json("application/jsonx"), 0);
    cr_assert_eq(wants_json(",,;;q=,application/json;q=abc"), 0, "a malformed q counts as 0");
}

Test(format, count_text_is_exact)
{
    char buf[256];
    size_t n = tally_format_count_text(buf, sizeof(buf), "web-1:8080", 3, 1042);
    const char *expect = "You are talking to instance web-1:8080.\n"
                         "This is request 3 to this instance and request 1042 to the cluster.\n";
    cr_assert_str_eq(buf, expect);
    cr_assert_eq(n, strlen(expect));
}

Test(format, count_json_is_exact)
{
    char buf[256];
    size_t n = tally_format_count_json(buf, sizeof(buf), "web-1:8080", "", 3, 1042);
    cr_assert_str_eq(buf, "{\"instance\":\"web-1:8080\",\"instance_count\":3,\"cluster_total\":1042}");
    cr_assert_eq(n, strlen(buf));
}

Test(format, count_json_names_the_site_when_there_is_one)
{
    char buf[256];
    size_t n = tally_format_count_json(buf, sizeof(buf), "web-1:8080", "eu-west", 3, 1042);
    cr_assert_str_eq(buf, "{\"instance\":\"web-1:8080\",\"site\":\"eu-west\",\"instance_count\":3,"
                          "\"cluster_total\":1042}");
    cr_assert_eq(n, strlen(buf));
}

Test(format, too_small_buffers_are_reported)
{
    char buf[16];
    cr_assert_eq(tally_format_count_text(buf, sizeof(buf), "web-1:8080", 1, 1), (size_t)-1);
    cr_assert_eq(tally_format_count_json(buf, sizeof(buf), "web-1:8080", "", 1, 1), (size_t)-1);
    cr_assert_eq(tally_json_escape(buf, 4, "abcd"), (size_t)-1);
}

Test(format, total_and_error_json)
{
    char buf[256];
    tally_format_total_json(buf, sizeof(buf), 99, 12);
    cr_assert_str_eq(buf, "{\"cluster_total\":99,\"age_ms\":12}");
    tally_format_total_json(buf, sizeof(buf), 0, -1);
    cr_assert_str_eq(buf, "{\"cluster_total\":0,\"age_ms\":null}");
    tally_format_error_json(buf, sizeof(buf), "not_found", "no \"such\" route");
    cr_assert_str_eq(buf, "{\"error\":\"not_found\",\"message\":\"no \\\"such\\\" route\"}");
}

Test(format, json_escape)
{
    char buf[64];
    cr_assert_eq(tally_json_escape(buf, sizeof(buf), "a\"b\\c\n\x01"), 19);
    cr_assert_str_eq(buf, "a\\\"b\\\\c\\u000a\\u0001");
    cr_assert_eq(tally_json_escape(buf, sizeof(buf), ""), 0);
}

Test(format, exact_fit_and_one_byte_short)
{
    char buf[256];
    size_t full = tally_format_count_text(buf, sizeof(buf), "h:1", 12, 345);
    cr_assert_neq(full, (size_t)-1);
    cr_assert_eq(tally_format_count_text(buf, full + 1, "h:1", 12, 345), full, "room for the NUL is enough");
    cr_assert_eq(tally_format_count_text(buf, full, "h:1", 12, 345), (size_t)-1, "no room for the NUL");
    full = tally_format_count_json(buf, sizeof(buf), "h:1", "", 18446744073709551615ULL, 0);
    cr_assert_str_eq(buf,
                     "{\"instance\":\"h:1\",\"instance_count\":18446744073709551615,\"cluster_total\":0}");
    cr_assert_eq(tally_format_count_json(buf, full, "h:1", "", 18446744073709551615ULL, 0), (size_t)-1);
}
