/*
 * Unit tests for rules.c: each case is a sequence of readings and clock
 * ticks (times in minutes from BASE) and the exact events it must give.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rules.h"
#include "tap.h"

#define BASE		1700000000000000LL	/* 2023-11-14T22:13:20Z */
#define NO		(-1e9)			/* an unset time */
#define MAXSTEPS	16
#define MAXWANT		16
#define MAXGOT		64

/* Fridges: the case's limits index, or a step's to move the sensor. */
enum { F_FRIDGE, F_FREEZER, F_NOHYST, F_OTHER, F_NODELAY, F_OTHERFREEZER,
    F_RELOADED, F_DOOR, F_POWER, F_WARN, F_COUNT };

/* DOOR: temp is 1 open, 0 closed; POWER: watts; POWERB: 1 on, 0 off. */
enum { END, READ, TICK, DETACH, DOOR, POWER, POWERB, UNPLUG };

struct step {
	int	 op;
	double	 t;	/* READ: ts; TICK: now; DETACH: ts */
	double	 temp;	/* NAN: battery-only report */
	double	 bat;	/* NAN: none */
	double	 now;	/* READ: arrival; DETACH: wall time */
	int	 lim;	/* limits index + 1; 0: the case's */
};

#define R(t, v)		{ READ, t, v, NAN, t, 0 }
#define RA(t, v, a)	{ READ, t, v, NAN, a, 0 }
#define RB(t, v, b)	{ READ, t, v, b, t, 0 }
#define RL(t, v, l)	{ READ, t, v, NAN, t, (l) + 1 }
#define B(t, b)		{ READ, t, NAN, b, t, 0 }
#define T(n)		{ TICK, n, NAN, NAN, n, 0 }
#define TL(n, l)	{ TICK, n, NAN, NAN, n, (l) + 1 }
#define D(t, n)		{ DETACH, t, NAN, NAN, n, 0 }
#define DR(t, v)	{ DOOR, t, v, NAN, t, 0 }
#define PW(t, v)	{ POWER, t, v, NAN, t, 0 }
#define PB(t, v)	{ POWERB, t, v, NAN, t, 0 }
#define UP(t)		{ UNPLUG, t, NAN, NAN, t, 0 }

/* An expected event; peak is the battery percent for battery events. */
struct want {
	int	 step;
	int	 type;
	int	 kind;		/* RULES_NONE ends the list */
	double	 started, alarmed, ended;
	double	 peak, minutes, dm;
	int	 lim;		/* fridge: limits index + 1; 0: the case's */
};

#define E(st, ty, k, s, a, e, p, m, d) \
	{ st, RULES_EV_##ty, RULES_##k, s, a, e, p, m, d, 0 }
#define EF(st, ty, k, s, a, e, p, m, d, l) \
	{ st, RULES_EV_##ty, RULES_##k, s, a, e, p, m, d, (l) + 1 }

/* What the database would hold at restart, in minutes (NO: NULL). */
struct saved {
	double	 last_t, last_v, last_arrival, battery_at;
	int	 kind;
	double	 started, alarmed, peak, minutes, dm;
	double	 off_started, off_alarmed;
};

#define SAVED(lt, lv, la, ba, k, s, a, p, m, d, os, oa) \
	{ lt, lv, la, ba, RULES_##k, s, a, p, m, d, os, oa }
/* The same without an open high/low row. */
#define SAVED0(lt, lv, la, ba, os, oa) \
	SAVED(lt, lv, la, ba, NONE, NO, NO, NAN, 0, 0, os, oa)

struct tcase {
	const char	*name;
	int		 lim;
	int		 restore;
	struct saved	 saved;
	double		 restore_now;
	struct step	 steps[MAXSTEPS];
	struct want	 want[MAXWANT];
};

static struct rules_limits limits[F_COUNT];

static const struct tcase cases[] = {
{ .name = "in range, bounds included", .steps = {
    R(0, 5), R(5, 4.8), R(10, 8.0), R(15, 2.0), T(16) } },

{ .name = "door opening: 9.5 C for 10 min recorded, not alarmed", .steps = {
    R(0, 5), R(5, 9.5), R(10, 9.5), R(15, 5.0) }, .want = {
    E(1, OPEN, HIGH, 5, NO, NO, 9.5, 0, 0),
    E(2, UPDATE, HIGH, 5, NO, NO, 9.5, 5, 7.5),
    E(3, CLOSE, HIGH, 5, NO, 15, 9.5, 10, 15) } },

{ .name = "high alarms after high_delay", .steps = {
    R(0, 9), R(10, 10), R(20, 9.5), R(30, 9.2), R(40, 7) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 10, 10, 10),
    E(2, UPDATE, HIGH, 0, NO, NO, 10, 20, 30),
    E(3, ALARM, HIGH, 0, 30, NO, 10, 30, 45),
    E(4, CLOSE, HIGH, 0, 30, 40, 10, 40, 57) } },

{ .name = "started_at is the first out-of-range reading", .steps = {
    R(0, 5), R(7, 8.5), R(22, 9), R(36.9, 9), R(37, 9) }, .want = {
    E(1, OPEN, HIGH, 7, NO, NO, 8.5, 0, 0),
    E(2, UPDATE, HIGH, 7, NO, NO, 9, 15, 7.5),
    E(3, UPDATE, HIGH, 7, NO, NO, 9, 29.9, 22.4),
    E(4, ALARM, HIGH, 7, 37, NO, 9, 30, 22.5) } },

{ .name = "low alarms after its own low_delay", .steps = {
    R(0, 5), R(5, 1.5), R(15, 1.0), R(20, 1.2), R(25, 2.6) }, .want = {
    E(1, OPEN, LOW, 5, NO, NO, 1.5, 0, 0),
    E(2, UPDATE, LOW, 5, NO, NO, 1.0, 10, 5),
    E(3, ALARM, LOW, 5, 20, NO, 1.0, 15, 10),
    E(4, CLOSE, LOW, 5, 20, 25, 1.0, 20, 14) } },

{ .name = "low closes only at low_c + hysteresis", .steps = {
    R(0, 1.5), R(5, 2.4), R(10, 2.5) }, .want = {
    E(0, OPEN, LOW, 0, NO, NO, 1.5, 0, 0),
    E(1, UPDATE, LOW, 0, NO, NO, 1.5, 5, 2.5),
    E(2, CLOSE, LOW, 0, NO, 10, 1.5, 10, 2.5) } },

{ .name = "critical high alarms at once", .steps = {
    R(0, 5), R(5, 12.5), R(10, 5) }, .want = {
    E(1, OPEN, HIGH, 5, NO, NO, 12.5, 0, 0),
    E(1, ALARM, HIGH, 5, 5, NO, 12.5, 0, 0),
    E(2, CLOSE, HIGH, 5, 5, 10, 12.5, 5, 22.5) } },

{ .name = "critical bound crossed while pending", .steps = {
    R(0, 9), R(5, 12.0), R(10, 13) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 12, 5, 5),
    E(2, ALARM, HIGH, 0, 10, NO, 13, 10, 25) } },

{ .name = "critical low alarms at once", .steps = {
    R(0, 5), R(5, -0.5), R(10, 0.0) }, .want = {
    E(1, OPEN, LOW, 5, NO, NO, -0.5, 0, 0),
    E(1, ALARM, LOW, 5, 5, NO, -0.5, 0, 0),
    E(2, UPDATE, LOW, 5, 5, NO, -0.5, 5, 12.5) } },

{ .name = "hysteresis: 7.9 after 8.3 does not close", .steps = {
    R(0, 8.3), R(5, 7.9), R(10, 7.6), R(15, 7.5) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 8.3, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 8.3, 5, 1.5),
    E(2, UPDATE, HIGH, 0, NO, NO, 8.3, 10, 1.5),
    E(3, CLOSE, HIGH, 0, NO, 15, 8.3, 15, 1.5) } },

{ .name = "no hysteresis: 7.9 after 8.3 closes", .lim = F_NOHYST, .steps = {
    R(0, 8.3), R(5, 7.9) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 8.3, 0, 0),
    E(1, CLOSE, HIGH, 0, NO, 5, 8.3, 5, 1.5) } },

