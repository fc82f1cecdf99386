/*
 * rules.c: the excursion state machine of one sensor.
 *
 * Pure: the caller hands in readings (with the wall time they arrived) and
 * clock ticks, and gets events back, each carrying the whole excursion row
 * so that it can be inserted or updated as it stands. The choices made:
 *
 * - Temperature rules run on the readings' own timestamps. A reading above
 *   high_c (below low_c) opens a pending excursion with started_at = its ts.
 *   Exactly high_c or low_c is in range; "beyond a critical bound" is
 *   strictly above critical_high_c or below critical_low_c.
 * - It alarms, with alarmed_at = the reading's ts, on the first reading at
 *   or after started_at + high_delay (low_delay) that does not close it, or
 *   at once when beyond the critical bound (a zero delay alarms at once
 *   too). A clock tick alarms it as well once the sensor's clock is at or
 *   past started_at + delay, with alarmed_at = that clock: that is what
 *   alarms on time when the sensor reads rarely or falls silent. The
 *   sensor's clock is its last reading's ts advanced by the wall time
 *   since that reading arrived: now, for a live feed; in the past while a
 *   backlog of old readings is delivered (the broker replaying what it
 *   queued while the daemon was down), so that a tick between two of them
 *   never alarms a door opening whose closing reading is still on its
 *   way. A reading that closes the excursion never alarms it after the
 *   fact.
 * - It closes, ended_at = the reading's ts, at high_c - hysteresis_c or
 *   below (low_c + hysteresis_c or above). Until then it stays open, and
 *   counts as still out for the alarm, even inside the hysteresis band: a
 *   fridge flapping around 8 °C makes one excursion, not many. A reading
 *   beyond the other bound closes it and opens the other kind. One that
 *   closes before the alarm is still reported (CLOSE, alarmed_at unset).
 * - peak_c is the highest (high) or lowest (low) reading; minutes_out runs
 *   from started_at to ended_at, or to the latest reading while open.
 * - degree_minutes integrates the excess beyond the bound (temp - high_c or
 *   low_c - temp, clipped at 0) over time, each reading standing for the
 *   time until the next one (step-hold). So a gap in the readings during
 *   an excursion is counted with the last value held, and the reading that
 *   closes it adds nothing. The bound is the one the excursion opened with.
 * - A reading whose ts is not after the latest accepted one (duplicate or
 *   out of order) is ignored entirely: no state change, no battery check.
 *   The daemon still stores it.
 * - Offline is wall-clock: no accepted reading for offline_after, as seen
 *   by ticks, opens an offline excursion, alarmed at once (offline_after is
 *   its delay), started_at = the arrival time of the last reading. The next
 *   accepted reading ends it, ended_at = its arrival time. Only
 *   temperature readings count as signs of life.
 * - Battery under battery_low_pct (strictly) emits a battery event at most
 *   once per 24 h of reading time per sensor; the row is a point in time
 *   (started_at = alarmed_at = ended_at = ts), so it never stays open.
 *   Battery-only reports (temp NAN) are checked for this alone.
 * - A reading arriving with another fridge_id than the state's means the
 *   sensor moved: the open excursion is closed on the old fridge at that
 *   reading's ts (the old value held until then), an open offline one ends,
 *   and the new fridge starts afresh with this reading. New limits for the
 *   same fridge (a reload) apply from the next reading on, without closing.
 *   A tick with another fridge_id does the same at the last reading's ts.
 * - Restart: rules_restore rebuilds the state from the open excursion rows
 *   and the last reading. Silence is counted from max(last arrival, daemon
 *   start), so the daemon's own downtime never raises an offline alarm.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rules.h"

static const char *rules_event_names[RULES_EV_COUNT] = {
	[RULES_EV_OPEN] = "excursion.open",
	[RULES_EV_ALARM] = "excursion.alarm",
	[RULES_EV_UPDATE] = "excursion.update",
	[RULES_EV_CLOSE] = "excursion.close",
	[RULES_EV_OFFLINE] = "sensor.offline",
	[RULES_EV_ONLINE] = "sensor.online",
	[RULES_EV_BATTERY] = "battery.low",
};

static const char *rules_kind_names[] = {
	[RULES_NONE] = "none",
	[RULES_HIGH] = "high",
	[RULES_LOW] = "low",
	[RULES_OFFLINE] = "offline",
	[RULES_BATTERY] = "battery",
	[RULES_DOOR] = "door",
	[RULES_POWER] = "power",
	[RULES_WARNING] = "warning",
};

/* The hook/log name of an event type. */
const char *
rules_event_name(enum rules_event_type t)
{
	if ((unsigned)t >= RULES_EV_COUNT)
		return ("unknown");
	return (rules_event_names[t]);
}

