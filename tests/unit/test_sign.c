#include <criterion/criterion.h>
#include <string.h>

#include "sign.h"
#include "util.h"

#define KEY "test-cluster-secret-0123456789"

Test(sign, known_answer)
{
    /* HMAC-SHA256(KEY, "tally1\0total_count\0" "42"), computed independently (Python's hmac). */
    char sig[TALLY_SIG_HEX_LEN + 1];
    tally_sign(KEY, strlen(KEY), "total_count", "42", 2, sig);
    cr_assert_str_eq(sig, "9690a3bcd36a5d02b6d624651c11151625a9d23a3ed0faf4a5df661a3ffcbd9c");
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "total_count", "42", 2, sig, strlen(sig)), TALLY_OK);
}

Test(sign, anything_changed_fails)
{
    char sig[TALLY_SIG_HEX_LEN + 1];
    tally_sign(KEY, strlen(KEY), "total_count", "42", 2, sig);
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "total_count", "43", 2, sig, 64), TALLY_ERR, "payload");
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "replicas/a/status", "42", 2, sig, 64), TALLY_ERR,
                 "topic");
    cr_assert_eq(tally_sign_verify("another-secret-abcdef", 21, "total_count", "42", 2, sig, 64), TALLY_ERR,
                 "key");
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "total_count", "42", 2, sig, 63), TALLY_ERR, "short");
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "total_count", "42", 2, NULL, 0), TALLY_ERR, "none");
    sig[10] ^= 1;
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "total_count", "42", 2, sig, 64), TALLY_ERR, "one bit");
}

Test(sign, empty_payload_and_oversized_input)
{
    char sig[TALLY_SIG_HEX_LEN + 1];
    tally_sign(KEY, strlen(KEY), "replicas/a/status", "", 0, sig);
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "replicas/a/status", "", 0, sig, 64), TALLY_OK);
    static char big[4096];
    memset(big, '7', sizeof(big));
    tally_sign(KEY, strlen(KEY), "total_count", big, sizeof(big), sig);
    cr_assert_eq(tally_sign_verify(KEY, strlen(KEY), "total_count", big, sizeof(big), sig, 64), TALLY_ERR,
                 "nothing that long is tally's");
}

Test(sign, secret_setting)
{
    char why[128], v[64];
    strcpy(v, "");
    cr_assert_eq(tally_check_secret(v, sizeof(v), why, sizeof(why)), TALLY_OK, "empty: unsigned");
    strcpy(v, "too-short");
    cr_assert_eq(tally_check_secret(v, sizeof(v), why, sizeof(why)), TALLY_ERR);
    cr_assert(strstr(why, "16") != NULL);
    strcpy(v, "exactly-16-chars");
    cr_assert_eq(tally_check_secret(v, sizeof(v), why, sizeof(why)), TALLY_OK);
}

Test(sign, the_epoch_is_signed)
{
    char e0[TALLY_SIG_HEX_LEN + 1], plain[TALLY_SIG_HEX_LEN + 1], e5[TALLY_SIG_HEX_LEN + 1];
    tally_sign_epoch(KEY, strlen(KEY), 0, "total_count", "42", 2, e0);
    tally_sign(KEY, strlen(KEY), "total_count", "42", 2, plain);
    cr_assert_str_eq(e0, plain, "epoch 0 is the original form");
    tally_sign_epoch(KEY, strlen(KEY), 5, "total_count", "42", 2, e5);
    /* HMAC-SHA256(KEY, "tally2\0" "5\0total_count\0" "42"), computed with Python's hmac */
    cr_assert_str_eq(e5, "ef6d97a457c6a629855c73d4760313add9da3c886171a3cd0fb7635ab03bf3f4");
    cr_assert_eq(tally_sign_verify_epoch(KEY, strlen(KEY), 5, "total_count", "42", 2, e5, TALLY_SIG_HEX_LEN),
                 TALLY_OK);
    cr_assert_eq(tally_sign_verify_epoch(KEY, strlen(KEY), 6, "total_count", "42", 2, e5, TALLY_SIG_HEX_LEN),
                 TALLY_ERR, "another epoch");
    cr_assert_eq(tally_sign_verify_epoch(KEY, strlen(KEY), 0, "total_count", "42", 2, e5, TALLY_SIG_HEX_LEN),
                 TALLY_ERR, "the property dropped");
}

Test(sign, epoch_parse)
{
    uint64_t v = 99;
    cr_assert_eq(tally_epoch_parse("1764768000", 10, &v), TALLY_OK);
    cr_assert_eq(v, 1764768000);
    cr_assert_eq(tally_epoch_parse("", 0, &v), TALLY_ERR);
    cr_assert_eq(tally_epoch_parse("01", 2, &v), TALLY_ERR);
    cr_assert_eq(tally_epoch_parse("1a", 2, &v), TALLY_ERR);
    cr_assert_eq(tally_epoch_parse("9223372036854775808", 19, &v), TALLY_ERR);
    cr_assert_eq(tally_epoch_parse("9223372036854775807", 19, &v), TALLY_OK);
}
