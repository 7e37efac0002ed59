#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "tally";
static atomic_int log_threshold = TALLY_LOG_INFO;
static atomic_int log_format = TALLY_LOG_TEXT;
static char log_instance[160];
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int tally_log_open(const char *path, char *why, size_t whylen)
{
    /* The first call keeps the original stderr, to go back to when LOG_FILE is unset. */
    static int saved_stderr = -2;
    if (saved_stderr == -2)
        saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    int fd = path != NULL && path[0] != '\0' ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)
             : saved_stderr >= 0             ? dup(saved_stderr)
                                             : -1;
    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", path != NULL && path[0] != '\0' ? path : "stderr",
                 strerror(errno));
        return -1;
    }
    /* dup2 swaps the file under stderr in one step: a line written meanwhile goes to one
     * file or the other, whole. */
    int rc = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0;
    if (rc != 0)
        snprintf(why, whylen, "cannot redirect stderr: %s", strerror(errno));
    close(fd);
    return rc;
}

void tally_log_init(const char *progname, enum tally_log_level level)
{
    if (progname != NULL)
        log_progname = progname;
    atomic_store(&log_threshold, (int)level);
}

void tally_log_set_format(enum tally_log_format format)
{
    atomic_store(&log_format, (int)format);
}

int tally_log_format_from_name(const char *name)
{
    return strcmp(name, "text") == 0 ? TALLY_LOG_TEXT : strcmp(name, "json") == 0 ? TALLY_LOG_JSON : -1;
}

void tally_log_set_instance(const char *instance)
{
    snprintf(log_instance, sizeof(log_instance), "%s", instance);
}

void tally_log_set_level(enum tally_log_level level)
{
    atomic_store(&log_threshold, (int)level);
}

int tally_log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    if (strcmp(name, "warning") == 0)
        return TALLY_LOG_WARN;
    return -1;
}

const char *tally_log_level_name(enum tally_log_level level)
{
    if ((int)level < 0 || (size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
        return "?";
    return level_names[level];
}

int tally_log_enabled(enum tally_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

/* Room a JSON line keeps after its message for the fields (json_fields). */
#define JSON_FIELDS_ROOM (2 * 6 * 256 + 64)

/* Appends @p src to @p out (of @p size, at *len) as the inside of a JSON string. */
static void json_append(char *out, size_t size, size_t *len, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0' && *len + 7 < size; p++) {
        if (*p == '"' || *p == '\\') {
            out[(*len)++] = '\\';
            out[(*len)++] = (char)*p;
        } else if (*p >= 0x20 && *p < 0x7f) {
            out[(*len)++] = (char)*p;
        } else { /* control characters, and bytes that may not be UTF-8 */
            memcpy(out + *len, "\\u00", 4);
            out[*len + 4] = hex[*p >> 4];
            out[*len + 5] = hex[*p & 15];
            *len += 6;
        }
    }
}

/* The head of a message that follows the log's convention, "<subsystem>[ <subject>]: text"
 * ("redis 10.0.0.5:6379: connection lost", "lease tally:publisher:leader: released",
 * "presence: ..."): a lower-case word, then at most one token without spaces. Returns 1 and
 * the two spans (the subject's may be empty), or 0 for a message without one. */
static int message_head(const char *msg, size_t *word, size_t *subject_at, size_t *subject_len)
{
    size_t i = 0;
    while (msg[i] >= 'a' && msg[i] <= 'z')
        i++;
    if (i == 0)
        return 0;
    *word = i;
    *subject_at = i;
    *subject_len = 0;
    if (msg[i] == ':' && msg[i + 1] == ' ')
        return 1;
    if (msg[i] != ' ')
        return 0;
    const char *end = strstr(msg + i + 1, ": ");
    if (end == NULL || end == msg + i + 1 || memchr(msg + i + 1, ' ', (size_t)(end - msg - i - 1)) != NULL)
        return 0;
    *subject_at = i + 1;
    *subject_len = (size_t)(end - msg) - i - 1;
    return 1;
}

/* Appends ,"fields":{...}: the message's subsystem and subject, as message_head finds them. */
static void json_fields(char *out, size_t size, size_t *len, const char *msg)
{
    char part[256];
    size_t word, at, n;
    memcpy(out + *len, ",\"fields\":{", 11);
    *len += 11;
    if (message_head(msg, &word, &at, &n) && word < sizeof(part) && n < sizeof(part)) {
        memcpy(part, msg, word);
        part[word] = '\0';
        memcpy(out + *len, "\"subsystem\":\"", 13);
        *len += 13;
        json_append(out, size, len, part);
        out[(*len)++] = '"';
        if (n > 0) {
            memcpy(part, msg + at, n);
            part[n] = '\0';
            memcpy(out + *len, ",\"subject\":\"", 12);
            *len += 12;
            json_append(out, size, len, part);
            out[(*len)++] = '"';
        }
    }
    out[(*len)++] = '}';
}

/* The JSON line of one event (tally_log). Returns its length, newline included. @p size
 * leaves room for the fields (at most 2 * 6 * 255 bytes and 40 more) after the message. */
static size_t json_line(char *line, size_t size, const char *when, enum tally_log_level level,
                        const char *msg)
{
    size_t len = (size_t)snprintf(line, size, "{\"time\":\"%s\",\"level\":\"%s\",\"program\":\"", when,
                                  tally_log_level_name(level));
    json_append(line, size, &len, log_progname);
    len += (size_t)snprintf(line + len, size - len, "\",\"pid\":%d,\"instance\":\"", (int)getpid());
    json_append(line, size, &len, log_instance);
    memcpy(line + len, "\",\"message\":\"", 13);
    len += 13;
    json_append(line, size - JSON_FIELDS_ROOM, &len, msg);
    line[len++] = '"';
    json_fields(line, size - 3, &len, msg);
    memcpy(line + len, "}\n", 2);
    return len + 2;
}

void tally_log(enum tally_log_level level, const char *fmt, ...)
{
    if (!tally_log_enabled(level))
        return;
    char when[64], msg[1024], line[6 * 1024 + 512 + JSON_FIELDS_ROOM];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len;
    if (atomic_load_explicit(&log_format, memory_order_relaxed) == TALLY_LOG_JSON) {
        len = json_line(line, sizeof(line), when, level, msg);
    } else {
        int n = snprintf(line, sizeof(line), "%s %-5s %s[%d]: %s\n", when, tally_log_level_name(level),
                         log_progname, (int)getpid(), msg);
        if (n <= 0)
            return;
        len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
        line[len - 1] = '\n';
    }
    /* One write(2) per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
