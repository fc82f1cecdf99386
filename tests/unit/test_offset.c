/*
 * Unit tests for offset.c: each case is a table of offsets and a stream
 * of readings (times in minutes from BASE) with the value each must be
 * stored and judged as, or refused.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "offset.h"
#include "payload.h"
#include "tap.h"

#define BASE		1700000000000000LL	/* 2023-11-14T22:13:20Z */
#define MIN(m)		(BASE + (int64_t)((m) * 60e6))
#define REFUSED		NAN
#define MAXOFF		8
#define MAXREAD		8

struct off {
	const char	*key;		/* NULL ends the list */
	double		 from;		/* minutes */
	double		 offset;
};

struct read {
	const char	*key;		/* NULL ends the list */
	double		 at;		/* minutes */
	double		 raw;
	double		 want;		/* REFUSED: out of range */
};

struct tcase {
	const char	*name;
	struct off	 offs[MAXOFF];
	struct read	 reads[MAXREAD];
};

static const struct tcase cases[] = {
	{ "no offsets: the value as sent", { { NULL } },
	    { { "a", 0, 4.2, 4.2 }, { "a", 5, -3, -3 }, { NULL } } },
	{ "an offset applies from its time on, not before",
	    { { "a", 10, -1.5 }, { NULL } },
	    { { "a", 9.99, 6, 6 }, { "a", 10, 6, 4.5 }, { "a", 20, 7, 5.5 },
	      { NULL } } },
	{ "offsets changing mid-stream",
	    { { "a", 10, 1 }, { "a", 20, -2 }, { "a", 30, 0 }, { NULL } },
	    { { "a", 5, 5, 5 }, { "a", 15, 5, 6 }, { "a", 25, 5, 3 },
	      { "a", 35, 5, 5 }, { NULL } } },
	{ "a late reading takes the offset of its own time",
	    { { "a", 10, 1 }, { "a", 20, 2 }, { NULL } },
	    { { "a", 25, 5, 7 }, { "a", 12, 5, 6 }, { "a", 3, 5, 5 },
	      { NULL } } },
	{ "offsets added out of order",
	    { { "a", 30, 3 }, { "a", 10, 1 }, { "a", 20, 2 }, { NULL } },
	    { { "a", 15, 0, 1 }, { "a", 25, 0, 2 }, { "a", 31, 0, 3 },
	      { NULL } } },
	{ "other probes keep their values",
	    { { "a", 0, 2 }, { NULL } },
	    { { "b", 5, 4, 4 }, { "a", 5, 4, 6 }, { "ab", 5, 4, 4 },
	      { NULL } } },
	{ "out of -100..+100 with the offset: refused",
	    { { "a", 0, 3 }, { "b", 0, -3 }, { NULL } },
	    { { "a", 97, 99.5, REFUSED }, { "a", 97, 97, 100 },
	      { "b", 1, -98, REFUSED }, { "b", 1, -97, -100 },
	      { "a", 98, 4, 7 }, { NULL } } },
	{ "an offset back to 0 ends the correction",
	    { { "a", 0, -2 }, { "a", 60, 0 }, { NULL } },
	    { { "a", 59, 99, 97 }, { "a", 60, 99, 99 }, { NULL } } },
};

static void
run_case(const struct tcase *tc)
{
	struct offset_table	*t = offset_table_new();
	struct reading		 r;
	const struct off	*o;
	const struct read	*rd;
	char			 why[256];
	int			 rc, n = 0;

	for (o = tc->offs; o->key != NULL; o++) {
		offset_table_add(t, o->key, MIN(o->from), o->offset);
		n++;
	}
	is_int(offset_table_count(t), n, "%s: %d offsets", tc->name, n);
	for (rd = tc->reads; rd->key != NULL; rd++) {
		memset(&r, 0, sizeof r);
		r.kind = READING_TEMP;
		snprintf(r.key, sizeof r.key, "%s", rd->key);
		r.ts_us = MIN(rd->at);
		r.temp_c = rd->raw;
		why[0] = '\0';
		rc = offset_apply(t, &r, why, sizeof why);
		if (isnan(rd->want)) {
			ok(rc == -1 && strstr(why, rd->key) != NULL &&
			    strstr(why, "outside") != NULL,
			    "%s: %s %g at %g refused (%s)", tc->name, rd->key,
			    rd->raw, rd->at, why);
			continue;
		}
		ok(rc == 0 && fabs(r.temp_c - rd->want) < 1e-9 &&
		    r.temp_raw_c == rd->raw,
		    "%s: %s %g at %g is %g (raw %g)", tc->name, rd->key,
		    rd->raw, rd->at, r.temp_c, r.temp_raw_c);
	}
	offset_table_free(t);
}

/* Many probes: the table grows and still finds each. */
static void
test_many(void)
{
	struct offset_table	*t = offset_table_new();
	char			 key[32];
	int			 i, bad = 0;

	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof key, "zigbee2mqtt/probe-%d", i);
		offset_table_add(t, key, BASE, i / 100.0);
	}
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof key, "zigbee2mqtt/probe-%d", i);
		bad += fabs(offset_at(t, key, BASE + 1) - i / 100.0) > 1e-12;
		bad += offset_at(t, key, BASE - 1) != 0;
	}
	is_int(bad, 0, "1000 probes: each its own offset");
	is_int(offset_at(NULL, "x", BASE) == 0, 1, "no table: no offset");
	offset_table_free(t);
}

/* Readings of other kinds pass unchanged. */
static void
test_kinds(void)
{
	struct offset_table	*t = offset_table_new();
	struct reading		 r;
	char			 why[64];

	offset_table_add(t, "a", BASE, 5);
	memset(&r, 0, sizeof r);
	r.kind = READING_BATTERY;
	snprintf(r.key, sizeof r.key, "a");
	r.ts_us = BASE + 1;
	r.temp_c = NAN;
	r.battery = 50;
	ok(offset_apply(t, &r, why, sizeof why) == 0 && isnan(r.temp_c) &&
	    r.battery == 50, "a battery report is not corrected");
	offset_table_free(t);
}

int
main(void)
{
	size_t	i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(&cases[i]);
	test_many();
	test_kinds();
	return (done_testing());
}
