/*
 * Excursions: the edge between the rules (rules.c) and PostgreSQL.
 *
 * The sensors assigned to a fridge are held in a hash table by key, each
 * with its fridge's limits and its rules state. Every reading is looked up
 * there as it arrives (excursion_feed, on the hot path: one hash, no
 * allocation) and run through the rules; a tick each second runs out the
 * delays and finds the silent sensors. The events the rules give are
 * queued in order and written one at a time, each as one call of
 * vialwatch.excursion_event() (sql/004_excursions.sql), which updates the
 * excursion row, quarantines the lots and queues the notifications in one
 * transaction. Consecutive updates of one excursion waiting in the queue
 * are merged: each event carries the whole row.
 *
 * The connection is a pgconn (pgconn.c), with one query of ours on it at
 * a time. On each connect it LISTENs for changes of the reference data
 * and loads the sensors (vialwatch.excursion_sensors()); a sensor seen
 * for the first time has its state rebuilt from its open excursions and
 * its last reading (rules_restore), a known one keeps its state. Readings
 * that arrive before the first load are held and run through the rules
 * after it. The probes' offsets (offset.c) are loaded just before the
 * sensors, on each load: a reading is corrected (excursion_correct)
 * before it is stored and judged.
 *
 * Nothing the rules give is dropped: past EXC_QUEUE_HIGH events waiting,
 * or EXC_EARLY_MAX bytes of readings held before the first load, the
 * broker's messages wait (the pause callback), and the queue and the
 * held readings are kept whole, however long the database takes. Those
 * still waiting when the daemon stops are kept in a file of state_dir
 * (excursion_save) and written first at the next start, before the
 * sensors' state is loaded from the database.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "clock.h"
#include "conf.h"
#include "excursion.h"
#include "log.h"
#include "metrics.h"
#include "offset.h"
#include "payload.h"
#include "pgconn.h"
#include "rules.h"
#include "topic.h"
#include "xmalloc.h"

#define EXC_TICK_MS		1000
#define EXC_QUEUE_MIN		64
#define EXC_QUEUE_HIGH		65536		/* events waiting: pause */
#define EXC_EARLY_MAX		(8 * 1024 * 1024) /* held before load: pause */
#define EXC_CHANNEL		"vialwatch_reference"

/* What of ours is in flight on the connection. */
enum exc_state {
	EXC_IDLE,
	EXC_LOADING,		/* the offsets, then the sensors query */
	EXC_WRITING,		/* the queue's first event */
};

static const char *exc_state_names[] = {
	[EXC_IDLE] = "idle",
	[EXC_LOADING] = "loading",
	[EXC_WRITING] = "writing",
};

/* A sensor assigned to a fridge. */
struct exc_sensor {
	struct exc_sensor	*next;		/* in its bucket */
	uint32_t		 hash;
	int64_t			 id;		/* vialwatch.sensor.id */
	char			*key;
	struct rules_limits	 limits;
	struct rules_state	 state;
	uint64_t		 queued;	/* 1 + seq of its newest event */
};

struct exc_map {
	struct exc_sensor	**buckets;
	size_t			 mask;		/* buckets - 1 */
	size_t			 count;
};

/* An event waiting for the database. */
struct exc_event {
	int64_t			 sensor_id;
	double			 temp_c;	/* the sensor's last reading */
	struct rules_event	 ev;
};

/* A reading held until the first load, followed by its key. */
struct exc_early {
	struct rules_reading	 r;
	int64_t			 now;
	size_t			 keylen;
};

struct excursion {
	struct conf		**conf;
	struct pgconn		*pc;
	void			(*pause)(const char *, void *);
	void			*pause_arg;
	const char		*paused;	/* why, or NULL */
	enum exc_state		 state;
	struct event		 ev_tick;
	int64_t			 started_us;	/* the daemon's start */
	int			 loaded;	/* the first load is done */
	int			 reload;	/* another load is wanted */
	int			 draining;
	void			(*drained)(void *);
	void			*drained_arg;

	struct exc_map		 map;
	struct offset_table	*offsets;	/* NULL until first loaded */
	struct exc_event	*q;		/* ring of waiting events */
	size_t			 qcap;
	size_t			 qhead;
	size_t			 qlen;
	uint64_t		 qseq;		/* seq of q[qhead] */

	struct evbuffer		*early;
};

/* Its columns, in the order the C code reads them. */
static const char exc_load_sql[] =
    "select sensor_id, key, fridge_id, kind, low_c, high_c, critical_low_c,"
    " critical_high_c, hysteresis_c, low_delay_us, high_delay_us,"
    " offline_after_us, battery_low_pct, last_ts_us, last_temp_c,"
    " last_arrival_us, battery_at_us, temp_fridge_id, temp_kind,"
    " temp_started_us, temp_alarmed_us, temp_peak_c, temp_minutes_out,"
    " temp_degree_minutes, offline_fridge_id, offline_started_us,"
    " offline_alarmed_us, sensor_kind, door_alarm_after_us, power_min_w,"
    " power_alarm_after_us, warn_low_c, warn_high_c, warn_delay_us,"
    " input_kind, input_started_us, input_alarmed_us, input_peak_c,"
    " input_minutes_out, warn_started_us, warn_alarmed_us, warn_peak_c,"
    " warn_minutes_out"
    " from vialwatch.excursion_sensors_inputs($1::timestamptz)";

static const char exc_offsets_sql[] =
    "select key, effective_from_us, offset_c from vialwatch.sensor_offsets()";

