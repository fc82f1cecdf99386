/*
 * Heartbeats: every few seconds, on a connection of its own, the daemon
 * writes its row of vialwatch.daemon_heartbeat (named by its [mqtt]
 * client_id) with vialwatch.daemon_beat(), then runs
 * vialwatch.daemon_watch() (sql/010_staying_loud.sql): a daemon whose last
 * beat is older than [alerts] daemon_silent_after is reported to the
 * clinics' admin contacts by email, once, and again once it beats again.
 * The outbox sends those emails like any other.  vialwatchctl watchdog
 * does the same watching from cron or a timer, for when no daemon is left
 * to do it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "conf.h"
#include "heartbeat.h"
#include "log.h"
#include "pgconn.h"
#include "vialwatchd.h"
#include "xmalloc.h"

/* Beats at a fifth of [alerts] daemon_silent_after, within these. */
#define HEARTBEAT_MIN_MS	1000
#define HEARTBEAT_MAX_MS	60000

struct heartbeat {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	int			 busy;		/* a beat under way */
	char			 host[256];
	char			 started[32];	/* epoch seconds */
	struct event		 ev_beat;
};

/* The wait between beats for a silence limit. */
static int64_t
heartbeat_every_ms(int64_t silent_ms)
{
	int64_t	ms = silent_ms / 5;

	if (ms < HEARTBEAT_MIN_MS)
		ms = HEARTBEAT_MIN_MS;
	if (ms > HEARTBEAT_MAX_MS)
		ms = HEARTBEAT_MAX_MS;
	return (ms);
}

static void
heartbeat_on_beat(const PGresult *res, void *arg)
{
	struct heartbeat	*hb = arg;

	if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
		pgconn_failed(hb->pc, res, "writing the heartbeat");
}

/* Log what the watch reported to the admins. */
static void
heartbeat_on_watched(const PGresult *res, void *arg)
{
	struct heartbeat	*hb = arg;
	int			 i;

	hb->busy = 0;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(hb->pc, res, "watching the other daemons");
		return;
	}
	for (i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, 1))
			continue;
		if (strcmp(PQgetvalue(res, i, 1), "silent") == 0)
			log_warnx("heartbeat: daemon %s on %s is silent since "
			    "%s; %s admin emails queued", PQgetvalue(res, i, 0),
			    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
			    PQgetvalue(res, i, 4));
		else
			log_info("heartbeat: daemon %s on %s is back; %s admin "
			    "emails queued", PQgetvalue(res, i, 0),
			    PQgetvalue(res, i, 2), PQgetvalue(res, i, 4));
	}
}

/* One beat, then the watch. */
static void
heartbeat_beat(struct heartbeat *hb)
{
	const struct conf	*c = hb->vw->conf;
	const char		*p[5];
	char			 pid[16], silent[32];

	if (hb->busy || !pgconn_up(hb->pc))
		return;
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	p[0] = c->mqtt_client_id;
	p[1] = hb->host;
	p[2] = pid;
	p[3] = PACKAGE_VERSION;
	p[4] = hb->started;
	if (pgconn_query(hb->pc, "select vialwatch.daemon_beat($1, $2, "
	    "$3::integer, $4, to_timestamp($5::float8))", 5, p,
	    heartbeat_on_beat, hb) != 0)
		return;
	snprintf(silent, sizeof silent, "%lld",
	    (long long)c->alerts_daemon_silent_after_ms);
	p[0] = silent;
	p[1] = c->mqtt_client_id;
	if (pgconn_query(hb->pc, "select name, reported, host, "
	    "to_char(beat_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
	    "|| ' UTC', queued from vialwatch.daemon_watch("
	    "$1::bigint * interval '1 millisecond', $2) "
	    "where reported is not null", 2, p, heartbeat_on_watched,
	    hb) == 0)
		hb->busy = 1;
}

static void
heartbeat_on_timer(evutil_socket_t fd, short events, void *arg)
{
	heartbeat_beat(arg);
}

static void
heartbeat_up(void *arg)
{
	heartbeat_beat(arg);
}

/* (Re)arm the beat for the current daemon_silent_after. */
static void
heartbeat_timer(struct heartbeat *hb)
{
	int64_t		ms;
	struct timeval	tv;

	ms = heartbeat_every_ms(hb->vw->conf->alerts_daemon_silent_after_ms);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = ms % 1000 * 1000;
	event_del(&hb->ev_beat);
	event_add(&hb->ev_beat, &tv);
}

struct heartbeat *
heartbeat_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = {
		heartbeat_up, NULL, NULL
	};
	struct heartbeat	*hb;

	hb = xcalloc(1, sizeof *hb);
	hb->vw = vw;
	if (gethostname(hb->host, sizeof hb->host) == -1)
		snprintf(hb->host, sizeof hb->host, "unknown");
	hb->host[sizeof hb->host - 1] = '\0';
	snprintf(hb->started, sizeof hb->started, "%.6f", clock_now_us() / 1e6);
	hb->pc = pgconn_new(vw->base, &vw->conf, "heartbeat", &events, hb);
	event_assign(&hb->ev_beat, vw->base, -1, EV_PERSIST,
	    heartbeat_on_timer, hb);
	return (hb);
}

void
heartbeat_start(struct heartbeat *hb)
{
	pgconn_start(hb->pc);
	heartbeat_timer(hb);
}

void
heartbeat_reconfigure(struct heartbeat *hb, const struct conf *old)
{
	pgconn_reconfigure(hb->pc, old);
	heartbeat_timer(hb);
}

void
heartbeat_free(struct heartbeat *hb)
{
	if (hb == NULL)
		return;
	event_del(&hb->ev_beat);
	pgconn_free(hb->pc);
	free(hb);
}