{ .name = "flapping inside the band is one excursion, alarmed", .steps = {
    R(0, 8.2), R(10, 7.8), R(20, 8.2), R(30, 7.8), R(40, 7.0) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 8.2, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 8.2, 10, 2),
    E(2, UPDATE, HIGH, 0, NO, NO, 8.2, 20, 2),
    E(3, ALARM, HIGH, 0, 30, NO, 8.2, 30, 4),
    E(4, CLOSE, HIGH, 0, 30, 40, 8.2, 40, 4) } },

{ .name = "flapping without hysteresis: short excursions", .lim = F_NOHYST,
    .steps = { R(0, 8.2), R(10, 7.8), R(20, 8.2), R(30, 7.8) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 8.2, 0, 0),
    E(1, CLOSE, HIGH, 0, NO, 10, 8.2, 10, 2),
    E(2, OPEN, HIGH, 20, NO, NO, 8.2, 0, 0),
    E(3, CLOSE, HIGH, 20, NO, 30, 8.2, 10, 2) } },

{ .name = "flapping across the band restarts the delay", .steps = {
    R(0, 8.6), R(10, 7.4), R(20, 8.6), R(30, 7.4), R(40, 8.6), R(50, 8.6),
    RA(60, 8.6, 60), T(69.9), T(70) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 8.6, 0, 0),
    E(1, CLOSE, HIGH, 0, NO, 10, 8.6, 10, 6),
    E(2, OPEN, HIGH, 20, NO, NO, 8.6, 0, 0),
    E(3, CLOSE, HIGH, 20, NO, 30, 8.6, 10, 6),
    E(4, OPEN, HIGH, 40, NO, NO, 8.6, 0, 0),
    E(5, UPDATE, HIGH, 40, NO, NO, 8.6, 10, 6),
    E(6, UPDATE, HIGH, 40, NO, NO, 8.6, 20, 12),
    E(8, ALARM, HIGH, 40, 70, NO, 8.6, 20, 12) } },

{ .name = "jump from high straight to low", .steps = {
    R(0, 9), R(10, 1), R(25, 1), R(30, 3) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, CLOSE, HIGH, 0, NO, 10, 9, 10, 10),
    E(1, OPEN, LOW, 10, NO, NO, 1, 0, 0),
    E(2, ALARM, LOW, 10, 25, NO, 1, 15, 15),
    E(3, CLOSE, LOW, 10, 25, 30, 1, 20, 20) } },

{ .name = "jump from low to critical high", .steps = {
    R(0, 1.5), R(5, 12.5) }, .want = {
    E(0, OPEN, LOW, 0, NO, NO, 1.5, 0, 0),
    E(1, CLOSE, LOW, 0, NO, 5, 1.5, 5, 2.5),
    E(1, OPEN, HIGH, 5, NO, NO, 12.5, 0, 0),
    E(1, ALARM, HIGH, 5, 5, NO, 12.5, 0, 0) } },