enum {
	COL_SENSOR, COL_KEY, COL_FRIDGE, COL_KIND, COL_LOW, COL_HIGH,
	COL_CRIT_LOW, COL_CRIT_HIGH, COL_HYST, COL_LOW_DELAY, COL_HIGH_DELAY,
	COL_OFFLINE_AFTER, COL_BATTERY_LOW, COL_LAST_TS, COL_LAST_TEMP,
	COL_LAST_ARRIVAL, COL_BATTERY_AT, COL_T_FRIDGE, COL_T_KIND,
	COL_T_STARTED, COL_T_ALARMED, COL_T_PEAK, COL_T_MINUTES, COL_T_DM,
	COL_O_FRIDGE, COL_O_STARTED, COL_O_ALARMED, COL_SENSOR_KIND,
	COL_DOOR_AFTER, COL_POWER_MIN, COL_POWER_AFTER, COL_WARN_LOW,
	COL_WARN_HIGH, COL_WARN_DELAY, COL_I_KIND, COL_I_STARTED,
	COL_I_ALARMED, COL_I_PEAK, COL_I_MINUTES, COL_W_STARTED,
	COL_W_ALARMED, COL_W_PEAK, COL_W_MINUTES, COL_COUNT
};

static const char exc_event_sql[] =
    "select vialwatch.excursion_event($1, $2::bigint, $3::bigint, $4,"
    " $5::timestamptz, $6::timestamptz, $7::timestamptz, $8::float8,"
    " $9::float8, $10::float8, $11::float8, $12::float8)";

static void	exc_next(struct excursion *);

/* FNV-1a: keys are short topics. */
static uint32_t
exc_hash(const char *s)
{
	uint32_t	h = 2166136261u;

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return (h);
}

/* An empty table with room for about n sensors. */
static void
exc_map_init(struct exc_map *m, size_t n)
{
	size_t	nb = 16;

	while (nb < n * 2)
		nb *= 2;
	m->buckets = xcalloc(nb, sizeof *m->buckets);
	m->mask = nb - 1;
	m->count = 0;
}

/* The sensor of key (hashed to h), or NULL. */
static struct exc_sensor *
exc_map_find(const struct exc_map *m, const char *key, uint32_t h)
{
	struct exc_sensor	*es;

	for (es = m->buckets[h & m->mask]; es != NULL; es = es->next) {
		if (es->hash == h && strcmp(es->key, key) == 0)
			return (es);
	}
	return (NULL);
}

/* Put a sensor in the table; its key is not there yet. */
static void
exc_map_add(struct exc_map *m, struct exc_sensor *es)
{
	struct exc_sensor	**b = &m->buckets[es->hash & m->mask];

	es->next = *b;
	*b = es;
	m->count++;
}

/* Take a sensor that is in the table out of it. */
static void
exc_map_remove(struct exc_map *m, struct exc_sensor *es)
{
	struct exc_sensor	**p = &m->buckets[es->hash & m->mask];

	while (*p != es)
		p = &(*p)->next;
	*p = es->next;
	m->count--;
}

/* Any sensor of the table, to empty it; NULL when empty. */
static struct exc_sensor *
exc_map_any(const struct exc_map *m)
{
	size_t	i;

	for (i = 0; m->count > 0 && i <= m->mask; i++) {
		if (m->buckets[i] != NULL)
			return (m->buckets[i]);
	}
	return (NULL);
}

/* A sensor with no state yet; free with exc_sensor_free. */
static struct exc_sensor *
exc_sensor_new(const char *key, uint32_t h, int64_t id)
{
	struct exc_sensor	*es;

	es = xcalloc(1, sizeof *es);
	es->key = xstrdup(key);
	es->hash = h;
	es->id = id;
	rules_init(&es->state);
	return (es);
}

/* Free a sensor that is in no table. */
static void
exc_sensor_free(struct exc_sensor *es)
{
	free(es->key);
	free(es);
}

/* The queued event numbered seq, unless it is sent or in flight. */
static struct exc_event *
exc_queued(struct excursion *ex, uint64_t seq)
{
	uint64_t	first = ex->qseq + (ex->state == EXC_WRITING);

	if (seq < first || seq >= ex->qseq + ex->qlen)
		return (NULL);
	return (&ex->q[(ex->qhead + (seq - ex->qseq)) % ex->qcap]);
}

/*
 * The broker's messages wait while too many events wait for the database
 * or too many readings for the first load; they come again under half.
 */
static void
exc_pressure(struct excursion *ex)
{
	static const char	 events[] = "too many excursion events wait for "
				    "the database; not reading from the broker "
				    "until they are written";
	static const char	 early[] = "the sensors are not loaded yet and "
				    "many readings wait to be judged; not "
				    "reading from the broker until they are";
	size_t			 held = evbuffer_get_length(ex->early);
	const char		*why = ex->paused;

	if (ex->qlen >= EXC_QUEUE_HIGH)
		why = events;
	else if (held >= EXC_EARLY_MAX)
		why = early;
	else if ((why != events || ex->qlen < EXC_QUEUE_HIGH / 2) &&
	    (why != early || held == 0))
		why = NULL;
	if (why == ex->paused)
		return;
	ex->paused = why;
	ex->pause(why, ex->pause_arg);
}

/* Double the ring. */
static void
exc_grow(struct excursion *ex)
{
	struct exc_event	*q;
	size_t			 cap, i;

	cap = ex->qcap == 0 ? EXC_QUEUE_MIN : ex->qcap * 2;
	q = xreallocarray(NULL, cap, sizeof *q);
	for (i = 0; i < ex->qlen; i++)
		q[i] = ex->q[(ex->qhead + i) % ex->qcap];
	free(ex->q);
	ex->q = q;
	ex->qcap = cap;
	ex->qhead = 0;
}

