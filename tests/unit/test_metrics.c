#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include "metrics.h"

/* Each text after @p m, up to a NULL, must stand somewhere in the exposition. */
static void expect_text(const tally_metrics_buf_t *m, ...)
{
    va_list ap;
    va_start(ap, m);
    for (const char *text; (text = va_arg(ap, const char *)) != NULL;)
        cr_assert(strstr(m->data, text) != NULL, "no \"%s\" in:\n%s", text, m->data);
    va_end(ap);
}

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
                "# HELP tally_age_seconds Age.\n# TYPE tally_age_seconds gauge\ntally_age_seconds 1.5\n");
    tally_metrics_free(&m);
}

Test(metrics, sub_millisecond_values_keep_their_digits)
{
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    tally_metrics_add(&m, "tally_a_seconds_total", "counter", "A.", 0.000412);
    tally_metrics_add(&m, "tally_b_seconds", "gauge", "B.", 0.25);
    tally_metrics_add(&m, "tally_c_seconds", "gauge", "C.", 0.0000004);
    expect_text(&m, "tally_a_seconds_total 0.000412\n", "tally_b_seconds 0.25\n", "tally_c_seconds 0.0\n",
                NULL);
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
    expect_text(&m, "tally_many_total 499\n", NULL);
    tally_metrics_free(&m);
}

Test(metrics, histogram_buckets_are_cumulative_and_inclusive)
{
    static tally_histogram_t h;              /* zeroed */
    tally_histogram_observe(&h, 100000);     /* 0.1 ms: on the first bound, counted in it */
    tally_histogram_observe(&h, 100001);     /* just above: the next bucket */
    tally_histogram_observe(&h, 2000000);    /* 2 ms */
    tally_histogram_observe(&h, 5000000000); /* 5 s: only +Inf */
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    tally_metrics_histogram(&m, "t_seconds", "help", &h, 1, sizeof(h));
    cr_assert_not(m.failed);
    expect_text(&m, "# TYPE t_seconds histogram\n", "t_seconds_bucket{le=\"0.0001\"} 1\n",
                "t_seconds_bucket{le=\"0.00025\"} 2\n", "t_seconds_bucket{le=\"0.0025\"} 3\n",
                "t_seconds_bucket{le=\"1\"} 3\n", "t_seconds_bucket{le=\"+Inf\"} 4\n",
                "t_seconds_sum 5.002200\nt_seconds_count 4\n", NULL);
    tally_metrics_free(&m);
}

Test(metrics, histograms_of_several_threads_add_up)
{
    static struct {
        int other;
        tally_histogram_t h;
    } per[3]; /* zeroed, as the workers' */
    tally_histogram_observe(&per[0].h, 50000);
    tally_histogram_observe(&per[2].h, 50000);
    tally_histogram_observe(&per[2].h, 3000000);
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    tally_metrics_histogram(&m, "t_seconds", "help", &per[0].h, 3, sizeof(per[0]));
    expect_text(&m, "t_seconds_bucket{le=\"0.0001\"} 2\n", "t_seconds_bucket{le=\"+Inf\"} 3\n",
                "t_seconds_sum 0.003100\nt_seconds_count 3\n", NULL);
    tally_metrics_free(&m);
}

Test(metrics, process_metrics_and_build_info)
{
    tally_metrics_buf_t m;
    tally_metrics_init(&m);
    tally_metrics_process(&m, 1795425208123);
    cr_assert_not(m.failed);
    expect_text(&m, "process_start_time_seconds 1795425208.123\n",
                "# TYPE process_cpu_seconds_total counter\n", "process_open_fds ",
                "process_resident_memory_bytes ", NULL);
    cr_assert(strstr(m.data, "tally_build_info{version=\"" TALLY_VERSION "\",commit=\"") != NULL, "%s",
              m.data);
    tally_metrics_free(&m);
}
