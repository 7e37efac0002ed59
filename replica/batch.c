/* The batch as data, and the decisions about it that need no I/O (see batch.h). */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "idempotency.h"
#include "total.h"
#include "util.h"

void batch_fifo_push(struct batch_fifo *f, struct batch *b)
{
    b->next = NULL;
    if (f->tail != NULL)
        f->tail->next = b;
    else
        f->head = b;
    f->tail = b;
}

struct batch *batch_fifo_pop(struct batch_fifo *f)
{
    struct batch *b = f->head;
    if (b != NULL) {
        f->head = b->next;
        if (f->head == NULL)
            f->tail = NULL;
        b->next = NULL;
    }
    return b;
}

void batch_reset(struct batch *b, struct worker *w)
{
    b->next = NULL;
    b->worker = w;
    b->n = 0;
    b->nplain = 0;
    b->nkeys = 0;
    b->keys_len = 0;
    b->sent_ms = 0;
}

void batch_free(struct batch *b)
{
    free(b->keys);
    free(b);
}

/* Copies @p len bytes to the end of the batch's key space; returns their offset or -1. */
static long keys_append(struct batch *b, const char *bytes, size_t len)
{
    if (b->keys_len + len > b->keys_cap) {
        size_t cap = b->keys_cap != 0 ? b->keys_cap : 4096;
        while (cap < b->keys_len + len)
            cap *= 2;
        char *k = realloc(b->keys, cap);
        if (k == NULL)
            return -1;
        b->keys = k;
        b->keys_cap = cap;
    }
    memcpy(b->keys + b->keys_len, bytes, len);
    b->keys_len += len;
    return (long)(b->keys_len - len);
}

static uint32_t key_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

int batch_add_key(struct batch *b, size_t self, const char *key, size_t key_len)
{
    struct pending *p = &b->items[self];
    if (b->nkeys == 0)
        memset(b->key_slots, 0, sizeof(b->key_slots));
    /* The same key twice in one batch is sent once; the later items follow the first. */
    size_t i = key_hash(key, key_len) % BATCH_KEY_SLOTS;
    for (; b->key_slots[i] != 0; i = (i + 1) % BATCH_KEY_SLOTS) {
        const struct pending *lead = &b->items[b->key_slots[i] - 1];
        if (lead->key_len == key_len && memcmp(b->keys + lead->key_off, key, key_len) == 0) {
            p->lead = b->key_slots[i] - 1;
            return TALLY_OK;
        }
    }
    long off = keys_append(b, key, key_len);
    if (off < 0)
        return TALLY_ERR;
    p->lead = (int)self;
    p->key_off = (uint32_t)off;
    p->key_len = (uint16_t)key_len;
    p->key_state = KEY_SENT;
    b->key_slots[i] = (uint16_t)(self + 1);
    b->leaders[b->nkeys++] = (uint16_t)self;
    return TALLY_OK;
}

h2o_req_t *batch_detach(struct pending *p)
{
    if (p->slot_ != NULL)
        *p->slot_ = NULL;
    p->slot_ = NULL;
    h2o_req_t *req = p->req;
    p->req = NULL;
    return req;
}

static int is_integer(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER;
}

int batch_reply_read(const struct batch *b, const redisReply *reply, struct batch_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (b->nkeys > 0 ? 5u : 4u) ||
        !is_integer(reply->element[0]) || !is_integer(reply->element[1]) || !is_integer(reply->element[2]) ||
        !is_integer(reply->element[3]))
        return TALLY_ERR;
    long long total = reply->element[0]->integer, lifted = reply->element[1]->integer,
              epoch = reply->element[3]->integer;
    if (total < 0 || lifted < 0 || epoch < 0)
        return TALLY_ERR;
    out->total = (uint64_t)total;
    out->lifted = (uint64_t)lifted;
    out->refused = reply->element[2]->integer != 0;
    out->epoch = (uint64_t)epoch;
    if (b->nkeys > 0) {
        out->answers = reply->element[4];
        if (out->answers->type != REDIS_REPLY_ARRAY || out->answers->elements != b->nkeys)
            return TALLY_ERR;
    }
    if (!out->refused && b->nplain > 0 && tally_batch_first(total, b->nplain, &out->first) != TALLY_OK)
        return TALLY_ERR;
    return TALLY_OK;
}

/* A held answer ("N M instance") for leader @p p. */
static void read_held(struct batch *b, struct pending *p, const tally_idem_answer_t *a, const char *instance)
{
    size_t inst_len = strlen(instance);
    if (b->sends > 1 && a->n == p->key_n && a->instance_len == inst_len &&
        memcmp(a->instance, instance, inst_len) == 0) {
        /* A resend of a batch Redis had applied: the answer is this request's own. */
        p->key_state = KEY_STORED;
        p->answer_n = p->key_n;
        p->key_m = a->m;
        return;
    }
    long off = keys_append(b, a->instance, a->instance_len);
    if (off < 0)
        return;
    p->key_state = KEY_REPLAY;
    p->answer_n = a->n;
    p->key_m = a->m;
    p->inst_off = (uint32_t)off;
    p->inst_len = (uint16_t)a->instance_len;
}

void batch_read_answers(struct batch *b, const redisReply *answers, const char *instance)
{
    for (size_t j = 0; j < b->nkeys; j++) {
        struct pending *p = &b->items[b->leaders[j]];
        const redisReply *e = answers->element[j];
        tally_idem_answer_t a;
        p->key_state = KEY_GONE;
        if (e->type == REDIS_REPLY_INTEGER && e->integer > 0) {
            p->key_state = KEY_STORED;
            p->answer_n = p->key_n;
            p->key_m = (uint64_t)e->integer;
        } else if (e->type == REDIS_REPLY_STRING && tally_idem_answer_parse(e->str, e->len, &a) == TALLY_OK &&
                   a.instance_len <= UINT16_MAX) {
            read_held(b, p, &a, instance);
        }
    }
}

struct counter_result batch_result(const struct batch *b, size_t i, size_t plain_index, int counted,
                                   const char *message)
{
    const struct pending *it = &b->items[i];
    struct counter_result res = {.message = message != NULL ? message : "Redis did not answer this key"};
    if (it->lead < 0) {
        res.counted = counted;
        res.m = b->first + plain_index;
        return res;
    }
    const struct pending *lead = &b->items[it->lead];
    int first = it->lead == (int)i;
    switch (lead->key_state) {
    case KEY_STORED:
        res.counted = 1;
        res.replayed = !first;
        break;
    case KEY_REPLAY:
        res.counted = 1;
        res.replayed = 1;
        res.instance = b->keys + lead->inst_off;
        res.instance_len = lead->inst_len;
        break;
    case KEY_GONE:
        res.message = "this request was counted, but the answer kept for its Idempotency-Key is gone "
                      "(expired or removed), so it cannot be given";
        break;
    default:
        break;
    }
    res.n = lead->answer_n;
    res.m = lead->key_m;
    return res;
}