/* The same excursion, not yet written: an update replaces it. */
static int
exc_mergeable(const struct exc_event *e, const struct exc_sensor *es,
    const struct rules_event *ev)
{
	return (e->ev.type == RULES_EV_UPDATE && e->sensor_id == es->id &&
	    e->ev.fridge_id == ev->fridge_id && e->ev.x.kind == ev->x.kind &&
	    e->ev.x.started_at == ev->x.started_at);
}

/* Queue one event of sensor es for the database. */
static void
exc_push(struct excursion *ex, struct exc_sensor *es,
    const struct rules_event *ev)
{
	struct exc_event	*e;

	if (ev->type == RULES_EV_UPDATE && es->queued != 0 &&
	    (e = exc_queued(ex, es->queued - 1)) != NULL &&
	    exc_mergeable(e, es, ev)) {
		e->ev = *ev;
		e->temp_c = es->state.last_temp;
		return;
	}
	if (ex->qlen == ex->qcap)
		exc_grow(ex);
	e = &ex->q[(ex->qhead + ex->qlen) % ex->qcap];
	e->sensor_id = es->id;
	e->temp_c = es->state.last_temp;
	e->ev = *ev;
	es->queued = ex->qseq + ex->qlen + 1;
	if (++ex->qlen == EXC_QUEUE_HIGH)
		exc_pressure(ex);
}

/* The first event is written (or refused): forget it. */
static void
exc_pop(struct excursion *ex)
{
	ex->qhead = (ex->qhead + 1) % ex->qcap;
	ex->qlen--;
	ex->qseq++;
}

/* Say what happened to a door, power or warning excursion. */
static void
exc_log_input(const struct exc_sensor *es, const struct rules_event *ev)
{
	static const char	*what[] = {
		[RULES_DOOR] = "door open", [RULES_POWER] = "no power",
		[RULES_WARNING] = "warning"
	};
	const struct rules_excursion	*x = &ev->x;
	const char			*w = what[x->kind];
	long long			 fridge = (long long)ev->fridge_id;

	if (ev->type == RULES_EV_ALARM && x->kind != RULES_WARNING)
		slog_warnx(es->key, "sensor %s: %s on fridge %lld for %.1f min: "
		    "alarm", es->key, w, fridge, x->minutes_out);
	else if (ev->type == RULES_EV_ALARM || ev->type == RULES_EV_OPEN ||
	    ev->type == RULES_EV_CLOSE)
		log_info("sensor %s: %s on fridge %lld %s", es->key, w, fridge,
		    ev->type == RULES_EV_ALARM ? "sent" : ev->type ==
		    RULES_EV_OPEN ? "started" : "over");
	else
		log_debug("sensor %s: %s on fridge %lld for %.1f min", es->key,
		    w, fridge, x->minutes_out);
}

/* Say what happened, naming the sensor. */
static void
exc_log(const struct exc_sensor *es, const struct rules_event *ev)
{
	const struct rules_excursion	*x = &ev->x;
	const char			*kind = rules_kind_name(x->kind);
	long long			 fridge = (long long)ev->fridge_id;

	if (x->kind >= RULES_DOOR) {
		exc_log_input(es, ev);
		return;
	}
	switch (ev->type) {
	case RULES_EV_OPEN:
		log_info("sensor %s: %s excursion on fridge %lld started: "
		    "%.2f C", es->key, kind, fridge, x->peak_c);
		break;
	case RULES_EV_ALARM:
		slog_warnx(es->key, "sensor %s: %s excursion on fridge %lld "
		    "alarmed: %.2f C at worst, %.1f min out", es->key, kind,
		    fridge, x->peak_c, x->minutes_out);
		break;
	case RULES_EV_CLOSE:
		log_info("sensor %s: %s excursion on fridge %lld over after "
		    "%.1f min (%.2f C at worst, %s)", es->key, kind, fridge,
		    x->minutes_out, x->peak_c, x->alarmed_at != 0 ?
		    "alarmed" : "within its delay");
		break;
	case RULES_EV_OFFLINE:
		slog_warnx(es->key, "sensor %s: offline: no reading for %.1f "
		    "min (fridge %lld)", es->key, x->minutes_out, fridge);
		break;
	case RULES_EV_ONLINE:
		log_info("sensor %s: online again after %.1f min (fridge %lld)",
		    es->key, x->minutes_out, fridge);
		break;
	case RULES_EV_BATTERY:
		slog_warnx(es->key, "sensor %s: battery low: %.0f %% "
		    "(fridge %lld)", es->key, ev->battery, fridge);
		break;
	default:
		log_debug("sensor %s: %s excursion on fridge %lld: %.2f C at "
		    "worst, %.1f min out", es->key, kind, fridge, x->peak_c,
		    x->minutes_out);
		break;
	}
}

/* The rules gave n events for sensor es: count, log and queue them. */
static void
exc_emit(struct excursion *ex, struct exc_sensor *es,
    const struct rules_event *ev, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		metrics.excursion_events[ev[i].type]++;
		exc_log(es, &ev[i]);
		exc_push(ex, es, &ev[i]);
	}
	if (n > 0)
		exc_next(ex);
}

