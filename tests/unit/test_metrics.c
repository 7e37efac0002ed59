#include <criterion/criterion.h>
#include <string.h>

#include "metrics.h"

Test(metrics, exposition_format)
{
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    tally_metrics_add(&m, "tally_x_total", "counter", "Things.", 12);
    tally_metrics_family(&m, "tally_y_total", "counter", "By route.");
    tally_metrics_sample(&m, "tally_y_total", "route", "a\"b", 3);
    tally_metrics_add(&m, "tally_age_seconds", "gauge", "Age.", 1.5);
    cr_assert_eq(m.failed, 0);
    cr_assert_str_eq(
        m.data, "# HELP tally_x_total Things.\n# TYPE tally_x_total counter\ntally_x_total 12\n"
                "# HELP tally_y_total By route.\n# TYPE tally_y_total counter\n"
                "tally_y_total{route=\"a\\\"b\"} 3\n"
                "# HELP tally_age_seconds Age.\n# TYPE tally_age_seconds gauge\ntally_age_seconds 1.500\n");
    tally_metrics_free(&m);
}

Test(metrics, grows_past_the_first_block)
{
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    for (int i = 0; i < 500; i++)
        tally_metrics_add(&m, "tally_many_total", "counter", "A long enough help text to fill pages.", i);
    cr_assert_eq(m.failed, 0);
    cr_assert_eq(strlen(m.data), m.len);
    cr_assert(strstr(m.data, "tally_many_total 499\n") != NULL);
    tally_metrics_free(&m);
}