{ .name = "tick alarms on time between rare readings", .steps = {
    R(0, 5), R(15, 9), R(30, 9), T(44.9), T(45), R(45, 9.5), T(60) },
    .want = {
    E(1, OPEN, HIGH, 15, NO, NO, 9, 0, 0),
    E(2, UPDATE, HIGH, 15, NO, NO, 9, 15, 15),
    E(4, ALARM, HIGH, 15, 45, NO, 9, 15, 15),
    E(5, UPDATE, HIGH, 15, 45, NO, 9.5, 30, 30) } },

{ .name = "backlog of old readings: no tick alarm before it closes",
    .steps = { RA(0, 5, 1000), RA(5, 9.5, 1000), T(1000.5),
    RA(10, 9.5, 1001), T(1001.5), RA(15, 5, 1002), T(1031) }, .want = {
    E(1, OPEN, HIGH, 5, NO, NO, 9.5, 0, 0),
    E(3, UPDATE, HIGH, 5, NO, NO, 9.5, 5, 7.5),
    E(5, CLOSE, HIGH, 5, NO, 15, 9.5, 10, 15) } },

{ .name = "backlog then silence: tick alarms on the sensor's clock",
    .steps = { RA(0, 9, 1000), RA(5, 9, 1000), T(1024.9), T(1025) },
    .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 9, 5, 5),
    E(3, ALARM, HIGH, 0, 30, NO, 9, 5, 5) } },

{ .name = "gap during an excursion: value held", .steps = {
    R(0, 9), R(10, 11), R(70, 10), R(80, 7) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 11, 10, 10),
    E(2, ALARM, HIGH, 0, 70, NO, 11, 70, 190),
    E(3, CLOSE, HIGH, 0, 70, 80, 11, 80, 210) } },

{ .name = "gap with ticks: alarm, offline, back", .steps = {
    R(0, 9), T(30), T(45), R(50, 10), R(60, 7) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, ALARM, HIGH, 0, 30, NO, 9, 0, 0),
    E(1, OFFLINE, OFFLINE, 0, 30, NO, NAN, 30, 0),
    E(3, ONLINE, OFFLINE, 0, 30, 50, NAN, 50, 0),
    E(3, UPDATE, HIGH, 0, 30, NO, 10, 50, 50),
    E(4, CLOSE, HIGH, 0, 30, 60, 10, 60, 70) } },

{ .name = "offline and recovery", .steps = {
    R(0, 5), T(29.9), T(30), T(60), R(75, 5), T(104.9), T(105) }, .want = {
    E(2, OFFLINE, OFFLINE, 0, 30, NO, NAN, 30, 0),
    E(4, ONLINE, OFFLINE, 0, 30, 75, NAN, 75, 0),
    E(6, OFFLINE, OFFLINE, 75, 105, NO, NAN, 30, 0) } },

{ .name = "offline runs on arrival time, not reading time", .steps = {
    RA(0, 5, 10), T(39.9), T(40), RA(1, 5, 50) }, .want = {
    E(2, OFFLINE, OFFLINE, 10, 40, NO, NAN, 30, 0),
    E(3, ONLINE, OFFLINE, 10, 40, 50, NAN, 40, 0) } },

{ .name = "late timestamps arriving regularly are not offline", .steps = {
    RA(0, 5, 0), RA(1, 5, 25), RA(2, 5, 50), T(70) } },

{ .name = "battery low at most daily", .steps = {
    RB(0, 5, 15), RB(60, 5, 14), RB(1439.9, 5, 13), RB(1440, 5, 12),
    RB(1500, 5, 25), B(2880, 20), B(2880.5, 19.9) }, .want = {
    E(0, BATTERY, BATTERY, 0, 0, 0, 15, 0, 0),
    E(3, BATTERY, BATTERY, 1440, 1440, 1440, 12, 0, 0),
    E(6, BATTERY, BATTERY, 2880.5, 2880.5, 2880.5, 19.9, 0, 0) } },

{ .name = "battery-only report is no sign of life", .steps = {
    R(0, 5), T(30), B(35, 50), T(36), R(40, 5) }, .want = {
    E(1, OFFLINE, OFFLINE, 0, 30, NO, NAN, 30, 0),
    E(4, ONLINE, OFFLINE, 0, 30, 40, NAN, 40, 0) } },

{ .name = "duplicate readings are ignored", .steps = {
    R(0, 9), R(0, 13), RB(0, 5, 10), R(10, 9) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(3, UPDATE, HIGH, 0, NO, NO, 9, 10, 10) } },

{ .name = "out-of-order readings do not move the state", .steps = {
    R(0, 9), R(20, 9), R(10, 7), R(15, 13), R(30, 9) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 9, 20, 20),
    E(4, ALARM, HIGH, 0, 30, NO, 9, 30, 30) } },

{ .name = "out-of-order reading does not end offline", .steps = {
    R(0, 5), T(30), RA(-5, 5, 40), T(45), RA(50, 5, 50) }, .want = {
    E(1, OFFLINE, OFFLINE, 0, 30, NO, NAN, 30, 0),
    E(4, ONLINE, OFFLINE, 0, 30, 50, NAN, 50, 0) } },