/* Run a reading of key through its sensor's rules, if it has a fridge. */
static void
exc_run(struct excursion *ex, const char *key, const struct rules_reading *r,
    int64_t now)
{
	struct rules_event	 ev[RULES_EVENTS_MAX];
	struct exc_sensor	*es;
	size_t			 n;

	if (ex->map.count == 0 ||
	    (es = exc_map_find(&ex->map, key, exc_hash(key))) == NULL)
		return;
	/* Only a plug saying it is offline means anything to the rules. */
	if (r->input == RULES_IN_UNPLUGGED &&
	    es->limits.sensor != RULES_SENSOR_POWER)
		return;
	n = rules_feed(&es->state, &es->limits, r, now, ev, RULES_EVENTS_MAX);
	if (n > 0)
		exc_emit(ex, es, ev, n);
}

/* Hold a reading until the first load; past EXC_EARLY_MAX, pause. */
static void
exc_early_add(struct excursion *ex, const char *key,
    const struct rules_reading *r, int64_t now)
{
	struct exc_early	h;

	h.keylen = strlen(key);
	h.r = *r;
	h.now = now;
	evbuffer_add(ex->early, &h, sizeof h);
	evbuffer_add(ex->early, key, h.keylen);
	if (ex->paused == NULL &&
	    evbuffer_get_length(ex->early) >= EXC_EARLY_MAX)
		exc_pressure(ex);
}

/* The sensors are loaded: judge the readings held until now. */
static void
exc_early_replay(struct excursion *ex)
{
	struct exc_early	 h;
	char			 key[PAYLOAD_KEY_MAX];

	while (evbuffer_remove(ex->early, &h, sizeof h) == (int)sizeof h) {
		if (h.keylen >= sizeof key ||
		    evbuffer_remove(ex->early, key, h.keylen) !=
		    (int)h.keylen)
			break;
		key[h.keylen] = '\0';
		if (h.r.input == RULES_IN_NONE && !isnan(h.r.temp_c))
			h.r.temp_c += offset_at(ex->offsets, key, h.r.ts);
		exc_run(ex, key, &h.r, h.now);
	}
	evbuffer_drain(ex->early, evbuffer_get_length(ex->early));
	exc_pressure(ex);
}

/* One decoded reading: all but a sensor saying it is back count. */
void
excursion_feed(struct excursion *ex, const struct reading *r, int64_t now)
{
	static const enum rules_input	 inputs[] = {
		[READING_OFFLINE] = RULES_IN_UNPLUGGED,
		[READING_DOOR] = RULES_IN_DOOR,
		[READING_POWER] = RULES_IN_POWER,
	};
	struct rules_reading		 rr;

	if (r->kind == READING_ONLINE)
		return;
	rr.ts = r->ts_us;
	rr.temp_c = r->kind == READING_TEMP ? r->temp_c : NAN;
	rr.battery = r->battery;
	rr.input = inputs[r->kind];
	rr.door_open = r->door_open;
	rr.power_w = r->power_w;
	rr.power_on = r->power_on;
	if (!ex->loaded) {
		/* Held as the probe sent it: corrected once loaded. */
		rr.temp_c = r->kind == READING_TEMP ? r->temp_raw_c : NAN;
		exc_early_add(ex, r->key, &rr, now);
	}
	else
		exc_run(ex, r->key, &rr, now);
}

/*
 * Correct a reading by its probe's offset before it is stored and judged:
 * -1 (why says it) when the corrected value is impossible. Before the
 * offsets are first loaded temp_c is left unknown (NAN) for the database
 * to correct (vialwatch.sensor_offset_at) and the rules to judge later.
 */
int
excursion_correct(struct excursion *ex, struct reading *r, char *why,
    size_t len)
{
	if (r->kind != READING_TEMP)
		return (0);
	if (ex->offsets == NULL) {
		r->temp_raw_c = r->temp_c;
		r->temp_c = NAN;
		return (0);
	}
	return (offset_apply(ex->offsets, r, why, len));
}

/* Each second: delays run out, silent sensors go offline. */
static void
exc_on_tick(evutil_socket_t fd, short events, void *arg)
{
	struct excursion	*ex = arg;
	struct rules_event	 ev[RULES_EVENTS_MAX];
	struct exc_sensor	*es;
	int64_t			 now = clock_now_us();
	size_t			 i, n;

	for (i = 0; ex->map.count > 0 && i <= ex->map.mask; i++) {
		for (es = ex->map.buckets[i]; es != NULL; es = es->next) {
			n = rules_tick(&es->state, &es->limits, now, ev,
			    RULES_EVENTS_MAX);
			if (n > 0)
				exc_emit(ex, es, ev, n);
		}
	}
}

/* The sensor's kind and the door, power and warning limits of the row. */
static void
exc_row_input_limits(const PGresult *res, int i, struct rules_limits *l)
{
	const char	*kind = PQgetvalue(res, i, COL_SENSOR_KIND);

	l->sensor = strcmp(kind, "door") == 0 ? RULES_SENSOR_DOOR :
	    strcmp(kind, "power") == 0 ? RULES_SENSOR_POWER :
	    RULES_SENSOR_TEMP;
	l->door_alarm_after = pgconn_int(res, i, COL_DOOR_AFTER);
	l->power_min_w = pgconn_double(res, i, COL_POWER_MIN);
	l->power_alarm_after = pgconn_int(res, i, COL_POWER_AFTER);
	l->warn_low_c = pgconn_double(res, i, COL_WARN_LOW);
	l->warn_high_c = pgconn_double(res, i, COL_WARN_HIGH);
	l->warn_delay = pgconn_int(res, i, COL_WARN_DELAY);
}

