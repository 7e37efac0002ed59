/* Writing the Prometheus text exposition format (version 0.0.4) into a growing buffer.
 * The programs keep their own counters; this only renders them. */
#ifndef TALLY_METRICS_H
#define TALLY_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tally_metrics_buf {
    char *data;
    size_t len, cap;
    int failed; /* set when an allocation failed; the text is then incomplete */
} tally_metrics_buf_t;

/** Starts an empty buffer. */
void tally_metrics_init(tally_metrics_buf_t *m);
/** Frees the buffer's memory. */
void tally_metrics_free(tally_metrics_buf_t *m);
/** Appends HELP and TYPE lines and one sample without labels. @p type: "counter" or "gauge". */
void tally_metrics_add(tally_metrics_buf_t *m, const char *name, const char *type, const char *help,
                       double value);
/** Appends HELP and TYPE lines only, for a family whose samples follow with labels. */
void tally_metrics_family(tally_metrics_buf_t *m, const char *name, const char *type, const char *help);
/** Appends one sample with one label (value escaped here). */
void tally_metrics_sample(tally_metrics_buf_t *m, const char *name, const char *label,
                          const char *label_value, double value);

/* A latency histogram with one writer thread (each worker keeps its own: no cache line is
 * shared between threads on the counting path) that any thread may read: relaxed atomic
 * loads and stores, no read-modify-write. A scrape may see one observation half-counted,
 * which Prometheus tolerates. Buckets from 0.1 ms to 1 s. */
#define TALLY_HIST_BUCKETS 13
typedef struct tally_histogram {
    atomic_ullong bucket[TALLY_HIST_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    atomic_ullong count;
    atomic_ullong sum_ns;
} tally_histogram_t;

/** Upper bounds of the buckets, in seconds. */
extern const double tally_hist_bounds[TALLY_HIST_BUCKETS];
/** Records one duration of @p ns nanoseconds; only the histogram's own thread may call it. */
void tally_histogram_observe(tally_histogram_t *h, uint64_t ns);
/** Appends the sum of @p n histograms as @p name (…_bucket{le}, …_sum, …_count), in seconds;
 *  @p stride is the distance in bytes from one to the next (they may live in an array of
 *  larger structs). */
void tally_metrics_histogram(tally_metrics_buf_t *m, const char *name, const char *help,
                             const tally_histogram_t *h, size_t n, size_t stride);
/** Appends the standard process_* metrics of this process (from /proc/self) and
 *  tally_build_info{version,commit}; @p start_wall_ms is the start time, Unix ms. */
void tally_metrics_process(tally_metrics_buf_t *m, int64_t start_wall_ms);

#endif
