/*
 * rules-input.c: the door, power and warning machines of one sensor, beside
 * the high/low and offline rules of rules.c. Pure, like rules.c: readings
 * and ticks in, events out, each carrying the whole excursion row.
 *
 * - Door: a reading saying "open" opens a door excursion at its ts (if
 *   none is open); it alarms once it has stayed open door_alarm_after, by
 *   a reading still saying "open" or by a tick on the sensor's clock (as
 *   in rules.c). The reading saying "closed" ends it. minutes_out is how
 *   long the door was open; peak_c stays unset. A door contact's silence
 *   means nothing (they report on change), so it never goes offline.
 * - Power: a reading under power_min_w watts, or a boolean "off", opens a
 *   power excursion, which alarms after power_alarm_after; a reading at
 *   or above power_min_w (or "on") ends it. peak_c holds the lowest watts
 *   (unset for booleans). The plug saying it is offline (availability),
 *   or falling silent for offline_after, opens a power excursion alarmed
 *   at once: a fridge whose plug is gone may well be without power.
 * - Warning: a temperature above warn_high_c or below warn_low_c opens a
 *   warning at that reading; it alarms (one email, nothing else) after
 *   warn_delay, unless the high/low excursion has alarmed already; it ends
 *   silently back inside by hysteresis_c, or when the other bound is
 *   crossed (which opens another). peak_c is the farthest reading.
 * - Out-of-order readings are ignored by rules_feed before they get here.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rules.h"

/* The defaults of the new fridge columns: no warning thresholds. */
void
rules_input_default(struct rules_limits *l)
{
	l->sensor = RULES_SENSOR_TEMP;
	l->door_alarm_after = 5 * RULES_US_PER_MIN;
	l->power_min_w = 5.0;
	l->power_alarm_after = 2 * RULES_US_PER_MIN;
	l->warn_low_c = NAN;
	l->warn_high_c = NAN;
	l->warn_delay = 15 * RULES_US_PER_MIN;
}

/* Open an excursion of kind k in slot x at ts; alarmed at once if asked. */
static void
rules_input_open(struct rules_excursion *x, enum rules_kind k, int64_t ts,
    double peak, int alarm, struct rules_out *o)
{
	rules_clear(x);
	x->kind = k;
	x->started_at = ts;
	x->peak_c = peak;
	rules_emit(o, RULES_EV_OPEN, x, NAN);
	if (alarm) {
		x->alarmed_at = ts;
		rules_emit(o, RULES_EV_ALARM, x, NAN);
	}
}

/* A reading keeps slot x open: the alarm once due, else an update. */
static void
rules_input_continue(struct rules_excursion *x, int64_t ts, int64_t delay,
    int may_alarm, struct rules_out *o)
{
	x->minutes_out = rules_minutes(x->started_at, ts);
	if (x->alarmed_at == 0 && may_alarm && ts >= x->started_at + delay) {
		x->alarmed_at = ts;
		rules_emit(o, RULES_EV_ALARM, x, NAN);
	} else
		rules_emit(o, RULES_EV_UPDATE, x, NAN);
}

/* End the excursion in slot x at ts. */
static void
rules_input_close(struct rules_excursion *x, int64_t ts, struct rules_out *o)
{
	if (x->kind == RULES_NONE)
		return;
	if (ts < x->started_at)
		ts = x->started_at;
	x->ended_at = ts;
	x->minutes_out = rules_minutes(x->started_at, ts);
	rules_emit(o, RULES_EV_CLOSE, x, NAN);
	rules_clear(x);
}

/* Whether a power reading says the fridge has no power. */
static int
rules_input_unpowered(const struct rules_limits *l,
    const struct rules_reading *r)
{
	if (r->power_on >= 0)
		return (r->power_on == 0);
	return (!(r->power_w >= l->power_min_w));
}

/* A door reading. */
static void
rules_input_door(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, struct rules_out *o)
{
	struct rules_excursion	*x = &s->input;

	if (x->kind != RULES_NONE && x->kind != RULES_DOOR)
		rules_input_close(x, r->ts, o);
	if (!r->door_open)
		rules_input_close(x, r->ts, o);
	else if (x->kind == RULES_NONE)
		rules_input_open(x, RULES_DOOR, r->ts, NAN,
		    l->door_alarm_after <= 0, o);
	else
		rules_input_continue(x, r->ts, l->door_alarm_after, 1, o);
}

/* A power reading, or the plug saying it is offline. */
static void
rules_input_power(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, struct rules_out *o)
{
	struct rules_excursion	*x = &s->input;
	int			 gone = r->input == RULES_IN_UNPLUGGED;
	double			 w = gone ? NAN : r->power_w;

	if (x->kind != RULES_NONE && x->kind != RULES_POWER)
		rules_input_close(x, r->ts, o);
	if (!gone && !rules_input_unpowered(l, r)) {
		rules_input_close(x, r->ts, o);
		return;
	}
	if (x->kind == RULES_NONE) {
		rules_input_open(x, RULES_POWER, r->ts, w,
		    gone || l->power_alarm_after <= 0, o);
		return;
	}
	if (r->ts < x->started_at)
		return;		/* an availability message from before */
	if (!isnan(w) && (isnan(x->peak_c) || w < x->peak_c))
		x->peak_c = w;
	rules_input_continue(x, r->ts, gone ? 0 : l->power_alarm_after, 1, o);
}

