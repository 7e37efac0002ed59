#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tally_metrics_init(tally_metrics_buf_t *m)
{
    memset(m, 0, sizeof(*m));
}

void tally_metrics_free(tally_metrics_buf_t *m)
{
    free(m->data);
    memset(m, 0, sizeof(*m));
}

static void append(tally_metrics_buf_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(tally_metrics_buf_t *m, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = m->failed ? -1 : vsnprintf(m->data ? m->data + m->len : NULL, m->cap - m->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            m->failed = 1;
            return;
        }
        if ((size_t)n < m->cap - m->len) {
            m->len += (size_t)n;
            return;
        }
        size_t cap = m->cap ? m->cap * 2 : 4096;
        while (cap - m->len <= (size_t)n)
            cap *= 2;
        char *d = realloc(m->data, cap);
        if (d == NULL) {
            m->failed = 1;
            return;
        }
        m->data = d, m->cap = cap;
    }
}

/* Whole numbers (counters, totals) print exactly; the rest with millisecond precision. */
static void format_value(char *buf, size_t size, double value)
{
    if (value >= -9e15 && value <= 9e15 && value == (double)(long long)value)
        snprintf(buf, size, "%lld", (long long)value);
    else
        snprintf(buf, size, "%.3f", value);
}

void tally_metrics_family(tally_metrics_buf_t *m, const char *name, const char *type, const char *help)
{
    append(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tally_metrics_add(tally_metrics_buf_t *m, const char *name, const char *type, const char *help,
                       double value)
{
    tally_metrics_family(m, name, type, help);
    char v[40];
    format_value(v, sizeof(v), value);
    append(m, "%s %s\n", name, v);
}

void tally_metrics_sample(tally_metrics_buf_t *m, const char *name, const char *label,
                          const char *label_value, double value)
{
    char esc[256];
    size_t o = 0;
    for (const char *p = label_value; *p != '\0' && o + 2 < sizeof(esc); p++) {
        if (*p == '\\' || *p == '"' || *p == '\n') {
            esc[o++] = '\\';
            esc[o++] = *p == '\n' ? 'n' : *p;
        } else {
            esc[o++] = *p;
        }
    }
    esc[o] = '\0';
    char v[40];
    format_value(v, sizeof(v), value);
    append(m, "%s{%s=\"%s\"} %s\n", name, label, esc, v);
}
