/*
 * Seals of the readings: at start and then every [database] seal_every
 * this runs vialwatch.reading_seal_run() (sql/013_audit.sql) on a
 * connection of its own.  That one statement writes, for each sensor and
 * clinic-local day that has ended (plus the fridge's offline_after), the
 * count and sha256 of the day's readings, each seal also an audit row; a
 * day that readings stored later changed gets a new generation.  Several
 * daemons may run it at once: it takes the head of the audit chain first.
 * The seals made are logged; a failure is tried again at the next run.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "pgconn.h"
#include "seal.h"
#include "vialwatchd.h"
#include "xmalloc.h"

struct seal {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	int			 busy;		/* a run under way */
	struct event		 ev_run;
};

static void	seal_run(struct seal *);

/* Run again in ms milliseconds. */
static void
seal_timer(struct seal *sl, int64_t ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_del(&sl->ev_run);
	event_add(&sl->ev_run, &tv);
}

static void
seal_on_done(const PGresult *res, void *arg)
{
	struct seal	*sl = arg;
	int64_t		 every = sl->vw->conf->db_seal_every_ms;
	int		 i, n;

	sl->busy = 0;
	if (res == NULL) {
		seal_timer(sl, every);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(sl->pc, res, "sealing the readings");
		seal_timer(sl, every);
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		/* A new generation: readings came late for a sealed day. */
		if (strcmp(PQgetvalue(res, i, 2), "1") != 0)
			log_info("seal: sensor %s, %s sealed again (generation "
			    "%s, %s readings): readings came late",
			    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	}
	if (n > 0)
		log_info("seal: %d sensor-day%s sealed", n, n == 1 ? "" : "s");
	/* A full batch: more are due, after a breath for the readings. */
	seal_timer(sl, n >= SEAL_BATCH ? 1000 : every);
}

static void
seal_run(struct seal *sl)
{
	const char	*p[1];
	char		 limit[16];

	if (sl->busy || sl->vw->stopping || !pgconn_up(sl->pc))
		return;
	snprintf(limit, sizeof limit, "%d", SEAL_BATCH);
	p[0] = limit;
	if (pgconn_query(sl->pc, "select sensor_id, day, generation, n "
	    "from vialwatch.reading_seal_run($1::integer)", 1, p,
	    seal_on_done, sl) == 0)
		sl->busy = 1;
}

static void
seal_on_timer(evutil_socket_t fd, short events, void *arg)
{
	seal_run(arg);
}

static void
seal_up(void *arg)
{
	seal_run(arg);
}

struct seal *
seal_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = { seal_up, NULL, NULL };
	struct seal	*sl;

	sl = xcalloc(1, sizeof *sl);
	sl->vw = vw;
	sl->pc = pgconn_new(vw->base, &vw->conf, "seal", &events, sl);
	evtimer_assign(&sl->ev_run, vw->base, seal_on_timer, sl);
	return (sl);
}

void
seal_start(struct seal *sl)
{
	pgconn_start(sl->pc);
	seal_timer(sl, sl->vw->conf->db_seal_every_ms);
}

void
seal_reconfigure(struct seal *sl, const struct conf *old)
{
	pgconn_reconfigure(sl->pc, old);
	if (sl->vw->conf->db_seal_every_ms != old->db_seal_every_ms)
		seal_timer(sl, sl->vw->conf->db_seal_every_ms);
}

void
seal_free(struct seal *sl)
{
	if (sl == NULL)
		return;
	event_del(&sl->ev_run);
	pgconn_free(sl->pc);
	free(sl);
}