/* A door or power reading, the sensor bound to l's fridge. */
void
rules_input_feed(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, struct rules_out *o)
{
	if (r->input == RULES_IN_DOOR)
		rules_input_door(s, l, r, o);
	else
		rules_input_power(s, l, r, o);
}

/* The side of the warning band t is on, RULES_NONE inside. */
static enum rules_kind
rules_input_side(const struct rules_limits *l, double t)
{
	if (!isnan(l->warn_high_c) && t > l->warn_high_c)
		return (RULES_HIGH);
	if (!isnan(l->warn_low_c) && t < l->warn_low_c)
		return (RULES_LOW);
	return (RULES_NONE);
}

/* Back inside the warning band by the hysteresis. */
static int
rules_input_back(const struct rules_limits *l, int side, double t)
{
	if (side == RULES_HIGH)
		return (isnan(l->warn_high_c) ||
		    t <= l->warn_high_c - l->hysteresis_c);
	return (isnan(l->warn_low_c) || t >= l->warn_low_c + l->hysteresis_c);
}

/* A temperature reading: the warning before the alarm. */
void
rules_input_warn(struct rules_state *s, const struct rules_limits *l,
    const struct rules_reading *r, struct rules_out *o)
{
	struct rules_excursion	*x = &s->warn;
	enum rules_kind		 side = rules_input_side(l, r->temp_c);
	int			 quiet = s->temp.alarmed_at != 0;

	if (x->kind != RULES_NONE) {
		if ((side == RULES_NONE || (int)side == s->warn_side) &&
		    !rules_input_back(l, s->warn_side, r->temp_c)) {
			if (s->warn_side == RULES_HIGH ? r->temp_c > x->peak_c :
			    r->temp_c < x->peak_c)
				x->peak_c = r->temp_c;
			rules_input_continue(x, r->ts, l->warn_delay, !quiet,
			    o);
			return;
		}
		rules_input_close(x, r->ts, o);
	}
	if (side == RULES_NONE)
		return;
	s->warn_side = side;
	rules_input_open(x, RULES_WARNING, r->ts, r->temp_c,
	    !quiet && l->warn_delay <= 0, o);
}

/* Alarm slot x at the sensor's clock once its delay has run out. */
static void
rules_input_due(struct rules_excursion *x, int64_t delay, int64_t sensor_now,
    struct rules_out *o)
{
	if (x->kind == RULES_NONE || x->alarmed_at != 0 ||
	    sensor_now < x->started_at + delay)
		return;
	x->alarmed_at = sensor_now;
	x->minutes_out = rules_minutes(x->started_at, sensor_now);
	rules_emit(o, RULES_EV_ALARM, x, NAN);
}

/* The clock: the door, power and warning delays run out. */
void
rules_input_tick(struct rules_state *s, const struct rules_limits *l,
    int64_t sensor_now, struct rules_out *o)
{
	rules_input_due(&s->input, s->input.kind == RULES_DOOR ?
	    l->door_alarm_after : l->power_alarm_after, sensor_now, o);
	if (s->temp.alarmed_at == 0)
		rules_input_due(&s->warn, l->warn_delay, sensor_now, o);
}

/* A plug silent since started, seen at wall time now: no power known. */
void
rules_input_silent(struct rules_state *s, int64_t started, int64_t now,
    struct rules_out *o)
{
	struct rules_excursion	*x = &s->input;

	rules_input_open(x, RULES_POWER, started, NAN, 0, o);
	x->alarmed_at = now > started ? now : started;
	x->minutes_out = rules_minutes(x->started_at, x->alarmed_at);
	rules_emit(o, RULES_EV_ALARM, x, NAN);
}

/* The sensor left its fridge at ts. */
void
rules_input_leave(struct rules_state *s, int64_t ts, struct rules_out *o)
{
	rules_input_close(&s->input, ts, o);
	rules_input_close(&s->warn, ts, o);
}

/* Rebuild the open door, power and warning rows at start. */
void
rules_input_restore(struct rules_state *s, const struct rules_limits *l,
    const struct rules_saved *sv)
{
	if (sv->input.kind == RULES_DOOR || sv->input.kind == RULES_POWER) {
		s->input = sv->input;
		s->input.ended_at = 0;
	}
	if (sv->warn.kind == RULES_WARNING) {
		s->warn = sv->warn;
		s->warn.ended_at = 0;
		s->warn_side = sv->warn.peak_c > (l->low_c + l->high_c) / 2 ?
		    RULES_HIGH : RULES_LOW;
	}
}