/* The vialwatch.excursion.kind value of a kind. */
const char *
rules_kind_name(enum rules_kind k)
{
	if ((unsigned)k >= sizeof rules_kind_names / sizeof rules_kind_names[0])
		return ("unknown");
	return (rules_kind_names[k]);
}

/* The SPEC defaults of a fridge or freezer. */
void
rules_limits_default(struct rules_limits *l, int64_t fridge_id,
    enum rules_fridge_kind kind)
{
	memset(l, 0, sizeof *l);
	l->fridge_id = fridge_id;
	l->kind = kind;
	if (kind == RULES_FREEZER) {
		l->low_c = -50.0;
		l->high_c = -15.0;
		l->critical_low_c = -60.0;
		l->critical_high_c = -10.0;
	} else {
		l->low_c = 2.0;
		l->high_c = 8.0;
		l->critical_low_c = 0.0;
		l->critical_high_c = 12.0;
	}
	l->hysteresis_c = 0.5;
	l->low_delay = 15 * RULES_US_PER_MIN;
	l->high_delay = 30 * RULES_US_PER_MIN;
	l->offline_after = 30 * RULES_US_PER_MIN;
	l->battery_low_pct = 20.0;
	rules_input_default(l);
}

/* Empty an excursion slot. */
void
rules_clear(struct rules_excursion *x)
{
	*x = (struct rules_excursion){ .kind = RULES_NONE, .peak_c = NAN };
}

/* A state that has seen nothing: no fridge, not watched for silence. */
void
rules_init(struct rules_state *s)
{
	memset(s, 0, sizeof *s);
	s->last_temp = NAN;
	s->bound_c = NAN;
	rules_clear(&s->temp);
	rules_clear(&s->offline);
	rules_clear(&s->input);
	rules_clear(&s->warn);
}

/* Append an event, unless the caller's array is full. */
void
rules_emit(struct rules_out *o, enum rules_event_type t,
    const struct rules_excursion *x, double battery)
{
	struct rules_event	*e;

	if (o->n >= o->max)
		return;
	e = &o->ev[o->n++];
	e->type = t;
	e->fridge_id = o->fridge_id;
	e->x = *x;
	e->battery = battery;
}

/* Minutes between two times. */
double
rules_minutes(int64_t from, int64_t to)
{
	return ((double)(to - from) / (double)RULES_US_PER_MIN);
}

/* Which side of the range a temperature is on, RULES_NONE inside. */
static enum rules_kind
rules_side(const struct rules_limits *l, double t)
{
	if (t > l->high_c)
		return (RULES_HIGH);
	if (t < l->low_c)
		return (RULES_LOW);
	return (RULES_NONE);
}

/* Beyond the critical bound of the excursion's side. */
static int
rules_critical(const struct rules_limits *l, enum rules_kind k, double t)
{
	if (k == RULES_HIGH)
		return (t > l->critical_high_c);
	return (t < l->critical_low_c);
}

/* Back in range by the hysteresis. */
static int
rules_back(const struct rules_limits *l, enum rules_kind k, double t)
{
	if (k == RULES_HIGH)
		return (t <= l->high_c - l->hysteresis_c);
	return (t >= l->low_c + l->hysteresis_c);
}

/* The delay before a pending excursion of this kind alarms. */
static int64_t
rules_delay(const struct rules_limits *l, enum rules_kind k)
{
	return (k == RULES_HIGH ? l->high_delay : l->low_delay);
}

/* Count the last reading, held until ts, into the open excursion. */
static void
rules_hold(struct rules_state *s, int64_t ts)
{
	struct rules_excursion	*x = &s->temp;
	double			 excess;

	if (x->kind == RULES_NONE || ts <= s->last_ts)
		return;
	if (x->kind == RULES_HIGH)
		excess = s->last_temp - s->bound_c;
	else
		excess = s->bound_c - s->last_temp;
	if (excess > 0)
		x->degree_minutes += excess * rules_minutes(s->last_ts, ts);
	x->minutes_out = rules_minutes(x->started_at, ts);
}

/* Raise the alarm of the open temperature excursion. */
static void
rules_alarm(struct rules_state *s, int64_t at, struct rules_out *o)
{
	s->temp.alarmed_at = at;
	rules_emit(o, RULES_EV_ALARM, &s->temp, NAN);
}

/* Close the open temperature excursion at ts (held value counted). */
static void
rules_close(struct rules_state *s, int64_t ts, struct rules_out *o)
{
	s->temp.ended_at = ts;
	s->temp.minutes_out = rules_minutes(s->temp.started_at, ts);
	rules_emit(o, RULES_EV_CLOSE, &s->temp, NAN);
	rules_clear(&s->temp);
	s->bound_c = NAN;
}