{ .name = "freezer: high, critical, back", .lim = F_FREEZER, .steps = {
    R(0, -20), R(10, -14), R(25, -12), R(30, -9), R(40, -16) }, .want = {
    E(1, OPEN, HIGH, 10, NO, NO, -14, 0, 0),
    E(2, UPDATE, HIGH, 10, NO, NO, -12, 15, 15),
    E(3, ALARM, HIGH, 10, 30, NO, -9, 20, 30),
    E(4, CLOSE, HIGH, 10, 30, 40, -9, 30, 90) } },

{ .name = "freezer: low, critical low, band, back", .lim = F_FREEZER,
    .steps = { R(0, -55), R(5, -61), R(10, -49.6), R(15, -49.5) }, .want = {
    E(0, OPEN, LOW, 0, NO, NO, -55, 0, 0),
    E(1, ALARM, LOW, 0, 5, NO, -61, 5, 25),
    E(2, UPDATE, LOW, 0, 5, NO, -61, 10, 80),
    E(3, CLOSE, LOW, 0, 5, 15, -61, 15, 80) } },

{ .name = "freezer: a fridge temperature is critical", .lim = F_FREEZER,
    .steps = { R(0, -18), R(5, 4) }, .want = {
    E(1, OPEN, HIGH, 5, NO, NO, 4, 0, 0),
    E(1, ALARM, HIGH, 5, 5, NO, 4, 0, 0) } },

{ .name = "sensor moved to another fridge", .steps = {
    R(0, 9), R(10, 9), RL(20, 9, F_OTHER), RL(50, 9, F_OTHER) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 9, 10, 10),
    E(2, CLOSE, HIGH, 0, NO, 20, 9, 20, 20),
    EF(2, OPEN, HIGH, 20, NO, NO, 9, 0, 0, F_OTHER),
    EF(3, ALARM, HIGH, 20, 50, NO, 9, 30, 30, F_OTHER) } },

{ .name = "sensor moved from a warm fridge to a freezer", .steps = {
    R(0, 9), RL(10, -18, F_OTHERFREEZER), RL(20, -18, F_OTHERFREEZER) },
    .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, CLOSE, HIGH, 0, NO, 10, 9, 10, 10) } },

{ .name = "sensor moved while offline", .steps = {
    R(0, 5), T(30), RL(40, 5, F_OTHER) }, .want = {
    E(1, OFFLINE, OFFLINE, 0, 30, NO, NAN, 30, 0),
    E(2, ONLINE, OFFLINE, 0, 30, 40, NAN, 40, 0) } },

{ .name = "sensor moved, seen by a tick first", .steps = {
    R(0, 9), R(10, 9), TL(12, F_OTHER), RL(20, 9, F_OTHER) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 9, 10, 10),
    E(2, CLOSE, HIGH, 0, NO, 10, 9, 10, 10),
    EF(3, OPEN, HIGH, 20, NO, NO, 9, 0, 0, F_OTHER) } },

{ .name = "detach closes and stops watching", .steps = {
    R(0, 9), D(10, 12), T(100) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, CLOSE, HIGH, 0, NO, 10, 9, 10, 10) } },

{ .name = "zero delay alarms at once", .lim = F_NODELAY, .steps = {
    R(0, 8.5), R(5, 1.9) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 8.5, 0, 0),
    E(0, ALARM, HIGH, 0, 0, NO, 8.5, 0, 0),
    E(1, CLOSE, HIGH, 0, 0, 5, 8.5, 5, 2.5),
    E(1, OPEN, LOW, 5, NO, NO, 1.9, 0, 0),
    E(1, ALARM, LOW, 5, 5, NO, 1.9, 0, 0) } },

{ .name = "an alarmed excursion does not alarm again", .steps = {
    R(0, 9), R(30, 9), R(35, 13), T(40) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 9, 0, 0),
    E(1, ALARM, HIGH, 0, 30, NO, 9, 30, 30),
    E(2, UPDATE, HIGH, 0, 30, NO, 13, 35, 35) } },

{ .name = "new limits for the same fridge keep the excursion", .steps = {
    R(0, 8.5), RL(5, 8.7, F_RELOADED), RL(10, 8.4, F_RELOADED) }, .want = {
    E(0, OPEN, HIGH, 0, NO, NO, 8.5, 0, 0),
    E(1, UPDATE, HIGH, 0, NO, NO, 8.7, 5, 2.5),
    E(2, CLOSE, HIGH, 0, NO, 10, 8.7, 10, 6) } },

{ .name = "restart: a pending excursion still alarms on time",
    .restore = 1, .restore_now = 20,
    .saved = SAVED(10, 9, 10, NO, HIGH, 0, NO, 9, 10, 10, NO, NO),
    .steps = { T(29.9), T(30), R(35, 9) }, .want = {
    E(1, ALARM, HIGH, 0, 30, NO, 9, 10, 10),
    E(2, UPDATE, HIGH, 0, 30, NO, 9, 35, 35) } },

{ .name = "restart: a pending excursion alarms on the next reading",
    .restore = 1, .restore_now = 20,
    .saved = SAVED(10, 9, 10, NO, HIGH, 0, NO, 9, 10, 10, NO, NO),
    .steps = { R(30, 9.5) }, .want = {
    E(0, ALARM, HIGH, 0, 30, NO, 9.5, 30, 30) } },

{ .name = "restart: an open excursion is not opened twice",
    .restore = 1, .restore_now = 100,
    .saved = SAVED(40, 10, 40, NO, HIGH, 0, 30, 10, 40, 60, NO, NO),
    .steps = { T(100), R(105, 10), R(110, 7) }, .want = {
    E(1, UPDATE, HIGH, 0, 30, NO, 10, 105, 190),
    E(2, CLOSE, HIGH, 0, 30, 110, 10, 110, 200) } },

