/* The option table loader (config.h): defaults, then .env, then the environment, then
 * flags; NAME_FILE secrets resolved last; --help. The .env parser is dotenv.c, the value
 * checks config_checks.c, the program start and SIGHUP program.c. */
#include "config.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where a value came from; a higher level wins. */
enum level { LVL_NONE = 0, LVL_DEFAULT, LVL_DOTENV, LVL_ENV, LVL_FLAG };

/* Per-load bookkeeping for secrets: the level that set the value and the level and path
 * of a NAME_FILE. Resolved once all sources are read. */
struct secret_state {
    enum level value_level, file_level;
    char *file;
};

struct loader {
    const tally_opt_t *opts;
    size_t nopts;
    void *cfg;
    struct secret_state *secrets;
    enum level level;
    const char *source; /* for messages: ".env", "environment", "--flag" */
};

static void flag_name(const char *name, char *out, size_t size)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < size; i++)
        out[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
}

static int set_value(struct loader *ld, const tally_opt_t *o, const char *value, char *err, size_t errlen)
{
    char *field = (char *)ld->cfg + o->offset;
    char why[160] = "";
    switch (o->type) {
    case TALLY_OPT_INT: {
        long long v;
        if (tally_parse_ll(value, o->min, o->max, &v) != TALLY_OK) {
            snprintf(err, errlen, "%s: must be an integer from %lld to %lld, got \"%.64s\" (from %s)",
                     o->name, o->min, o->max, value, ld->source);
            return TALLY_ERR;
        }
        *(int *)(void *)field = (int)v;
        return TALLY_OK;
    }
    case TALLY_OPT_LOGLEVEL: {
        int lv = tally_log_level_from_name(value);
        if (lv < 0) {
            snprintf(err, errlen, "%s: must be one of debug, info, warn, error, got \"%.64s\" (from %s)",
                     o->name, value, ld->source);
            return TALLY_ERR;
        }
        *(int *)(void *)field = lv;
        return TALLY_OK;
    }
    case TALLY_OPT_STRING:
    case TALLY_OPT_SECRET:
        if (strlen(value) >= o->size) {
            snprintf(err, errlen, "%s: longer than %zu characters (from %s)", o->name, o->size - 1,
                     ld->source);
            return TALLY_ERR;
        }
        memcpy(field, value, strlen(value) + 1);
        if (o->check != NULL && o->check(field, o->size, why, sizeof(why)) != TALLY_OK) {
            if (o->type == TALLY_OPT_SECRET)
                snprintf(err, errlen, "%s: %s (from %s)", o->name, why, ld->source);
            else
                snprintf(err, errlen, "%s: %s, got \"%.64s\" (from %s)", o->name, why, value, ld->source);
            return TALLY_ERR;
        }
        return TALLY_OK;
    }
    snprintf(err, errlen, "%s: unknown option type", o->name);
    return TALLY_ERR;
}

/* Finds the option named @p key, or its _FILE twin (sets *is_file). */
static const tally_opt_t *find_opt(struct loader *ld, const char *key, size_t keylen, int *is_file)
{
    for (size_t i = 0; i < ld->nopts; i++) {
        const tally_opt_t *o = &ld->opts[i];
        size_t n = strlen(o->name);
        if (keylen == n && memcmp(key, o->name, n) == 0) {
            *is_file = 0;
            return o;
        }
        if (o->type == TALLY_OPT_SECRET && keylen == n + 5 && memcmp(key, o->name, n) == 0 &&
            memcmp(key + n, "_FILE", 5) == 0) {
            *is_file = 1;
            return o;
        }
    }
    return NULL;
}

static int assign(struct loader *ld, const tally_opt_t *o, int is_file, const char *value, char *err,
                  size_t errlen)
{
    struct secret_state *s = &ld->secrets[o - ld->opts];
    if (is_file) {
        char *copy = strdup(value);
        if (copy == NULL) {
            snprintf(err, errlen, "%s_FILE: out of memory", o->name);
            return TALLY_ERR;
        }
        free(s->file);
        s->file = copy;
        s->file_level = ld->level;
        return TALLY_OK;
    }
    if (set_value(ld, o, value, err, errlen) != TALLY_OK)
        return TALLY_ERR;
    s->value_level = ld->level;
    return TALLY_OK;
}

