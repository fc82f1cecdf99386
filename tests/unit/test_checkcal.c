/*
 * Unit tests for checkcal.c: the ISO weekday, the workdays of a clinic,
 * and the state of each day of the check log, on the days of the spring
 * and autumn changes of Berlin and Chicago among others.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>

#include "checkcal.h"
#include "tap.h"

#define MON_FRI	(0x3e)		/* bits 1 to 5 */
#define EVERY	(0xfe)		/* bits 1 to 7 */

static void
test_weekday(void)
{
	static const struct {
		int	y, m, d, want;
	} days[] = {
		{ 2026, 3, 29, 7 },	/* Berlin springs forward, a Sunday */
		{ 2026, 3, 30, 1 },
		{ 2026, 3, 8, 7 },	/* Chicago springs forward */
		{ 2026, 10, 25, 7 },	/* Berlin falls back */
		{ 2026, 11, 1, 7 },	/* Chicago falls back */
		{ 2026, 11, 2, 1 },
		{ 2027, 3, 28, 7 },
		{ 2028, 2, 29, 2 },	/* leap day */
		{ 2000, 1, 1, 6 },
		{ 1970, 1, 1, 4 },
		{ 2026, 12, 31, 4 },
		{ 2027, 1, 1, 5 },
		{ 2027, 2, 29, 0 },	/* not a date */
		{ 2026, 13, 1, 0 },
	};
	size_t	i;

	for (i = 0; i < sizeof days / sizeof days[0]; i++)
		is_int(checkcal_weekday(days[i].y, days[i].m, days[i].d),
		    days[i].want, "weekday of %04d-%02d-%02d", days[i].y,
		    days[i].m, days[i].d);
}

static void
test_workdays(void)
{
	static const struct {
		const char	*s;
		int		 want;
	} cases[] = {
		{ "{1,2,3,4,5}", MON_FRI },
		{ "{1,2,3,4,5,6,7}", EVERY },
		{ "{6}", 1 << 6 },
		{ "{7,1}", 1 << 7 | 1 << 1 },
		{ "{}", 0 },
		{ "{0}", -1 },
		{ "{8}", -1 },
		{ "{1,}", -1 },
		{ "1,2", -1 },
		{ "{1,2", -1 },
		{ "{1,2}x", -1 },
		{ "{12}", -1 },
		{ NULL, -1 },
	};
	size_t	i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		is_int(checkcal_workdays(cases[i].s), cases[i].want,
		    "workdays %s", cases[i].s ? cases[i].s : "(null)");
}

static void
test_state(void)
{
	static const struct {
		int			 workdays;
		struct checkcal_day	 day;
		enum checkcal_state	 want;
	} cases[] = {
		/* y, m, d, checked, holiday, cmp_today, late, before */
		{ MON_FRI, { 2026, 3, 30, 1, 0, -1, 0, 0 }, CHECKCAL_CHECKED },
		{ MON_FRI, { 2026, 3, 30, 0, 0, -1, 0, 0 }, CHECKCAL_MISSED },
		{ MON_FRI, { 2026, 3, 29, 0, 0, -1, 0, 0 }, CHECKCAL_OFF },
		{ MON_FRI, { 2026, 3, 29, 1, 0, -1, 0, 0 }, CHECKCAL_CHECKED },
		{ EVERY, { 2026, 3, 29, 0, 0, -1, 0, 0 }, CHECKCAL_MISSED },
		{ EVERY, { 2026, 3, 29, 0, 0, 0, 0, 0 }, CHECKCAL_DUE },
		{ EVERY, { 2026, 3, 29, 0, 0, 0, 1, 0 }, CHECKCAL_MISSED },
		{ EVERY, { 2026, 3, 8, 0, 0, 0, 0, 0 }, CHECKCAL_DUE },
		{ EVERY, { 2026, 10, 25, 0, 0, 0, 1, 0 }, CHECKCAL_MISSED },
		{ EVERY, { 2026, 11, 1, 0, 1, -1, 0, 0 }, CHECKCAL_HOLIDAY },
		{ MON_FRI, { 2026, 11, 2, 0, 0, 1, 0, 0 }, CHECKCAL_NONE },
		{ MON_FRI, { 2026, 11, 2, 0, 0, -1, 0, 1 }, CHECKCAL_NONE },
		{ MON_FRI, { 2026, 12, 25, 0, 1, -1, 0, 0 }, CHECKCAL_HOLIDAY },
		{ MON_FRI, { 2026, 12, 25, 1, 1, -1, 0, 0 }, CHECKCAL_CHECKED },
		{ 0, { 2026, 12, 24, 0, 0, -1, 0, 0 }, CHECKCAL_OFF },
		{ 1 << 6, { 2026, 12, 26, 0, 0, 0, 0, 0 }, CHECKCAL_DUE },
		{ 1 << 6, { 2026, 12, 27, 0, 0, -1, 0, 0 }, CHECKCAL_OFF },
		{ MON_FRI, { 2028, 2, 29, 0, 0, -1, 0, 0 }, CHECKCAL_MISSED },
		{ MON_FRI, { 2027, 2, 29, 0, 0, -1, 0, 0 }, CHECKCAL_NONE },
	};
	size_t	i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		is_str(checkcal_state_name(checkcal_state(cases[i].workdays,
		    &cases[i].day)), checkcal_state_name(cases[i].want),
		    "case %zu: %04d-%02d-%02d", i, cases[i].day.year,
		    cases[i].day.month, cases[i].day.day);
}

int
main(void)
{
	test_weekday();
	test_workdays();
	test_state();
	return (done_testing());
}
