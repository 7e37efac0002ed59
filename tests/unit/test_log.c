/* The log line formats (common/log.c): text, and JSON that stays valid whatever a message holds. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Logs one message with stderr sent to a file; returns what was written. */
static char *capture(const char *msg, char *out, size_t size)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(f), STDERR_FILENO);
    tally_warn("%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

Test(log, json_escapes_quotes_controls_and_bytes_outside_ascii)
{
    char line[4096];
    tally_log_init("tally-test", TALLY_LOG_INFO);
    tally_log_set_instance("i\"1");
    tally_log_set_format(TALLY_LOG_JSON);
    capture("say \"hi\"\\ \n\t\x01 caf\xc3\xa9", line, sizeof(line));
    cr_assert(strncmp(line, "{\"time\":\"", 9) == 0, "%s", line);
    cr_assert(strstr(line, "\",\"level\":\"warn\",\"program\":\"tally-test\",\"pid\":") != NULL, "%s", line);
    cr_assert(strstr(line, ",\"instance\":\"i\\\"1\",\"message\":\"say \\\"hi\\\"\\\\ \\u000a\\u0009\\u0001 "
                           "caf\\u00c3\\u00a9\",\"fields\":{}}\n") != NULL,
              "%s", line);
    cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "one line");
}

Test(log, text_is_one_line_per_message)
{
    char line[4096];
    tally_log_init("tally-test", TALLY_LOG_INFO);
    tally_log_set_format(TALLY_LOG_TEXT);
    capture("plain words", line, sizeof(line));
    cr_assert(strstr(line, "Z warn  tally-test[") != NULL, "%s", line);
    cr_assert(strstr(line, "]: plain words\n") != NULL, "%s", line);
}

Test(log, a_long_message_is_cut_and_stays_valid)
{
    static char msg[3000], line[8192];
    memset(msg, '"', sizeof(msg) - 1);
    tally_log_init("tally-test", TALLY_LOG_INFO);
    tally_log_set_format(TALLY_LOG_JSON);
    capture(msg, line, sizeof(line));
    size_t n = strlen(line);
    cr_assert(n > 1000 && strcmp(line + n - 15, "\",\"fields\":{}}\n") == 0, "ends as an object: %s",
              line + n - 20);
    cr_assert_eq(tally_log_format_from_name("json"), TALLY_LOG_JSON);
    cr_assert_eq(tally_log_format_from_name("xml"), -1);
}

Test(log, json_fields_name_the_subsystem_and_subject_of_a_message)
{
    static const struct {
        const char *msg, *fields;
    } cases[] = {
        {"redis 10.0.0.5:6379: connection lost (EOF)",
         "{\"subsystem\":\"redis\",\"subject\":\"10.0.0.5:6379\"}"},
        {"mqtt tcp://b:1883: connected as r1", "{\"subsystem\":\"mqtt\",\"subject\":\"tcp://b:1883\"}"},
        {"lease tally:publisher:leader: released",
         "{\"subsystem\":\"lease\",\"subject\":\"tally:publisher:leader\"}"},
        {"presence: r2 offline for 600 s", "{\"subsystem\":\"presence\"}"},
        {"instance \"x\": held", "{\"subsystem\":\"instance\",\"subject\":\"\\\"x\\\"\"}"},
        {"cannot listen on 0.0.0.0:80: denied", "{}"},
        {"SIGTERM: draining", "{}"},
        {"redis: ", "{\"subsystem\":\"redis\"}"},
        {"redis : x", "{}"},
        {"stopped", "{}"},
    };
    char line[8192], want[512];
    tally_log_init("tally-test", TALLY_LOG_INFO);
    tally_log_set_format(TALLY_LOG_JSON);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        capture(cases[i].msg, line, sizeof(line));
        snprintf(want, sizeof(want), ",\"fields\":%s}\n", cases[i].fields);
        size_t n = strlen(line), w = strlen(want);
        cr_assert(n > w && strcmp(line + n - w, want) == 0, "%s: %s", cases[i].msg, line);
    }
}
