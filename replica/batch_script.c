/* The batch script and the commands that carry batches to it (see batch_script.h). */
#include "batch_script.h"

#include <stdlib.h>
#include <string.h>

#include "idempotency.h"
#include "total.h"
#include "util.h"

#define LIFT_KEY "tally:lifted" /* the highest total a batch script raised total_count to */

/* KEYS[1] total_count, KEYS[2] the worker's ring, KEYS[3] the lift mark, KEYS[4] the cluster
 * epoch, KEYS[5..] the batch's Idempotency-Keys (tally:idem:K, each once); ARGV: seq, n (the
 * requests without a key), ring size, ring TTL (ms), resend (1 if the batch was sent before),
 * floor (the highest total this replica knows of now), sent floor (the same when the batch
 * was first sent), the epoch the floor belongs to; with keys also: the keys' TTL (ms), this
 * instance, then each key's N. Only a resend can find its own record: a first send skips the
 * lookup. The ring's expiry is refreshed every 256th batch. Returns {total after the batch,
 * amount lifted, refused (0 or 1), the cluster epoch}, and with keys a fifth element: for
 * each key, its M if this call stored its answer, else the answer Redis held ("N M
 * instance") or nil.
 *
 * Idempotency-Keys: a key Redis does not hold is new: it counts, and its answer is written
 * in this same call, so the count and the key move together or not at all. A key Redis holds
 * counts nothing and gets its stored answer. The requests without a key take the top of the
 * batch's range, so a resend that finds its record can still hand them their totals; its
 * keys' answers are read back.
 *
 * The epoch (tally:epoch, absent: 0) is raised by hand after a deliberate restore of an
 * older Redis (docs/operations.md). A floor learned in another epoch than Redis's is not
 * used: what was handed out before the restore must not lift the restored total back.
 *
 * The floor repairs a Redis that came back with less than it had handed out (an AOF that
 * lost its last second): if the total before this batch is below a total already seen,
 * Redis is first raised to it (still INCRBY only), so no M is ever handed out twice. The
 * common case costs nothing more than the INCRBY.
 *
 * A lift stands for increments Redis lost, and among them may be a batch whose reply never
 * arrived: its effect was seen (a peer's later total, the publisher's GET), its record went
 * with the lost writes. Applying its resend would count it twice. So every lift leaves its
 * top in the lift mark, and a resend not found in the ring, first sent while the replica
 * knew less than that top, is refused: its requests get 503 (counted once or not at all,
 * which the Jepsen rule allows; never twice). A resend first sent above the top cannot lie
 * inside the lifted range and is applied as usual. A mark that is not a number counts as
 * none, and the next lift writes over it. Totals pass through Lua numbers and are
 * written with %d: exact up to 2^53. */