/* The open door, power and warning rows of the sensor. */
static void
exc_row_input_saved(const PGresult *res, int i, struct rules_saved *sv)
{
	const char		*kind = PQgetvalue(res, i, COL_I_KIND);
	struct rules_excursion	*x = &sv->input, *w = &sv->warn;

	rules_clear(x);
	rules_clear(w);
	if (strcmp(kind, "door") == 0 || strcmp(kind, "power") == 0) {
		x->kind = kind[0] == 'd' ? RULES_DOOR : RULES_POWER;
		x->started_at = pgconn_int(res, i, COL_I_STARTED);
		x->alarmed_at = pgconn_int(res, i, COL_I_ALARMED);
		x->peak_c = pgconn_double(res, i, COL_I_PEAK);
		x->minutes_out = pgconn_double(res, i, COL_I_MINUTES);
	}
	if (!PQgetisnull(res, i, COL_W_STARTED)) {
		w->kind = RULES_WARNING;
		w->started_at = pgconn_int(res, i, COL_W_STARTED);
		w->alarmed_at = pgconn_int(res, i, COL_W_ALARMED);
		w->peak_c = pgconn_double(res, i, COL_W_PEAK);
		w->minutes_out = pgconn_double(res, i, COL_W_MINUTES);
	}
}

/* The limits of the row's fridge; fridge_id 0 when it has none now. */
static void
exc_row_limits(const PGresult *res, int i, struct rules_limits *l)
{
	int64_t	fridge = pgconn_int(res, i, COL_FRIDGE);

	rules_limits_default(l, fridge, RULES_FRIDGE);
	if (fridge == 0)
		return;
	if (strcmp(PQgetvalue(res, i, COL_KIND), "freezer") == 0)
		l->kind = RULES_FREEZER;
	l->low_c = pgconn_double(res, i, COL_LOW);
	l->high_c = pgconn_double(res, i, COL_HIGH);
	l->critical_low_c = pgconn_double(res, i, COL_CRIT_LOW);
	l->critical_high_c = pgconn_double(res, i, COL_CRIT_HIGH);
	l->hysteresis_c = pgconn_double(res, i, COL_HYST);
	l->low_delay = pgconn_int(res, i, COL_LOW_DELAY);
	l->high_delay = pgconn_int(res, i, COL_HIGH_DELAY);
	l->offline_after = pgconn_int(res, i, COL_OFFLINE_AFTER);
	l->battery_low_pct = pgconn_double(res, i, COL_BATTERY_LOW);
	exc_row_input_limits(res, i, l);
}

/* What the row says of the sensor's past; the fridge of its open rows. */
static int64_t
exc_row_saved(const PGresult *res, int i, struct rules_saved *sv)
{
	const char		*kind = PQgetvalue(res, i, COL_T_KIND);
	struct rules_excursion	*t = &sv->temp, *o = &sv->offline;
	int64_t			 fridge;

	memset(sv, 0, sizeof *sv);
	sv->last_ts = pgconn_int(res, i, COL_LAST_TS);
	sv->last_temp = pgconn_double(res, i, COL_LAST_TEMP);
	sv->last_arrival = pgconn_int(res, i, COL_LAST_ARRIVAL);
	sv->battery_at = pgconn_int(res, i, COL_BATTERY_AT);
	t->kind = strcmp(kind, "high") == 0 ? RULES_HIGH :
	    strcmp(kind, "low") == 0 ? RULES_LOW : RULES_NONE;
	t->started_at = pgconn_int(res, i, COL_T_STARTED);
	t->alarmed_at = pgconn_int(res, i, COL_T_ALARMED);
	t->peak_c = pgconn_double(res, i, COL_T_PEAK);
	t->minutes_out = pgconn_double(res, i, COL_T_MINUTES);
	t->degree_minutes = pgconn_double(res, i, COL_T_DM);
	o->kind = PQgetisnull(res, i, COL_O_STARTED) ? RULES_NONE :
	    RULES_OFFLINE;
	o->started_at = pgconn_int(res, i, COL_O_STARTED);
	o->alarmed_at = pgconn_int(res, i, COL_O_ALARMED);
	o->peak_c = NAN;
	exc_row_input_saved(res, i, sv);
	if ((fridge = pgconn_int(res, i, COL_T_FRIDGE)) == 0)
		fridge = pgconn_int(res, i, COL_O_FRIDGE);
	return (fridge);
}

/*
 * A sensor met for the first time: rebuild its state. Open rows on
 * another fridge bind it there, so that the next tick closes them as a
 * move (rules.c).
 */
static void
exc_restore(struct exc_sensor *es, const PGresult *res, int i,
    const struct rules_limits *lim, int64_t now)
{
	struct rules_saved	sv;
	struct rules_limits	l = *lim;
	int64_t			fridge;

	if ((fridge = exc_row_saved(res, i, &sv)) != 0)
		l.fridge_id = fridge;
	rules_restore(&es->state, &l, &sv, now);
}

/* The sensor left its fridge: close what is open and forget it. */
static void
exc_detach(struct excursion *ex, struct exc_sensor *es, int64_t now)
{
	struct rules_event	ev[RULES_EVENTS_MAX];
	size_t			n;

	n = rules_detach(&es->state, es->state.last_ts, now, ev,
	    RULES_EVENTS_MAX);
	if (n > 0)
		exc_emit(ex, es, ev, n);
	log_info("sensor %s: no fridge now, not watched", es->key);
	exc_sensor_free(es);
}

