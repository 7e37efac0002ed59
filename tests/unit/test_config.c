#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

/* Criterion runs each test in its own process, so setenv/chdir stay inside one test. */

struct cfg {
    char host[64];
    int port;
    char password[32];
    char url[128];
    int level;
};

#define F(field) offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field)
static const tally_opt_t opts[] = {
    {"SERVICE_HOST", TALLY_OPT_STRING, F(host), 0, 0, "0.0.0.0", "bind", tally_check_host},
    {"SERVICE_PORT", TALLY_OPT_INT, F(port), 1, 65535, "8080", "port", NULL},
    {"REDIS_PASSWORD", TALLY_OPT_SECRET, F(password), 0, 0, "", "password", NULL},
    {"MQTT_URL", TALLY_OPT_STRING, F(url), 0, 0, "tcp://127.0.0.1:1883", "broker", tally_check_mqtt_url},
    {"LOG_LEVEL", TALLY_OPT_LOGLEVEL, F(level), 0, 0, "info", "level", NULL},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static char err[512];

static int load(struct cfg *c, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    return tally_config_load(opts, NOPTS, c, argc, argv, "test", err, sizeof(err));
}

static void in_temp_dir(void)
{
    char tmpl[] = "/tmp/tally-config-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    cr_assert_eq(chdir(tmpl), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(config, defaults, .init = in_temp_dir)
{
    struct cfg c;
    char *argv[] = {"prog"};
    cr_assert_eq(load(&c, 1, argv), TALLY_OK, "%s", err);
    cr_assert_str_eq(c.host, "0.0.0.0");
    cr_assert_eq(c.port, 8080);
    cr_assert_str_eq(c.password, "");
    cr_assert_str_eq(c.url, "tcp://127.0.0.1:1883");
    cr_assert_eq(c.level, TALLY_LOG_INFO);
}

Test(config, precedence_flag_over_env_over_dotenv, .init = in_temp_dir)
{
    struct cfg c;
    write_file(
        ".env",
        "# comment\nSERVICE_PORT=1000\nexport LOG_LEVEL = \"debug\"\nUNRELATED=x\nSERVICE_HOST=h1 # note\n");
    char *argv1[] = {"prog"};
    cr_assert_eq(load(&c, 1, argv1), TALLY_OK, "%s", err);
    cr_assert_eq(c.port, 1000);
    cr_assert_eq(c.level, TALLY_LOG_DEBUG);
    cr_assert_str_eq(c.host, "h1");

    setenv("SERVICE_PORT", "2000", 1);
    cr_assert_eq(load(&c, 1, argv1), TALLY_OK, "%s", err);
    cr_assert_eq(c.port, 2000);

    char *argv2[] = {"prog", "--service-port", "3000", "--log-level=warn"};
    cr_assert_eq(load(&c, 4, argv2), TALLY_OK, "%s", err);
    cr_assert_eq(c.port, 3000);
    cr_assert_eq(c.level, TALLY_LOG_WARN);
}

Test(config, bad_values_name_the_variable, .init = in_temp_dir)
{
    struct cfg c;
    struct {
        const char *flag, *value, *expect;
    } cases[] = {
        {"--service-port", "abc", "SERVICE_PORT: must be an integer from 1 to 65535, got \"abc\""},
        {"--service-port", "0", "SERVICE_PORT: must be an integer"},
        {"--service-port", "65536", "SERVICE_PORT: must be an integer"},
        {"--service-port", "80 ", "SERVICE_PORT: must be an integer"},
        {"--service-port", "", "SERVICE_PORT: must be an integer"},
        {"--service-port", "99999999999999999999999", "SERVICE_PORT: must be an integer"},
        {"--log-level", "loud", "LOG_LEVEL: must be one of"},
        {"--mqtt-url", "http://x:1", "MQTT_URL: must look like tcp://host:1883"},
        {"--mqtt-url", "tcp://:1883", "MQTT_URL: must look like"},
        {"--mqtt-url", "tcp://h:0", "MQTT_URL: port must be"},
        {"--service-host", "bad host!", "SERVICE_HOST: must be an IP address or a host name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = {"prog", (char *)cases[i].flag, (char *)cases[i].value};
        cr_assert_eq(load(&c, 3, argv), TALLY_ERR, "accepted %s %s", cases[i].flag, cases[i].value);
        cr_assert(strstr(err, cases[i].expect) == err, "for %s '%s' got: %s", cases[i].flag, cases[i].value,
                  err);
        cr_assert(strchr(err, '\n') == NULL, "one line only");
    }
}

Test(config, env_errors_say_where, .init = in_temp_dir)
{
    struct cfg c;
    char *argv[] = {"prog"};
    setenv("SERVICE_PORT", "x", 1);
    cr_assert_eq(load(&c, 1, argv), TALLY_ERR);
    cr_assert(strstr(err, "SERVICE_PORT") == err && strstr(err, "(from environment)") != NULL, "%s", err);
}

Test(config, unknown_flags_and_arguments, .init = in_temp_dir)
{
    struct cfg c;
    char *a1[] = {"prog", "--no-such", "1"};
    cr_assert_eq(load(&c, 3, a1), TALLY_ERR);
    cr_assert(strstr(err, "unknown option --no-such") != NULL, "%s", err);
    char *a2[] = {"prog", "stray"};
    cr_assert_eq(load(&c, 2, a2), TALLY_ERR);
    cr_assert(strstr(err, "unexpected argument") != NULL, "%s", err);
    char *a3[] = {"prog", "--service-port"};
    cr_assert_eq(load(&c, 2, a3), TALLY_ERR);
    cr_assert(strstr(err, "needs a value") != NULL, "%s", err);
}

Test(config, mqtt_scheme_synonym_and_default_port, .init = in_temp_dir)
{
    struct cfg c;
    char *a1[] = {"prog", "--mqtt-url", "mqtt://broker"};
    cr_assert_eq(load(&c, 3, a1), TALLY_OK, "%s", err);
    cr_assert_str_eq(c.url, "tcp://broker:1883");
    char *a2[] = {"prog", "--mqtt-url", "tcp://[::1]:1999"};
    cr_assert_eq(load(&c, 3, a2), TALLY_OK, "%s", err);
    cr_assert_str_eq(c.url, "tcp://[::1]:1999");
}

Test(config, secret_from_file, .init = in_temp_dir)
{
    struct cfg c;
    write_file("pw", "s3cret\n");
    setenv("REDIS_PASSWORD_FILE", "pw", 1);
    char *argv[] = {"prog"};
    cr_assert_eq(load(&c, 1, argv), TALLY_OK, "%s", err);
    cr_assert_str_eq(c.password, "s3cret", "one trailing newline is dropped");

    char *a2[] = {"prog", "--redis-password", "flagpw"};
    cr_assert_eq(load(&c, 3, a2), TALLY_OK, "%s", err);
    cr_assert_str_eq(c.password, "flagpw", "a flag beats a file from the environment");

    setenv("REDIS_PASSWORD", "envpw", 1);
    cr_assert_eq(load(&c, 1, argv), TALLY_ERR);
    cr_assert(strstr(err, "REDIS_PASSWORD: set either REDIS_PASSWORD or REDIS_PASSWORD_FILE") == err, "%s",
              err);
}

Test(config, secret_file_missing_or_too_long, .init = in_temp_dir)
{
    struct cfg c;
    char *a1[] = {"prog", "--redis-password-file", "/nonexistent/pw"};
    cr_assert_eq(load(&c, 3, a1), TALLY_ERR);
    cr_assert(strstr(err, "REDIS_PASSWORD_FILE: cannot read") == err, "%s", err);
    write_file("long", "0123456789012345678901234567890123456789");
    char *a2[] = {"prog", "--redis-password-file", "long"};
    cr_assert_eq(load(&c, 3, a2), TALLY_ERR);
    cr_assert(strstr(err, "REDIS_PASSWORD") == err, "%s", err);
    cr_assert(strstr(err, "0123456789") == NULL, "a secret is never echoed: %s", err);
}

Test(config, env_file_flag_and_errors, .init = in_temp_dir)
{
    struct cfg c;
    write_file("other.env", "SERVICE_PORT='4000'\n");
    char *a1[] = {"prog", "--env-file", "other.env"};
    cr_assert_eq(load(&c, 3, a1), TALLY_OK, "%s", err);
    cr_assert_eq(c.port, 4000);

    char *a2[] = {"prog", "--env-file=missing.env"};
    cr_assert_eq(load(&c, 2, a2), TALLY_ERR);
    cr_assert(strstr(err, "ENV_FILE: cannot read") == err, "%s", err);

    write_file("bad.env", "SERVICE_PORT=1\nthis is not an assignment\n");
    setenv("ENV_FILE", "bad.env", 1);
    char *a3[] = {"prog"};
    cr_assert_eq(load(&c, 1, a3), TALLY_ERR);
    cr_assert(strstr(err, "ENV_FILE: bad.env: line 2: expected NAME=VALUE") == err, "%s", err);

    write_file("bad2.env", "SERVICE_PORT=nope\n");
    setenv("ENV_FILE", "bad2.env", 1);
    cr_assert_eq(load(&c, 1, a3), TALLY_ERR);
    cr_assert(strstr(err, "SERVICE_PORT: must be an integer") == err && strstr(err, "bad2.env") != NULL, "%s",
              err);
}

struct kv {
    char keys[8][32], values[8][64];
    int n;
};

static int collect(const char *key, const char *value, void *ud, char *e, size_t elen)
{
    struct kv *kv = ud;
    (void)e, (void)elen;
    snprintf(kv->keys[kv->n], sizeof(kv->keys[0]), "%s", key);
    snprintf(kv->values[kv->n], sizeof(kv->values[0]), "%s", value);
    kv->n++;
    return TALLY_OK;
}

Test(dotenv, syntax)
{
    struct kv kv = {0};
    char e[128];
    const char *text =
        "A=1\r\n  B = two words  \nC=\"q \\\"x\\\" \\n\" # c\nD='lit \\n'\nE=\nF=a#b\n\n# only\n";
    cr_assert_eq(tally_dotenv_parse(text, strlen(text), collect, &kv, e, sizeof(e)), TALLY_OK, "%s", e);
    cr_assert_eq(kv.n, 6);
    cr_assert_str_eq(kv.values[0], "1");
    cr_assert_str_eq(kv.keys[1], "B");
    cr_assert_str_eq(kv.values[1], "two words");
    cr_assert_str_eq(kv.values[2], "q \"x\" \n");
    cr_assert_str_eq(kv.values[3], "lit \\n");
    cr_assert_str_eq(kv.values[4], "");
    cr_assert_str_eq(kv.values[5], "a#b", "# starts a comment only after a space");
}

Test(dotenv, errors_name_the_line)
{
    struct kv kv = {0};
    char e[128];
    const char *bad[] = {"A=1\nB=\"open\n", "=1\n", "1A=2\n", "A 1\n", "A='x' y\n"};
    const char *expect[] = {"line 2: unterminated quote", "line 1: expected NAME=VALUE",
                            "line 1: expected NAME=VALUE", "line 1: expected NAME=VALUE",
                            "line 1: text after the closing quote"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kv.n = 0;
        cr_assert_eq(tally_dotenv_parse(bad[i], strlen(bad[i]), collect, &kv, e, sizeof(e)), TALLY_ERR);
        cr_assert_str_eq(e, expect[i]);
    }
}

Test(parse_ll, strict)
{
    long long v;
    cr_assert_eq(tally_parse_ll("42", 0, 100, &v), TALLY_OK);
    cr_assert_eq(v, 42);
    cr_assert_eq(tally_parse_ll("-5", -10, 10, &v), TALLY_OK);
    cr_assert_eq(v, -5);
    cr_assert_eq(tally_parse_ll("9223372036854775807", 0, 9223372036854775807LL, &v), TALLY_OK);
    cr_assert_eq(tally_parse_ll("-9223372036854775808", -9223372036854775807LL - 1, 0, &v), TALLY_OK);
    cr_assert_eq(tally_parse_ll("9223372036854775808", 0, 9223372036854775807LL, &v), TALLY_ERR);
    cr_assert_eq(tally_parse_ll("", 0, 10, &v), TALLY_ERR);
    cr_assert_eq(tally_parse_ll("-", 0, 10, &v), TALLY_ERR);
    cr_assert_eq(tally_parse_ll("1e3", 0, 10000, &v), TALLY_ERR);
    cr_assert_eq(tally_parse_ll("11", 0, 10, &v), TALLY_ERR);
}

Test(checks, instance_id)
{
    char why[128];
    char ok[] = "replica-1.local_x", bad[] = "a/b", plus[] = "a+b";
    cr_assert_eq(tally_check_instance_id(ok, sizeof(ok), why, sizeof(why)), TALLY_OK);
    cr_assert_eq(tally_check_instance_id(bad, sizeof(bad), why, sizeof(why)), TALLY_ERR);
    cr_assert_eq(tally_check_instance_id(plus, sizeof(plus), why, sizeof(why)), TALLY_ERR);
}

Test(config, help_exits_cleanly, .init = in_temp_dir)
{
    struct cfg c;
    char *argv[] = {"prog", "--service-port", "bad", "--help"};
    cr_redirect_stdout();
    cr_assert_eq(load(&c, 4, argv), TALLY_CONFIG_EXIT, "--help wins over bad values");
}

Test(config, start_reports_and_exits_2, .init = in_temp_dir)
{
    struct cfg c;
    char *bad[] = {"prog", "--service-port", "nope"};
    char *good[] = {"prog", "--log-level", "error"};
    cr_redirect_stderr();
    memset(&c, 0, sizeof(c));
    cr_assert_eq(tally_config_start("prog", opts, NOPTS, &c, 3, bad, "test", offsetof(struct cfg, level)), 2);
    memset(&c, 0, sizeof(c));
    cr_assert_eq(tally_config_start("prog", opts, NOPTS, &c, 3, good, "test", offsetof(struct cfg, level)),
                 -1);
    cr_assert_eq(tally_log_enabled(TALLY_LOG_WARN), 0, "the log threshold follows LOG_LEVEL");
    cr_assert_eq(tally_log_enabled(TALLY_LOG_ERROR), 1);
    fflush(stderr);
    cr_assert_stderr_eq_str(
        "prog: SERVICE_PORT: must be an integer from 1 to 65535, got \"nope\" (from --service-port)\n");
}

Test(config, default_instance_id)
{
    char id[65] = "given";
    tally_default_instance_id(id, sizeof(id), "fallback");
    cr_assert_str_eq(id, "given", "a set id is kept");
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    id[0] = '\0';
    tally_default_instance_id(id, sizeof(id), "fallback");
    cr_assert_str_eq(id, host[0] ? host : "fallback");
}
