/* Leveled logging to stderr, one line per event.
 *
 * Levels, lowest first: debug (per-connection detail), info (state changes: connected,
 * ready, shutting down), warn (a fault that tally recovers from by itself), error (a
 * fault that needs an operator). A call below the threshold returns before formatting. */
#ifndef TALLY_LOG_H
#define TALLY_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum tally_log_level { TALLY_LOG_DEBUG = 0, TALLY_LOG_INFO, TALLY_LOG_WARN, TALLY_LOG_ERROR };

/** Sends every later line (and anything else written to stderr) to @p path, appended, or
 *  back to the original stderr when @p path is NULL or empty. Called again with the same
 *  path it reopens the file (after a log rotation). Returns TALLY_OK, or TALLY_ERR with the
 *  reason in @p why (the old destination stays). */
int tally_log_open(const char *path, char *why, size_t whylen);
/** Sets the threshold and the program name printed on each line (not copied). */
void tally_log_init(const char *progname, enum tally_log_level level);
/* How each line is written: text for people, or one JSON object a line for log shippers. */
enum tally_log_format { TALLY_LOG_TEXT = 0, TALLY_LOG_JSON };

/** Sets the line format (LOG_FORMAT); safe while other threads log. */
void tally_log_set_format(enum tally_log_format format);
/** Returns the format named by @p name ("text", "json") or -1. */
int tally_log_format_from_name(const char *name);
/** Sets the instance id JSON lines carry (copied; before the threads start). */
void tally_log_set_instance(const char *instance);
/** Sets the threshold only; safe while other threads log. */
void tally_log_set_level(enum tally_log_level level);
/** Returns the level named by @p name ("debug", "info", "warn", "error") or -1. */
int tally_log_level_from_name(const char *name);
/** Returns the name of @p level. */
const char *tally_log_level_name(enum tally_log_level level);
/** Returns non-zero when a message at @p level would be printed. */
int tally_log_enabled(enum tally_log_level level);
/** Prints one line: time, level, program, message. Thread-safe (one write per line). In JSON:
 *  {"time":"<UTC, ms>","level":"...","program":"...","pid":N,"instance":"...","message":"...",
 *  "fields":{"subsystem":"...","subject":"..."}} (fields from a message that starts
 *  "<subsystem>[ <subject>]: "; else {}),
 *  every byte outside printable ASCII escaped, so a line is always valid JSON. */
void tally_log(enum tally_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Returns 1 for the 1st, 2nd, 4th, 8th... occurrence of an event counted in @p n, 0 for
 *  the others: a fault that repeats stays visible in the log without flooding it. */
static inline int tally_log_every_power_of_two(unsigned long long n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

#define tally_debug(...) tally_log(TALLY_LOG_DEBUG, __VA_ARGS__)
#define tally_info(...) tally_log(TALLY_LOG_INFO, __VA_ARGS__)
#define tally_warn(...) tally_log(TALLY_LOG_WARN, __VA_ARGS__)
#define tally_error(...) tally_log(TALLY_LOG_ERROR, __VA_ARGS__)

#endif
