/*
 * A thread that makes files durable, so that a slow disk holds up only
 * it and never the loop: the readings, the timers and the watchdog go on
 * while an fdatasync takes its time. The loop hands it file descriptors
 * (its own, or dup()s), which it syncs in order and closes.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "syncer.h"
#include "xmalloc.h"

#define SYNCER_JOBS	64

struct syncer_job {
	int	fd;
	int	full;
};

struct syncer {
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct syncer_job	 jobs[SYNCER_JOBS];
	int			 head;
	int			 len;		/* queued */
	int			 busy;		/* one taken, not done */
	int			 error;
	int			 quit;
};

/* One job: sync, close, and remember a failure. */
static int
syncer_run(const struct syncer_job *j)
{
	int	rc, error = 0;

	rc = j->full ? fsync(j->fd) : fdatasync(j->fd);
	if (rc == -1)
		error = errno;
	close(j->fd);
	return (error);
}

static void *
syncer_main(void *arg)
{
	struct syncer		*sy = arg;
	struct syncer_job	 j;
	int			 error;

	pthread_mutex_lock(&sy->lock);
	for (;;) {
		while (sy->len == 0 && !sy->quit)
			pthread_cond_wait(&sy->cond, &sy->lock);
		if (sy->len == 0)
			break;
		j = sy->jobs[sy->head];
		sy->head = (sy->head + 1) % SYNCER_JOBS;
		sy->len--;
		sy->busy = 1;
		pthread_mutex_unlock(&sy->lock);
		error = syncer_run(&j);
		pthread_mutex_lock(&sy->lock);
		sy->busy = 0;
		if (error != 0)
			sy->error = error;
	}
	pthread_mutex_unlock(&sy->lock);
	return (NULL);
}

struct syncer *
syncer_new(void)
{
	struct syncer	*sy;

	sy = xcalloc(1, sizeof *sy);
	pthread_mutex_init(&sy->lock, NULL);
	pthread_cond_init(&sy->cond, NULL);
	if (pthread_create(&sy->thread, NULL, syncer_main, sy) != 0)
		fatalx("syncer: cannot start a thread");
	return (sy);
}

void
syncer_free(struct syncer *sy)
{
	if (sy == NULL)
		return;
	pthread_mutex_lock(&sy->lock);
	sy->quit = 1;
	pthread_cond_signal(&sy->cond);
	pthread_mutex_unlock(&sy->lock);
	pthread_join(sy->thread, NULL);
	pthread_cond_destroy(&sy->cond);
	pthread_mutex_destroy(&sy->lock);
	free(sy);
}

void
syncer_push(struct syncer *sy, int fd, int full)
{
	struct syncer_job	j = { fd, full };
	int			error;

	pthread_mutex_lock(&sy->lock);
	if (sy->len < SYNCER_JOBS) {
		sy->jobs[(sy->head + sy->len) % SYNCER_JOBS] = j;
		sy->len++;
		pthread_cond_signal(&sy->cond);
		pthread_mutex_unlock(&sy->lock);
		return;
	}
	pthread_mutex_unlock(&sy->lock);
	/* So far behind that waiting here is the lesser harm. */
	if ((error = syncer_run(&j)) != 0) {
		pthread_mutex_lock(&sy->lock);
		sy->error = error;
		pthread_mutex_unlock(&sy->lock);
	}
}

int
syncer_pending(struct syncer *sy)
{
	int	n;

	pthread_mutex_lock(&sy->lock);
	n = sy->len + sy->busy;
	pthread_mutex_unlock(&sy->lock);
	return (n);
}

int
syncer_error(struct syncer *sy)
{
	int	error;

	pthread_mutex_lock(&sy->lock);
	error = sy->error;
	sy->error = 0;
	pthread_mutex_unlock(&sy->lock);
	return (error);
}