{ .name = "restart: no offline alarm for the daemon's own downtime",
    .restore = 1, .restore_now = 60,
    .saved = SAVED0(0, 5, 0, NO, NO, NO),
    .steps = { T(60), T(89.9), T(90) }, .want = {
    E(2, OFFLINE, OFFLINE, 0, 90, NO, NAN, 90, 0) } },

{ .name = "restart: silence counts from a reading after the restart",
    .restore = 1, .restore_now = 60,
    .saved = SAVED0(0, 5, 0, NO, NO, NO),
    .steps = { R(65, 5), T(94.9), T(95) }, .want = {
    E(2, OFFLINE, OFFLINE, 65, 95, NO, NAN, 30, 0) } },

{ .name = "restart: an open offline row ends with the next reading",
    .restore = 1, .restore_now = 60,
    .saved = SAVED0(0, 5, 0, NO, 0, 30),
    .steps = { T(100), R(110, 5) }, .want = {
    E(1, ONLINE, OFFLINE, 0, 30, 110, NAN, 110, 0) } },

{ .name = "restart: a sensor that never reported goes offline",
    .restore = 1, .restore_now = 0,
    .saved = SAVED0(NO, NAN, NO, NO, NO, NO),
    .steps = { T(29.9), T(30) }, .want = {
    E(1, OFFLINE, OFFLINE, 0, 30, NO, NAN, 30, 0) } },

{ .name = "restart: the daily battery limit survives",
    .restore = 1, .restore_now = 0,
    .saved = SAVED0(-10, 5, -10, -60, NO, NO),
    .steps = { RB(0, 5, 10), RB(1379.9, 5, 10), RB(1380, 5, 10) }, .want = {
    E(2, BATTERY, BATTERY, 1380, 1380, 1380, 10, 0, 0) } },

{ .name = "restart: open row without a known reading",
    .restore = 1, .restore_now = 12,
    .saved = SAVED(NO, NAN, NO, NO, LOW, 0, NO, 1.0, 10, 10, NO, NO),
    .steps = { R(15, 1.0) }, .want = {
    E(0, ALARM, LOW, 0, 15, NO, 1.0, 15, 15) } },

/* rules-input.c: doors. */
{ .name = "door open 3 min: recorded, not alarmed", .lim = F_DOOR, .steps = {
    DR(0, 0), DR(1, 1), T(3), DR(4, 0) }, .want = {
    E(1, OPEN, DOOR, 1, NO, NO, NAN, 0, 0),
    E(3, CLOSE, DOOR, 1, NO, 4, NAN, 3, 0) } },

{ .name = "door open 6 min alarms at 5 by the clock, closing ends it",
    .lim = F_DOOR, .steps = {
    DR(0, 1), T(4.9), T(5), T(6), DR(6, 0), T(7) }, .want = {
    E(0, OPEN, DOOR, 0, NO, NO, NAN, 0, 0),
    E(2, ALARM, DOOR, 0, 5, NO, NAN, 5, 0),
    E(4, CLOSE, DOOR, 0, 5, 6, NAN, 6, 0) } },

{ .name = "door still open in a later report alarms", .lim = F_DOOR,
    .steps = { DR(0, 1), DR(2, 1), DR(5, 1), DR(8, 1) }, .want = {
    E(0, OPEN, DOOR, 0, NO, NO, NAN, 0, 0),
    E(1, UPDATE, DOOR, 0, NO, NO, NAN, 2, 0),
    E(2, ALARM, DOOR, 0, 5, NO, NAN, 5, 0),
    E(3, UPDATE, DOOR, 0, 5, NO, NAN, 8, 0) } },

{ .name = "door contacts never go offline", .lim = F_DOOR, .steps = {
    DR(0, 0), T(31), T(600) } },

/* rules-input.c: mains power. */
{ .name = "plug at 0 W alarms after power_alarm_after", .lim = F_POWER,
    .steps = { PW(0, 80), PW(1, 0), PW(2, 0.5), PW(3, 0), PW(10, 75) },
    .want = {
    E(1, OPEN, POWER, 1, NO, NO, 0, 0, 0),
    E(2, UPDATE, POWER, 1, NO, NO, 0, 1, 0),
    E(3, ALARM, POWER, 1, 3, NO, 0, 2, 0),
    E(4, CLOSE, POWER, 1, 3, 10, 0, 9, 0) } },

{ .name = "power just under 5 W, by the clock", .lim = F_POWER, .steps = {
    PW(0, 4.9), T(1.9), T(2), PW(2.5, 5) }, .want = {
    E(0, OPEN, POWER, 0, NO, NO, 4.9, 0, 0),
    E(2, ALARM, POWER, 0, 2, NO, 4.9, 2, 0),
    E(3, CLOSE, POWER, 0, 2, 2.5, 4.9, 2.5, 0) } },

{ .name = "boolean power off then on", .lim = F_POWER, .steps = {
    PB(0, 1), PB(1, 0), T(3), PB(4, 1) }, .want = {
    E(1, OPEN, POWER, 1, NO, NO, NAN, 0, 0),
    E(2, ALARM, POWER, 1, 3, NO, NAN, 2, 0),
    E(3, CLOSE, POWER, 1, 3, 4, NAN, 3, 0) } },

