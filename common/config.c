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

int tally_parse_ll(const char *s, long long min, long long max, long long *out)
{
    const char *p = s;
    int neg = 0;
    unsigned long long v = 0;
    if (*p == '-')
        neg = 1, p++;
    if (*p == '\0')
        return TALLY_ERR;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return TALLY_ERR;
        if (v > (unsigned long long)LLONG_MAX / 10)
            return TALLY_ERR;
        v = v * 10 + (unsigned long long)(*p - '0');
        if (v > (unsigned long long)LLONG_MAX + (unsigned long long)neg)
            return TALLY_ERR;
    }
    long long r = neg ? (long long)(0 - v) : (long long)v;
    if (r < min || r > max)
        return TALLY_ERR;
    *out = r;
    return TALLY_OK;
}

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

int tally_dotenv_parse(const char *text, size_t len, tally_dotenv_cb cb, void *ud, char *err, size_t errlen)
{
    size_t i = 0;
    int lineno = 0;
    char *value = malloc(len + 1);
    char key[128];
    int rc = TALLY_ERR;
    if (value == NULL) {
        snprintf(err, errlen, "out of memory");
        return TALLY_ERR;
    }
    while (i < len) {
        lineno++;
        size_t eol = i;
        while (eol < len && text[eol] != '\n')
            eol++;
        size_t p = i, end = eol;
        i = eol + 1;
        if (end > p && text[end - 1] == '\r')
            end--;
        while (p < end && (text[p] == ' ' || text[p] == '\t'))
            p++;
        if (p == end || text[p] == '#')
            continue;
        if (end - p > 7 && memcmp(text + p, "export", 6) == 0 &&
            (text[p + 6] == ' ' || text[p + 6] == '\t')) {
            p += 7;
            while (p < end && (text[p] == ' ' || text[p] == '\t'))
                p++;
        }
        size_t k = 0;
        if (p < end && (isalpha((unsigned char)text[p]) || text[p] == '_')) {
            while (p < end && (isalnum((unsigned char)text[p]) || text[p] == '_')) {
                if (k + 1 >= sizeof(key)) {
                    snprintf(err, errlen, "line %d: name too long", lineno);
                    goto out;
                }
                key[k++] = text[p++];
            }
        }
        key[k] = '\0';
        while (p < end && (text[p] == ' ' || text[p] == '\t'))
            p++;
        if (k == 0 || p == end || text[p] != '=') {
            snprintf(err, errlen, "line %d: expected NAME=VALUE", lineno);
            goto out;
        }
        p++;
        while (p < end && (text[p] == ' ' || text[p] == '\t'))
            p++;
        size_t v = 0;
        if (p < end && (text[p] == '"' || text[p] == '\'')) {
            char q = text[p++];
            int closed = 0;
            while (p < end) {
                char c = text[p++];
                if (c == q) {
                    closed = 1;
                    break;
                }
                if (q == '"' && c == '\\' && p < end) {
                    c = text[p++];
                    c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
                }
                value[v++] = c;
            }
            if (!closed) {
                snprintf(err, errlen, "line %d: unterminated quote", lineno);
                goto out;
            }
            while (p < end && (text[p] == ' ' || text[p] == '\t'))
                p++;
            if (p < end && text[p] != '#') {
                snprintf(err, errlen, "line %d: text after the closing quote", lineno);
                goto out;
            }
        } else {
            while (p < end && !(text[p] == '#' && v > 0 && (value[v - 1] == ' ' || value[v - 1] == '\t')))
                value[v++] = text[p++];
            while (v > 0 && (value[v - 1] == ' ' || value[v - 1] == '\t'))
                v--;
        }
        value[v] = '\0';
        if (memchr(value, '\0', v) != NULL) {
            snprintf(err, errlen, "line %d: NUL byte in value", lineno);
            goto out;
        }
        if (cb(key, value, ud, err, errlen) != TALLY_OK)
            goto out;
    }
    rc = TALLY_OK;
out:
    free(value);
    return rc;
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

void tally_config_usage(FILE *out, const char *progname, const char *summary, const tally_opt_t *opts,
                        size_t nopts)
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

int tally_config_load(const tally_opt_t *opts, size_t nopts, void *cfg, int argc, char **argv,
                      const char *summary, char *err, size_t errlen)
{
    struct loader ld = {opts, nopts, cfg, NULL, LVL_DEFAULT, "default"};
    const char *progname = argc > 0 ? argv[0] : "tally";
    const char *env_file = NULL;
    int rc = TALLY_ERR;
    char flag[80];

    if (strrchr(progname, '/') != NULL)
        progname = strrchr(progname, '/') + 1;
    ld.secrets = calloc(nopts ? nopts : 1, sizeof(*ld.secrets));
    if (ld.secrets == NULL) {
        snprintf(err, errlen, "out of memory");
        return TALLY_ERR;
    }

    /* --help and --version first: they must work whatever else is wrong. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            tally_config_usage(stdout, progname, summary, opts, nopts);
            rc = TALLY_CONFIG_EXIT;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", progname, TALLY_VERSION);
            rc = TALLY_CONFIG_EXIT;
            goto out;
        }
    }

    for (size_t i = 0; i < nopts; i++) {
        if (set_value(&ld, &opts[i], opts[i].def ? opts[i].def : "", err, errlen) != TALLY_OK)
            goto out;
        ld.secrets[i].value_level = LVL_DEFAULT;
    }

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc)
            env_file = argv[i + 1];
        else if (strncmp(argv[i], "--env-file=", 11) == 0)
            env_file = argv[i] + 11;
    }
    if (env_file == NULL)
        env_file = getenv("ENV_FILE");
    if (load_dotenv(&ld, env_file ? env_file : ".env", env_file != NULL, err, errlen) != TALLY_OK)
        goto out;

    ld.level = LVL_ENV;
    for (size_t i = 0; i < nopts; i++) {
        const tally_opt_t *o = &opts[i];
        const char *v = getenv(o->name);
        ld.source = "environment";
        if (v != NULL && assign(&ld, o, 0, v, err, errlen) != TALLY_OK)
            goto out;
        if (o->type == TALLY_OPT_SECRET) {
            char fname[80];
            snprintf(fname, sizeof(fname), "%s_FILE", o->name);
            if ((v = getenv(fname)) != NULL && assign(&ld, o, 1, v, err, errlen) != TALLY_OK)
                goto out;
        }
    }

    ld.level = LVL_FLAG;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.64s\" (options are --name value; see --help)",
                     arg);
            goto out;
        }
        const char *eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "option %.64s needs a value (see --help)", arg);
            goto out;
        }
        if (namelen == 10 && strncmp(arg, "--env-file", 10) == 0)
            continue;
        const tally_opt_t *found = NULL;
        int is_file = 0;
        for (size_t k = 0; k < nopts && found == NULL; k++) {
            flag_name(opts[k].name, flag, sizeof(flag));
            size_t fl = strlen(flag);
            if (namelen == fl + 2 && strncmp(arg + 2, flag, fl) == 0)
                found = &opts[k];
            else if (opts[k].type == TALLY_OPT_SECRET && namelen == fl + 7 &&
                     strncmp(arg + 2, flag, fl) == 0 && strncmp(arg + 2 + fl, "-file", 5) == 0)
                found = &opts[k], is_file = 1;
        }
        if (found == NULL) {
            snprintf(err, errlen, "unknown option %.*s (see --help)", (int)(namelen > 64 ? 64 : namelen),
                     arg);
            goto out;
        }
        snprintf(flag, sizeof(flag), "%.*s", (int)(namelen > 70 ? 70 : namelen), arg);
        ld.source = flag;
        if (assign(&ld, found, is_file, value, err, errlen) != TALLY_OK)
            goto out;
    }

    rc = resolve_secrets(&ld, err, errlen);
out:
    for (size_t i = 0; i < nopts; i++)
        free(ld.secrets[i].file);
    free(ld.secrets);
    return rc;
}

int tally_check_host(char *value, size_t size, char *why, size_t whylen)
{
    (void)size;
    unsigned char buf[16];
    if (inet_pton(AF_INET, value, buf) == 1 || inet_pton(AF_INET6, value, buf) == 1)
        return TALLY_OK;
    size_t n = strlen(value);
    if (n == 0 || n > 253) {
        snprintf(why, whylen, "must be an IP address or a host name");
        return TALLY_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_')) {
            snprintf(why, whylen, "must be an IP address or a host name");
            return TALLY_ERR;
        }
    }
    return TALLY_OK;
}

int tally_check_instance_id(char *value, size_t size, char *why, size_t whylen)
{
    (void)size;
    size_t n = strlen(value);
    if (n > 64) {
        snprintf(why, whylen, "must be at most 64 characters");
        return TALLY_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_')) {
            snprintf(why, whylen, "may only hold letters, digits, '.', '-' and '_'");
            return TALLY_ERR;
        }
    }
    return TALLY_OK;
}

int tally_check_mqtt_url(char *value, size_t size, char *why, size_t whylen)
{
    const char *rest;
    if (strncmp(value, "tcp://", 6) == 0)
        rest = value + 6;
    else if (strncmp(value, "mqtt://", 7) == 0)
        rest = value + 7;
    else {
        snprintf(why, whylen, "must look like tcp://host:1883 (or mqtt://host:1883)");
        return TALLY_ERR;
    }
    char host[256];
    long long port = 1883;
    const char *colon = strrchr(rest, ':');
    const char *close = strrchr(rest, ']');
    size_t hostlen =
        colon != NULL && (close == NULL || colon > close) ? (size_t)(colon - rest) : strlen(rest);
    if (hostlen == 0 || hostlen >= sizeof(host) || strchr(rest, '/') != NULL || strchr(rest, '@') != NULL) {
        snprintf(why, whylen, "must look like tcp://host:1883 (or mqtt://host:1883)");
        return TALLY_ERR;
    }
    memcpy(host, rest, hostlen);
    host[hostlen] = '\0';
    if (hostlen < strlen(rest) && tally_parse_ll(rest + hostlen + 1, 1, 65535, &port) != TALLY_OK) {
        snprintf(why, whylen, "port must be an integer from 1 to 65535");
        return TALLY_ERR;
    }
    char *h = host;
    if (h[0] == '[' && hostlen > 2 && h[hostlen - 1] == ']')
        h[hostlen - 1] = '\0', h++;
    char hwhy[64];
    if (tally_check_host(h, sizeof(host), hwhy, sizeof(hwhy)) != TALLY_OK) {
        snprintf(why, whylen, "host must be an IP address or a host name");
        return TALLY_ERR;
    }
    int n = snprintf(value, size, "tcp://%s%s%s:%lld", h == host ? "" : "[", h, h == host ? "" : "]", port);
    if (n < 0 || (size_t)n >= size) {
        snprintf(why, whylen, "too long");
        return TALLY_ERR;
    }
    return TALLY_OK;
}

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

static const tally_opt_t *started_opt(const char *name)
{
    for (size_t i = 0; i < started.nopts; i++)
        if (strcmp(started.opts[i].name, name) == 0)
            return &started.opts[i];
    return NULL;
}

/* Takes LOG_LEVEL and LOG_FILE from a loaded configuration: opens the file, sets the level. */
static int apply_log_settings(const void *cfg, char *why, size_t whylen)
{
    const tally_opt_t *level = started_opt("LOG_LEVEL"), *file = started_opt("LOG_FILE");
    const char *path = file != NULL ? (const char *)cfg + file->offset : "";
    if (tally_log_open(path, why, whylen) != 0)
        return TALLY_ERR;
    tally_strlcpy(started.log_file, path, sizeof(started.log_file));
    if (level != NULL)
        started.log_level = *(const int *)(const void *)((const char *)cfg + level->offset);
    /* Only the threshold: other threads may be logging (tally_log_init also sets the name). */
    tally_log_set_level((enum tally_log_level)started.log_level);
    return TALLY_OK;
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
    if (apply_log_settings(cfg, why, sizeof(why)) != TALLY_OK) {
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

void tally_default_instance_id(char *id, size_t size, const char *fallback)
{
    char host[256] = "";
    if (id[0] != '\0')
        return;
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        tally_strlcpy(host, fallback, sizeof(host));
    tally_strlcpy(id, host, size);
}
