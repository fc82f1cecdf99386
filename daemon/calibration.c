/*
 * Calibration warnings: on connecting and then hourly this runs
 * vialwatch.calibration_warn() (sql/015_calibration.sql) on a connection
 * of its own, with the daemon's clock.  It queues the emails to each
 * clinic's admin contacts 90, 30 and 7 days before a probe's certificate
 * lapses and each day after; their dedupe keys make each one go once,
 * however often it runs and however many daemons run it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "calibration.h"
#include "log.h"
#include "pgconn.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define CALIBRATION_EVERY_S	3600
#define CALIBRATION_RETRY_S	300

struct calibration {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	int			 busy;
	struct event		 ev_run;
};

static void
calibration_timer(struct calibration *cb, int s)
{
	struct timeval	tv = { s, 0 };

	event_del(&cb->ev_run);
	event_add(&cb->ev_run, &tv);
}

static void
calibration_on_done(const PGresult *res, void *arg)
{
	struct calibration	*cb = arg;
	long long		 n;

	cb->busy = 0;
	if (res == NULL) {
		calibration_timer(cb, CALIBRATION_RETRY_S);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(cb->pc, res, "queueing calibration warnings");
		calibration_timer(cb, CALIBRATION_RETRY_S);
		return;
	}
	if ((n = pgconn_int(res, 0, 0)) > 0)
		log_info("calibration: %lld warning%s queued", n,
		    n == 1 ? "" : "s");
	else
		log_debug("calibration: nothing to warn of");
	calibration_timer(cb, CALIBRATION_EVERY_S);
}

/* Queue the warnings due at the daemon's time. */
static void
calibration_run(struct calibration *cb)
{
	const char	*p[1];
	char		 now[32];

	if (cb->busy || cb->vw->stopping || !pgconn_up(cb->pc))
		return;
	snprintf(now, sizeof now, "%lld", (long long)(clock_now_us() / 1000000));
	p[0] = now;
	if (pgconn_query(cb->pc, "select vialwatch.calibration_warn("
	    "to_timestamp($1::bigint))", 1, p, calibration_on_done, cb) == 0)
		cb->busy = 1;
}

static void
calibration_on_timer(evutil_socket_t fd, short events, void *arg)
{
	calibration_run(arg);
}

static void
calibration_up(void *arg)
{
	calibration_run(arg);
}

struct calibration *
calibration_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = {
		calibration_up, NULL, NULL
	};
	struct calibration	*cb;

	cb = xcalloc(1, sizeof *cb);
	cb->vw = vw;
	cb->pc = pgconn_new(vw->base, &vw->conf, "calibration", &events, cb);
	evtimer_assign(&cb->ev_run, vw->base, calibration_on_timer, cb);
	return (cb);
}

void
calibration_start(struct calibration *cb)
{
	pgconn_start(cb->pc);
	calibration_timer(cb, CALIBRATION_EVERY_S);
}

void
calibration_reconfigure(struct calibration *cb, const struct conf *old)
{
	pgconn_reconfigure(cb->pc, old);
}

void
calibration_free(struct calibration *cb)
{
	if (cb == NULL)
		return;
	event_del(&cb->ev_run);
	pgconn_free(cb->pc);
	free(cb);
}
