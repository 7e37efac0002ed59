#include "presence.h"
#include "config.h"
#include "http_format.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A strict reader for one flat JSON object: string, integer, true/false/null values; no
 * nesting (a nested value makes the payload invalid). Enough for our own status, and
 * small enough to fuzz. */
struct reader {
    const char *p, *end;
};

static void skip_ws(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* Reads a JSON string into out (cap bytes, NUL-terminated). Escapes: \" \\ \/ and \u00XX for
 * printable ASCII; control characters, raw or escaped, and anything else are rejected. */
static int read_string(struct reader *r, char *out, size_t cap)
{
    size_t n = 0;
    if (r->p >= r->end || *r->p != '"')
        return TALLY_ERR;
    r->p++;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p++;
        if (c < 0x20)
            return TALLY_ERR;
        if (c == '\\') {
            if (r->p >= r->end)
                return TALLY_ERR;
            char e = *r->p++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                c = (unsigned char)e;
                break;
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                return TALLY_ERR; /* valid JSON, but control characters: see below */
            case 'u': {
                if (r->end - r->p < 4 || r->p[0] != '0' || r->p[1] != '0')
                    return TALLY_ERR;
                unsigned v = 0;
                for (int i = 2; i < 4; i++) {
                    char h = r->p[i];
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9'   ? h - '0'
                                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                                   : 99);
                }
                if (v > 0x7f)
                    return TALLY_ERR;
                c = (unsigned char)v;
                r->p += 4;
                break;
            }
            default:
                return TALLY_ERR;
            }
        }
        /* Control characters (even escaped) have no place in an id, host or version, and
         * refusing them bounds what re-escaping can grow to, so every accepted status can
         * be printed again by tally_status_format. */
        if (c < 0x20)
            return TALLY_ERR;
        if (n + 1 >= cap)
            return TALLY_ERR;
        out[n++] = (char)c;
    }
    if (r->p >= r->end)
        return TALLY_ERR;
    r->p++;
    out[n] = '\0';
    return TALLY_OK;
}

enum vkind { V_STRING, V_INT, V_BOOL, V_NULL };

static int read_value(struct reader *r, enum vkind *kind, char *s, size_t cap, long long *num)
{
    skip_ws(r);
    if (r->p >= r->end)
        return TALLY_ERR;
    if (*r->p == '"') {
        *kind = V_STRING;
        return read_string(r, s, cap);
    }
    if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) {
        char digits[24];
        size_t n = 0;
        while (r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))) {
            if (n + 1 >= sizeof(digits))
                return TALLY_ERR;
            digits[n++] = *r->p++;
        }
        digits[n] = '\0';
        if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
            return TALLY_ERR; /* integers only */
        *kind = V_INT;
        return tally_parse_ll(digits, INT64_MIN, INT64_MAX, num);
    }
    static const struct {
        const char *lit;
        enum vkind kind;
    } words[] = {{"true", V_BOOL}, {"false", V_BOOL}, {"null", V_NULL}};
    for (size_t i = 0; i < TALLY_ARRAY_SIZE(words); i++) {
        size_t l = strlen(words[i].lit);
        if ((size_t)(r->end - r->p) >= l && memcmp(r->p, words[i].lit, l) == 0) {
            r->p += l;
            *kind = words[i].kind;
            *num = words[i].lit[0] == 't';
            return TALLY_OK;
        }
    }
    return TALLY_ERR; /* objects, arrays and anything else */
}

int tally_status_parse(const void *payload, size_t len, tally_status_t *out)
{
    struct reader r = {payload, (const char *)payload + len};
    int have_id = 0, have_host = 0, have_state = 0;
    char key[32], sval[160], why[64];
    memset(out, 0, sizeof(*out));
    if (payload == NULL || len == 0 || len > TALLY_STATUS_MAX_PAYLOAD)
        return TALLY_ERR;
    skip_ws(&r);
    if (r.p >= r.end || *r.p++ != '{')
        return TALLY_ERR;
    skip_ws(&r);
    if (r.p < r.end && *r.p == '}') {
        return TALLY_ERR; /* empty object: no id */
    }
    for (;;) {
        enum vkind kind;
        long long num = 0;
        skip_ws(&r);
        if (read_string(&r, key, sizeof(key)) != TALLY_OK) {
            /* a key too long for us is not one of ours, but the syntax must still hold */
            return TALLY_ERR;
        }
        skip_ws(&r);
        if (r.p >= r.end || *r.p++ != ':')
            return TALLY_ERR;
        sval[0] = '\0';
        if (read_value(&r, &kind, sval, sizeof(sval), &num) != TALLY_OK)
            return TALLY_ERR;
        if (strcmp(key, "id") == 0) {
            if (kind != V_STRING || strlen(sval) == 0 || strlen(sval) >= sizeof(out->id) ||
                tally_check_instance_id(sval, sizeof(sval), why, sizeof(why)) != TALLY_OK)
                return TALLY_ERR;
            strcpy(out->id, sval);
            have_id = 1;
        } else if (strcmp(key, "host") == 0) {
            if (kind != V_STRING || strlen(sval) >= sizeof(out->host))
                return TALLY_ERR;
            strcpy(out->host, sval);
            have_host = 1;
        } else if (strcmp(key, "version") == 0) {
            if (kind != V_STRING || strlen(sval) >= sizeof(out->version))
                return TALLY_ERR;
            strcpy(out->version, sval);
        } else if (strcmp(key, "started_at") == 0) {
            if (kind != V_INT || num < 0)
                return TALLY_ERR;
            out->started_at = num;
        } else if (strcmp(key, "served") == 0) {
            if (kind != V_INT || num < 0)
                return TALLY_ERR;
            out->served = (uint64_t)num;
        } else if (strcmp(key, "state") == 0) {
            if (kind != V_STRING || (strcmp(sval, "online") != 0 && strcmp(sval, "offline") != 0))
                return TALLY_ERR;
            out->online = strcmp(sval, "online") == 0;
            have_state = 1;
        }
        skip_ws(&r);
        if (r.p >= r.end)
            return TALLY_ERR;
        if (*r.p == ',') {
            r.p++;
            continue;
        }
        if (*r.p++ != '}')
            return TALLY_ERR;
        break;
    }
    skip_ws(&r);
    if (r.p != r.end)
        return TALLY_ERR;
    return have_id && have_host && have_state ? TALLY_OK : TALLY_ERR;
}