/* Open a pending excursion at this reading; it may alarm at once. */
static void
rules_open(struct rules_state *s, const struct rules_limits *l,
    enum rules_kind k, const struct rules_reading *r, struct rules_out *o)
{
	struct rules_excursion	*x = &s->temp;

	rules_clear(x);
	x->kind = k;
	x->started_at = r->ts;
	x->peak_c = r->temp_c;
	s->bound_c = (k == RULES_HIGH ? l->high_c : l->low_c);
	rules_emit(o, RULES_EV_OPEN, x, NAN);
	if (rules_critical(l, k, r->temp_c) || rules_delay(l, k) <= 0)
		rules_alarm(s, r->ts, o);
}

/* A reading that keeps the excursion open: new peak, maybe the alarm. */
static void
rules_continue(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, struct rules_out *o)
{
	struct rules_excursion	*x = &s->temp;

	if (x->kind == RULES_HIGH ? r->temp_c > x->peak_c :
	    r->temp_c < x->peak_c)
		x->peak_c = r->temp_c;
	if (x->alarmed_at == 0 && (rules_critical(l, x->kind, r->temp_c) ||
	    r->ts >= x->started_at + rules_delay(l, x->kind)))
		rules_alarm(s, r->ts, o);
	else
		rules_emit(o, RULES_EV_UPDATE, x, NAN);
}

/* Apply a temperature to the high/low excursion. */
static void
rules_temp(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, struct rules_out *o)
{
	enum rules_kind	 side = rules_side(l, r->temp_c);

	if (s->temp.kind != RULES_NONE) {
		rules_hold(s, r->ts);
		if ((side == RULES_NONE || side == s->temp.kind) &&
		    !rules_back(l, s->temp.kind, r->temp_c)) {
			rules_continue(s, l, r, o);
			return;
		}
		rules_close(s, r->ts, o);
	}
	if (side != RULES_NONE)
		rules_open(s, l, side, r, o);
}

/* The sensor fell silent: open an offline excursion, alarmed at once. */
static void
rules_offline(struct rules_state *s, int64_t now, struct rules_out *o)
{
	struct rules_excursion	*x = &s->offline;

	rules_clear(x);
	x->kind = RULES_OFFLINE;
	x->started_at = s->last_arrival != 0 ? s->last_arrival :
	    s->silent_since;
	x->alarmed_at = now > x->started_at ? now : x->started_at;
	x->minutes_out = rules_minutes(x->started_at, x->alarmed_at);
	rules_emit(o, RULES_EV_OFFLINE, x, NAN);
}

/* A reading arrived at now: the offline excursion ends. */
static void
rules_online(struct rules_state *s, int64_t now, struct rules_out *o)
{
	struct rules_excursion	*x = &s->offline;

	x->ended_at = now > x->started_at ? now : x->started_at;
	x->minutes_out = rules_minutes(x->started_at, x->ended_at);
	rules_emit(o, RULES_EV_ONLINE, x, NAN);
	rules_clear(x);
}

/* Close everything on the current fridge: the sensor left it at ts. */
static void
rules_leave(struct rules_state *s, int64_t ts, int64_t now,
    struct rules_out *o)
{
	if (ts < s->last_ts)
		ts = s->last_ts;
	o->fridge_id = s->fridge_id;
	if (s->temp.kind != RULES_NONE) {
		rules_hold(s, ts);
		rules_close(s, ts, o);
	}
	if (s->offline.kind != RULES_NONE)
		rules_online(s, now, o);
	rules_input_leave(s, ts, o);
	s->bound = 0;
}

/* A low battery warning, at most once per RULES_BATTERY_EVERY. */
static void
rules_battery(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, struct rules_out *o)
{
	struct rules_excursion	 x;

	if (isnan(r->battery) || r->battery >= l->battery_low_pct)
		return;
	if (s->battery_at != 0 && r->ts - s->battery_at < RULES_BATTERY_EVERY)
		return;
	s->battery_at = r->ts;
	rules_clear(&x);
	x.kind = RULES_BATTERY;
	x.started_at = x.alarmed_at = x.ended_at = r->ts;
	o->fridge_id = l->fridge_id;
	rules_emit(o, RULES_EV_BATTERY, &x, r->battery);
}

/* Attach the state to the fridge of these limits. */
static void
rules_bind(struct rules_state *s, const struct rules_limits *l)
{
	s->bound = 1;
	s->fridge_id = l->fridge_id;
}