/*
 * One row of the load: keep, restore or detach its sensor. With [alerts]
 * watch = own, a sensor that none of our [source] filters can deliver
 * belongs to another daemon (sharding, docs/SCALING.md): we neither judge
 * its silence nor close its rows. Returns 0, or -1 for such a sensor.
 */
static int
exc_load_row(struct excursion *ex, struct exc_map *old, struct exc_map *map,
    const PGresult *res, int i, int64_t now)
{
	const char		*key = PQgetvalue(res, i, COL_KEY);
	uint32_t		 h = exc_hash(key);
	int64_t			 id = pgconn_int(res, i, COL_SENSOR);
	struct exc_sensor	*es;
	struct rules_limits	 lim;

	es = exc_map_find(old, key, h);
	if ((*ex->conf)->alerts_watch_own &&
	    !topic_conf_reaches((*ex->conf), key)) {
		if (es != NULL) {
			exc_map_remove(old, es);
			exc_sensor_free(es);
		}
		return (-1);
	}
	exc_row_limits(res, i, &lim);
	if (es != NULL && es->id == id)
		exc_map_remove(old, es);
	else {
		es = exc_sensor_new(key, h, id);
		exc_restore(es, res, i, &lim, now);
	}
	es->limits = lim;
	if (lim.fridge_id == 0)
		exc_detach(ex, es, now);	/* open rows, no fridge now */
	else
		exc_map_add(map, es);
	return (0);
}

/* The sensors query answered: the new table replaces the old one. */
static void
exc_load_done(struct excursion *ex, const PGresult *res)
{
	struct exc_map		 old = ex->map;
	struct exc_sensor	*es;
	int64_t			 now = clock_now_us();
	int			 i, n = PQntuples(res), other = -1, nother = 0;

	exc_map_init(&ex->map, n);
	for (i = 0; i < n; i++) {
		if (exc_load_row(ex, &old, &ex->map, res, i, now) == 0)
			continue;
		if (nother++ == 0)
			other = i;
	}
	while ((es = exc_map_any(&old)) != NULL) {
		exc_map_remove(&old, es);
		exc_detach(ex, es, now);
	}
	free(old.buckets);
	metrics.reference_loads++;
	log_info("excursions: watching %zu sensor%s", ex->map.count,
	    ex->map.count == 1 ? "" : "s");
	if (nother > 0)
		log_info("excursions: watch = own: %d assigned sensor%s (such "
		    "as %s) match%s no [source] filter of this daemon and %s "
		    "left to the daemons that receive %s", nother,
		    nother == 1 ? "" : "s", PQgetvalue(res, other, COL_KEY),
		    nother == 1 ? "es" : "", nother == 1 ? "is" : "are",
		    nother == 1 ? "it" : "them");
	if (!ex->loaded) {
		ex->loaded = 1;
		exc_early_replay(ex);
	}
}

/* Epoch microseconds as a timestamptz literal in UTC; NULL for 0. */
static const char *
exc_param_time(char *buf, size_t len, int64_t us)
{
	struct tm	tm;
	time_t		t;
	int64_t		frac;
	size_t		n;

	if (us == 0)
		return (NULL);
	t = (time_t)(us / 1000000);
	if ((frac = us % 1000000) < 0) {
		frac += 1000000;
		t--;
	}
	gmtime_r(&t, &tm);
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06lld+00", (long long)frac);
	return (buf);
}

/* A double as text, NULL for NAN. */
static const char *
exc_param_double(char *buf, size_t len, double v)
{
	if (isnan(v))
		return (NULL);
	snprintf(buf, len, "%.17g", v);
	return (buf);
}

/* Send a query of ours in a new state: -1 when not connected. */
static int
exc_send(struct excursion *ex, enum exc_state state, const char *sql,
    int nparams, const char *const *params, pgconn_cb cb)
{
	/* Set first: a send that fails answers NULL at once. */
	ex->state = state;
	if (pgconn_query(ex->pc, sql, nparams, params, cb, ex) == -1) {
		ex->state = EXC_IDLE;
		return (-1);
	}
	return (0);
}

static int
exc_ok(const PGresult *res)
{
	return (PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK);
}

/* The first queued event is written, refused, or to be sent again. */
static void
exc_on_written(const PGresult *res, void *arg)
{
	struct excursion	*ex = arg;
	const struct exc_event	*e = &ex->q[ex->qhead];
	char			 what[64];

	ex->state = EXC_IDLE;
	if (res == NULL)
		return;		/* still first: sent again once connected */
	if (!exc_ok(res)) {
		snprintf(what, sizeof what, "%s of sensor %lld",
		    rules_event_name(e->ev.type), (long long)e->sensor_id);
		if (pgconn_failed(ex->pc, res, what)) {
			pgconn_drop(ex->pc, "an event will be sent again");
			return;
		}
		metrics.excursion_events_failed++;
	}
	exc_pop(ex);
	if (ex->paused != NULL)
		exc_pressure(ex);
	exc_next(ex);
}

