/*
 * vialwatchd: start-up, the event base, signals, systemd notify and the
 * watchdog. Everything else runs as events on the one loop.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "archive.h"
#include "calibration.h"
#include "clock.h"
#include "conf.h"
#include "db.h"
#include "excursion.h"
#include "heartbeat.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "outbox.h"
#include "reminder.h"
#include "resolve.h"
#include "checks.h"
#include "retention.h"
#include "seal.h"
#include "spool.h"
#include "state.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define STOP_TIMEOUT_S		10

static struct event	ev_sighup, ev_sigterm, ev_sigint, ev_watchdog, ev_tick;
static struct event	ev_stop_timeout, ev_sigusr2;
static char		*conf_path;
static int		 debug_flag;
static char		 last_status[256];
static int		 exit_status;

static void	usage(FILE *) __attribute__((noreturn));

/* How to call us: on stdout for --help (exit 0), else a usage error. */
static void
usage(FILE *f)
{
	fprintf(f, "usage: vialwatchd [-dhtV] [-c file]\n");
	if (f == stdout)
		fprintf(f, "  -c, --config FILE  configuration (default %s)\n"
		    "  -d, --debug        log at debug level\n"
		    "  -t, --test         check the configuration and exit\n"
		    "  -h, --help         this text\n"
		    "  -V, --version      the version\n",
		    SYSCONFDIR "/vialwatch/vialwatch.conf");
	exit(f == stdout ? 0 : 2);
}

/* sd_notify, or nothing when built without systemd. */
static void
notify(const char *fmt, ...)
{
#ifdef HAVE_SYSTEMD
	va_list	 ap;
	char	 buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	sd_notify(0, buf);
#else
	(void)fmt;
#endif
}

/* Tell systemd how we are, when it changed. */
static void
status_update(struct vialwatchd *vw)
{
	char		 buf[256], http[128] = "";
	const char	*unbound = http_unbound(vw->http);

	if (unbound != NULL)
		snprintf(http, sizeof http, "http not listening (%s), "
		    "retrying; ", unbound);
	snprintf(buf, sizeof buf, "%smqtt %s, database %s, %llu readings "
	    "stored, %zu pending", http, mqtt_state_name(mqtt_state(vw->mqtt)),
	    db_state_name(db_state(vw->db)),
	    (unsigned long long)metrics.readings_stored, db_pending(vw->db));
	if (strcmp(buf, last_status) == 0)
		return;
	snprintf(last_status, sizeof last_status, "%s", buf);
	notify("STATUS=%s", buf);
}

/* Once a second: status for systemd. */
static void
on_tick(evutil_socket_t fd, short events, void *arg)
{
	status_update(arg);
}

/* Pinged from the loop, so a stalled loop stops the pings. */
static void
on_watchdog(evutil_socket_t fd, short events, void *arg)
{
	notify("WATCHDOG=1");
}

/* The watchdog interval systemd asked for (WATCHDOG_USEC), or 0. */
static uint64_t
watchdog_usec(void)
{
#ifdef HAVE_SYSTEMD
	uint64_t	usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return (usec);
#endif
	return (0);
}

/*
 * SIGUSR2 with -d: block the loop for three watchdog intervals (10 s
 * without a watchdog), so that one can see systemd's watchdog act.
 */
static void
on_stall(evutil_socket_t fd, short events, void *arg)
{
	struct timespec	ts;
	uint64_t	usec;

	if ((usec = watchdog_usec() * 3) == 0)
		usec = 10 * 1000000;
	log_warnx("SIGUSR2: stalling the event loop for %llu ms (debug)",
	    (unsigned long long)usec / 1000);
	ts.tv_sec = usec / 1000000;
	ts.tv_nsec = usec % 1000000 * 1000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	log_warnx("SIGUSR2: event loop running again");
}

/* Give each source its metrics slot. */
static void
conf_bind_metrics(struct conf *c)
{
	int	i;

	for (i = 0; i < c->nsources; i++)
		c->sources[i].metric = metrics_source_id(c->sources[i].name);
}

