#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"
#include "util.h"

static int parse(const char *s, tally_status_t *out)
{
    return tally_status_parse(s, strlen(s), out);
}

Test(status, round_trip)
{
    tally_status_t s = {0}, back;
    strcpy(s.id, "web-1");
    strcpy(s.host, "web-1:8080");
    strcpy(s.version, "0.1.0");
    s.started_at = 1795425208123;
    s.served = 42;
    s.online = 1;
    char buf[512];
    size_t n = tally_status_format(buf, sizeof(buf), &s);
    cr_assert_str_eq(buf, "{\"id\":\"web-1\",\"host\":\"web-1:8080\",\"version\":\"0.1.0\","
                          "\"started_at\":1795425208123,\"served\":42,\"state\":\"online\"}");
    cr_assert_eq(tally_status_parse(buf, n, &back), TALLY_OK);
    cr_assert_str_eq(back.id, "web-1");
    cr_assert_str_eq(back.host, "web-1:8080");
    cr_assert_eq(back.started_at, 1795425208123);
    cr_assert_eq(back.served, 42);
    cr_assert_eq(back.online, 1);
}

Test(status, tolerates_whitespace_order_and_unknown_fields)
{
    tally_status_t s;
    cr_assert_eq(parse(" { \"state\" : \"offline\", \"extra\": [1] , \"id\":\"a\",\"host\":\"h:1\"} ", &s),
                 TALLY_ERR, "nested values are not part of the format");
    cr_assert_eq(
        parse(" { \"state\" : \"offline\", \"extra\": null, \"more\": true, \"id\":\"a\",\"host\":\"h:1\"}\n",
              &s),
        TALLY_OK);
    cr_assert_str_eq(s.id, "a");
    cr_assert_eq(s.online, 0);
}

