/*
 * Unit tests for calendar.c: dates in a few languages, and what is left
 * when the locale or the date is not one.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "tap.h"

static void
test_dates(void)
{
	static const struct {
		const char	*locale;
		int		 y, m, d;
		const char	*want;
	} dates[] = {
		{ "en-US", 2027, 2, 19, "February 19, 2027" },
		{ "de-DE", 2027, 2, 19, "19. Februar 2027" },
		{ "fr-FR", 2027, 2, 19, "19 f\xc3\xa9vrier 2027" },
		{ "en-GB", 2027, 2, 19, "19 February 2027" },
		{ "de_DE", 2027, 2, 19, "19. Februar 2027" },
		{ "de_DE.UTF-8", 2027, 2, 19, "19. Februar 2027" },
		{ "fr_FR", 2026, 12, 31, "31 d\xc3\xa9" "cembre 2026" },
		{ "en-US", 2028, 2, 29, "February 29, 2028" },
		{ "en-US", 2027, 1, 1, "January 1, 2027" },
		{ NULL, 2027, 2, 19, "February 19, 2027" },
		{ "", 2027, 2, 19, "February 19, 2027" },
		{ "en-US", 2027, 2, 29, "2027-02-29" },
		{ "en-US", 2027, 13, 1, "2027-13-01" },
		{ "en-US-!!", 2027, 2, 19, "2027-02-19" },
	};
	char	*s;
	size_t	 i;

	for (i = 0; i < sizeof dates / sizeof dates[0]; i++) {
		s = calendar_format_date(dates[i].locale, dates[i].y,
		    dates[i].m, dates[i].d);
		is_str(s, dates[i].want, "%04d-%02d-%02d in %s", dates[i].y,
		    dates[i].m, dates[i].d,
		    dates[i].locale ? dates[i].locale : "(null)");
		free(s);
	}
}

int
main(void)
{
	test_dates();
	return (done_testing());
}
