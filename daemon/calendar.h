/* calendar.c: a date in a patient's language, with ICU (pure). */
#ifndef CALENDAR_H
#define CALENDAR_H

#include <stdint.h>

/*
 * A date in the locale's long format ("February 19, 2027" for en-US,
 * "19. Februar 2027" for de-DE), UTF-8, to free.  The locale is a BCP 47
 * tag (en-US) or a POSIX name (de_DE, de_DE.UTF-8); NULL or "" is en-US.
 * "2027-02-19" when ICU cannot do it or the date does not exist.
 */
char		*calendar_format_date(const char *locale, int year, int month,
		    int day);

/* Whether year-month-day is a Gregorian date, years 1 to 9999. */
int		 calendar_is_date(int year, int month, int day);

#endif