static int dotenv_assign(const char *key, const char *value, void *ud, char *err, size_t errlen)
{
    struct loader *ld = ud;
    int is_file;
    const tally_opt_t *o = find_opt(ld, key, strlen(key), &is_file);
    if (o == NULL)
        return TALLY_OK; /* a shared .env may hold other programs' settings */
    return assign(ld, o, is_file, value, err, errlen);
}

static int read_file(const char *path, char **out, size_t max, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, whylen, "cannot read \"%.200s\": %s", path, strerror(errno));
        return TALLY_ERR;
    }
    char *buf = malloc(max + 1);
    size_t n = buf != NULL ? fread(buf, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad || n > max) {
        snprintf(why, whylen, "cannot read \"%.200s\": %s", path,
                 buf == NULL ? "out of memory"
                 : bad       ? "read error"
                             : "file too large");
        free(buf);
        return TALLY_ERR;
    }
    buf[n] = '\0';
    *out = buf;
    return TALLY_OK;
}

static int load_dotenv(struct loader *ld, const char *path, int required, char *err, size_t errlen)
{
    char *text = NULL, why[300];
    FILE *probe = fopen(path, "rb");
    if (probe == NULL && !required)
        return TALLY_OK;
    if (probe != NULL)
        fclose(probe);
    if (read_file(path, &text, 1 << 20, why, sizeof(why)) != TALLY_OK) {
        snprintf(err, errlen, "ENV_FILE: %s", why);
        return TALLY_ERR;
    }
    ld->level = LVL_DOTENV;
    ld->source = path;
    char perr[256] = "";
    int rc = tally_dotenv_parse(text, strlen(text), dotenv_assign, ld, perr, sizeof(perr));
    if (rc != TALLY_OK && strncmp(perr, "line ", 5) == 0)
        snprintf(err, errlen, "ENV_FILE: %.200s: %s", path, perr);
    else if (rc != TALLY_OK)
        snprintf(err, errlen, "%s", perr);
    free(text);
    return rc;
}

static int resolve_secrets(struct loader *ld, char *err, size_t errlen)
{
    for (size_t i = 0; i < ld->nopts; i++) {
        const tally_opt_t *o = &ld->opts[i];
        struct secret_state *s = &ld->secrets[i];
        if (o->type != TALLY_OPT_SECRET || s->file_level == LVL_NONE || s->file_level < s->value_level)
            continue;
        if (s->file_level == s->value_level) {
            snprintf(err, errlen, "%s: set either %s or %s_FILE, not both", o->name, o->name, o->name);
            return TALLY_ERR;
        }
        char *text = NULL, why[300];
        if (read_file(s->file, &text, o->size, why, sizeof(why)) != TALLY_OK) {
            snprintf(err, errlen, "%s_FILE: %s", o->name, why);
            return TALLY_ERR;
        }
        size_t n = strlen(text);
        if (n > 0 && text[n - 1] == '\n')
            text[--n] = '\0';
        if (n > 0 && text[n - 1] == '\r')
            text[--n] = '\0';
        ld->source = s->file;
        int rc = set_value(ld, o, text, err, errlen);
        free(text);
        if (rc != TALLY_OK)
            return TALLY_ERR;
    }
    return TALLY_OK;
}