/* Send the first queued event: one statement, one transaction. */
static void
exc_send_event(struct excursion *ex)
{
	const struct exc_event		*e = &ex->q[ex->qhead];
	const struct rules_excursion	*x = &e->ev.x;
	const char			*p[12];
	char				 b[10][40];

	p[0] = rules_event_name(e->ev.type);
	snprintf(b[0], sizeof b[0], "%lld", (long long)e->ev.fridge_id);
	p[1] = b[0];
	snprintf(b[1], sizeof b[1], "%lld", (long long)e->sensor_id);
	p[2] = b[1];
	p[3] = rules_kind_name(x->kind);
	p[4] = exc_param_time(b[2], sizeof b[2], x->started_at);
	p[5] = exc_param_time(b[3], sizeof b[3], x->alarmed_at);
	p[6] = exc_param_time(b[4], sizeof b[4], x->ended_at);
	p[7] = exc_param_double(b[5], sizeof b[5], x->peak_c);
	p[8] = exc_param_double(b[6], sizeof b[6], x->minutes_out);
	p[9] = exc_param_double(b[7], sizeof b[7], x->degree_minutes);
	p[10] = exc_param_double(b[8], sizeof b[8], e->temp_c);
	p[11] = exc_param_double(b[9], sizeof b[9], e->ev.battery);
	exc_send(ex, EXC_WRITING, exc_event_sql, 12, p, exc_on_written);
}

/* The sensors query is over; a failure means connecting again. */
static void
exc_on_loaded(const PGresult *res, void *arg)
{
	struct excursion	*ex = arg;

	if (res == NULL) {
		ex->state = EXC_IDLE;
		return;		/* loaded again once connected */
	}
	if (!exc_ok(res))
		pgconn_failed(ex->pc, res, exc_state_names[ex->state]);
	else if (PQnfields(res) != COL_COUNT)
		log_warnx("excursions: the sensors query gave %d columns, "
		    "not %d", PQnfields(res), COL_COUNT);
	else {
		/* Still loading: the events it gives wait in the queue. */
		exc_load_done(ex, res);
		ex->state = EXC_IDLE;
		exc_next(ex);
		return;
	}
	ex->state = EXC_IDLE;
	pgconn_drop(ex->pc, "loading the sensors failed (is the schema "
	    "migrated?)");
}

/* Send the sensors query; the first one skips what this run receives. */
static void
exc_send_sensors(struct excursion *ex)
{
	const char	*params[1];
	char		 before[40];

	params[0] = ex->loaded ? NULL :
	    exc_param_time(before, sizeof before, ex->started_us);
	if (exc_send(ex, EXC_LOADING, exc_load_sql, 1, params,
	    exc_on_loaded) == -1)
		ex->reload = 1;
}

/* The offsets query answered: its table replaces the old one. */
static void
exc_on_offsets(const PGresult *res, void *arg)
{
	struct excursion	*ex = arg;
	struct offset_table	*t;
	int			 i, n;

	ex->state = EXC_IDLE;
	if (res == NULL)
		return;		/* loaded again once connected */
	if (!exc_ok(res) || PQnfields(res) != 3) {
		if (exc_ok(res))
			log_warnx("excursions: the offsets query gave %d "
			    "columns, not 3", PQnfields(res));
		else
			pgconn_failed(ex->pc, res, "loading the offsets");
		pgconn_drop(ex->pc, "loading the offsets failed (is the "
		    "schema migrated?)");
		return;
	}
	t = offset_table_new();
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		offset_table_add(t, PQgetvalue(res, i, 0),
		    pgconn_int(res, i, 1), pgconn_double(res, i, 2));
	offset_table_free(ex->offsets);
	ex->offsets = t;
	if (n > 0)
		log_info("excursions: %d sensor offset%s loaded", n,
		    n == 1 ? "" : "s");
	exc_send_sensors(ex);
}

/* A load: the offsets, then the sensors. */
static void
exc_send_load(struct excursion *ex)
{
	ex->reload = 0;
	if (exc_send(ex, EXC_LOADING, exc_offsets_sql, 0, NULL,
	    exc_on_offsets) == -1)
		ex->reload = 1;
}

/* The connection is free: a load, then the next event, else done. */
static void
exc_next(struct excursion *ex)
{
	if (ex->state != EXC_IDLE || !pgconn_up(ex->pc))
		return;
	/* Before the first load, the queue holds the last run's events. */
	if (ex->reload && (ex->loaded || ex->qlen == 0))
		exc_send_load(ex);
	else if (ex->qlen > 0)
		exc_send_event(ex);
	else if (ex->draining)
		ex->drained(ex->drained_arg);
}

/* A set-up statement is over; a failure means connecting again. */
static void
exc_on_setup(const PGresult *res, void *arg)
{
	struct excursion	*ex = arg;

	if (res == NULL || exc_ok(res))
		return;
	pgconn_failed(ex->pc, res, "setting up");
	pgconn_drop(ex->pc, "set-up failed");
}

/* Connected: listen for reference changes, then load the sensors. */
static void
exc_up(void *arg)
{
	struct excursion	*ex = arg;

	pgconn_query(ex->pc, "listen " EXC_CHANNEL, 0, NULL, exc_on_setup,
	    ex);
	ex->reload = 1;
	exc_next(ex);
}

/* Lost: nothing of ours is in flight any more. */
static void
exc_down(void *arg)
{
	struct excursion	*ex = arg;

	ex->state = EXC_IDLE;
}

/* A NOTIFY on our channel: the reference data changed. */
static void
exc_notify(const char *channel, const char *extra, void *arg)
{
	struct excursion	*ex = arg;

	log_debug("excursions: %s changed", extra);
	ex->reload = 1;
	exc_next(ex);
}