{ .name = "plug says offline: power alarm at once", .lim = F_POWER,
    .steps = { PW(0, 60), UP(1), PW(5, 60) }, .want = {
    E(1, OPEN, POWER, 1, NO, NO, NAN, 0, 0),
    E(1, ALARM, POWER, 1, 1, NO, NAN, 0, 0),
    E(2, CLOSE, POWER, 1, 1, 5, NAN, 4, 0) } },

{ .name = "silent plug: a power excursion, not offline", .lim = F_POWER,
    .steps = { PW(0, 60), T(29), T(30), T(31), PW(32, 60) }, .want = {
    E(2, OPEN, POWER, 0, NO, NO, NAN, 0, 0),
    E(2, ALARM, POWER, 0, 30, NO, NAN, 30, 0),
    E(4, CLOSE, POWER, 0, 30, 32, NAN, 32, 0) } },

/* rules-input.c: warnings before alarms (warn 3/7 C, 10 min). */
{ .name = "warning after warn_delay, ended back in band", .lim = F_WARN,
    .steps = { R(0, 5), R(5, 7.2), R(10, 7.4), T(15), R(20, 7.0),
    R(25, 6.5) }, .want = {
    E(1, OPEN, WARNING, 5, NO, NO, 7.2, 0, 0),
    E(2, UPDATE, WARNING, 5, NO, NO, 7.4, 5, 0),
    E(3, ALARM, WARNING, 5, 15, NO, 7.4, 10, 0),
    E(4, UPDATE, WARNING, 5, 15, NO, 7.4, 15, 0),
    E(5, CLOSE, WARNING, 5, 15, 25, 7.4, 20, 0) } },

{ .name = "warning inside its delay: never sent", .lim = F_WARN, .steps = {
    R(0, 2.9), R(5, 3.5) }, .want = {
    E(0, OPEN, WARNING, 0, NO, NO, 2.9, 0, 0),
    E(1, CLOSE, WARNING, 0, NO, 5, 2.9, 5, 0) } },

{ .name = "no warning once the alarm is raised", .lim = F_WARN, .steps = {
    R(0, 7.5), R(2, 12.5), T(20), R(30, 5) }, .want = {
    E(0, OPEN, WARNING, 0, NO, NO, 7.5, 0, 0),
    E(1, OPEN, HIGH, 2, NO, NO, 12.5, 0, 0),
    E(1, ALARM, HIGH, 2, 2, NO, 12.5, 0, 0),
    E(1, UPDATE, WARNING, 0, NO, NO, 12.5, 2, 0),
    E(3, CLOSE, HIGH, 2, 2, 30, 12.5, 28, 126),
    E(3, CLOSE, WARNING, 0, NO, 30, 12.5, 30, 0) } },

{ .name = "no warning without thresholds", .steps = {
    R(0, 7.5), R(20, 7.9), T(40) } },
};

/* A time from minutes after BASE; NO is unset (0). */
static int64_t
at(double m)
{
	if (m == NO)
		return (0);
	return (BASE + (int64_t)llround(m * (double)RULES_US_PER_MIN));
}

/* Minutes after BASE of a time; unset (0) is NO. */
static double
mins(int64_t t)
{
	if (t == 0)
		return (NO);
	return ((double)(t - BASE) / (double)RULES_US_PER_MIN);
}

static void
limits_init(void)
{
	rules_limits_default(&limits[F_FRIDGE], 1, RULES_FRIDGE);
	rules_limits_default(&limits[F_FREEZER], 2, RULES_FREEZER);
	limits[F_NOHYST] = limits[F_FRIDGE];
	limits[F_NOHYST].hysteresis_c = 0;
	rules_limits_default(&limits[F_OTHER], 3, RULES_FRIDGE);
	limits[F_NODELAY] = limits[F_FRIDGE];
	limits[F_NODELAY].high_delay = limits[F_NODELAY].low_delay = 0;
	rules_limits_default(&limits[F_OTHERFREEZER], 4, RULES_FREEZER);
	limits[F_RELOADED] = limits[F_FRIDGE];
	limits[F_RELOADED].high_c = 9;
	limits[F_DOOR] = limits[F_FRIDGE];
	limits[F_DOOR].sensor = RULES_SENSOR_DOOR;
	limits[F_POWER] = limits[F_FRIDGE];
	limits[F_POWER].sensor = RULES_SENSOR_POWER;
	limits[F_WARN] = limits[F_FRIDGE];
	limits[F_WARN].warn_high_c = 7;
	limits[F_WARN].warn_low_c = 3;
	limits[F_WARN].warn_delay = 10 * RULES_US_PER_MIN;
}

/* The state a case starts from. */
static void
start(const struct tcase *tc, struct rules_state *s)
{
	const struct saved	*sv = &tc->saved;
	struct rules_saved	 r;

	rules_init(s);
	if (!tc->restore)
		return;
	memset(&r, 0, sizeof r);
	r.last_ts = at(sv->last_t);
	r.last_temp = sv->last_v;
	r.last_arrival = at(sv->last_arrival);
	r.battery_at = at(sv->battery_at);
	r.temp.kind = sv->kind;
	r.temp.started_at = at(sv->started);
	r.temp.alarmed_at = at(sv->alarmed);
	r.temp.peak_c = sv->peak;
	r.temp.minutes_out = sv->minutes;
	r.temp.degree_minutes = sv->dm;
	r.offline.kind = sv->off_started == NO ? RULES_NONE : RULES_OFFLINE;
	r.offline.started_at = at(sv->off_started);
	r.offline.alarmed_at = at(sv->off_alarmed);
	r.offline.peak_c = NAN;
	if (r.offline.kind == RULES_OFFLINE)
		r.offline.minutes_out = sv->off_alarmed - sv->off_started;
	rules_restore(s, &limits[tc->lim], &r, at(tc->restore_now));
}