/* The --help text: every option with its flag, default and help. */
static void usage(FILE *out, const char *progname, const char *summary, const tally_opt_t *opts, size_t nopts)
{
    char flag[64];
    fprintf(out, "Usage: %s [--option value]...\n%s\n\n", progname, summary);
    fprintf(out, "Each option is also read from the environment variable shown, and from a .env file\n"
                 "(ENV_FILE or --env-file; default ./.env if present). Flags win over the environment,\n"
                 "the environment over .env.\n\n");
    for (size_t i = 0; i < nopts; i++) {
        const tally_opt_t *o = &opts[i];
        flag_name(o->name, flag, sizeof(flag));
        fprintf(out, "  --%-22s %-20s %s", flag, o->name, o->help);
        if (o->type == TALLY_OPT_INT)
            fprintf(out, " (%lld..%lld)", o->min, o->max);
        if (o->def != NULL && o->def[0] != '\0')
            fprintf(out, " [default: %s]", o->def);
        fputc('\n', out);
        if (o->type == TALLY_OPT_SECRET) {
            char fname[80];
            snprintf(fname, sizeof(fname), "%s-file", flag);
            int pad = 15 - (int)strlen(o->name);
            fprintf(out, "  --%-22s %s_FILE%*s read %s from this file (e.g. a Docker secret)\n", fname,
                    o->name, pad > 0 ? pad : 0, "", o->name);
        }
    }
    fprintf(out, "  --%-22s %-20s %s\n", "env-file", "ENV_FILE", "the .env file to read");
    fprintf(out, "  --%-22s %-20s %s\n", "help", "", "print this help and exit");
    fprintf(out, "  --%-22s %-20s %s\n", "version", "", "print the version and exit");
}

/* --help, --version (printed here: TALLY_CONFIG_EXIT) and --check-config (remembered):
 * looked for first, they must work whatever else is wrong. */
static int info_flags(const tally_opt_t *opts, size_t nopts, int argc, char **argv, const char *progname,
                      const char *summary)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, progname, summary, opts, nopts);
            return TALLY_CONFIG_EXIT;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", progname, TALLY_VERSION);
            return TALLY_CONFIG_EXIT;
        }
    }
    return TALLY_OK;
}

/* The flag is --check-config, or --env-file, whose value was read before the others. */
static int flag_is_not_an_option(const char *arg, size_t namelen)
{
    return (namelen == 10 && strncmp(arg, "--env-file", 10) == 0) ||
           (namelen == 14 && strncmp(arg, "--check-config", 14) == 0);
}

/* The option a --flag (or --flag-file for a secret) names, or NULL. */
static const tally_opt_t *find_flag(const tally_opt_t *opts, size_t nopts, const char *arg, size_t namelen,
                                    int *is_file)
{
    char flag[80];
    for (size_t k = 0; k < nopts; k++) {
        flag_name(opts[k].name, flag, sizeof(flag));
        size_t fl = strlen(flag);
        *is_file = 0;
        if (namelen == fl + 2 && strncmp(arg + 2, flag, fl) == 0)
            return &opts[k];
        if (opts[k].type == TALLY_OPT_SECRET && namelen == fl + 7 && strncmp(arg + 2, flag, fl) == 0 &&
            strncmp(arg + 2 + fl, "-file", 5) == 0) {
            *is_file = 1;
            return &opts[k];
        }
    }
    return NULL;
}

/* The flags, which win over everything else. */
static int load_flags(struct loader *ld, int argc, char **argv, char *err, size_t errlen)
{
    char source[80];
    ld->level = LVL_FLAG;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.64s\" (options are --name value; see --help)",
                     arg);
            return TALLY_ERR;
        }
        const char *eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (namelen == 14 && strncmp(arg, "--check-config", 14) == 0 && eq == NULL)
            continue; /* takes no value */
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "option %.64s needs a value (see --help)", arg);
            return TALLY_ERR;
        }
        if (flag_is_not_an_option(arg, namelen))
            continue;
        int is_file;
        const tally_opt_t *found = find_flag(ld->opts, ld->nopts, arg, namelen, &is_file);
        if (found == NULL) {
            snprintf(err, errlen, "unknown option %.*s (see --help)", (int)(namelen > 64 ? 64 : namelen),
                     arg);
            return TALLY_ERR;
        }
        snprintf(source, sizeof(source), "%.*s", (int)(namelen > 70 ? 70 : namelen), arg);
        ld->source = source;
        if (assign(ld, found, is_file, value, err, errlen) != TALLY_OK)
            return TALLY_ERR;
    }
    return TALLY_OK;
}

