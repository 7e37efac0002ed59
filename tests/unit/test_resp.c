#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "resp.h"

Test(resp, array_and_bulk_strings)
{
    char buf[128];
    size_t n = tally_resp_array(buf, 3);
    n += tally_resp_bulk(buf + n, "EVALSHA", 7);
    n += tally_resp_bulk(buf + n, "", 0);
    n += tally_resp_bulk_u64(buf + n, 42);
    buf[n] = '\0';
    cr_assert_str_eq(buf, "*3\r\n$7\r\nEVALSHA\r\n$0\r\n\r\n$2\r\n42\r\n");
    cr_assert_eq(n, strlen(buf));
}

Test(resp, u64_extremes_fit_the_documented_room)
{
    char buf[64];
    size_t n = tally_resp_bulk_u64(buf, 0);
    cr_assert_eq(n, 7);
    cr_assert(memcmp(buf, "$1\r\n0\r\n", 7) == 0);
    n = tally_resp_bulk_u64(buf, UINT64_MAX);
    cr_assert_eq(n, TALLY_RESP_U64_MAX);
    cr_assert(memcmp(buf, "$20\r\n18446744073709551615\r\n", n) == 0);
}
