/* The batch's decisions that need no I/O (replica/batch.c): FIFOs, the key table, the
 * reading of the script's reply and what each request is told. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "util.h"

/* A reply as hiredis builds it, from its RESP text. */
static redisReply *reply_of(const char *resp)
{
    redisReader *r = redisReaderCreate();
    void *out = NULL;
    cr_assert_eq(redisReaderFeed(r, resp, strlen(resp)), REDIS_OK);
    cr_assert_eq(redisReaderGetReply(r, &out), REDIS_OK);
    cr_assert_not_null(out, "a whole reply in: %s", resp);
    redisReaderFree(r);
    return out;
}

static struct batch *fresh(void)
{
    struct batch *b = calloc(1, sizeof(*b));
    cr_assert_not_null(b);
    batch_reset(b, NULL);
    return b;
}

/* Adds an item to @p b, with a key or without (NULL). */
static void add(struct batch *b, const char *key)
{
    size_t i = b->n++;
    b->items[i].lead = -1;
    if (key == NULL)
        b->nplain++;
    else
        cr_assert_eq(batch_add_key(b, i, key, strlen(key)), TALLY_OK);
}

Test(batch, fifos_keep_their_order)
{
    struct batch a, b, c;
    struct batch_fifo f = {0};
    cr_assert_null(batch_fifo_pop(&f));
    batch_fifo_push(&f, &a);
    batch_fifo_push(&f, &b);
    cr_assert_eq(batch_fifo_pop(&f), &a);
    batch_fifo_push(&f, &c);
    cr_assert_eq(batch_fifo_pop(&f), &b);
    cr_assert_eq(batch_fifo_pop(&f), &c);
    cr_assert_null(batch_fifo_pop(&f));
    cr_assert_null(f.tail, "an emptied FIFO has no tail");
}

Test(batch, a_key_twice_is_sent_once_and_the_later_item_follows_the_first)
{
    struct batch *b = fresh();
    add(b, "k1");
    add(b, NULL);
    add(b, "k2");
    add(b, "k1");
    cr_assert_eq(b->nkeys, 2);
    cr_assert_eq(b->nplain, 1);
    cr_assert_eq(b->leaders[0], 0);
    cr_assert_eq(b->leaders[1], 2);
    cr_assert_eq(b->items[3].lead, 0, "the second k1 follows the first");
    cr_assert_eq(b->items[2].lead, 2, "a leader leads itself");
    cr_assert_eq(memcmp(b->keys + b->items[2].key_off, "k2", 2), 0);
    /* A key that shares a prefix, and the table after a reset: nothing stays behind. */
    add(b, "k");
    cr_assert_eq(b->nkeys, 3);
    batch_reset(b, NULL);
    add(b, "k1");
    cr_assert_eq(b->items[0].lead, 0, "a reset batch knows no key");
    batch_free(b);
}

Test(batch, many_distinct_keys_fill_the_table_without_mixing)
{
    struct batch *b = fresh();
    char k[16];
    for (int i = 0; i < BATCH_MAX; i++) {
        snprintf(k, sizeof(k), "key-%d", i % 300);
        add(b, k);
    }
    cr_assert_eq(b->nkeys, 300);
    for (int i = 300; i < BATCH_MAX; i++)
        cr_assert_eq(b->items[i].lead, i - 300);
    batch_free(b);
}

