/* A batch: the counted requests of one loop pass, group-committed with one script call
 * (counter.c sends it). This file holds the batch as data and the decisions that need no
 * I/O: the FIFOs a batch waits in, the table that sends each Idempotency-Key once, the
 * reading of the script's reply and what each request of an answered batch is told. They are
 * unit-tested (tests/unit/test_batch.c). */
#ifndef TALLY_REPLICA_BATCH_H
#define TALLY_REPLICA_BATCH_H

#include <h2o.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* What became of a counted request: counted (n is this process's N, m the cluster's M), or
 * not (message says why: the caller answers 503). A request with an Idempotency-Key whose
 * answer Redis already held is "replayed": it did not count now, and its n, m and instance
 * are the stored answer's (instance NULL: this replica's own). */
struct counter_result {
    int counted;
    uint64_t n, m;
    const char *message;
    int replayed;
    const char *instance;
    size_t instance_len;
};

/** A counted request's completion, registered with counter_submit: called exactly once per
 *  request still alive, on the worker's thread; @p tag is the caller's, passed back. */
typedef void (*counter_done_fn)(h2o_req_t *req, int tag, const struct counter_result *result);

/* The fate of an Idempotency-Key in its batch (struct pending's key_state). */
enum {
    KEY_SENT,   /* no answer from Redis yet */
    KEY_STORED, /* new: counted by this batch, its answer stored with it */
    KEY_REPLAY, /* Redis held an answer: not counted, that answer is given */
    KEY_GONE,   /* the batch was applied, but the key's answer is not in Redis any more */
};

/* A counted request waiting for its batch's reply. Lives in a batch, outside the request's
 * memory pool, because the client may go away (and h2o free the request) first. */
struct pending {
    h2o_req_t *req;         /* NULL once h2o disposed of the request */
    struct pending **slot_; /* the request-pool slot that points back here; NULL when detached */
    counter_done_fn done;
    int tag;
    /* Idempotency-Key: -1 without one; else the index of the batch's first item with the
     * same key (its own index for that first item, which alone carries the fields below). */
    int lead;
    uint32_t key_off, inst_off; /* the key, and a stored answer's instance, in the batch's keys */
    uint16_t key_len, inst_len;
    int key_state;            /* KEY_* */
    uint64_t key_n;           /* the N taken at the first send (sent with every send) */
    uint64_t answer_n, key_m; /* the key's answer: its N and M */
};

#define BATCH_MAX 512
#define BATCH_KEY_SLOTS 1024 /* the batch's key lookup table: twice BATCH_MAX */

struct worker;

struct batch {
    struct batch *next; /* in one of the worker's FIFOs or its free list */
    struct worker *worker;
    uint64_t seq;          /* the batch's id in the worker's dedup ring: retries reuse it */
    int64_t first_sent_ms; /* its requests get 503 once this is REDIS_TIMEOUT_MS old */
    int64_t sent_ms;       /* the latest send */
    uint64_t sent_ns;      /* the same, uv_hrtime(): its round trip goes into the histogram */
    int sends;             /* how often it was sent: a resend must check the ring first */
    uint64_t sent_floor;   /* the cached total at the first send: its range lies above it */
    uint64_t epoch;        /* the cluster epoch Redis answered it in */
    uint64_t first, total; /* REDIS_WAIT_REPLICAS: its totals, held until WAIT confirms them */
    size_t n;
    size_t nplain;                       /* items without an Idempotency-Key */
    size_t nkeys;                        /* distinct keys: their first items are in leaders */
    uint16_t leaders[BATCH_MAX];         /* item index of each key's first item, in order */
    uint16_t key_slots[BATCH_KEY_SLOTS]; /* open addressing by key hash: leader index + 1, 0: free */
    char *keys;                          /* the keys' bytes (and stored answers' instances) */
    size_t keys_len, keys_cap;
    struct pending items[BATCH_MAX];
};

/* Batches in the order they were queued: sent and unanswered, to resend, or to confirm. */
struct batch_fifo {
    struct batch *head, *tail;
};

void batch_fifo_push(struct batch_fifo *f, struct batch *b);
/** Returns the oldest batch, taken out, or NULL. */
struct batch *batch_fifo_pop(struct batch_fifo *f);

/** Empties @p b for a new loop pass (its key space is kept for reuse). */
void batch_reset(struct batch *b, struct worker *w);
/** Frees what @p b owns, then @p b. */
void batch_free(struct batch *b);

/** Item @p self (the batch's last) carries Idempotency-Key @p key: it follows an earlier item
 *  with the same key, or becomes that key's leader (sent once). Returns TALLY_ERR, and leaves
 *  the batch as it was, only when out of memory. */
int batch_add_key(struct batch *b, size_t self, const char *key, size_t key_len);

/** Detaches @p p from its request so the request pool no longer points at the batch.
 *  Returns the request, or NULL if the client is already gone. */
h2o_req_t *batch_detach(struct pending *p);

/* The script's reply to a batch, read (see batch_script.h). */
struct batch_reply {
    uint64_t total;            /* total_count after the batch */
    uint64_t lifted;           /* increments the script added to lift total_count over lost writes */
    int refused;               /* a resend the lift may already hold: not applied */
    uint64_t epoch;            /* the cluster epoch */
    uint64_t first;            /* the M of the batch's first request without a key */
    const redisReply *answers; /* with keys: one element per key, in leaders' order */
};

/** Reads @p reply (not NULL) for @p b. Returns TALLY_ERR if it is an error or not the shape
 *  the script returns, or if its total cannot hold the batch's requests. */
int batch_reply_read(const struct batch *b, const redisReply *reply, struct batch_reply *out);

/** The keys' answers of a reply: each leader learns whether its key was stored now, is
 *  replayed from another answer, or is gone. @p instance is this replica's: a resend that
 *  finds its own answer (same N, same instance) was stored by the first send. */
void batch_read_answers(struct batch *b, const redisReply *answers, const char *instance);

/** What item @p i of an answered batch is told, N aside (the caller numbers the counted
 *  requests without a key in answer order). @p counted: the requests without a key count
 *  (M from @p b->first on, their order in the batch), else they fail with @p message. */
struct counter_result batch_result(const struct batch *b, size_t i, size_t plain_index, int counted,
                                   const char *message);

#endif