const char batch_script_text[] =
    "local seq = ARGV[1] "
    "local slot = tostring(tonumber(seq) % tonumber(ARGV[3])) "
    "local floor = tonumber(ARGV[6]) "
    "local epoch = tonumber(redis.call('GET', KEYS[4]) or 0) or 0 "
    "if epoch ~= tonumber(ARGV[8]) then floor = 0 end "
    "local nk = #KEYS - 4 "
    "local function reply(total, lifted, refused, answers) "
    "  if nk == 0 then return {total, lifted, refused, epoch} end "
    "  if not answers then "
    "    answers = {} "
    "    for i = 1, nk do answers[i] = redis.call('GET', KEYS[4 + i]) end "
    "  end "
    "  return {total, lifted, refused, epoch, answers} "
    "end "
    "local function mark() return tonumber(redis.call('GET', KEYS[3]) or 0) or 0 end "
    "local function lift_to(before) "
    "  local lift = floor - before "
    "  if lift <= 0 then return 0 end "
    "  redis.call('INCRBY', KEYS[1], lift) "
    "  if floor > mark() then "
    "    redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[4]) "
    "  end "
    "  return lift "
    "end "
    "local lifted = 0 "
    "if ARGV[5] == '1' then "
    "  local prev = redis.call('HGET', KEYS[2], slot) "
    "  if prev then "
    "    local sep = string.find(prev, ':', 1, true) "
    "    if sep and string.sub(prev, 1, sep - 1) == seq then "
    "      local t = string.sub(prev, sep + 1) "
    "      if t == 'r' then return reply(tonumber(redis.call('GET', KEYS[1]) or 0), 0, 1) end "
    "      return reply(tonumber(t), 0, 0) "
    "    end "
    "  end "
    "  lifted = lift_to(tonumber(redis.call('GET', KEYS[1]) or 0)) "
    "  if tonumber(ARGV[7]) < mark() then "
    "    redis.call('HSET', KEYS[2], slot, seq .. ':r') "
    "    redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
    "    return reply(tonumber(redis.call('GET', KEYS[1]) or 0), lifted, 1) "
    "  end "
    "end "
    "local function record(total) "
    "  redis.call('HSET', KEYS[2], slot, seq .. ':' .. string.format('%d', total)) "
    "  if ARGV[5] == '1' or tonumber(seq) % 256 == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end "
    "end "
    "if nk == 0 then "
    "  local n = tonumber(ARGV[2]) "
    "  local total = redis.call('INCRBY', KEYS[1], n) "
    "  local more = lift_to(total - n) "
    "  total = total + more "
    "  record(total) "
    "  return reply(total, lifted + more, 0) "
    "end "
    /* With keys: the total first (nothing is written if it is not a number), then each key
     * SET only if absent (NX), its old answer returned if present (GET): one call a key. */
    "local before = tonumber(redis.call('GET', KEYS[1]) or 0) "
    "if not before then return redis.error_reply('ERR total_count is not an integer') end "
    "local more = lift_to(before) "
    "local m = before + more "
    "local answers = {} "
    "for i = 1, nk do "
    "  local held = redis.call('SET', KEYS[4 + i], "
    "                          ARGV[10 + i] .. ' ' .. string.format('%d', m + 1) .. ' ' .. ARGV[10], "
    "                          'NX', 'PX', ARGV[9], 'GET') "
    "  if held then answers[i] = held else m = m + 1; answers[i] = m end "
    "end "
    "local total = redis.call('INCRBY', KEYS[1], m - before - more + tonumber(ARGV[2])) "
    "record(total) "
    "return reply(total, lifted + more, 0, answers)";

int batch_script_loaded(struct batch_script *s, const char *sha, size_t sha_len, const char *ring_key)
{
    size_t ring_len = strlen(ring_key);
    if (sha_len >= sizeof(s->sha) || ring_len > 200)
        return TALLY_ERR;
    memcpy(s->sha, sha, sha_len);
    s->sha[sha_len] = '\0';
    /* 15 parts: EVALSHA sha 4 key ring mark epoch, then seq n slots ttl resend floor
     * sent-floor floor-epoch. */
    char *h = s->plain;
    size_t len = tally_resp_array(h, 15);
    len += tally_resp_bulk(h + len, "EVALSHA", 7);
    len += tally_resp_bulk(h + len, sha, sha_len);
    s->sha_end = len;
    len += tally_resp_bulk(h + len, "4", 1);
    len += tally_resp_bulk(h + len, TALLY_TOTAL_KEY, strlen(TALLY_TOTAL_KEY));
    len += tally_resp_bulk(h + len, ring_key, ring_len);
    len += tally_resp_bulk(h + len, LIFT_KEY, strlen(LIFT_KEY));
    len += tally_resp_bulk(h + len, TALLY_EPOCH_KEY, strlen(TALLY_EPOCH_KEY));
    s->head_len = len;
    return TALLY_OK;
}

void batch_script_unload(struct batch_script *s)
{
    s->sha[0] = '\0';
}