size_t tally_status_format(char *buf, size_t size, const tally_status_t *s)
{
    char id[140], host[260], version[70];
    if (tally_json_escape(id, sizeof(id), s->id) == (size_t)-1 ||
        tally_json_escape(host, sizeof(host), s->host) == (size_t)-1 ||
        tally_json_escape(version, sizeof(version), s->version) == (size_t)-1)
        return (size_t)-1;
    int n = snprintf(buf, size,
                     "{\"id\":\"%s\",\"host\":\"%s\",\"version\":\"%s\",\"started_at\":%" PRId64
                     ",\"served\":%" PRIu64 ",\"state\":\"%s\"}",
                     id, host, version, s->started_at, s->served, s->online ? "online" : "offline");
    return n < 0 || (size_t)n >= size ? (size_t)-1 : (size_t)n;
}

int tally_status_topic_id(const char *topic, char *id)
{
    size_t plen = strlen(TALLY_STATUS_TOPIC_PREFIX), slen = strlen(TALLY_STATUS_TOPIC_SUFFIX);
    size_t tlen = strlen(topic);
    char why[64];
    if (tlen <= plen + slen || strncmp(topic, TALLY_STATUS_TOPIC_PREFIX, plen) != 0 ||
        strcmp(topic + tlen - slen, TALLY_STATUS_TOPIC_SUFFIX) != 0)
        return TALLY_ERR;
    size_t idlen = tlen - plen - slen;
    if (idlen > 64)
        return TALLY_ERR;
    memcpy(id, topic + plen, idlen);
    id[idlen] = '\0';
    return tally_check_instance_id(id, 65, why, sizeof(why));
}

void tally_presence_init(tally_presence_t *p)
{
    pthread_mutex_init(&p->lock, NULL);
    p->n = 0;
}

int tally_presence_update(tally_presence_t *p, const tally_status_t *s, int64_t now_ms)
{
    int rc = TALLY_OK;
    pthread_mutex_lock(&p->lock);
    size_t i = 0;
    while (i < p->n && strcmp(p->entries[i].status.id, s->id) != 0)
        i++;
    if (i == p->n) {
        if (p->n == TALLY_PRESENCE_MAX)
            rc = TALLY_ERR;
        else
            p->n++;
    }
    if (rc == TALLY_OK) {
        p->entries[i].status = *s;
        p->entries[i].last_seen_ms = now_ms;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void tally_presence_remove(tally_presence_t *p, const char *id)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->entries[i].status.id, id) == 0) {
            p->entries[i] = p->entries[--p->n];
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
}

size_t tally_presence_expire(tally_presence_t *p, int64_t now_ms, int64_t max_age_ms,
                             char (*ids)[TALLY_ID_SIZE], size_t max_ids)
{
    size_t removed = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n && removed < max_ids;) {
        struct tally_presence_entry *e = &p->entries[i];
        if (e->status.online || now_ms - e->last_seen_ms < max_age_ms) {
            i++;
            continue;
        }
        if (ids != NULL)
            memcpy(ids[removed], e->status.id, sizeof(e->status.id));
        removed++;
        *e = p->entries[--p->n]; /* the moved entry is looked at next */
    }
    pthread_mutex_unlock(&p->lock);
    return removed;
}

size_t tally_presence_rank(tally_presence_t *p, const char *id, size_t *online)
{
    size_t below = 0, n = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        if (!p->entries[i].status.online)
            continue;
        n++;
        below += strcmp(p->entries[i].status.id, id) < 0;
    }
    pthread_mutex_unlock(&p->lock);
    *online = n;
    return below;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct tally_presence_entry *)a)->status.id,
                  ((const struct tally_presence_entry *)b)->status.id);
}

char *tally_presence_json(tally_presence_t *p, size_t *len)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->n;
    struct tally_presence_entry *copy = malloc((n ? n : 1) * sizeof(*copy));
    if (copy != NULL)
        memcpy(copy, p->entries, n * sizeof(*copy));
    pthread_mutex_unlock(&p->lock);
    if (copy == NULL)
        return NULL;
    qsort(copy, n, sizeof(*copy), by_id);

    size_t cap = 32 + n * (TALLY_STATUS_MAX_PAYLOAD + 64), o = 0;
    char *out = malloc(cap);
    if (out == NULL) {
        free(copy);
        return NULL;
    }
    o += (size_t)snprintf(out, cap, "{\"replicas\":[");
    for (size_t i = 0; i < n; i++) {
        char one[TALLY_STATUS_MAX_PAYLOAD];
        size_t l = tally_status_format(one, sizeof(one), &copy[i].status);
        if (l == (size_t)-1 || l < 1)
            continue;
        /* the status object with last_seen appended before its closing brace */
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s,\"last_seen\":%" PRId64 "}", o > 13 ? "," : "",
                              (int)(l - 1), one, copy[i].last_seen_ms);
    }
    o += (size_t)snprintf(out + o, cap - o, "]}");
    free(copy);
    *len = o;
    return out;
}
