/*
 * A date as a patient reads it, in the clinic's language, with ICU's
 * locale data (CLDR).
 *
 * Time zones are not worked out here: ICU carries its own copy of the time
 * zone data, older than the system's (libicu72 has 2022e: Mexico still
 * has summer time in it).  The send windows and due dates are computed by
 * PostgreSQL with the system's zone data (sql/007_reminders.sql).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unicode/udat.h>
#include <unicode/uloc.h>
#include <unicode/ustring.h>

#include "calendar.h"
#include "xmalloc.h"

#define CALENDAR_TEXT_MAX	256	/* UChars of a formatted date */

int
calendar_is_date(int y, int m, int d)
{
	static const int	mdays[] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	int			leap;

	if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1)
		return (0);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return (d <= mdays[m - 1] + (m == 2 && leap));
}

/* An ICU locale ID for a BCP 47 tag or a POSIX name; -1 if none. */
static int
calendar_locale(const char *in, char *out, int32_t cap)
{
	UErrorCode	st = U_ZERO_ERROR;
	int32_t		parsed = 0;

	if (in == NULL || *in == '\0')
		in = "en-US";
	if (strchr(in, '-') != NULL && strpbrk(in, "_.@") == NULL) {
		uloc_forLanguageTag(in, out, cap, &parsed, &st);
		if (parsed != (int32_t)strlen(in))
			return (-1);
	} else
		uloc_canonicalize(in, out, cap, &st);	/* drops ".UTF-8" */
	if (U_FAILURE(st) || st == U_STRING_NOT_TERMINATED_WARNING ||
	    *out == '\0')
		return (-1);
	return (0);
}

/* The long date, UTF-8 to free, or NULL if ICU cannot do it. */
static char *
calendar_icu_date(const char *locale, UDate when)
{
	static const UChar	 utc[] = { 'U', 'T', 'C', 0 };
	UChar			 text[CALENDAR_TEXT_MAX];
	char			 loc[ULOC_FULLNAME_CAPACITY], *out;
	UDateFormat		*fmt;
	UErrorCode		 st = U_ZERO_ERROR;
	int32_t			 n, len;

	if (calendar_locale(locale, loc, sizeof loc) == -1)
		return (NULL);
	fmt = udat_open(UDAT_NONE, UDAT_LONG, loc, utc, -1, NULL, 0, &st);
	if (U_FAILURE(st))
		return (NULL);
	n = udat_format(fmt, when, text, CALENDAR_TEXT_MAX, NULL, &st);
	udat_close(fmt);
	if (U_FAILURE(st) || n >= CALENDAR_TEXT_MAX)
		return (NULL);
	u_strToUTF8(NULL, 0, &len, text, n, &st);
	if (st != U_BUFFER_OVERFLOW_ERROR || len <= 0)
		return (NULL);
	st = U_ZERO_ERROR;
	out = xmalloc(len + 1);
	u_strToUTF8(out, len + 1, NULL, text, n, &st);
	if (U_FAILURE(st)) {
		free(out);
		return (NULL);
	}
	return (out);
}

char *
calendar_format_date(const char *locale, int year, int month, int day)
{
	struct tm	 tm;
	char		*out;

	/* Noon UTC: the same date in whatever zone ICU might apply. */
	memset(&tm, 0, sizeof tm);
	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = day;
	tm.tm_hour = 12;
	if (calendar_is_date(year, month, day) && (out = calendar_icu_date(
	    locale, timegm(&tm) * 1000.0)) != NULL)
		return (out);
	xasprintf(&out, "%04d-%02d-%02d", year, month, day);
	return (out);
}
