/* Table-driven configuration shared by tally's programs.
 *
 * Each program describes its settings in a table of tally_opt_t: the environment name
 * (SERVICE_PORT), type, bounds, default and help. The flag is derived from the name
 * (--service-port). Values are applied in this order, later ones winning:
 *   defaults, the .env file (ENV_FILE or --env-file, default ./.env if present),
 *   the process environment, command-line flags.
 * A secret option NAME also accepts NAME_FILE (and --name-file): a file whose contents,
 * less one trailing newline, are the value. Any bad value stops loading with one line in
 * the error buffer naming the variable. */
#ifndef TALLY_CONFIG_H
#define TALLY_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum tally_opt_type {
    TALLY_OPT_STRING,   /* char[size] */
    TALLY_OPT_SECRET,   /* char[size], also settable through NAME_FILE; never echoed */
    TALLY_OPT_INT,      /* int, min..max */
    TALLY_OPT_LOGLEVEL, /* int: enum tally_log_level */
};

/** Checks and may rewrite a string value in place (buffer of @p size bytes). Returns
 *  TALLY_OK, or TALLY_ERR with a reason ("must be tcp://host:port") in @p why. */
typedef int (*tally_opt_check_fn)(char *value, size_t size, char *why, size_t whylen);

typedef struct tally_opt {
    const char *name; /* environment name; the flag is its lower-case, dashed form */
    enum tally_opt_type type;
    size_t offset; /* where the value lives in the program's config struct */
    size_t size;   /* string buffer size */
    long long min, max;
    const char *def; /* default, as text; NULL for empty */
    const char *help;
    tally_opt_check_fn check; /* optional, strings only */
} tally_opt_t;

/* tally_config_load's answers beyond TALLY_OK / TALLY_ERR. */
#define TALLY_CONFIG_EXIT 1 /* --help or --version was printed: exit 0 */

/** Fills @p cfg from the sources above. Returns TALLY_OK, TALLY_CONFIG_EXIT, or TALLY_ERR
 *  with one line in @p err (no newline) naming the variable. */
int tally_config_load(const tally_opt_t *opts, size_t nopts, void *cfg, int argc, char **argv,
                      const char *summary, char *err, size_t errlen);

/** Returns 1 if the command line asks for --check-config. */
int tally_config_wants_check(int argc, char **argv);
/** Prints every setting as NAME=value, one a line, in the table's order; a secret that is set
 *  shows as "(set, not shown)". */
void tally_config_print(FILE *out, const tally_opt_t *opts, size_t nopts, const void *cfg);
/** A program's start: loads the configuration (as tally_config_load) and sets the log
 *  threshold from the option at @p log_level_offset, and sends the log to the option named
 *  LOG_FILE if the table has one and it is set (with --check-config: only checks that the
 *  file can be written, and logs to stderr). Returns -1 to go on, or the exit status: 0
 *  after --help/--version, 2 after printing "<progname>: <error>" to stderr. */
int tally_config_start(const char *progname, const tally_opt_t *opts, size_t nopts, void *cfg, int argc,
                       char **argv, const char *summary, size_t log_level_offset);

/** Checks across settings that one row cannot express. Returns TALLY_OK, or TALLY_ERR with
 *  one line in @p why that names the variable. */
typedef int (*tally_settings_check_fn)(const void *cfg, char *why, size_t whylen);

/* What a program is, as its start needs it: the table of its settings and the defaults that
 * depend on other settings. The table has INSTANCE_ID, MQTT_CLIENT_ID and LOG_LEVEL rows. */
typedef struct tally_program {
    const char *name, *summary; /* "tally-replica"; the first line of --help */
    const tally_opt_t *opts;
    size_t nopts;
    const char *fallback_id;       /* an empty INSTANCE_ID: the hostname, else this */
    const char *client_prefix;     /* an empty MQTT_CLIENT_ID: this, then the instance id */
    tally_settings_check_fn check; /* optional */
} tally_program_t;

/** The start of both programs' main(): tally_config_start, the program's own check, the
 *  defaults above; then with --check-config prints the effective configuration to stdout and
 *  "<name>: configuration OK" to stderr and returns 0 (exit with it, having connected to
 *  nothing); else names the log's instance and returns -1 to go on. Any error: one line on
 *  stderr, returns 2. */
int tally_program_begin(const tally_program_t *prog, void *cfg, int argc, char **argv);

/* Longest LOG_FILE path. */
#define TALLY_LOG_FILE_MAX 512

/** On SIGHUP (from the program's loop, not the signal handler): loads the configuration
 *  again from the same sources as at start (the .env file may have changed) and applies its
 *  LOG_LEVEL and LOG_FILE (reopening the file, for log rotation); logs one line saying what
 *  it did. Nothing else changes: every other setting needs a restart. A configuration that
 *  no longer loads leaves everything as it was, with a warning. */
void tally_config_reload_log(void);

/** Fills an empty @p id (of @p size bytes) with this machine's hostname, or @p fallback. */
void tally_default_instance_id(char *id, size_t size, const char *fallback);

/** Called by tally_dotenv_parse for each assignment; returning TALLY_ERR stops parsing. */
typedef int (*tally_dotenv_cb)(const char *key, const char *value, void *ud, char *err, size_t errlen);

/** Parses .env text: KEY=VALUE lines, optional "export ", # comments, "double" quotes
 *  with \" \\ \n escapes, 'single' quotes taken literally. Returns TALLY_OK, or TALLY_ERR
 *  with "line N: reason" in @p err. */
int tally_dotenv_parse(const char *text, size_t len, tally_dotenv_cb cb, void *ud, char *err, size_t errlen);

/** Strict integer parsing: optional '-', decimal digits only, within min..max. */
int tally_parse_ll(const char *s, long long min, long long max, long long *out);

/* Checks shared by the programs' tables. */
/** A bind address: an IPv4/IPv6 literal or a host name. */
int tally_check_host(char *value, size_t size, char *why, size_t whylen);
/** An instance id usable in MQTT topics: 1-64 of [A-Za-z0-9._-]; empty means "hostname". */
int tally_check_instance_id(char *value, size_t size, char *why, size_t whylen);
/** SITE's longest name (docs/sites.md). */
#define TALLY_SITE_MAX 32
/** SITE: 1-32 of [a-z0-9-] (it goes into topics and Redis keys as it is); empty means one
 *  site, the behaviour without sites. */
int tally_check_site(char *value, size_t size, char *why, size_t whylen);
/** LOG_FORMAT: text or json. */
int tally_check_log_format(char *value, size_t size, char *why, size_t whylen);
/** tcp://host[:port] or mqtt://host[:port]; rewritten to tcp://host:port for paho. */
int tally_check_mqtt_url(char *value, size_t size, char *why, size_t whylen);

#endif