/* The environment: each NAME, and NAME_FILE for a secret. */
static int load_environment(struct loader *ld, char *err, size_t errlen)
{
    ld->level = LVL_ENV;
    ld->source = "environment";
    for (size_t i = 0; i < ld->nopts; i++) {
        const tally_opt_t *o = &ld->opts[i];
        const char *v = getenv(o->name);
        if (v != NULL && assign(ld, o, 0, v, err, errlen) != TALLY_OK)
            return TALLY_ERR;
        if (o->type == TALLY_OPT_SECRET) {
            char fname[80];
            snprintf(fname, sizeof(fname), "%s_FILE", o->name);
            if ((v = getenv(fname)) != NULL && assign(ld, o, 1, v, err, errlen) != TALLY_OK)
                return TALLY_ERR;
        }
    }
    return TALLY_OK;
}

/* The defaults, then the .env file (--env-file, ENV_FILE, or ./.env if present). */
static int load_defaults_and_dotenv(struct loader *ld, int argc, char **argv, char *err, size_t errlen)
{
    const char *env_file = NULL;
    for (size_t i = 0; i < ld->nopts; i++) {
        if (set_value(ld, &ld->opts[i], ld->opts[i].def ? ld->opts[i].def : "", err, errlen) != TALLY_OK)
            return TALLY_ERR;
        ld->secrets[i].value_level = LVL_DEFAULT;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc)
            env_file = argv[i + 1];
        else if (strncmp(argv[i], "--env-file=", 11) == 0)
            env_file = argv[i] + 11;
    }
    if (env_file == NULL)
        env_file = getenv("ENV_FILE");
    return load_dotenv(ld, env_file ? env_file : ".env", env_file != NULL, err, errlen);
}

int tally_config_load(const tally_opt_t *opts, size_t nopts, void *cfg, int argc, char **argv,
                      const char *summary, char *err, size_t errlen)
{
    struct loader ld = {opts, nopts, cfg, NULL, LVL_DEFAULT, "default"};
    const char *progname = argc > 0 ? argv[0] : "tally";
    if (strrchr(progname, '/') != NULL)
        progname = strrchr(progname, '/') + 1;
    int rc = info_flags(opts, nopts, argc, argv, progname, summary);
    if (rc != TALLY_OK)
        return rc;
    ld.secrets = calloc(nopts ? nopts : 1, sizeof(*ld.secrets));
    if (ld.secrets == NULL) {
        snprintf(err, errlen, "out of memory");
        return TALLY_ERR;
    }
    rc = TALLY_ERR;
    if (load_defaults_and_dotenv(&ld, argc, argv, err, errlen) == TALLY_OK &&
        load_environment(&ld, err, errlen) == TALLY_OK &&
        load_flags(&ld, argc, argv, err, errlen) == TALLY_OK)
        rc = resolve_secrets(&ld, err, errlen);
    for (size_t i = 0; i < nopts; i++)
        free(ld.secrets[i].file);
    free(ld.secrets);
    return rc;
}

int tally_config_wants_check(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--check-config") == 0)
            return 1;
    return 0;
}

void tally_config_print(FILE *out, const tally_opt_t *opts, size_t nopts, const void *cfg)
{
    for (size_t i = 0; i < nopts; i++) {
        const tally_opt_t *o = &opts[i];
        const char *field = (const char *)cfg + o->offset;
        int n =
            o->type == TALLY_OPT_INT || o->type == TALLY_OPT_LOGLEVEL ? *(const int *)(const void *)field : 0;
        if (o->type == TALLY_OPT_INT)
            fprintf(out, "%s=%d\n", o->name, n);
        else if (o->type == TALLY_OPT_LOGLEVEL)
            fprintf(out, "%s=%s\n", o->name, tally_log_level_name((enum tally_log_level)n));
        else if (o->type == TALLY_OPT_SECRET)
            fprintf(out, "%s=%s\n", o->name, field[0] != '\0' ? "(set, not shown)" : "");
        else
            fprintf(out, "%s=%s\n", o->name, field);
    }
}
