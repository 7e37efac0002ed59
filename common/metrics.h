/* Writing the Prometheus text exposition format (version 0.0.4) into a growing buffer.
 * The programs keep their own counters; this only renders them. */
#ifndef TALLY_METRICS_H
#define TALLY_METRICS_H

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

#endif
