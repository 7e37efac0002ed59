/* libFuzzer target: the .env parser. Properties: never crashes, every name it hands on is
 * a valid variable name, and values hold no NUL. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

static int check(const char *key, const char *value, void *ud, char *err, size_t errlen)
{
    (void)value, (void)ud, (void)err, (void)errlen;
    if (key[0] == '\0' || !(isalpha((unsigned char)key[0]) || key[0] == '_'))
        abort();
    for (const char *p = key; *p != '\0'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            abort();
    return TALLY_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    tally_dotenv_parse((const char *)data, size, check, NULL, err, sizeof(err));
    return 0;
}
