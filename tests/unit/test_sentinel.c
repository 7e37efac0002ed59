#include <criterion/criterion.h>
#include <string.h>

#include "sentinel.h"
#include "util.h"

Test(sentinel, list_parses)
{
    tally_sentinels_t s;
    char why[200];
    cr_assert_eq(tally_sentinels_parse("", &s, why, sizeof(why)), TALLY_OK);
    cr_assert_eq(s.n, 0, "empty: no Sentinel");
    cr_assert_eq(
        tally_sentinels_parse("a:26379, b.example:1 ,[::1]:26380,10.0.0.5:65535", &s, why, sizeof(why)),
        TALLY_OK, "%s", why);
    cr_assert_eq(s.n, 4);
    cr_assert_str_eq(s.addr[0].host, "a");
    cr_assert_eq(s.addr[0].port, 26379);
    cr_assert_str_eq(s.addr[1].host, "b.example");
    cr_assert_str_eq(s.addr[2].host, "::1");
    cr_assert_eq(s.addr[2].port, 26380);
    cr_assert_eq(s.addr[3].port, 65535);
}

Test(sentinel, bad_lists_say_why)
{
    tally_sentinels_t s;
    char why[200];
    const char *bad[] = {"host", "host:",    ":26379", "host:0", "host:65536", "host:1x", "a:1,",
                         ",a:1", "a:1,,b:2", "[::1:1", "[::1]1", "::1:26379",  "h st:1",  "h/x:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        cr_assert_eq(tally_sentinels_parse(bad[i], &s, why, sizeof(why)), TALLY_ERR, "%s", bad[i]);
        cr_assert(why[0] != '\0', "a reason for %s", bad[i]);
    }
    char many[400] = "";
    for (int i = 0; i <= TALLY_SENTINELS_MAX; i++)
        strcat(many, i ? ",h:1" : "h:1");
    cr_assert_eq(tally_sentinels_parse(many, &s, why, sizeof(why)), TALLY_ERR, "more than the maximum");
}

Test(sentinel, switch_master)
{
    tally_sentinel_addr_t a;
    const char *msg = "tally 10.0.0.1 6379 10.0.0.2 6380";
    cr_assert_eq(tally_switch_master_parse(msg, strlen(msg), "tally", &a), TALLY_OK);
    cr_assert_str_eq(a.host, "10.0.0.2");
    cr_assert_eq(a.port, 6380);
    cr_assert_eq(tally_switch_master_parse(msg, strlen(msg), "other", &a), TALLY_ERR, "another master");
    cr_assert_eq(tally_switch_master_parse(msg, strlen(msg), "tal", &a), TALLY_ERR,
                 "a prefix is not the name");
    const char *bad[] = {"tally 10.0.0.1 6379 10.0.0.2", "tally 10.0.0.1 6379 10.0.0.2 0",
                         "tally 10.0.0.1 6379 10.0.0.2 6380 extra", "tally 10.0.0.1 6379  6380", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(tally_switch_master_parse(bad[i], strlen(bad[i]), "tally", &a), TALLY_ERR, "%s", bad[i]);
}

Test(sentinel, promoted_slave)
{
    tally_sentinel_addr_t a;
    const char *msg = "slave 10.0.0.2:6380 10.0.0.2 6380 @ tally 10.0.0.1 6379";
    cr_assert_eq(tally_promoted_parse(msg, strlen(msg), "tally", &a), TALLY_OK);
    cr_assert_str_eq(a.host, "10.0.0.2");
    cr_assert_eq(a.port, 6380);
    const char *named = "replica redis-2:6379 redis-2 6379 @ tally redis-1 6379";
    cr_assert_eq(tally_promoted_parse(named, strlen(named), "tally", &a), TALLY_OK);
    cr_assert_str_eq(a.host, "redis-2");
    cr_assert_eq(tally_promoted_parse(msg, strlen(msg), "other", &a), TALLY_ERR, "another master");
    const char *bad[] = {"master tally 10.0.0.1 6379 @ tally 10.0.0.1 6379",
                         "slave 10.0.0.2:6380 10.0.0.2 6380 # tally 10.0.0.1 6379",
                         "slave 10.0.0.2:6380 10.0.0.2 6380 @ tally 10.0.0.1",
                         "slave 10.0.0.2:6380 10.0.0.2 70000 @ tally 10.0.0.1 6379",
                         "slave 10.0.0.2:6380  6380 @ tally 10.0.0.1 6379",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(tally_promoted_parse(bad[i], strlen(bad[i]), "tally", &a), TALLY_ERR, "%s", bad[i]);
}

Test(sentinel, master_name_setting)
{
    char why[100], v[80];
    strcpy(v, "tally-prod.1");
    cr_assert_eq(tally_check_master_name(v, sizeof(v), why, sizeof(why)), TALLY_OK);
    strcpy(v, "bad name");
    cr_assert_eq(tally_check_master_name(v, sizeof(v), why, sizeof(why)), TALLY_ERR);
    strcpy(v, "");
    cr_assert_eq(tally_check_master_name(v, sizeof(v), why, sizeof(why)), TALLY_ERR);
}
