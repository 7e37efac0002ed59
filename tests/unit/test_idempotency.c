#include <criterion/criterion.h>
#include <string.h>

#include "idempotency.h"
#include "util.h"

static char out[TALLY_IDEM_KEY_MAX];

static size_t parse(const char *s)
{
    return tally_idem_key_parse(s, strlen(s), out);
}

Test(idem_key, bare_tokens_and_quoted_strings_name_the_same_key)
{
    cr_assert_eq(parse("abc"), 3);
    cr_assert_eq(memcmp(out, "abc", 3), 0);
    cr_assert_eq(parse("\"abc\""), 3);
    cr_assert_eq(memcmp(out, "abc", 3), 0);
    cr_assert_eq(parse("  \tabc \t"), 3, "spaces and tabs around the value are not the key's");
    cr_assert_eq(parse("\"8e0f3c1a-5b7d-4f0e-9a4c-2d1b6e7f9a30\""), 36);
}

Test(idem_key, escapes_are_decoded)
{
    cr_assert_eq(parse("\"a\\\"b\\\\c\""), 5);
    cr_assert_eq(memcmp(out, "a\"b\\c", 5), 0);
}

Test(idem_key, every_visible_character_and_255_of_them)
{
    char v[300];
    size_t n = 0;
    for (int c = 0x21; c <= 0x7e; c++)
        v[n++] = (char)c;
    cr_assert_eq(tally_idem_key_parse(v, n, out), n);
    memset(v, 'k', 255);
    cr_assert_eq(tally_idem_key_parse(v, 255, out), 255);
    v[0] = '"';
    v[256] = '"';
    memset(v + 1, 'k', 255);
    cr_assert_eq(tally_idem_key_parse(v, 257, out), 255, "255 inside quotes");
}

Test(idem_key, refuses_what_is_not_a_key)
{
    const char *bad[] = {"",       " ",       "\"\"",   "a b",         "\"a b\"",   "\"open",  "\"a\";p=1",
                         "\"a\"b", "\"\\n\"", "\"\\\"", "caf\xc3\xa9", "tab\there", "nul\x01", "\"\x7f\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i]), 0, "%s", bad[i]);
    char v[300];
    memset(v, 'k', 256);
    cr_assert_eq(tally_idem_key_parse(v, 256, out), 0, "256 characters");
    v[0] = '"';
    v[257] = '"';
    memset(v + 1, 'k', 256);
    cr_assert_eq(tally_idem_key_parse(v, 258, out), 0, "256 inside quotes");
}

static int answer(const char *s, tally_idem_answer_t *a)
{
    return tally_idem_answer_parse(s, strlen(s), a);
}

Test(idem_answer, reads_what_the_batch_script_writes)
{
    tally_idem_answer_t a;
    cr_assert_eq(answer("2 17 replica-1:8080", &a), TALLY_OK);
    cr_assert_eq(a.n, 2);
    cr_assert_eq(a.m, 17);
    cr_assert_eq(a.instance_len, strlen("replica-1:8080"));
    cr_assert_eq(memcmp(a.instance, "replica-1:8080", a.instance_len), 0);
    cr_assert_eq(answer("1 1 an instance with spaces:1", &a), TALLY_OK);
    cr_assert_eq(a.instance_len, strlen("an instance with spaces:1"));
}

Test(idem_answer, refuses_anything_else)
{
    tally_idem_answer_t a = {0};
    const char *bad[] = {"",
                         "1",
                         "1 2",
                         "1 2 ",
                         "x 2 r:1",
                         "1 x r:1",
                         "1 0 r:1",
                         "-1 2 r:1",
                         " 1 2 r:1",
                         "1  2 r:1",
                         "99999999999999999999 2 r:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(answer(bad[i], &a), TALLY_ERR, "%s", bad[i]);
    cr_assert_eq(a.instance, NULL, "left alone");
}
