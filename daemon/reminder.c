/*
 * Re-treatment reminders: the scheduler.
 *
 * Every [reminders] scan_interval this runs vialwatch.reminder_scan()
 * (sql/007_reminders.sql) with the send window and the daemon's clock.
 * That one statement, in one transaction, takes the clinics whose window is
 * open now in their own time zone (PostgreSQL's, which is the system's zone
 * data, DST-correct), creates the rows of the steps that fell due, claims
 * the due ones FOR UPDATE SKIP LOCKED (several daemons may scan at once),
 * and decides each: cancelled or skipped with the reason, or sent, queueing
 * the email in the outbox.  outbox.c renders it from the templates at send
 * time, with the signed unsubscribe link.
 *
 * A window missed while no daemon ran is simply the next window: the rows
 * of due steps wait as pending, and each is decided once.  Without [http]
 * secret_file there are no unsubscribe links, so no reminder is sent.
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
#include "metrics.h"
#include "pgconn.h"
#include "reminder.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define REMINDER_BATCH		500	/* rows decided per statement */

struct reminder {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	int			 busy;		/* a scan under way */
	int			 warned;	/* no secret_file: said once */
	int64_t			 counts[REMINDER_STATES];

	struct event		 ev_scan;
};

static const char *reminder_states[REMINDER_STATES] = {
	"pending", "sent", "cancelled", "skipped"
};

static void	reminder_scan(struct reminder *, int);

const char *
reminder_state_name(int st)
{
	return (reminder_states[st]);
}

static int
reminder_state(const char *s)
{
	int	st;

	for (st = 0; st < REMINDER_STATES; st++) {
		if (strcmp(s, reminder_states[st]) == 0)
			return (st);
	}
	return (-1);
}

static void
reminder_on_counted(const PGresult *res, void *arg)
{
	struct reminder	*rm = arg;
	int		 i, st;

	rm->busy = 0;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(rm->pc, res, "counting reminders");
		return;
	}
	for (st = 0; st < REMINDER_STATES; st++)
		rm->counts[st] = 0;
	for (i = 0; i < PQntuples(res); i++) {
		if ((st = reminder_state(PQgetvalue(res, i, 0))) != -1)
			rm->counts[st] = pgconn_int(res, i, 1);
	}
}

/* The reminders of all clinics by status, for /metrics. */
static void
reminder_count(struct reminder *rm)
{
	if (pgconn_query(rm->pc, "select status, count(*) from "
	    "vialwatch.reminder group by status", 0, NULL,
	    reminder_on_counted, rm) == 0)
		rm->busy = 1;
}

static void
reminder_on_scanned(const PGresult *res, void *arg)
{
	struct reminder	*rm = arg;
	const char	*status, *reason;
	int		 i, n, st, decided[REMINDER_STATES] = { 0 };

	rm->busy = 0;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(rm->pc, res, "scanning reminders");
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		status = PQgetvalue(res, i, 1);
		reason = pgconn_text(res, i, 2);
		if ((st = reminder_state(status)) == -1)
			continue;
		decided[st]++;
		metrics.reminders[st]++;
		if (reason != NULL)
			log_info("reminder %lld %s: %s", pgconn_int(res, i, 0),
			    status, reason);
		else
			log_info("reminder %lld %s", pgconn_int(res, i, 0),
			    status);
	}
	if (n > 0)
		log_info("reminders: %d queued, %d cancelled, %d skipped",
		    decided[REMINDER_SENT], decided[REMINDER_CANCELLED],
		    decided[REMINDER_SKIPPED]);
	if (n >= REMINDER_BATCH)
		reminder_scan(rm, 0);	/* more are due */
	else
		reminder_count(rm);
}

/*
 * One scan; create: also the rows of the steps that fell due, which the
 * follow-up batches of a scan need not look for again.
 */
static void
reminder_scan(struct reminder *rm, int create)
{
	const struct conf	*c = rm->vw->conf;
	const char		*p[5];
	char			 start[16], end[16], now[32], limit[16];

	if (rm->busy || rm->vw->stopping || !pgconn_up(rm->pc))
		return;
	if (c->http_secret == NULL) {
		if (!rm->warned)
			log_info("reminders: off, [http] secret_file is not "
			    "set and every reminder needs a signed "
			    "unsubscribe link");
		rm->warned = 1;
		reminder_count(rm);
		return;
	}
	rm->warned = 0;
	snprintf(start, sizeof start, "%d", c->reminders_window_start);
	snprintf(end, sizeof end, "%d", c->reminders_window_end);
	snprintf(now, sizeof now, "%.6f", clock_now_us() / 1e6);
	snprintf(limit, sizeof limit, "%d", REMINDER_BATCH);
	p[0] = start;
	p[1] = end;
	p[2] = now;
	p[3] = limit;
	p[4] = create ? "true" : "false";
	if (pgconn_query(rm->pc, "select * from vialwatch.reminder_scan("
	    "$1::integer, $2::integer, to_timestamp($3::float8), $4::integer, "
	    "$5::boolean)", 5, p, reminder_on_scanned, rm) == 0)
		rm->busy = 1;
}

static void
reminder_on_timer(evutil_socket_t fd, short events, void *arg)
{
	reminder_scan(arg, 1);
}

static void
reminder_up(void *arg)
{
	reminder_scan(arg, 1);
}

static void
reminder_timer(struct reminder *rm)
{
	const struct conf	*c = rm->vw->conf;
	struct timeval		 tv;

	tv.tv_sec = c->reminders_scan_interval_ms / 1000;
	tv.tv_usec = c->reminders_scan_interval_ms % 1000 * 1000;
	event_del(&rm->ev_scan);
	event_add(&rm->ev_scan, &tv);
}

struct reminder *
reminder_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = {
		reminder_up, NULL, NULL
	};
	struct reminder	*rm;
	int		 st;

	rm = xcalloc(1, sizeof *rm);
	rm->vw = vw;
	for (st = 0; st < REMINDER_STATES; st++)
		rm->counts[st] = -1;
	rm->pc = pgconn_new(vw->base, &vw->conf, "reminders", &events, rm);
	event_assign(&rm->ev_scan, vw->base, -1, EV_PERSIST, reminder_on_timer,
	    rm);
	return (rm);
}

void
reminder_start(struct reminder *rm)
{
	pgconn_start(rm->pc);
	reminder_timer(rm);
}

void
reminder_reconfigure(struct reminder *rm, const struct conf *old)
{
	reminder_timer(rm);
	pgconn_reconfigure(rm->pc, old);
	reminder_scan(rm, 1);
}

int64_t
reminder_count_of(const struct reminder *rm, int st)
{
	return (rm->counts[st]);
}

void
reminder_free(struct reminder *rm)
{
	if (rm == NULL)
		return;
	event_del(&rm->ev_scan);
	pgconn_free(rm->pc);
	free(rm);
}
