/* The commands that carry batches to the batch script (replica/batch_script.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "batch_script.h"
#include "util.h"

/* The command as Redis reads it: an array of bulk strings. */
static redisReply *parse(const char *cmd, size_t len)
{
    redisReader *r = redisReaderCreate();
    void *out = NULL;
    cr_assert_eq(redisReaderFeed(r, cmd, len), REDIS_OK);
    cr_assert_eq(redisReaderGetReply(r, &out), REDIS_OK);
    cr_assert_not_null(out);
    redisReaderFree(r);
    return out;
}

static void assert_args(const redisReply *c, const char *const *want, size_t n)
{
    cr_assert_eq(c->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(c->elements, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(c->element[i]->str, want[i], "argument %zu", i);
}

static const char sha[] = "0123456789abcdef0123456789abcdef01234567";

Test(batch_script, a_batch_without_keys)
{
    struct batch_script s = {0};
    cr_assert_eq(batch_script_loaded(&s, sha, 40, "tally:batches:r1:5:0"), TALLY_OK);
    struct batch *b = calloc(1, sizeof(*b));
    batch_reset(b, NULL);
    b->seq = 12;
    b->n = b->nplain = 3;
    b->sends = 1;
    b->sent_floor = 90;
    struct batch_send a = {.floor = 100, .epoch = 2, .key_ttl_ms = 300000, .instance = "h:8080"};
    size_t len;
    const char *cmd = batch_script_command(&s, b, &a, &len);
    redisReply *c = parse(cmd, len);
    const char *want[] = {"EVALSHA",      sha,           "4",   "total_count", "tally:batches:r1:5:0",
                          "tally:lifted", "tally:epoch", "12",  "3",           "4096",
                          "3600000",      "1",           "100", "90",          "2"};
    assert_args(c, want, TALLY_ARRAY_SIZE(want));
    freeReplyObject(c);
    batch_script_free(&s);
    batch_free(b);
}

Test(batch_script, a_batch_with_keys_names_each_once_with_its_n)
{
    struct batch_script s = {0};
    cr_assert_eq(batch_script_loaded(&s, sha, 40, "ring"), TALLY_OK);
    struct batch *b = calloc(1, sizeof(*b));
    batch_reset(b, NULL);
    const char *keys[] = {"a", "bb", "a"};
    for (size_t i = 0; i < 3; i++) {
        b->items[i].lead = -1;
        cr_assert_eq(batch_add_key(b, i, keys[i], strlen(keys[i])), TALLY_OK);
    }
    b->n = 4;
    b->items[3].lead = -1;
    b->nplain = 1;
    b->items[0].key_n = 7;
    b->items[1].key_n = 8;
    b->seq = 1;
    struct batch_send a = {.floor = 5, .epoch = 0, .key_ttl_ms = 300000, .instance = "h:8080"};
    size_t len;
    const char *cmd = batch_script_command(&s, b, &a, &len);
    cr_assert_not_null(cmd);
    redisReply *c = parse(cmd, len);
    const char *want[] = {"EVALSHA",
                          sha,
                          "6",
                          "total_count",
                          "ring",
                          "tally:lifted",
                          "tally:epoch",
                          "tally:idem:a",
                          "tally:idem:bb",
                          "1",
                          "1",
                          "4096",
                          "3600000",
                          "0",
                          "5",
                          "0",
                          "0",
                          "300000",
                          "h:8080",
                          "7",
                          "8"};
    assert_args(c, want, TALLY_ARRAY_SIZE(want));
    freeReplyObject(c);
    /* The plain command after a keyed one still has its own head. */
    b->nkeys = 0;
    cmd = batch_script_command(&s, b, &a, &len);
    c = parse(cmd, len);
    cr_assert_eq(c->elements, 15);
    cr_assert_str_eq(c->element[2]->str, "4");
    freeReplyObject(c);
    batch_script_free(&s);
    batch_free(b);
}

Test(batch_script, a_ring_key_too_long_is_refused)
{
    struct batch_script s = {0};
    char ring[300];
    memset(ring, 'r', sizeof(ring) - 1);
    ring[sizeof(ring) - 1] = '\0';
    cr_assert_eq(batch_script_loaded(&s, sha, 40, ring), TALLY_ERR);
    cr_assert_eq(batch_script_loaded(&s, sha, 48, "ring"), TALLY_ERR, "a SHA that cannot be one");
}
