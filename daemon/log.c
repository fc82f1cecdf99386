/* Logging: to stderr, or structured to journald when stderr is the journal. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "log.h"

static const char	*log_name = "vialwatch";
static int		 log_level = LOG_LEVEL_INFO;
static int		 log_journal;

static const char *log_level_names[] = { "error", "warning", "info", "debug" };
static const int log_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

static void	log_vemit(int, const char *, const char *, const char *,
		    va_list) __attribute__((format(printf, 4, 0)));

/* True when systemd connected stderr to the journal (JOURNAL_STREAM). */
static int
log_stderr_is_journal(void)
{
	struct stat	 sb;
	const char	*e;
	unsigned long	 dev, ino;

	if ((e = getenv("JOURNAL_STREAM")) == NULL)
		return (0);
	if (sscanf(e, "%lu:%lu", &dev, &ino) != 2)
		return (0);
	if (fstat(fileno(stderr), &sb) == -1)
		return (0);
	return (sb.st_dev == dev && sb.st_ino == ino);
}

/* Set the program name and level; pick journald or stderr. */
void
log_init(const char *name, int level)
{
	log_name = name;
	log_level = level;
	log_journal = log_stderr_is_journal();
}

void
log_set_level(int level)
{
	log_level = level;
}

/* Is debug logging on? Lets callers skip work for it. */
int
log_debugging(void)
{
	return (log_level >= LOG_LEVEL_DEBUG);
}

/* Level name to number, -1 if unknown. */
int
log_level_parse(const char *s)
{
	size_t	i;

	for (i = 0; i < sizeof log_level_names / sizeof log_level_names[0]; i++) {
		if (strcasecmp(s, log_level_names[i]) == 0)
			return ((int)i);
	}
	return (-1);
}

/*
 * Write one line at level, with errno text if given. A sensor key goes into
 * the journald field SENSOR_KEY; the message text names it already.
 */
static void
log_vemit(int level, const char *key, const char *err, const char *fmt,
    va_list ap)
{
	char	msg[2048];

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
#ifdef HAVE_SYSTEMD
	if (log_journal) {
		sd_journal_send("MESSAGE=%s%s%s", msg, err ? ": " : "",
		    err ? err : "",
		    "PRIORITY=%d", log_priorities[level],
		    "SYSLOG_IDENTIFIER=%s", log_name,
		    key ? "SENSOR_KEY=%s" : NULL, key, NULL);
		return;
	}
#else
	(void)log_priorities;
#endif
	fprintf(stderr, "%s: %s%s%s\n", log_level_names[level], msg,
	    err ? ": " : "", err ? err : "");
	fflush(stderr);
}

#define LOG_FN(fn, level, with_errno)					\
void									\
fn(const char *fmt, ...)						\
{									\
	va_list	ap;							\
	int	saved = errno;						\
									\
	va_start(ap, fmt);						\
	log_vemit(level, NULL, with_errno ? strerror(saved) : NULL,	\
	    fmt, ap);							\
	va_end(ap);							\
	errno = saved;							\
}
LOG_FN(log_warn, LOG_LEVEL_WARNING, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARNING, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

/* A warning about one sensor: journald gets its key as SENSOR_KEY. */
void
slog_warnx(const char *key, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_WARNING, key, NULL, fmt, ap);
	va_end(ap);
}

/* Log an error with errno and exit; start-up only. */
void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, NULL, strerror(saved), fmt, ap);
	va_end(ap);
	exit(1);
}

/* Log an error and exit; start-up only. */
void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, NULL, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * Rate limit: returns 1 if a line may be logged now (at most burst a
 * minute); when a new minute starts, reports how many were held back.
 */
int
log_ratelimit(struct ratelimit *rl, int burst, long long now_ms)
{
	if (now_ms - rl->window_start >= 60000) {
		if (rl->suppressed > 0)
			log_warnx("%d similar lines suppressed in the last "
			    "minute", rl->suppressed);
		rl->window_start = now_ms;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < burst) {
		rl->count++;
		return (1);
	}
	rl->suppressed++;
	return (0);
}
