/* The .env parser (config.h: tally_dotenv_parse): pure, unit-tested and fuzzed. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

/* One line of .env text, [p, end), as the parser walks it. */
struct line {
    const char *text;
    size_t p, end;
    int lineno;
};

static void skip_blanks(struct line *l)
{
    while (l->p < l->end && (l->text[l->p] == ' ' || l->text[l->p] == '\t'))
        l->p++;
}

/* NAME (after an optional "export "), then "=". */
static int read_key(struct line *l, char *key, size_t size, char *err, size_t errlen)
{
    const char *t = l->text;
    if (l->end - l->p > 7 && memcmp(t + l->p, "export", 6) == 0 &&
        (t[l->p + 6] == ' ' || t[l->p + 6] == '\t')) {
        l->p += 7;
        skip_blanks(l);
    }
    size_t k = 0;
    if (l->p < l->end && (isalpha((unsigned char)t[l->p]) || t[l->p] == '_')) {
        while (l->p < l->end && (isalnum((unsigned char)t[l->p]) || t[l->p] == '_')) {
            if (k + 1 >= size) {
                snprintf(err, errlen, "line %d: name too long", l->lineno);
                return TALLY_ERR;
            }
            key[k++] = t[l->p++];
        }
    }
    key[k] = '\0';
    skip_blanks(l);
    if (k == 0 || l->p == l->end || t[l->p] != '=') {
        snprintf(err, errlen, "line %d: expected NAME=VALUE", l->lineno);
        return TALLY_ERR;
    }
    l->p++;
    skip_blanks(l);
    return TALLY_OK;
}

/* "double" (with \n, \t and \ escapes) or 'single' quotes; a comment may follow. */
static int read_quoted(struct line *l, char *value, size_t *v, char *err, size_t errlen)
{
    const char *t = l->text;
    char q = t[l->p++];
    int closed = 0;
    while (l->p < l->end) {
        char c = t[l->p++];
        if (c == q) {
            closed = 1;
            break;
        }
        if (q == '"' && c == '\\' && l->p < l->end) {
            c = t[l->p++];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        value[(*v)++] = c;
    }
    if (!closed) {
        snprintf(err, errlen, "line %d: unterminated quote", l->lineno);
        return TALLY_ERR;
    }
    skip_blanks(l);
    if (l->p < l->end && t[l->p] != '#') {
        snprintf(err, errlen, "line %d: text after the closing quote", l->lineno);
        return TALLY_ERR;
    }
    return TALLY_OK;
}

/* Unquoted: up to a # that follows a blank, trailing blanks cut. */
static void read_bare(struct line *l, char *value, size_t *v)
{
    const char *t = l->text;
    while (l->p < l->end && !(t[l->p] == '#' && *v > 0 && (value[*v - 1] == ' ' || value[*v - 1] == '\t')))
        value[(*v)++] = t[l->p++];
    while (*v > 0 && (value[*v - 1] == ' ' || value[*v - 1] == '\t'))
        (*v)--;
}

/* One line: blank, a comment, or NAME=VALUE handed to @p cb. */
static int parse_line(struct line *l, char *value, tally_dotenv_cb cb, void *ud, char *err, size_t errlen)
{
    char key[128];
    skip_blanks(l);
    if (l->p == l->end || l->text[l->p] == '#')
        return TALLY_OK;
    if (read_key(l, key, sizeof(key), err, errlen) != TALLY_OK)
        return TALLY_ERR;
    size_t v = 0;
    if (l->p < l->end && (l->text[l->p] == '"' || l->text[l->p] == '\'')) {
        if (read_quoted(l, value, &v, err, errlen) != TALLY_OK)
            return TALLY_ERR;
    } else {
        read_bare(l, value, &v);
    }
    value[v] = '\0';
    if (memchr(value, '\0', v) != NULL) {
        snprintf(err, errlen, "line %d: NUL byte in value", l->lineno);
        return TALLY_ERR;
    }
    return cb(key, value, ud, err, errlen);
}

int tally_dotenv_parse(const char *text, size_t len, tally_dotenv_cb cb, void *ud, char *err, size_t errlen)
{
    char *value = malloc(len + 1);
    if (value == NULL) {
        snprintf(err, errlen, "out of memory");
        return TALLY_ERR;
    }
    struct line l = {.text = text};
    size_t i = 0;
    int rc = TALLY_OK;
    while (i < len && rc == TALLY_OK) {
        l.lineno++;
        size_t eol = i;
        while (eol < len && text[eol] != '\n')
            eol++;
        l.p = i;
        l.end = eol;
        i = eol + 1;
        if (l.end > l.p && text[l.end - 1] == '\r')
            l.end--;
        rc = parse_line(&l, value, cb, ud, err, errlen);
    }
    free(value);
    return rc;
}