/* SIGHUP: load the new config; a bad one is refused and the old kept. */
static void
on_sighup(evutil_socket_t fd, short events, void *arg)
{
	struct vialwatchd	*vw = arg;
	struct conf		*c, *old;
	char			*cause = NULL;

	if (vw->stopping) {
		log_warnx("reload ignored: stopping");
		return;
	}
	notify("RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)clock_mono_ms() * 1000);
	excursion_reload(vw->excursion);
	log_info("reloading %s", conf_path);
	if ((c = conf_load(conf_path, &cause)) == NULL) {
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", cause);
		free(cause);
		notify("READY=1");
		return;
	}
	conf_check_modes(c, getegid());
	conf_bind_metrics(c);
	if (strcmp(c->state_dir, vw->conf->state_dir) != 0)
		log_warnx("reload: a new state_dir takes effect at restart; "
		    "the spool stays in %s", vw->conf->state_dir);
	old = vw->conf;
	vw->conf = c;
	log_set_level(debug_flag ? LOG_LEVEL_DEBUG : c->log_level);
	http_reconfigure(vw->http, old);
	mqtt_reconfigure(vw->mqtt, old);
	db_reconfigure(vw->db, old);
	excursion_reconfigure(vw->excursion, old);
	outbox_reconfigure(vw->outbox, old);
	reminder_reconfigure(vw->reminder, old);
	checks_reconfigure(vw->checks, old);
	retention_reconfigure(vw->retention, old);
	archive_reconfigure(vw->archive, old);
	heartbeat_reconfigure(vw->heartbeat, old);
	seal_reconfigure(vw->seal, old);
	calibration_reconfigure(vw->calibration, old);
	state_reconfigure(vw->state, old);
	conf_free(old);
	log_info("configuration reloaded");
	notify("READY=1");
}

/*
 * All queued rows and excursion events are committed and the sends under
 * way are over and recorded: exit. Called by each of them as it drains.
 */
static void
on_drained(void *arg)
{
	struct vialwatchd	*vw = arg;

	if (!vw->stopping || db_pending(vw->db) > 0 ||
	    excursion_pending(vw->excursion) > 0 ||
	    outbox_pending(vw->outbox) > 0)
		return;
	event_base_loopexit(vw->base, NULL);
}

static void
on_stop_timeout(evutil_socket_t fd, short events, void *arg)
{
	struct vialwatchd	*vw = arg;

	if (db_pending(vw->db) > 0 || excursion_pending(vw->excursion) > 0) {
		log_warnx("stopping after %d s with %zu readings not stored "
		    "and %zu excursion events not written: the database did "
		    "not take them; they are sent at the next start",
		    STOP_TIMEOUT_S, db_pending(vw->db),
		    excursion_pending(vw->excursion));
		exit_status = 1;
	}
	event_base_loopexit(vw->base, NULL);
}

/* SIGTERM/SIGINT: stop taking messages, flush, exit 0. */
static void
on_stop(evutil_socket_t fd, short events, void *arg)
{
	struct vialwatchd	*vw = arg;
	struct timeval		 tv = { STOP_TIMEOUT_S, 0 };

	if (vw->stopping)
		return;
	vw->stopping = 1;
	log_info("stopping on signal %d", (int)fd);
	notify("STOPPING=1");
	mqtt_stop(vw->mqtt);
	evtimer_assign(&ev_stop_timeout, vw->base, on_stop_timeout, vw);
	evtimer_add(&ev_stop_timeout, &tv);
	outbox_drain(vw->outbox, on_drained, vw);
	excursion_drain(vw->excursion, on_drained, vw);
	db_drain(vw->db, on_drained, vw);
}

/*
 * Backpressure: the broker's messages wait while db or the excursion
 * rules give a reason (a sentence for the log), until neither does.
 */
static const char	*pause_db, *pause_excursion;

static void
on_pause_db(const char *why, void *arg)
{
	struct vialwatchd	*vw = arg;

	pause_db = why;
	mqtt_pause(vw->mqtt, why != NULL ? why : pause_excursion);
}

static void
on_pause_excursion(const char *why, void *arg)
{
	struct vialwatchd	*vw = arg;

	pause_excursion = why;
	mqtt_pause(vw->mqtt, why != NULL ? why : pause_db);
}

/*
 * A record of the spool read back at start: stored again, and, for the
 * readings, judged by the rules, who may never have seen it before the
 * crash (those they did see are older than their state, and ignored).
 */
static void
on_replay(void *arg, char type, const char *line, size_t len,
    const struct spool_pos *pos)
{
	struct vialwatchd	*vw = arg;
	struct reading		 r;
	int64_t			 received;

	db_spool_replay(vw->db, type, line, len, pos);
	if (db_copy_reading(type, line, len, &r, &received) == 0)
		excursion_feed(vw->excursion, &r, received);
}

/* The state directory must exist and be ours to write. */
static void
state_dir_open(const char *dir)
{
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		fatal("state_dir %s", dir);
	if (access(dir, R_OK | W_OK | X_OK) == -1)
		fatal("state_dir %s", dir);
}

static void
setup_events(struct vialwatchd *vw)
{
	struct timeval	tv = { 1, 0 };
	uint64_t	usec;

	evsignal_assign(&ev_sighup, vw->base, SIGHUP, on_sighup, vw);
	evsignal_assign(&ev_sigterm, vw->base, SIGTERM, on_stop, vw);
	evsignal_assign(&ev_sigint, vw->base, SIGINT, on_stop, vw);
	evsignal_add(&ev_sighup, NULL);
	evsignal_add(&ev_sigterm, NULL);
	evsignal_add(&ev_sigint, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (debug_flag) {
		evsignal_assign(&ev_sigusr2, vw->base, SIGUSR2, on_stall, vw);
		evsignal_add(&ev_sigusr2, NULL);
	} else
		signal(SIGUSR2, SIG_IGN);

	event_assign(&ev_tick, vw->base, -1, EV_PERSIST, on_tick, vw);
	event_add(&ev_tick, &tv);
	if ((usec = watchdog_usec()) > 0) {
		tv.tv_sec = usec / 2 / 1000000;
		tv.tv_usec = usec / 2 % 1000000;
		event_assign(&ev_watchdog, vw->base, -1, EV_PERSIST,
		    on_watchdog, vw);
		event_add(&ev_watchdog, &tv);
		log_debug("watchdog every %llu ms",
		    (unsigned long long)usec / 2000);
	}
}

int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "test", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct vialwatchd		 vw;
	char				*cause = NULL, *events_path;
	int				 ch, test_only = 0;

	conf_path = xstrdup(SYSCONFDIR "/vialwatch/vialwatch.conf");
	while ((ch = getopt_long(argc, argv, "c:dhtV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			free(conf_path);
			conf_path = xstrdup(optarg);
			break;
		case 'd':
			debug_flag = 1;
			break;
		case 't':
			test_only = 1;
			break;
		case 'h':
			usage(stdout);
		case 'V':
			printf("vialwatchd %s\n", PACKAGE_VERSION);
			return (0);
		default:
			usage(stderr);
		}
	}
	if (optind != argc)
		usage(stderr);

	log_init("vialwatchd", debug_flag ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	memset(&vw, 0, sizeof vw);
	if ((vw.conf = conf_load(conf_path, &cause)) == NULL) {
		fprintf(stderr, "%s\n", cause);
		free(cause);
		free(conf_path);
		return (1);
	}
	conf_check_modes(vw.conf, getegid());
	if (test_only) {
		fprintf(stderr, "%s: configuration ok\n", conf_path);
		conf_free(vw.conf);
		free(conf_path);
		return (0);
	}
	log_set_level(debug_flag ? LOG_LEVEL_DEBUG : vw.conf->log_level);
	conf_bind_metrics(vw.conf);
	srandom(getpid() ^ (unsigned)clock_now_us());

	if ((vw.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	state_dir_open(vw.conf->state_dir);
	vw.db = db_new(vw.base, &vw.conf, on_pause_db, &vw);
	vw.excursion = excursion_new(vw.base, &vw.conf, on_pause_excursion,
	    &vw);
	xasprintf(&events_path, "%s/excursion-events", vw.conf->state_dir);
	excursion_restore(vw.excursion, events_path);
	vw.outbox = outbox_new(&vw);
	vw.reminder = reminder_new(&vw);
	vw.checks = checks_new(&vw);
	vw.retention = retention_new(&vw);
	vw.archive = archive_new(&vw);
	vw.heartbeat = heartbeat_new(&vw);
	vw.seal = seal_new(&vw);
	vw.calibration = calibration_new(&vw);
	vw.state = state_new(&vw);
	vw.mqtt = mqtt_new(vw.base, &vw.conf, vw.db, vw.excursion);
	if ((vw.spool = spool_open(vw.conf->state_dir, on_replay, &vw,
	    &cause)) == NULL)
		fatalx("%s", cause);
	db_set_spool(vw.db, vw.spool);
	if ((vw.http = http_new(&vw, &cause)) == NULL)
		fatalx("http: %s", cause);
	setup_events(&vw);

	log_info("vialwatchd %s started with %d sources", PACKAGE_VERSION,
	    vw.conf->nsources);
	notify("READY=1\nSTATUS=connecting to MQTT and the database");
	mqtt_start(vw.mqtt);
	db_start(vw.db);
	excursion_start(vw.excursion);
	outbox_start(vw.outbox);
	reminder_start(vw.reminder);
	checks_start(vw.checks);
	retention_start(vw.retention);
	archive_start(vw.archive);
	heartbeat_start(vw.heartbeat);
	seal_start(vw.seal);
	calibration_start(vw.calibration);
	state_start(vw.state);

	event_base_loop(vw.base, 0);
	excursion_save(vw.excursion, events_path);

	http_free(vw.http);
	state_free(vw.state);
	mqtt_free(vw.mqtt);
	heartbeat_free(vw.heartbeat);
	archive_free(vw.archive);
	seal_free(vw.seal);
	calibration_free(vw.calibration);
	retention_free(vw.retention);
	checks_free(vw.checks);
	reminder_free(vw.reminder);
	outbox_free(vw.outbox);
	excursion_free(vw.excursion);
	db_free(vw.db);
	spool_free(vw.spool);
	resolve_free();
	event_base_free(vw.base);
	conf_free(vw.conf);
	free(conf_path);
	free(events_path);
	log_info("stopped");
	return (exit_status);
}
