/* log.c: log_* API to stderr or, under systemd, structured to journald. */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

#define LOG_LEVEL_ERROR		0
#define LOG_LEVEL_WARNING	1
#define LOG_LEVEL_INFO		2
#define LOG_LEVEL_DEBUG		3

#define PRINTFLIKE(a, b) __attribute__((format(printf, a, b)))

void	log_init(const char *, int);
void	log_set_level(int);
int	log_debugging(void);
int	log_level_parse(const char *);

void	log_warn(const char *, ...) PRINTFLIKE(1, 2);
void	log_warnx(const char *, ...) PRINTFLIKE(1, 2);
void	log_info(const char *, ...) PRINTFLIKE(1, 2);
void	log_debug(const char *, ...) PRINTFLIKE(1, 2);
/* Per-sensor lines: the text names the key; journald gets SENSOR_KEY too. */
void	slog_warnx(const char *, const char *, ...) PRINTFLIKE(2, 3);

/* Start-up only. */
void	fatal(const char *, ...) PRINTFLIKE(1, 2)
	    __attribute__((noreturn));
void	fatalx(const char *, ...) PRINTFLIKE(1, 2)
	    __attribute__((noreturn));

/*
 * A limiter for repeated lines: at most burst lines per period, then one
 * line saying how many were suppressed.
 */
struct ratelimit {
	long long	window_start;	/* monotonic ms */
	int		count;
	int		suppressed;
};
int	log_ratelimit(struct ratelimit *, int, long long);

#endif
