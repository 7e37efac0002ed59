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

void tally_log(enum tally_log_level level, const char *fmt, ...)
{
    if (!tally_log_enabled(level))
        return;

    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s[%d]: ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 tally_log_level_name(level), log_progname, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write(2) per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
