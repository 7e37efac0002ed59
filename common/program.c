/* A program's start and its SIGHUP (config.h: tally_program_begin, tally_config_reload_log):
 * load the configuration, open the log, apply LOG_LEVEL, and load it again on SIGHUP. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "settings.h"
#include "util.h"

/* What tally_config_start was given, for tally_config_reload_log. */
static struct {
    const char *progname, *summary;
    const tally_opt_t *opts;
    size_t nopts, cfg_size;
    int argc;
    char **argv;
    int log_level;
    char log_file[TALLY_LOG_FILE_MAX];
} started;

static const tally_opt_t *table_row(const tally_opt_t *opts, size_t nopts, const char *name)
{
    for (size_t i = 0; i < nopts; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static const tally_opt_t *started_opt(const char *name)
{
    return table_row(started.opts, started.nopts, name);
}

/* Takes LOG_LEVEL and LOG_FILE from a loaded configuration: opens the file, sets the level. */
static int apply_log_settings(const void *cfg, char *why, size_t whylen)
{
    const tally_opt_t *level = started_opt("LOG_LEVEL"), *file = started_opt("LOG_FILE"),
                      *format = started_opt("LOG_FORMAT");
    const char *path = file != NULL ? (const char *)cfg + file->offset : "";
    if (tally_log_open(path, why, whylen) != 0)
        return TALLY_ERR;
    tally_strlcpy(started.log_file, path, sizeof(started.log_file));
    if (level != NULL)
        started.log_level = *(const int *)(const void *)((const char *)cfg + level->offset);
    /* Only the threshold: other threads may be logging (tally_log_init also sets the name). */
    tally_log_set_level((enum tally_log_level)started.log_level);
    if (format != NULL)
        tally_log_set_format(
            (enum tally_log_format)tally_log_format_from_name((const char *)cfg + format->offset));
    return TALLY_OK;
}

/* --check-config: LOG_FILE must be writable (or creatable), but nothing is opened. */
static int check_log_file(const void *cfg, char *why, size_t whylen)
{
    const tally_opt_t *file = started_opt("LOG_FILE");
    const char *path = file != NULL ? (const char *)cfg + file->offset : "";
    if (path[0] == '\0' || access(path, W_OK) == 0)
        return TALLY_OK;
    char dir[TALLY_LOG_FILE_MAX];
    tally_strlcpy(dir, path, sizeof(dir));
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        tally_strlcpy(dir, ".", sizeof(dir));
    if (access(path, F_OK) != 0 && access(dir, W_OK) == 0)
        return TALLY_OK;
    snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
    return TALLY_ERR;
}

int tally_config_start(const char *progname, const tally_opt_t *opts, size_t nopts, void *cfg, int argc,
                       char **argv, const char *summary, size_t log_level_offset)
{
    char err[512];
    tally_log_init(progname, TALLY_LOG_INFO);
    int rc = tally_config_load(opts, nopts, cfg, argc, argv, summary, err, sizeof(err));
    if (rc == TALLY_CONFIG_EXIT)
        return 0;
    if (rc != TALLY_OK) {
        fprintf(stderr, "%s: %s\n", progname, err);
        return 2;
    }
    started.progname = progname;
    started.summary = summary;
    started.opts = opts;
    started.nopts = nopts;
    started.argc = argc;
    started.argv = argv;
    started.log_level = *(int *)(void *)((char *)cfg + log_level_offset);
    for (size_t i = 0; i < nopts; i++) {
        size_t end = opts[i].offset + (opts[i].type == TALLY_OPT_INT || opts[i].type == TALLY_OPT_LOGLEVEL
                                           ? sizeof(int)
                                           : opts[i].size);
        if (end > started.cfg_size)
            started.cfg_size = end;
    }
    char why[400];
    if (tally_config_wants_check(argc, argv) ? check_log_file(cfg, why, sizeof(why)) != TALLY_OK
                                             : apply_log_settings(cfg, why, sizeof(why)) != TALLY_OK) {
        fprintf(stderr, "%s: LOG_FILE: %s\n", progname, why);
        return 2;
    }
    return -1;
}

void tally_config_reload_log(void)
{
    char err[512];
    int was = started.log_level;
    if (started.opts == NULL)
        return;
    void *fresh = calloc(1, started.cfg_size);
    if (fresh == NULL)
        return;
    if (tally_config_load(started.opts, started.nopts, fresh, started.argc, started.argv, started.summary,
                          err, sizeof(err)) != TALLY_OK) {
        /* A bad edit must not stop a running service: keep what runs (the file reopened all
         * the same, for a rotation), say why. */
        char why[256];
        tally_log_open(started.log_file, why, sizeof(why));
        tally_warn("SIGHUP: the configuration no longer loads (%s); log level and file unchanged", err);
    } else if (apply_log_settings(fresh, err, sizeof(err)) != TALLY_OK) {
        tally_warn("SIGHUP: LOG_FILE: %s; log level and file unchanged", err);
    } else {
        tally_info("SIGHUP: log reopened (%s), level %s (was %s)",
                   started.log_file[0] != '\0' ? started.log_file : "stderr",
                   tally_log_level_name((enum tally_log_level)started.log_level),
                   tally_log_level_name((enum tally_log_level)was));
    }
    free(fresh);
}

int tally_program_begin(const tally_program_t *prog, void *cfg, int argc, char **argv)
{
    const tally_opt_t *level = table_row(prog->opts, prog->nopts, "LOG_LEVEL"),
                      *id = table_row(prog->opts, prog->nopts, "INSTANCE_ID"),
                      *client = table_row(prog->opts, prog->nopts, "MQTT_CLIENT_ID");
    int rc = tally_config_start(prog->name, prog->opts, prog->nopts, cfg, argc, argv, prog->summary,
                                level->offset);
    if (rc >= 0)
        return rc;
    char why[512];
    if (prog->check != NULL && prog->check(cfg, why, sizeof(why)) != TALLY_OK) {
        fprintf(stderr, "%s: %s\n", prog->name, why);
        return 2;
    }
    char *instance_id = (char *)cfg + id->offset, *client_id = (char *)cfg + client->offset;
    tally_default_instance_id(instance_id, id->size, prog->fallback_id);
    if (client_id[0] == '\0') {
        char made[TALLY_ID_SIZE + 64];
        snprintf(made, sizeof(made), "%s%.64s", prog->client_prefix, instance_id);
        tally_strlcpy(client_id, made, client->size);
    }
    if (!tally_config_wants_check(argc, argv)) {
        tally_log_set_instance(instance_id);
        return -1;
    }
    tally_config_print(stdout, prog->opts, prog->nopts, cfg);
    fflush(stdout);
    fprintf(stderr, "%s: configuration OK\n", prog->name);
    return 0;
}
