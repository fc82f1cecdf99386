/*
 * rules.c: the excursion state machine of one sensor. Pure code: readings
 * and clock ticks in, events out; no I/O, no allocation, no global state.
 * Times are microseconds since the epoch; 0 means "unset" (SQL NULL).
 */
#ifndef RULES_H
#define RULES_H

#include <stddef.h>
#include <stdint.h>

#define RULES_US_PER_MIN	(60LL * 1000000)
#define RULES_BATTERY_EVERY	(24LL * 60 * RULES_US_PER_MIN)
/* One call never emits more events than this. */
#define RULES_EVENTS_MAX	16

/* vialwatch.sensor.kind. */
enum rules_sensor_kind {
	RULES_SENSOR_TEMP,
	RULES_SENSOR_DOOR,
	RULES_SENSOR_POWER,
};

enum rules_fridge_kind {
	RULES_FRIDGE,
	RULES_FREEZER,
};

/* The thresholds of one row of vialwatch.fridge. */
struct rules_limits {
	int64_t			 fridge_id;
	enum rules_fridge_kind	 kind;
	double			 low_c;
	double			 high_c;
	double			 critical_low_c;
	double			 critical_high_c;
	double			 hysteresis_c;
	int64_t			 low_delay;	/* microseconds */
	int64_t			 high_delay;
	int64_t			 offline_after;
	double			 battery_low_pct;
	/* rules-input.c: door and power sensors, warnings before alarms. */
	enum rules_sensor_kind	 sensor;	/* what this sensor measures */
	int64_t			 door_alarm_after;
	double			 power_min_w;
	int64_t			 power_alarm_after;
	double			 warn_low_c;	/* NAN: no warning */
	double			 warn_high_c;
	int64_t			 warn_delay;
};

/* vialwatch.excursion.kind; RULES_NONE marks an empty slot. */
enum rules_kind {
	RULES_NONE,
	RULES_HIGH,
	RULES_LOW,
	RULES_OFFLINE,
	RULES_BATTERY,
	RULES_DOOR,
	RULES_POWER,
	RULES_WARNING,
};
#define RULES_KIND_COUNT (RULES_WARNING + 1)

/* The fields of one vialwatch.excursion row. */
struct rules_excursion {
	enum rules_kind	 kind;
	int64_t		 started_at;
	int64_t		 alarmed_at;	/* 0: not alarmed (NULL) */
	int64_t		 ended_at;	/* 0: still open (NULL) */
	double		 peak_c;	/* NAN for offline and battery */
	double		 minutes_out;
	double		 degree_minutes;
};

/* What a caller does with an event; the names are the hook event names. */
enum rules_event_type {
	RULES_EV_OPEN,		/* insert the row */
	RULES_EV_ALARM,		/* update it, quarantine, notify */
	RULES_EV_UPDATE,	/* update peak, minutes, degree-minutes */
	RULES_EV_CLOSE,		/* update it with ended_at */
	RULES_EV_OFFLINE,	/* insert an offline row, alarmed */
	RULES_EV_ONLINE,	/* update the offline row with ended_at */
	RULES_EV_BATTERY,	/* insert a battery row (already ended) */
};
#define RULES_EV_COUNT (RULES_EV_BATTERY + 1)

/* Each event carries the whole row as it now stands. */
struct rules_event {
	enum rules_event_type	 type;
	int64_t			 fridge_id;	/* the row's fridge */
	struct rules_excursion	 x;
	double			 battery;	/* RULES_EV_BATTERY: percent */
};

/* What a reading of a door or power sensor says (rules-input.c). */
enum rules_input {
	RULES_IN_NONE,		/* a temperature or battery report */
	RULES_IN_DOOR,		/* door_open */
	RULES_IN_POWER,		/* power_w, or power_on when >= 0 */
	RULES_IN_UNPLUGGED,	/* the plug says it is offline */
};

/* One reading of the sensor. */
struct rules_reading {
	int64_t		 ts;		/* the reading's own time */
	double		 temp_c;	/* NAN: a battery-only report */
	double		 battery;	/* percent, NAN when absent */
	enum rules_input input;
	int		 door_open;	/* 1 open, 0 closed */
	double		 power_w;	/* watts, NAN when a boolean */
	int		 power_on;	/* 1 on, 0 off, -1: see power_w */
};

