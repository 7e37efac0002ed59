/* libFuzzer target: the total_count payload parser. Properties: never crashes, never
 * accepts a value above INT64_MAX or anything but digits, and what it accepts formats
 * back to the same digits (less leading zeros). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "total.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t v = 0;
    if (tally_total_parse(data, size, &v) != TALLY_OK)
        return 0;
    if (v > (uint64_t)INT64_MAX)
        abort();
    for (size_t i = 0; i < size; i++)
        if (data[i] < '0' || data[i] > '9')
            abort();
    char buf[24];
    size_t n = tally_total_format(buf, v);
    size_t skip = 0;
    while (skip + 1 < size && data[skip] == '0')
        skip++;
    if (n != size - skip || memcmp(buf, data + skip, n) != 0)
        abort();
    return 0;
}
