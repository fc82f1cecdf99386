/*
 * The workday min/max check: the scheduler of its emails.
 *
 * Every [checks] scan_interval this runs vialwatch.check_scan()
 * (sql/014_record.sql) with the daemon's clock and [checks] grace.  That
 * statement works out each clinic's local day and time in its own zone
 * (PostgreSQL's zone data, DST-correct) and queues, in the outbox: the
 * day's check email to the contacts with role "checks" from check_from on
 * a workday that is no holiday; a reminder to them when a fridge is still
 * not checked at check_by + grace; an email to the admin contacts at
 * check_by + 2 * grace; and the weekly reminder of excursions not closed
 * out.  Each email has a dedupe key naming the clinic, the day (or the
 * week) and the contact, so that several daemons, restarts and scans send
 * each once.  outbox.c puts the signed link of the check page (pages-check.c)
 * into the text when it sends it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "checks.h"
#include "clock.h"
#include "conf.h"
#include "log.h"
#include "pgconn.h"
#include "vialwatchd.h"
#include "xmalloc.h"

struct checks {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	int			 busy;		/* a scan under way */
	struct event		 ev_scan;
};

static void
checks_on_scanned(const PGresult *res, void *arg)
{
	struct checks	*ck = arg;
	int		 i;

	ck->busy = 0;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(ck->pc, res, "scanning the workday checks");
		return;
	}
	for (i = 0; i < PQntuples(res); i++) {
		log_info("checks: clinic %s, %s: %s email queued for %s "
		    "contact(s)", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	}
}

static void
checks_scan(struct checks *ck)
{
	const struct conf	*c = ck->vw->conf;
	const char		*p[2];
	char			 now[32], grace[48];

	if (ck->busy || ck->vw->stopping || !pgconn_up(ck->pc))
		return;
	snprintf(now, sizeof now, "%.6f", clock_now_us() / 1e6);
	snprintf(grace, sizeof grace, "%lld milliseconds",
	    (long long)c->checks_grace_ms);
	p[0] = now;
	p[1] = grace;
	if (pgconn_query(ck->pc, "select clinic_id, day, what, queued from "
	    "vialwatch.check_scan(to_timestamp($1::float8), $2::interval)",
	    2, p, checks_on_scanned, ck) == 0)
		ck->busy = 1;
}

static void
checks_on_timer(evutil_socket_t fd, short events, void *arg)
{
	checks_scan(arg);
}

static void
checks_up(void *arg)
{
	checks_scan(arg);
}

static void
checks_timer(struct checks *ck)
{
	const struct conf	*c = ck->vw->conf;
	struct timeval		 tv;

	tv.tv_sec = c->checks_scan_interval_ms / 1000;
	tv.tv_usec = c->checks_scan_interval_ms % 1000 * 1000;
	event_del(&ck->ev_scan);
	event_add(&ck->ev_scan, &tv);
}

struct checks *
checks_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = { checks_up, NULL, NULL };
	struct checks	*ck;

	ck = xcalloc(1, sizeof *ck);
	ck->vw = vw;
	ck->pc = pgconn_new(vw->base, &vw->conf, "checks", &events, ck);
	event_assign(&ck->ev_scan, vw->base, -1, EV_PERSIST, checks_on_timer,
	    ck);
	return (ck);
}

void
checks_start(struct checks *ck)
{
	pgconn_start(ck->pc);
	checks_timer(ck);
}

void
checks_reconfigure(struct checks *ck, const struct conf *old)
{
	checks_timer(ck);
	pgconn_reconfigure(ck->pc, old);
	checks_scan(ck);
}

void
checks_free(struct checks *ck)
{
	if (ck == NULL)
		return;
	event_del(&ck->ev_scan);
	pgconn_free(ck->pc);
	free(ck);
}