void batch_script_free(struct batch_script *s)
{
    free(s->keyed);
    s->keyed = NULL;
    s->keyed_cap = 0;
}

/* The eight arguments every batch carries (see batch_script_text). */
static size_t put_args(char *cmd, const struct batch *b, const struct batch_send *a)
{
    size_t len = tally_resp_bulk_u64(cmd, b->seq);
    len += tally_resp_bulk_u64(cmd + len, b->nplain);
    len += tally_resp_bulk_u64(cmd + len, BATCH_RING_SLOTS);
    len += tally_resp_bulk_u64(cmd + len, BATCH_RING_TTL_MS);
    len += tally_resp_bulk_u64(cmd + len, b->sends > 0);
    len += tally_resp_bulk_u64(cmd + len, a->floor);
    len += tally_resp_bulk_u64(cmd + len, b->sent_floor);
    len += tally_resp_bulk_u64(cmd + len, a->epoch);
    return len;
}

/* A batch with Idempotency-Keys: the head with 4 + k keys, the k keys, the eight arguments,
 * the keys' TTL, this instance and each key's N. Returns the length, 0 if out of memory. */
static size_t format_keyed(struct batch_script *s, const struct batch *b, const struct batch_send *a)
{
    size_t inst = strlen(a->instance);
    size_t need = s->head_len + 2 * TALLY_RESP_U64_MAX + (10 + b->nkeys) * TALLY_RESP_U64_MAX + inst + 16 +
                  b->nkeys * (sizeof(TALLY_IDEM_PREFIX) + TALLY_IDEM_KEY_MAX + 16);
    if (need > s->keyed_cap) {
        char *c = realloc(s->keyed, need);
        if (c == NULL)
            return 0;
        s->keyed = c;
        s->keyed_cap = need;
    }
    char *cmd = s->keyed;
    /* The head is *15, EVALSHA, the SHA, the key count 4, then the four keys: the same with
     * a longer array and 4 + k keys. */
    const size_t array_len = sizeof("*15\r\n") - 1, count_len = sizeof("$1\r\n4\r\n") - 1;
    size_t len = tally_resp_array(cmd, 15 + 2 + 2 * b->nkeys);
    memcpy(cmd + len, s->plain + array_len, s->sha_end - array_len);
    len += s->sha_end - array_len;
    len += tally_resp_bulk_u64(cmd + len, 4 + b->nkeys);
    size_t keys_at = s->sha_end + count_len;
    memcpy(cmd + len, s->plain + keys_at, s->head_len - keys_at);
    len += s->head_len - keys_at;
    char name[sizeof(TALLY_IDEM_PREFIX) + TALLY_IDEM_KEY_MAX];
    memcpy(name, TALLY_IDEM_PREFIX, sizeof(TALLY_IDEM_PREFIX) - 1);
    for (size_t j = 0; j < b->nkeys; j++) {
        const struct pending *p = &b->items[b->leaders[j]];
        memcpy(name + sizeof(TALLY_IDEM_PREFIX) - 1, b->keys + p->key_off, p->key_len);
        len += tally_resp_bulk(cmd + len, name, sizeof(TALLY_IDEM_PREFIX) - 1 + p->key_len);
    }
    len += put_args(cmd + len, b, a);
    len += tally_resp_bulk_u64(cmd + len, a->key_ttl_ms);
    len += tally_resp_bulk(cmd + len, a->instance, inst);
    for (size_t j = 0; j < b->nkeys; j++)
        len += tally_resp_bulk_u64(cmd + len, b->items[b->leaders[j]].key_n);
    return len;
}

const char *batch_script_command(struct batch_script *s, const struct batch *b, const struct batch_send *a,
                                 size_t *len)
{
    if (b->nkeys == 0) {
        *len = s->head_len + put_args(s->plain + s->head_len, b, a);
        return s->plain;
    }
    *len = format_keyed(s, b, a);
    return *len == 0 ? NULL : s->keyed;
}
