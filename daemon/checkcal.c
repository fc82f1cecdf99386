/*
 * The calendar of the workday checks: which clinic-local day of a month
 * was checked, missed, is still due, or needs no check.
 *
 * Only local dates are worked out here.  The instants (the clinic's local
 * today, whether its check_by has passed, DST included) come from
 * PostgreSQL's zone data (vialwatch.check_instant, sql/014_record.sql),
 * which also decides when the check emails go out.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "checkcal.h"

static const char *checkcal_names[CHECKCAL_STATES] = {
	"checked", "missed", "due", "holiday", "off", ""
};

int
checkcal_weekday(int y, int m, int d)
{
	static const int	t[] = { 0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4 };
	int			w;

	if (!calendar_is_date(y, m, d))
		return (0);
	if (m < 3)
		y--;
	/* Sakamoto's method: 0 is Sunday. */
	w = (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
	return (w == 0 ? 7 : w);
}

int
checkcal_workdays(const char *s)
{
	char	*end;
	long	 n;
	int	 mask = 0;

	if (s == NULL || *s++ != '{')
		return (-1);
	if (*s == '}')
		return (s[1] == '\0' ? 0 : -1);
	for (;;) {
		if (*s < '1' || *s > '7')
			return (-1);
		n = strtol(s, &end, 10);
		if (n < 1 || n > 7)
			return (-1);
		mask |= 1 << n;
		if (*end == '}')
			return (end[1] == '\0' ? mask : -1);
		if (*end != ',')
			return (-1);
		s = end + 1;
	}
}

enum checkcal_state
checkcal_state(int workdays, const struct checkcal_day *cd)
{
	int	wd;

	if (cd->cmp_today > 0 || cd->before_fridge)
		return (cd->checked ? CHECKCAL_CHECKED : CHECKCAL_NONE);
	if (cd->checked)
		return (CHECKCAL_CHECKED);
	if ((wd = checkcal_weekday(cd->year, cd->month, cd->day)) == 0)
		return (CHECKCAL_NONE);
	if (cd->holiday)
		return (CHECKCAL_HOLIDAY);
	if ((workdays & (1 << wd)) == 0)
		return (CHECKCAL_OFF);
	if (cd->cmp_today == 0 && !cd->late)
		return (CHECKCAL_DUE);
	return (CHECKCAL_MISSED);
}

const char *
checkcal_state_name(enum checkcal_state st)
{
	if (st < 0 || st >= CHECKCAL_STATES)
		return ("");
	return (checkcal_names[st]);
}