Test(batch, the_reply_of_a_batch_without_keys)
{
    struct batch *b = fresh();
    for (int i = 0; i < 3; i++)
        add(b, NULL);
    struct batch_reply r;
    redisReply *ok = reply_of("*4\r\n:10\r\n:2\r\n:0\r\n:7\r\n");
    cr_assert_eq(batch_reply_read(b, ok, &r), TALLY_OK);
    cr_assert_eq(r.total, 10);
    cr_assert_eq(r.first, 8, "three requests own 8, 9 and 10");
    cr_assert_eq(r.lifted, 2);
    cr_assert_eq(r.epoch, 7);
    cr_assert_eq(r.refused, 0);
    freeReplyObject(ok);
    const char *bad[] = {
        "-ERR total_count is not an integer\r\n",
        "*4\r\n:2\r\n:0\r\n:0\r\n:0\r\n",        /* below the batch: the key was reset */
        "*3\r\n:10\r\n:0\r\n:0\r\n",             /* too short */
        "*5\r\n:10\r\n:0\r\n:0\r\n:0\r\n*0\r\n", /* answers without keys */
        "*4\r\n:10\r\n:-1\r\n:0\r\n:0\r\n",
        "*4\r\n$2\r\n10\r\n:0\r\n:0\r\n:0\r\n",
    };
    for (size_t i = 0; i < TALLY_ARRAY_SIZE(bad); i++) {
        redisReply *x = reply_of(bad[i]);
        cr_assert_eq(batch_reply_read(b, x, &r), TALLY_ERR, "refused: %s", bad[i]);
        freeReplyObject(x);
    }
    /* A refused resend carries the current total, which need not hold the batch. */
    redisReply *refused = reply_of("*4\r\n:1\r\n:0\r\n:1\r\n:0\r\n");
    cr_assert_eq(batch_reply_read(b, refused, &r), TALLY_OK);
    cr_assert_eq(r.refused, 1);
    freeReplyObject(refused);
    batch_free(b);
}

Test(batch, answers_stored_replayed_own_and_gone)
{
    struct batch *b = fresh();
    add(b, "new");
    add(b, "held");
    add(b, "gone");
    add(b, NULL);
    add(b, "new");
    add(b, "mine");
    b->sends = 2; /* a resend */
    for (size_t j = 0; j < b->nkeys; j++)
        b->items[b->leaders[j]].key_n = 40 + j;
    struct batch_reply r;
    redisReply *x = reply_of("*5\r\n:20\r\n:0\r\n:0\r\n:0\r\n*4\r\n:18\r\n$9\r\n3 11 peer\r\n$-1\r\n"
                             "$11\r\n43 19 me:80\r\n");
    cr_assert_eq(batch_reply_read(b, x, &r), TALLY_OK);
    cr_assert_eq(r.first, 20, "the request without a key takes the top");
    b->first = r.first;
    batch_read_answers(b, r.answers, "me:80");
    freeReplyObject(x);

    struct counter_result s = batch_result(b, 0, 0, 1, NULL);
    cr_assert(s.counted && !s.replayed && s.m == 18 && s.n == 40 && s.instance == NULL);
    struct counter_result follow = batch_result(b, 4, 0, 1, NULL);
    cr_assert(follow.counted && follow.replayed && follow.m == 18 && follow.n == 40,
              "the same key later in the batch gets the first's answer, replayed");
    struct counter_result held = batch_result(b, 1, 0, 1, NULL);
    cr_assert(held.counted && held.replayed && held.n == 3 && held.m == 11);
    cr_assert_eq(held.instance_len, 4);
    cr_assert_eq(memcmp(held.instance, "peer", 4), 0);
    struct counter_result gone = batch_result(b, 2, 0, 1, NULL);
    cr_assert(!gone.counted && strstr(gone.message, "gone") != NULL);
    struct counter_result own = batch_result(b, 5, 0, 1, NULL);
    cr_assert(own.counted && !own.replayed && own.m == 19 && own.instance == NULL,
              "a resend that finds its own answer (same N, same instance) was stored by its first send");
    struct counter_result plain = batch_result(b, 3, 0, 1, NULL);
    cr_assert(plain.counted && plain.m == 20);
    struct counter_result failed = batch_result(b, 3, 0, 0, "refused");
    cr_assert(!failed.counted && strcmp(failed.message, "refused") == 0);
    struct counter_result kept = batch_result(b, 1, 0, 0, "refused");
    cr_assert(kept.counted && kept.replayed, "a key Redis holds keeps its answer in a refused batch");
    batch_free(b);
}

Test(batch, a_first_send_never_takes_an_answer_for_its_own)
{
    struct batch *b = fresh();
    add(b, "k");
    b->sends = 1;
    b->items[0].key_n = 5;
    redisReply *x = reply_of("*1\r\n$9\r\n5 9 me:80\r\n");
    batch_read_answers(b, x, "me:80");
    freeReplyObject(x);
    struct counter_result r = batch_result(b, 0, 0, 1, NULL);
    cr_assert(r.replayed, "a first send finds only earlier requests' answers");
    batch_free(b);
}