/* The excursion rules, idle until excursion_start. */
struct excursion *
excursion_new(struct event_base *base, struct conf **conf,
    void (*pause)(const char *, void *), void *arg)
{
	static const struct pgconn_events	 events = {
		exc_up, exc_down, exc_notify
	};
	struct excursion			*ex;

	ex = xcalloc(1, sizeof *ex);
	ex->conf = conf;
	ex->pause = pause;
	ex->pause_arg = arg;
	ex->started_us = clock_now_us();
	exc_map_init(&ex->map, 0);
	if ((ex->early = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	ex->pc = pgconn_new(base, conf, "excursions", &events, ex);
	event_assign(&ex->ev_tick, base, -1, EV_PERSIST, exc_on_tick, ex);
	return (ex);
}

/* Connect in the background; tick each second. */
void
excursion_start(struct excursion *ex)
{
	struct timeval	tick = { EXC_TICK_MS / 1000, EXC_TICK_MS % 1000 * 1000 };

	pgconn_start(ex->pc);
	event_add(&ex->ev_tick, &tick);
}

/* A reload: a new conninfo or new hooks mean a new connection. */
void
excursion_reconfigure(struct excursion *ex, const struct conf *old)
{
	pgconn_reconfigure(ex->pc, old);
}

/* SIGHUP: load the sensors again once the connection is free. */
void
excursion_reload(struct excursion *ex)
{
	log_info("excursions: reloading the sensors");
	ex->reload = 1;
	exc_next(ex);
}

/* Stopping: no more ticks; write what is queued, then drained(arg). */
void
excursion_drain(struct excursion *ex, void (*drained)(void *), void *arg)
{
	ex->drained = drained;
	ex->drained_arg = arg;
	ex->draining = 1;
	event_del(&ex->ev_tick);
	if (ex->qlen == 0)
		drained(arg);
	else
		exc_next(ex);
}

/* Events not written yet, the one in flight included. */
size_t
excursion_pending(struct excursion *ex)
{
	return (ex->qlen);
}

/* Sensors watched. */
size_t
excursion_sensors(struct excursion *ex)
{
	return (ex->map.count);
}

/* Open excursions by kind, as the rules hold them. */
void
excursion_open_counts(struct excursion *ex, size_t counts[EXCURSION_KINDS])
{
	struct exc_sensor	*es;
	size_t			 i;

	memset(counts, 0, EXCURSION_KINDS * sizeof counts[0]);
	for (i = 0; ex->map.count > 0 && i <= ex->map.mask; i++) {
		for (es = ex->map.buckets[i]; es != NULL; es = es->next) {
			counts[es->state.temp.kind]++;
			counts[es->state.offline.kind]++;
			counts[es->state.input.kind]++;
			counts[es->state.warn.kind]++;
		}
	}
	counts[RULES_NONE] = 0;
}

#define EXC_FILE_MAGIC	0x31455756u	/* "VWE1" */

/* The file header: what wrote it, and how many events follow. */
struct exc_file {
	uint32_t	magic;
	uint32_t	size;		/* of struct exc_event */
	uint64_t	count;
};

/* Stopping with events not written: keep them in path for next time. */
void
excursion_save(struct excursion *ex, const char *path)
{
	struct exc_file	 h = { EXC_FILE_MAGIC, sizeof *ex->q, ex->qlen };
	char		*tmp;
	size_t		 i;
	int		 fd, ok;

	if (ex->qlen == 0)
		return;
	xasprintf(&tmp, "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1) {
		log_warn("excursions: cannot keep %zu events in %s", ex->qlen,
		    tmp);
		free(tmp);
		return;
	}
	ok = write(fd, &h, sizeof h) == (ssize_t)sizeof h;
	for (i = 0; ok && i < ex->qlen; i++) {
		ok = write(fd, &ex->q[(ex->qhead + i) % ex->qcap],
		    sizeof *ex->q) == (ssize_t)sizeof *ex->q;
	}
	if (!ok || fsync(fd) == -1 || close(fd) == -1 ||
	    rename(tmp, path) == -1)
		log_warn("excursions: cannot keep %zu events in %s", ex->qlen,
		    path);
	else
		log_info("excursions: %zu events not written are kept in %s "
		    "for the next start", ex->qlen, path);
	free(tmp);
}

/* Starting: queue the events a stop kept in path, first of all. */
void
excursion_restore(struct excursion *ex, const char *path)
{
	struct exc_file	 h;
	struct exc_event e;
	size_t		 n = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			log_warn("excursions: %s", path);
		return;
	}
	if (read(fd, &h, sizeof h) != (ssize_t)sizeof h ||
	    h.magic != EXC_FILE_MAGIC || h.size != sizeof e) {
		log_warnx("excursions: %s was written by another version; "
		    "its events are not sent", path);
		close(fd);
		return;
	}
	while (n < h.count && read(fd, &e, sizeof e) == (ssize_t)sizeof e) {
		if (ex->qlen == ex->qcap)
			exc_grow(ex);
		ex->q[(ex->qhead + ex->qlen++) % ex->qcap] = e;
		n++;
	}
	close(fd);
	if (unlink(path) == -1)
		log_warn("excursions: cannot remove %s", path);
	log_info("excursions: %zu events of the last run are queued again", n);
}

/* Free everything; events still queued are lost (and logged). */
void
excursion_free(struct excursion *ex)
{
	struct exc_sensor	*es;

	if (ex == NULL)
		return;
	if (ex->qlen > 0)
		log_warnx("excursions: %zu events not written", ex->qlen);
	pgconn_free(ex->pc);
	event_del(&ex->ev_tick);
	while ((es = exc_map_any(&ex->map)) != NULL) {
		exc_map_remove(&ex->map, es);
		exc_sensor_free(es);
	}
	free(ex->map.buckets);
	free(ex->q);
	offset_table_free(ex->offsets);
	evbuffer_free(ex->early);
	free(ex);
}