/* Run one step; returns the number of events. */
static size_t
run_step(const struct tcase *tc, const struct step *st, struct rules_state *s,
    struct rules_event *ev, size_t max)
{
	const struct rules_limits	*l;
	struct rules_reading		 r;

	l = &limits[st->lim != 0 ? st->lim - 1 : tc->lim];
	memset(&r, 0, sizeof r);
	r.ts = at(st->t);
	r.temp_c = st->op == READ ? st->temp : NAN;
	r.battery = st->bat;
	r.power_w = NAN;
	r.power_on = -1;
	switch (st->op) {
	case DOOR:
		r.input = RULES_IN_DOOR;
		r.door_open = st->temp != 0;
		return (rules_feed(s, l, &r, at(st->now), ev, max));
	case POWER:
	case POWERB:
	case UNPLUG:
		r.input = st->op == UNPLUG ? RULES_IN_UNPLUGGED : RULES_IN_POWER;
		if (st->op == POWER)
			r.power_w = st->temp;
		else if (st->op == POWERB)
			r.power_on = st->temp != 0;
		return (rules_feed(s, l, &r, at(st->now), ev, max));
	case READ:
		return (rules_feed(s, l, &r, at(st->now), ev, max));
	case TICK:
		return (rules_tick(s, l, at(st->t), ev, max));
	default:
		return (rules_detach(s, at(st->t), at(st->now), ev, max));
	}
}

/* Run a case, each reading fed dup times; events and their step out. */
static size_t
run_case(const struct tcase *tc, int dup, struct rules_event *got, int *step)
{
	struct rules_state	 s;
	size_t			 n = 0, k, i;
	int			 j, d;

	start(tc, &s);
	for (j = 0; j < MAXSTEPS && tc->steps[j].op != END; j++) {
		for (d = 0; d < (tc->steps[j].op != TICK &&
		    tc->steps[j].op != DETACH && tc->steps[j].op != UNPLUG ?
		    dup : 1); d++) {
			if (n + RULES_EVENTS_MAX > MAXGOT)
				return (n);
			k = run_step(tc, &tc->steps[j], &s, got + n,
			    RULES_EVENTS_MAX);
			for (i = 0; i < k; i++)
				step[n + i] = j;
			n += k;
		}
	}
	return (n);
}

static void
print_event(const char *what, int step, const struct rules_event *e)
{
	printf("#   %s: step %d %s %s fridge %lld started %.2f alarmed %.2f "
	    "ended %.2f peak %.2f min %.2f dm %.2f bat %.1f\n", what, step,
	    rules_event_name(e->type), rules_kind_name(e->x.kind),
	    (long long)e->fridge_id, mins(e->x.started_at),
	    mins(e->x.alarmed_at), mins(e->x.ended_at), e->x.peak_c,
	    e->x.minutes_out, e->x.degree_minutes, e->battery);
}

/* Doubles equal to within eps, NAN equal to NAN. */
static int
same(double a, double b, double eps)
{
	if (isnan(a) || isnan(b))
		return (isnan(a) && isnan(b));
	return (fabs(a - b) <= eps);
}

/* Every field of one event against the table. */
static int
event_matches(const struct tcase *tc, int step, const struct rules_event *e,
    const struct want *w)
{
	int64_t	 fridge;
	double	 peak;

	fridge = limits[w->lim != 0 ? w->lim - 1 : tc->lim].fridge_id;
	peak = (e->type == RULES_EV_BATTERY ? e->battery : e->x.peak_c);
	if (e->type == RULES_EV_BATTERY && !isnan(e->x.peak_c))
		return (0);
	return (step == w->step && (int)e->type == w->type &&
	    (int)e->x.kind == w->kind && e->fridge_id == fridge &&
	    e->x.started_at == at(w->started) &&
	    e->x.alarmed_at == at(w->alarmed) &&
	    e->x.ended_at == at(w->ended) && same(peak, w->peak, 1e-9) &&
	    same(e->x.minutes_out, w->minutes, 0.005) &&
	    same(e->x.degree_minutes, w->dm, 0.005));
}

/* The CHECKs of vialwatch.excursion hold for every row written. */
static int
rows_valid(const struct rules_event *got, size_t n)
{
	const struct rules_excursion	*x;
	size_t				 i;

	for (i = 0; i < n; i++) {
		x = &got[i].x;
		if (x->started_at == 0 || x->minutes_out < 0 ||
		    x->degree_minutes < 0 ||
		    (x->ended_at != 0 && x->ended_at < x->started_at) ||
		    (x->alarmed_at != 0 && x->alarmed_at < x->started_at))
			return (0);
	}
	return (1);
}

/* Same events, ignoring the step that produced them. */
static int
same_events(const struct rules_event *a, size_t na,
    const struct rules_event *b, size_t nb)
{
	size_t	 i;

	if (na != nb)
		return (0);
	for (i = 0; i < na; i++) {
		if (a[i].type != b[i].type || a[i].fridge_id != b[i].fridge_id ||
		    a[i].x.started_at != b[i].x.started_at ||
		    a[i].x.alarmed_at != b[i].x.alarmed_at ||
		    a[i].x.ended_at != b[i].x.ended_at ||
		    !same(a[i].x.peak_c, b[i].x.peak_c, 0) ||
		    !same(a[i].x.minutes_out, b[i].x.minutes_out, 1e-9) ||
		    !same(a[i].x.degree_minutes, b[i].x.degree_minutes, 1e-9))
			return (0);
	}
	return (1);
}