/* One reading of the sensor, arrived at wall time now. */
size_t
rules_feed(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, int64_t now, struct rules_event *ev,
    size_t max)
{
	struct rules_out	 o = { ev, max, 0, l->fridge_id };

	if (isnan(r->temp_c) && r->input == RULES_IN_NONE) {
		rules_battery(s, l, r, &o);
		return (o.n);
	}
	if (s->last_ts != 0 && r->ts <= s->last_ts &&
	    r->input != RULES_IN_UNPLUGGED)
		return (0);
	if (s->bound && s->fridge_id != l->fridge_id)
		rules_leave(s, r->ts, now, &o);
	rules_bind(s, l);
	o.fridge_id = l->fridge_id;
	if (r->input == RULES_IN_UNPLUGGED) {
		rules_input_feed(s, l, r, &o);
		return (o.n);
	}
	if (s->offline.kind != RULES_NONE)
		rules_online(s, now, &o);
	if (r->input != RULES_IN_NONE)
		rules_input_feed(s, l, r, &o);
	else {
		rules_temp(s, l, r, &o);
		rules_input_warn(s, l, r, &o);
	}
	s->last_ts = r->ts;
	s->last_temp = r->temp_c;
	s->last_arrival = now;
	s->silent_since = now;
	rules_battery(s, l, r, &o);
	return (o.n);
}

/* The sensor's clock at wall time now (see the top of this file). */
static int64_t
rules_clock(const struct rules_state *s, int64_t now)
{
	if (s->last_ts == 0 || s->last_arrival == 0)
		return (now);
	return (s->last_ts + (now - s->last_arrival));
}

/* The clock: delays run out, silent sensors go offline. */
size_t
rules_tick(struct rules_state *s, const struct rules_limits *l, int64_t now,
    struct rules_event *ev, size_t max)
{
	struct rules_out	 o = { ev, max, 0, l->fridge_id };
	struct rules_excursion	*x = &s->temp;
	int64_t			 sensor_now = rules_clock(s, now);

	if (!s->bound)
		return (0);
	if (s->fridge_id != l->fridge_id) {
		rules_leave(s, s->last_ts, now, &o);
		rules_bind(s, l);
		s->silent_since = now;
		return (o.n);
	}
	if (x->kind != RULES_NONE && x->alarmed_at == 0 &&
	    sensor_now >= x->started_at + rules_delay(l, x->kind))
		rules_alarm(s, sensor_now, &o);
	rules_input_tick(s, l, sensor_now, &o);
	if (s->silent_since == 0 || now - s->silent_since < l->offline_after)
		return (o.n);
	/* Door contacts report on change: their silence says nothing. */
	if (l->sensor == RULES_SENSOR_POWER && s->input.kind == RULES_NONE)
		rules_input_silent(s, s->last_arrival != 0 ? s->last_arrival :
		    s->silent_since, now, &o);
	else if (l->sensor == RULES_SENSOR_TEMP &&
	    s->offline.kind == RULES_NONE)
		rules_offline(s, now, &o);
	return (o.n);
}

/* The sensor left its fridge at ts (unassigned): close all, stop watching. */
size_t
rules_detach(struct rules_state *s, int64_t ts, int64_t now,
    struct rules_event *ev, size_t max)
{
	struct rules_out	 o = { ev, max, 0, s->fridge_id };

	if (s->bound)
		rules_leave(s, ts, now, &o);
	s->silent_since = 0;
	return (o.n);
}

/*
 * Rebuild the state at daemon start (wall time now) from the open rows and
 * the last reading. Without a known reading, an open row's own end (the
 * peak held from started_at + minutes_out) stands in for it.
 */
void
rules_restore(struct rules_state *s, const struct rules_limits *l,
    const struct rules_saved *sv, int64_t now)
{
	enum rules_kind	 k = sv->temp.kind;

	rules_init(s);
	rules_bind(s, l);
	s->last_ts = sv->last_ts;
	s->last_temp = sv->last_temp;
	s->last_arrival = sv->last_arrival != 0 ? sv->last_arrival :
	    sv->last_ts;
	s->silent_since = s->last_arrival > now ? s->last_arrival : now;
	s->battery_at = sv->battery_at;
	if (k == RULES_HIGH || k == RULES_LOW) {
		s->temp = sv->temp;
		s->temp.ended_at = 0;
		s->bound_c = (k == RULES_HIGH ? l->high_c : l->low_c);
		if (s->last_ts < s->temp.started_at) {
			s->last_ts = s->temp.started_at + (int64_t)llround(
			    s->temp.minutes_out * (double)RULES_US_PER_MIN);
			s->last_temp = s->temp.peak_c;
		}
	}
	if (sv->offline.kind == RULES_OFFLINE) {
		s->offline = sv->offline;
		s->offline.ended_at = 0;
	}
	rules_input_restore(s, l, sv);
}