/* One sensor's state: plain data, the caller owns it. */
struct rules_state {
	int		 bound;		/* fridge_id is valid */
	int64_t		 fridge_id;
	int64_t		 last_ts;	/* latest accepted reading, 0: none */
	double		 last_temp;
	int64_t		 last_arrival;	/* its wall-clock arrival, 0: none */
	int64_t		 silent_since;	/* offline counts from; 0: unwatched */
	int64_t		 battery_at;	/* last battery warning, 0: never */
	struct rules_excursion temp;	/* open high/low excursion or NONE */
	double		 bound_c;	/* the bound temp opened against */
	struct rules_excursion offline;	/* open offline excursion or NONE */
	struct rules_excursion input;	/* open door or power excursion */
	struct rules_excursion warn;	/* open warning or NONE */
	int		 warn_side;	/* RULES_HIGH or RULES_LOW */
};

/* What the database holds for a sensor, to rebuild its state at start. */
struct rules_saved {
	int64_t		 last_ts;	/* latest reading, 0: none */
	double		 last_temp;
	int64_t		 last_arrival;	/* its received_at, 0: use last_ts */
	int64_t		 battery_at;	/* latest battery row, 0: none */
	struct rules_excursion temp;	/* open high/low row, or NONE */
	struct rules_excursion offline;	/* open offline row, or NONE */
	struct rules_excursion input;	/* open door or power row, or NONE */
	struct rules_excursion warn;	/* open warning row, or NONE */
};

void		 rules_limits_default(struct rules_limits *, int64_t,
		     enum rules_fridge_kind);
void		 rules_init(struct rules_state *);
void		 rules_restore(struct rules_state *, const struct rules_limits *,
		     const struct rules_saved *, int64_t);
/*
 * Feed one reading arriving at wall time now, or a clock tick; detach
 * closes everything (the sensor left its fridge). Each writes at most
 * max events (RULES_EVENTS_MAX always suffices) and returns their number.
 */
size_t		 rules_feed(struct rules_state *, const struct rules_limits *,
		     const struct rules_reading *, int64_t, struct rules_event *,
		     size_t);
size_t		 rules_tick(struct rules_state *, const struct rules_limits *,
		     int64_t, struct rules_event *, size_t);
size_t		 rules_detach(struct rules_state *, int64_t, int64_t,
		     struct rules_event *, size_t);
const char	*rules_event_name(enum rules_event_type);
const char	*rules_kind_name(enum rules_kind);

/* Events being written by one call (rules.c and rules-input.c). */
struct rules_out {
	struct rules_event	*ev;
	size_t			 max;
	size_t			 n;
	int64_t			 fridge_id;
};
void		 rules_emit(struct rules_out *, enum rules_event_type,
		     const struct rules_excursion *, double);
double		 rules_minutes(int64_t, int64_t);
void		 rules_clear(struct rules_excursion *);

/* rules-input.c: door and power sensors, warnings before alarms. */
void		 rules_input_default(struct rules_limits *);
/* A door or power reading (r->input set) at wall time now. */
void		 rules_input_feed(struct rules_state *,
		     const struct rules_limits *, const struct rules_reading *,
		     struct rules_out *);
/* A temperature reading, after the high/low rules: the warning. */
void		 rules_input_warn(struct rules_state *,
		     const struct rules_limits *, const struct rules_reading *,
		     struct rules_out *);
/* The clock, at sensor time sensor_now: delays run out. */
void		 rules_input_tick(struct rules_state *,
		     const struct rules_limits *, int64_t, struct rules_out *);
/* A power sensor silent for offline_after, since started, at now. */
void		 rules_input_silent(struct rules_state *, int64_t, int64_t,
		     struct rules_out *);
/* The sensor left its fridge at ts: close the door, power and warning. */
void		 rules_input_leave(struct rules_state *, int64_t,
		     struct rules_out *);
void		 rules_input_restore(struct rules_state *,
		     const struct rules_limits *, const struct rules_saved *);

#endif