static void
test_case(const struct tcase *tc)
{
	struct rules_event	 got[MAXGOT], dup[MAXGOT];
	int			 step[MAXGOT], dstep[MAXGOT];
	size_t			 n, nd, nw, i;

	for (nw = 0; nw < MAXWANT && tc->want[nw].kind != RULES_NONE; nw++)
		;
	n = run_case(tc, 1, got, step);
	if (!is_int(n, nw, "%s: %zu events", tc->name, nw))
		for (i = 0; i < n; i++)
			print_event("got", step[i], &got[i]);
	for (i = 0; i < n && i < nw; i++) {
		if (!ok(event_matches(tc, step[i], &got[i], &tc->want[i]),
		    "%s: event %zu %s", tc->name, i,
		    rules_event_name(tc->want[i].type)))
			print_event("got", step[i], &got[i]);
	}
	ok(rows_valid(got, n), "%s: rows pass the table's checks", tc->name);
	nd = run_case(tc, 2, dup, dstep);
	ok(same_events(got, n, dup, nd), "%s: same with every reading twice",
	    tc->name);
}

/* The names written into the database and given to hooks. */
static void
test_names(void)
{
	is_str(rules_kind_name(RULES_HIGH), "high", "kind high");
	is_str(rules_kind_name(RULES_LOW), "low", "kind low");
	is_str(rules_kind_name(RULES_OFFLINE), "offline", "kind offline");
	is_str(rules_kind_name(RULES_BATTERY), "battery", "kind battery");
	is_str(rules_kind_name(RULES_DOOR), "door", "kind door");
	is_str(rules_kind_name(RULES_POWER), "power", "kind power");
	is_str(rules_kind_name(RULES_WARNING), "warning", "kind warning");
	is_str(rules_kind_name((enum rules_kind)99), "unknown", "kind 99");
	is_str(rules_event_name(RULES_EV_OPEN), "excursion.open", "open");
	is_str(rules_event_name(RULES_EV_ALARM), "excursion.alarm", "alarm");
	is_str(rules_event_name(RULES_EV_CLOSE), "excursion.close", "close");
	is_str(rules_event_name(RULES_EV_OFFLINE), "sensor.offline",
	    "offline");
	is_str(rules_event_name(RULES_EV_ONLINE), "sensor.online", "online");
	is_str(rules_event_name(RULES_EV_BATTERY), "battery.low", "battery");
	is_str(rules_event_name(RULES_EV_COUNT), "unknown", "event count");
}

/* The SPEC's defaults. */
static void
test_defaults(void)
{
	const struct rules_limits	*f = &limits[F_FRIDGE];
	const struct rules_limits	*z = &limits[F_FREEZER];

	ok(f->low_c == 2 && f->high_c == 8 && f->critical_low_c == 0 &&
	    f->critical_high_c == 12, "fridge bounds 2/8, critical 0/12");
	ok(z->low_c == -50 && z->high_c == -15 && z->critical_low_c == -60 &&
	    z->critical_high_c == -10, "freezer bounds -50/-15, critical "
	    "-60/-10");
	ok(f->low_delay == 15 * RULES_US_PER_MIN &&
	    f->high_delay == 30 * RULES_US_PER_MIN &&
	    f->offline_after == 30 * RULES_US_PER_MIN &&
	    f->hysteresis_c == 0.5 && f->battery_low_pct == 20,
	    "delays 15/30 min, offline 30 min, hysteresis 0.5, battery 20");
}

/* Never more events than the caller has room for. */
static void
test_room(void)
{
	struct rules_state	 s;
	struct rules_event	 ev[2];
	struct rules_reading	 r = { at(0), 13, NAN };
	size_t			 n;

	rules_init(&s);
	memset(ev, 0xa5, sizeof ev);
	n = rules_feed(&s, &limits[F_FRIDGE], &r, r.ts, ev, 1);
	ok(n == 1 && ev[0].type == RULES_EV_OPEN &&
	    ev[1].fridge_id == (int64_t)0xa5a5a5a5a5a5a5a5ULL,
	    "max 1: one event, nothing written past it");
	ok(s.temp.alarmed_at == r.ts, "the state still moved");
}

/* An open door row survives a restart and alarms on the clock. */
static void
test_restore_door(void)
{
	struct rules_state	 s;
	struct rules_saved	 sv;
	struct rules_event	 ev[RULES_EVENTS_MAX];
	size_t			 n;

	memset(&sv, 0, sizeof sv);
	sv.last_ts = sv.last_arrival = at(1);
	sv.last_temp = NAN;
	sv.input.kind = RULES_DOOR;
	sv.input.started_at = at(1);
	sv.input.peak_c = NAN;
	sv.warn.kind = RULES_NONE;
	rules_restore(&s, &limits[F_DOOR], &sv, at(2));
	n = rules_tick(&s, &limits[F_DOOR], at(6), ev, RULES_EVENTS_MAX);
	ok(n == 1 && ev[0].type == RULES_EV_ALARM &&
	    ev[0].x.kind == RULES_DOOR && ev[0].x.alarmed_at == at(6),
	    "restored open door alarms at 5 min");
}

int
main(void)
{
	size_t	 i;

	limits_init();
	test_names();
	test_defaults();
	test_room();
	test_restore_door();
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		test_case(&cases[i]);
	return (done_testing());
}
