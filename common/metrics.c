#include "metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef TALLY_COMMIT
#define TALLY_COMMIT "unknown"
#endif

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
    else { /* microseconds show (a switch of Redis master on loopback), trailing zeros do not */
        int n = snprintf(buf, size, "%.6f", value);
        while (n > 2 && (size_t)n < size && buf[n - 1] == '0' && buf[n - 2] != '.')
            buf[--n] = '\0';
    }
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

const double tally_hist_bounds[TALLY_HIST_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                      0.025,  0.05,    0.1,    0.25,  0.5,    1.0};

static void bump(atomic_ullong *x, unsigned long long by)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + by, memory_order_relaxed);
}

void tally_histogram_observe(tally_histogram_t *h, uint64_t ns)
{
    size_t i = 0;
    double s = (double)ns / 1e9;
    while (i < TALLY_HIST_BUCKETS && s > tally_hist_bounds[i])
        i++;
    bump(&h->bucket[i], 1);
    bump(&h->count, 1);
    bump(&h->sum_ns, ns);
}

static unsigned long long sum_of(const tally_histogram_t *h, size_t n, size_t stride, size_t offset)
{
    unsigned long long v = 0;
    for (size_t k = 0; k < n; k++)
        v += atomic_load_explicit((const atomic_ullong *)((const char *)h + k * stride + offset),
                                  memory_order_relaxed);
    return v;
}

void tally_metrics_histogram(tally_metrics_buf_t *m, const char *name, const char *help,
                             const tally_histogram_t *h, size_t n, size_t stride)
{
    tally_metrics_family(m, name, "histogram", help);
    unsigned long long cum = 0;
    for (size_t i = 0; i <= TALLY_HIST_BUCKETS; i++) {
        cum += sum_of(h, n, stride, offsetof(tally_histogram_t, bucket) + i * sizeof(atomic_ullong));
        if (i < TALLY_HIST_BUCKETS)
            append(m, "%s_bucket{le=\"%g\"} %llu\n", name, tally_hist_bounds[i], cum);
        else
            append(m, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    /* the count is the +Inf bucket, so the two always agree */
    append(m, "%s_sum %.6f\n%s_count %llu\n", name,
           (double)sum_of(h, n, stride, offsetof(tally_histogram_t, sum_ns)) / 1e9, name, cum);
}

void tally_metrics_process(tally_metrics_buf_t *m, int64_t start_wall_ms)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        tally_metrics_add(m, "process_cpu_seconds_total", "counter",
                          "User and system CPU time spent, in seconds.",
                          (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long vm = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &vm, &rss) == 2) {
            tally_metrics_add(m, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                              (double)rss * (double)page);
            tally_metrics_add(m, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                              (double)vm * (double)page);
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            n += e->d_name[0] != '.';
        closedir(d);
        tally_metrics_add(m, "process_open_fds", "gauge", "Number of open file descriptors.",
                          (double)(n > 0 ? n - 1 : 0)); /* less the one reading the folder */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        tally_metrics_add(m, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                          rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
    tally_metrics_add(m, "process_start_time_seconds", "gauge",
                      "Start time of the process since the Unix epoch, in seconds.",
                      (double)start_wall_ms / 1000.0);
    tally_metrics_family(m, "tally_build_info", "gauge",
                         "The version and commit this program was built from.");
    append(m, "tally_build_info{version=\"%s\",commit=\"%s\"} 1\n", TALLY_VERSION, TALLY_COMMIT);
}
