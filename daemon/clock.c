/*
 * The clocks every part of the daemon reads, and the backoff of its
 * reconnects and retries.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/time.h>

#include <stdlib.h>
#include <time.h>

#include "clock.h"

#define CLOCK_BACKOFF_MIN_MS	500
#define CLOCK_BACKOFF_MAX_MS	30000

int64_t
clock_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

int64_t
clock_mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * The wait before a reconnect or a retry: *ms, the state, doubles from
 * CLOCK_BACKOFF_MIN_MS up to CLOCK_BACKOFF_MAX_MS; the wait is between
 * half and all of it, so that daemons restarted together do not retry
 * together.
 */
int64_t
clock_backoff(int64_t *ms, struct timeval *tv)
{
	int64_t	delay;

	*ms = *ms == 0 ? CLOCK_BACKOFF_MIN_MS : *ms * 2;
	if (*ms > CLOCK_BACKOFF_MAX_MS)
		*ms = CLOCK_BACKOFF_MAX_MS;
	delay = *ms / 2 + random() % (*ms / 2 + 1);
	tv->tv_sec = delay / 1000;
	tv->tv_usec = (delay % 1000) * 1000;
	return (delay);
}
