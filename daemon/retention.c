/*
 * Retention of the readings: at start, on a reload and then daily this
 * runs vialwatch.reading_partitions_ahead() (sql/010_staying_loud.sql) on
 * a connection of its own.  That one statement creates the month
 * partitions of vialwatch.reading up to RETENTION_AHEAD_MONTHS ahead and
 * notes those whose whole month ended more than [database] retention ago;
 * it takes an advisory lock, so several daemons may run it at once.  The
 * daemon never drops a partition: vialwatchctl partitions --apply, run by
 * an admin, does, a day after it was first noted.  What it did and what is
 * expiring is logged; a failure is tried again an hour later.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "conf.h"
#include "log.h"
#include "pgconn.h"
#include "retention.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define RETENTION_EVERY_S	86400
#define RETENTION_RETRY_S	3600

struct retention {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	int			 busy;		/* a run under way */
	struct event		 ev_run;
};

static void	retention_run(struct retention *);

/* Run again in s seconds. */
static void
retention_timer(struct retention *rt, int s)
{
	struct timeval	tv = { s, 0 };

	event_del(&rt->ev_run);
	event_add(&rt->ev_run, &tv);
}

/* Say so when the retention is shorter than the CDC asks. */
static void
retention_check(const struct conf *c)
{
	if (c->db_retention_ms < CONF_CDC_RETENTION_MS)
		log_warnx("retention: [database] retention is %lld days, "
		    "below the CDC's minimum of 3 years for temperature logs",
		    (long long)(c->db_retention_ms / 86400000));
}

static void
retention_on_done(const PGresult *res, void *arg)
{
	struct retention	*rt = arg;
	int			 i, n;

	rt->busy = 0;
	if (res == NULL) {
		retention_timer(rt, RETENTION_RETRY_S);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(rt->pc, res, "maintaining the reading partitions");
		retention_timer(rt, RETENTION_RETRY_S);
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		if (strcmp(PQgetvalue(res, i, 0), "expiring") == 0)
			log_warnx("retention: partition %s (%s) is past "
			    "[database] retention; vialwatchctl partitions "
			    "--apply drops it from %s", PQgetvalue(res, i, 1),
			    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
		else
			log_info("retention: %s partition %s (%s)",
			    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			    PQgetvalue(res, i, 2));
	}
	if (n == 0)
		log_debug("retention: reading partitions up to date");
	retention_timer(rt, RETENTION_EVERY_S);
}

static void
retention_run(struct retention *rt)
{
	const struct conf	*c = rt->vw->conf;
	const char		*p[2];
	char			 ms[32], ahead[16];

	if (rt->busy || rt->vw->stopping || !pgconn_up(rt->pc))
		return;
	snprintf(ms, sizeof ms, "%lld", (long long)c->db_retention_ms);
	snprintf(ahead, sizeof ahead, "%d", RETENTION_AHEAD_MONTHS);
	p[0] = ms;
	p[1] = ahead;
	if (pgconn_query(rt->pc, "select action, partition, month, "
	    "to_char(drop_after at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || "
	    "' UTC' from vialwatch.reading_partitions_ahead("
	    "$1::bigint * interval '1 millisecond', $2::integer)", 2, p,
	    retention_on_done, rt) == 0)
		rt->busy = 1;
}

static void
retention_on_timer(evutil_socket_t fd, short events, void *arg)
{
	retention_run(arg);
}

static void
retention_up(void *arg)
{
	retention_run(arg);
}

struct retention *
retention_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = {
		retention_up, NULL, NULL
	};
	struct retention	*rt;

	rt = xcalloc(1, sizeof *rt);
	rt->vw = vw;
	rt->pc = pgconn_new(vw->base, &vw->conf, "retention", &events, rt);
	evtimer_assign(&rt->ev_run, vw->base, retention_on_timer, rt);
	return (rt);
}

void
retention_start(struct retention *rt)
{
	retention_check(rt->vw->conf);
	pgconn_start(rt->pc);
	retention_timer(rt, RETENTION_EVERY_S);
}

void
retention_reconfigure(struct retention *rt, const struct conf *old)
{
	pgconn_reconfigure(rt->pc, old);
	if (rt->vw->conf->db_retention_ms != old->db_retention_ms) {
		retention_check(rt->vw->conf);
		retention_run(rt);
	}
}

void
retention_free(struct retention *rt)
{
	if (rt == NULL)
		return;
	event_del(&rt->ev_run);
	pgconn_free(rt->pc);
	free(rt);
}
