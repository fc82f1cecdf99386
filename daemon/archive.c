/*
 * The outbox's archive: at start and then daily, on a connection of its
 * own, vialwatch.notification_archive_move() (sql/010_staying_loud.sql)
 * moves sent and dead notifications older than [alerts]
 * keep_notifications into vialwatch.notification_archive, in batches of
 * ARCHIVE_BATCH rows, one statement each, until a batch comes back short.
 * The hot table then holds what is pending and what is recent, and the
 * queries of the outbox stay cheap however long the daemon runs.  Several
 * daemons may run it at once (the rows are taken SKIP LOCKED).  A failure
 * is tried again an hour later.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "archive.h"
#include "clock.h"
#include "conf.h"
#include "log.h"
#include "pgconn.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define ARCHIVE_EVERY_S		86400
#define ARCHIVE_RETRY_S		3600
#define ARCHIVE_BATCH		10000

struct archive {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	int			 busy;		/* a batch under way */
	long long		 moved;		/* by this run so far */
	struct event		 ev_run;
};

static void	archive_batch(struct archive *);

/* Run again in s seconds. */
static void
archive_timer(struct archive *ar, int s)
{
	struct timeval	tv = { s, 0 };

	event_del(&ar->ev_run);
	event_add(&ar->ev_run, &tv);
}

static void
archive_on_moved(const PGresult *res, void *arg)
{
	struct archive	*ar = arg;
	long long	 n;

	ar->busy = 0;
	if (res == NULL) {
		archive_timer(ar, ARCHIVE_RETRY_S);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(ar->pc, res, "archiving notifications");
		archive_timer(ar, ARCHIVE_RETRY_S);
		return;
	}
	n = pgconn_int(res, 0, 0);
	ar->moved += n;
	if (n >= ARCHIVE_BATCH) {
		archive_batch(ar);
		return;
	}
	if (ar->moved > 0)
		log_info("archive: %lld sent or dead notifications older than "
		    "%lld days moved to vialwatch.notification_archive",
		    ar->moved, (long long)(ar->vw->conf->
		    alerts_keep_notifications_ms / 86400000));
	else
		log_debug("archive: no notification to archive");
	archive_timer(ar, ARCHIVE_EVERY_S);
}

/* Move one batch. */
static void
archive_batch(struct archive *ar)
{
	const struct conf	*c = ar->vw->conf;
	const char		*p[2];
	char			 ms[32], limit[16];

	if (ar->busy || ar->vw->stopping || !pgconn_up(ar->pc))
		return;
	snprintf(ms, sizeof ms, "%lld",
	    (long long)c->alerts_keep_notifications_ms);
	snprintf(limit, sizeof limit, "%d", ARCHIVE_BATCH);
	p[0] = ms;
	p[1] = limit;
	if (pgconn_query(ar->pc, "select vialwatch.notification_archive_move("
	    "$1::bigint * interval '1 millisecond', $2::integer)", 2, p,
	    archive_on_moved, ar) == 0)
		ar->busy = 1;
}

/* A run: batches until the archive has all it should. */
static void
archive_run(struct archive *ar)
{
	if (ar->busy)
		return;
	ar->moved = 0;
	archive_batch(ar);
}

static void
archive_on_timer(evutil_socket_t fd, short events, void *arg)
{
	archive_run(arg);
}

static void
archive_up(void *arg)
{
	archive_run(arg);
}

struct archive *
archive_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = {
		archive_up, NULL, NULL
	};
	struct archive	*ar;

	ar = xcalloc(1, sizeof *ar);
	ar->vw = vw;
	ar->pc = pgconn_new(vw->base, &vw->conf, "archive", &events, ar);
	evtimer_assign(&ar->ev_run, vw->base, archive_on_timer, ar);
	return (ar);
}

void
archive_start(struct archive *ar)
{
	pgconn_start(ar->pc);
	archive_timer(ar, ARCHIVE_EVERY_S);
}

void
archive_reconfigure(struct archive *ar, const struct conf *old)
{
	pgconn_reconfigure(ar->pc, old);
	if (ar->vw->conf->alerts_keep_notifications_ms !=
	    old->alerts_keep_notifications_ms)
		archive_run(ar);
}

void
archive_free(struct archive *ar)
{
	if (ar == NULL)
		return;
	event_del(&ar->ev_run);
	pgconn_free(ar->pc);
	free(ar);
}