Test(status, rejects_garbage)
{
    tally_status_t s;
    const char *bad[] = {
        "",
        "null",
        "{}",
        "[]",
        "{\"id\":\"a\",\"host\":\"h\"}",                                     /* no state */
        "{\"id\":\"a\",\"state\":\"online\"}",                               /* no host */
        "{\"id\":\"a/b\",\"host\":\"h\",\"state\":\"online\"}",              /* bad id */
        "{\"id\":\"a\",\"host\":\"h\",\"state\":\"sleeping\"}",              /* bad state */
        "{\"id\":\"a\",\"host\":\"h\",\"state\":\"online\",\"served\":-1}",  /* negative */
        "{\"id\":\"a\",\"host\":\"h\",\"state\":\"online\",\"served\":1.5}", /* not integer */
        "{\"id\":\"a\",\"host\":\"h\",\"state\":\"online\"",                 /* unterminated */
        "{\"id\":\"a\",\"host\":\"h\",\"state\":\"online\"} x",              /* trailing text */
        "{\"id\":\"a\" \"host\":\"h\",\"state\":\"online\"}",                /* missing comma */
        "{\"id\":\"a\\u0000\",\"host\":\"h\",\"state\":\"online\"}",         /* NUL escape */
        "{\"id\":\"a\",\"host\":\"h\",\"state\":\"online\",\"served\":99999999999999999999}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i], &s), TALLY_ERR, "accepted %s", bad[i]);
    cr_assert_eq(tally_status_parse(NULL, 0, &s), TALLY_ERR);
    cr_assert_eq(parse("{\"id\":\"a\",\"host\":\"h\\r\",\"state\":\"online\"}", &s), TALLY_ERR,
                 "escaped control characters are refused (found by fuzz/fuzz_status.c)");
    cr_assert_eq(parse("{\"id\":\"a\",\"host\":\"h\\u0007\",\"state\":\"online\"}", &s), TALLY_ERR);
    char *huge = malloc(4000);
    memset(huge, ' ', 3999);
    huge[3999] = '\0';
    memcpy(huge, "{\"id\":\"a\",\"host\":\"h\",\"state\":\"online\"}", 38);
    cr_assert_eq(parse(huge, &s), TALLY_ERR, "payloads over the limit are refused");
    free(huge);
}

Test(status, topic_id)
{
    char id[65];
    cr_assert_eq(tally_status_topic_id("replicas/web-1/status", id), TALLY_OK);
    cr_assert_str_eq(id, "web-1");
    cr_assert_eq(tally_status_topic_id("replicas//status", id), TALLY_ERR);
    cr_assert_eq(tally_status_topic_id("replicas/a/b/status", id), TALLY_ERR);
    cr_assert_eq(tally_status_topic_id("replica/a/status", id), TALLY_ERR);
    cr_assert_eq(tally_status_topic_id("replicas/a/state", id), TALLY_ERR);
}

Test(presence, table_updates_removes_and_sorts)
{
    static tally_presence_t p;
    tally_presence_init(&p);
    tally_status_t a = {.id = "b", .host = "b:1", .online = 1}, b = {.id = "a", .host = "a:1", .online = 1};
    cr_assert_eq(tally_presence_update(&p, &a, 100), TALLY_OK);
    cr_assert_eq(tally_presence_update(&p, &b, 200), TALLY_OK);
    size_t online;
    cr_assert_eq(tally_presence_rank(&p, "b", &online), 1, "b is second of the online ones");
    cr_assert_eq(online, 2);
    a.online = 0;
    a.served = 7;
    cr_assert_eq(tally_presence_update(&p, &a, 300), TALLY_OK);
    cr_assert_eq(tally_presence_rank(&p, "b", &online), 1, "a, online, still ranks below b");
    cr_assert_eq(online, 1, "an offline status is not counted");
    size_t len;
    char *json = tally_presence_json(&p, &len);
    cr_assert_str_eq(json, "{\"replicas\":["
                           "{\"id\":\"a\",\"host\":\"a:1\",\"version\":\"\",\"started_at\":0,\"served\":0,"
                           "\"state\":\"online\",\"last_seen\":200},"
                           "{\"id\":\"b\",\"host\":\"b:1\",\"version\":\"\",\"started_at\":0,\"served\":7,"
                           "\"state\":\"offline\",\"last_seen\":300}]}");
    cr_assert_eq(len, strlen(json));
    free(json);
    tally_presence_remove(&p, "a");
    tally_presence_remove(&p, "b");
    json = tally_presence_json(&p, &len);
    cr_assert_str_eq(json, "{\"replicas\":[]}");
    free(json);
}

Test(presence, expire_forgets_only_old_offline_entries)
{
    static tally_presence_t p;
    char ids[4][65];
    tally_presence_init(&p);
    tally_status_t on = {.id = "on", .host = "on:1", .online = 1};
    tally_status_t old = {.id = "old", .host = "old:1", .online = 0};
    tally_status_t young = {.id = "young", .host = "young:1", .online = 0};
    cr_assert_eq(tally_presence_update(&p, &on, 0), TALLY_OK);
    cr_assert_eq(tally_presence_update(&p, &old, 1000), TALLY_OK);
    cr_assert_eq(tally_presence_update(&p, &young, 9000), TALLY_OK);
    cr_assert_eq(tally_presence_expire(&p, 10999, 10000, ids, 4), 0, "not old enough yet");
    cr_assert_eq(tally_presence_expire(&p, 11000, 10000, ids, 4), 1);
    cr_assert_str_eq(ids[0], "old");
    cr_assert_eq(tally_presence_expire(&p, 1000000, 10000, NULL, 4), 1, "young goes later; online never");
    size_t len;
    char *json = tally_presence_json(&p, &len);
    cr_assert(strstr(json, "\"id\":\"on\"") != NULL && strstr(json, "young") == NULL &&
              strstr(json, "old") == NULL);
    free(json);
}

Test(presence, rank_among_the_online_by_id)
{
    static tally_presence_t p;
    size_t online;
    tally_presence_init(&p);
    tally_status_t c = {.id = "c", .online = 1}, a = {.id = "a", .online = 1}, b = {.id = "b", .online = 0};
    cr_assert_eq(tally_presence_update(&p, &c, 1), TALLY_OK);
    cr_assert_eq(tally_presence_update(&p, &a, 1), TALLY_OK);
    cr_assert_eq(tally_presence_update(&p, &b, 1), TALLY_OK);
    cr_assert_eq(tally_presence_rank(&p, "a", &online), 0);
    cr_assert_eq(online, 2, "offline replicas take no turn");
    cr_assert_eq(tally_presence_rank(&p, "c", &online), 1);
    cr_assert_eq(tally_presence_rank(&p, "zz", &online), 2, "not listed: rank == online, no slot");
}
