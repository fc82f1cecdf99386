/*
 * vialwatchctl import: patients, treatments, appointments and lots from the
 * CSV exports of a clinic's practice software.  Every row is checked before
 * anything is written: its values here, what it refers to in SQL, on a
 * temporary table filled by COPY.  Then all rows are upserted in the same
 * transaction, or none if one is bad.  Rows that did not change are not
 * rewritten, so importing the same file again changes nothing.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "calendar.h"
#include "csv.h"
#include "ctl.h"
#include "xmalloc.h"

#define IMPORT_MAXCOLUMNS	8
#define IMPORT_ROW		(-1)	/* an error about a row, not a cell */
#define IMPORT_CHUNK		(256 * 1024)

enum import_type {
	IMPORT_TEXT,
	IMPORT_EMAIL,
	IMPORT_YESNO,
	IMPORT_DATE,
	IMPORT_TIME,		/* or a date: 12:00 that day */
	IMPORT_NUMBER,		/* decimal, >= 0 */
	IMPORT_COUNT,		/* whole number, >= 0 */
	IMPORT_STATUS,		/* of an appointment */
};

/* What is wrong with a value of each type. */
static const char *const import_reasons[] = {
	[IMPORT_EMAIL] = "not an email address",
	[IMPORT_YESNO] = "not yes or no",
	[IMPORT_DATE] = "not a date",
	[IMPORT_TIME] = "not a date or time",
	[IMPORT_NUMBER] = "not a number >= 0",
	[IMPORT_COUNT] = "not a whole number >= 0",
	[IMPORT_STATUS] = "not booked, cancelled or done",
};

struct import_column {
	const char		*name;
	enum import_type	 type;
	int			 required;
	const char		*empty;		/* an empty cell; NULL: null */
};

/* A kind of import: its columns, in the order of its table's. */
struct import_kind {
	const char			*name;
	const struct import_column	*columns;
	size_t				 ncolumns;
	const char			*table_sql;
	const char			*check_sql;
	const char			*upsert_sql;
};

struct import_buf {
	char	*data;
	size_t	 len;
	size_t	 size;
};

/* A bad row or cell. */
struct import_error {
	size_t	 line;
	int	 column;	/* in the kind, or IMPORT_ROW */
	size_t	 seq;
	char	*text;
};

struct import {
	struct ctl			*ctl;
	const struct import_kind	*kind;
	const char			*path;
	int				*map;	/* header field to column */
	int				 given[IMPORT_MAXCOLUMNS];
	struct import_buf		 copy;	/* the rows, as COPY text */
	size_t				 rows;
	struct import_error		*errors;
	size_t				 nerrors;
	size_t				 nalloc;
};

/*
 * The temporary table holds every row, a cell that is bad as null.  The
 * check query returns (line, column, what, value, clinic) for each value
 * that refers to nothing, and for each row whose key an earlier row of the
 * file has ("same", the earlier line).  The upsert query, given $1 the
 * columns of the file, returns the rows inserted and those written: a
 * column the file does not have is kept as it is in a row that exists.
 */

#define IMPORT_TABLE(cols)						\
    "create temporary table import_row (line integer not null, " cols	\
    ") on commit drop"

#define IMPORT_GIVEN(col)	"'" col "' = any($1::text[])"

/* A time without an offset is the clinic's local time. */
#define IMPORT_TIME(v)							\
    "case when " v " ~ '[+-][0-9][0-9]:[0-9][0-9]$'"			\
    " then " v "::timestamptz"						\
    " else " v "::timestamp at time zone c.timezone end"

#define CHECK_CLINIC							\
    "select r.line, 'clinic', 'clinic', r.clinic, null"		\
    " from pg_temp.import_row r"					\
    " where r.clinic is not null and not exists (select"		\
    "  from vialwatch.clinic c where c.name = r.clinic)"

#define CHECK_PATIENT							\
    " union all select r.line, 'patient_ref', 'patient', r.patient_ref,"	\
    " r.clinic from pg_temp.import_row r"				\
    " join vialwatch.clinic c on c.name = r.clinic"			\
    " where r.patient_ref is not null and not exists (select"		\
    "  from vialwatch.patient p where p.clinic_id = c.id"		\
    "  and p.external_ref = r.patient_ref)"

#define CHECK_SAME(col, key)						\
    " union all select line, '" col "', 'same', first::text, null"	\
    " from (select line, min(line) over (partition by " key ") first"	\
    "  from pg_temp.import_row where (" key ") is not null) d"		\
    " where line <> first"

#define UPSERT_COUNT							\
    " select (select count(*) from src where fresh),"			\
    " (select count(*) from up)"

static const struct import_column patient_columns[] = {
	{ "clinic", IMPORT_TEXT, 1, NULL },
	{ "external_ref", IMPORT_TEXT, 1, NULL },
	{ "first_name", IMPORT_TEXT, 1, NULL },
	{ "last_name", IMPORT_TEXT, 0, NULL },
	{ "email", IMPORT_EMAIL, 0, NULL },
	{ "email_consent", IMPORT_YESNO, 0, "f" },
};

static const char patient_upsert[] =
    "with src as (select c.id as clinic_id, r.external_ref, r.first_name,"
    " case when " IMPORT_GIVEN("last_name") " then r.last_name"
    "  else old.last_name end as last_name,"
    " case when " IMPORT_GIVEN("email") " then r.email"
    "  else old.email end as email,"
    " case when " IMPORT_GIVEN("email_consent") " then r.email_consent"
    "  else coalesce(old.email_consent, false) end as email_consent,"
    " old.id is null as fresh"
    " from pg_temp.import_row r"
    " join vialwatch.clinic c on c.name = r.clinic"
    " left join vialwatch.patient old on old.clinic_id = c.id"
    "  and old.external_ref = r.external_ref"
    "), up as (insert into vialwatch.patient as t (clinic_id,"
    " external_ref, first_name, last_name, email, email_consent)"
    " select clinic_id, external_ref, first_name, last_name, email,"
    " email_consent from src"
    " on conflict (clinic_id, external_ref) do update"
    " set (first_name, last_name, email, email_consent) ="
    "  (excluded.first_name, excluded.last_name, excluded.email,"
    "  excluded.email_consent)"
    " where (t.first_name, t.last_name, t.email, t.email_consent)"
    "  is distinct from (excluded.first_name, excluded.last_name,"
    "  excluded.email, excluded.email_consent)"
    " returning 1)" UPSERT_COUNT;

static const struct import_column treatment_columns[] = {
	{ "clinic", IMPORT_TEXT, 1, NULL },
	{ "patient_ref", IMPORT_TEXT, 1, NULL },
	{ "external_ref", IMPORT_TEXT, 1, NULL },
	{ "product", IMPORT_TEXT, 1, NULL },
	{ "treated_at", IMPORT_TIME, 1, NULL },
	{ "area", IMPORT_TEXT, 0, NULL },
	{ "units", IMPORT_NUMBER, 0, NULL },
	{ "lot_number", IMPORT_TEXT, 0, NULL },
};

static const char treatment_upsert[] =
    "with src as (select p.id as patient_id, r.external_ref, r.product,"
    " " IMPORT_TIME("r.treated_at") " as treated_at,"
    " case when " IMPORT_GIVEN("area") " then r.area"
    "  else old.area end as area,"
    " case when " IMPORT_GIVEN("units") " then r.units"
    "  else old.units end as units,"
    " case when " IMPORT_GIVEN("lot_number") " then r.lot_number"
    "  else old.lot_number end as lot_number,"
    " old.id is null as fresh"
    " from pg_temp.import_row r"
    " join vialwatch.clinic c on c.name = r.clinic"
    " join vialwatch.patient p on p.clinic_id = c.id"
    "  and p.external_ref = r.patient_ref"
    " left join vialwatch.treatment old on old.patient_id = p.id"
    "  and old.external_ref = r.external_ref"
    "), up as (insert into vialwatch.treatment as t (patient_id,"
    " external_ref, product, area, units, lot_number, treated_at)"
    " select patient_id, external_ref, product, area, units, lot_number,"
    " treated_at from src"
    " on conflict (patient_id, external_ref) do update"
    " set (product, area, units, lot_number, treated_at) ="
    "  (excluded.product, excluded.area, excluded.units,"
    "  excluded.lot_number, excluded.treated_at)"
    " where (t.product, t.area, t.units, t.lot_number, t.treated_at)"
    "  is distinct from (excluded.product, excluded.area, excluded.units,"
    "  excluded.lot_number, excluded.treated_at)"
    " returning 1)" UPSERT_COUNT;

static const struct import_column appointment_columns[] = {
	{ "clinic", IMPORT_TEXT, 1, NULL },
	{ "patient_ref", IMPORT_TEXT, 1, NULL },
	{ "external_ref", IMPORT_TEXT, 1, NULL },
	{ "starts_at", IMPORT_TIME, 1, NULL },
	{ "status", IMPORT_STATUS, 0, "booked" },
};

static const char appointment_upsert[] =
    "with src as (select p.id as patient_id, r.external_ref,"
    " " IMPORT_TIME("r.starts_at") " as starts_at,"
    " case when " IMPORT_GIVEN("status") " then r.status"
    "  else coalesce(old.status, 'booked') end as status,"
    " old.id is null as fresh"
    " from pg_temp.import_row r"
    " join vialwatch.clinic c on c.name = r.clinic"
    " join vialwatch.patient p on p.clinic_id = c.id"
    "  and p.external_ref = r.patient_ref"
    " left join vialwatch.appointment old on old.patient_id = p.id"
    "  and old.external_ref = r.external_ref"
    "), up as (insert into vialwatch.appointment as t (patient_id,"
    " external_ref, starts_at, status)"
    " select patient_id, external_ref, starts_at, status from src"
    " on conflict (patient_id, external_ref) do update"
    " set (starts_at, status) = (excluded.starts_at, excluded.status)"
    " where (t.starts_at, t.status)"
    "  is distinct from (excluded.starts_at, excluded.status)"
    " returning 1)" UPSERT_COUNT;

static const struct import_column lot_columns[] = {
	{ "clinic", IMPORT_TEXT, 1, NULL },
	{ "fridge", IMPORT_TEXT, 1, NULL },
	{ "product", IMPORT_TEXT, 1, NULL },
	{ "lot_number", IMPORT_TEXT, 1, NULL },
	{ "expires_on", IMPORT_DATE, 0, NULL },
	{ "quantity", IMPORT_COUNT, 0, NULL },
};

/* A lot's status is the excursions' and the admins' decision: kept. */
static const char lot_upsert[] =
    "with src as (select r.line, f.id as fridge_id, r.product,"
    " r.lot_number,"
    " case when " IMPORT_GIVEN("expires_on") " then r.expires_on"
    "  else old.expires_on end as expires_on,"
    " case when " IMPORT_GIVEN("quantity") " then r.quantity"
    "  else old.quantity end as quantity,"
    " old.id is null as fresh"
    " from pg_temp.import_row r"
    " join vialwatch.clinic c on c.name = r.clinic"
    " join vialwatch.fridge f on f.clinic_id = c.id and f.name = r.fridge"
    " left join vialwatch.lot old on old.fridge_id = f.id"
    "  and old.product = r.product and old.lot_number = r.lot_number"
    "), up as (insert into vialwatch.lot as t (fridge_id, product,"
    " lot_number, expires_on, quantity)"
    " select fridge_id, product, lot_number, expires_on, quantity from src"
    " order by line"
    " on conflict (fridge_id, product, lot_number) do update"
    " set (expires_on, quantity) = (excluded.expires_on, excluded.quantity)"
    " where (t.expires_on, t.quantity)"
    "  is distinct from (excluded.expires_on, excluded.quantity)"
    " returning 1)" UPSERT_COUNT;

#define IMPORT_KIND(name, cols, table, check, upsert)			\
    { name, cols, sizeof cols / sizeof cols[0], table, check, upsert }

static const struct import_kind import_kinds[] = {
	IMPORT_KIND("patients", patient_columns,
	    IMPORT_TABLE("clinic text, external_ref text, first_name text,"
	    " last_name text, email text, email_consent boolean"),
	    CHECK_CLINIC CHECK_SAME("external_ref", "clinic, external_ref"),
	    patient_upsert),
	IMPORT_KIND("treatments", treatment_columns,
	    IMPORT_TABLE("clinic text, patient_ref text, external_ref text,"
	    " product text, treated_at text, area text, units numeric,"
	    " lot_number text"),
	    CHECK_CLINIC CHECK_PATIENT CHECK_SAME("external_ref",
	    "clinic, patient_ref, external_ref"),
	    treatment_upsert),
	IMPORT_KIND("appointments", appointment_columns,
	    IMPORT_TABLE("clinic text, patient_ref text, external_ref text,"
	    " starts_at text, status text"),
	    CHECK_CLINIC CHECK_PATIENT CHECK_SAME("external_ref",
	    "clinic, patient_ref, external_ref"),
	    appointment_upsert),
	IMPORT_KIND("lots", lot_columns,
	    IMPORT_TABLE("clinic text, fridge text, product text,"
	    " lot_number text, expires_on date, quantity integer"),
	    CHECK_CLINIC
	    " union all select r.line, 'fridge', 'fridge', r.fridge, r.clinic"
	    " from pg_temp.import_row r"
	    " join vialwatch.clinic c on c.name = r.clinic"
	    " where r.fridge is not null and not exists (select"
	    "  from vialwatch.fridge f where f.clinic_id = c.id"
	    "  and f.name = r.fridge)"
	    CHECK_SAME("lot_number", "clinic, fridge, product, lot_number"),
	    lot_upsert),
};
#define IMPORT_NKINDS (sizeof import_kinds / sizeof import_kinds[0])

static void
import_buf_add(struct import_buf *b, const char *s, size_t len)
{
	while (b->size - b->len < len + 1) {
		b->size = b->size == 0 ? 4096 : b->size * 2;
		b->data = xreallocarray(b->data, b->size, 1);
	}
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
}

/* s for a message: escaped, cut after 60 bytes, in quotes if quotes. */
static char *
import_shown(const char *s, int quotes)
{
	struct import_buf	 b = { NULL, 0, 0 };
	char			 tmp[8];
	size_t			 n;
	unsigned char		 c;

	import_buf_add(&b, "\"", quotes);
	for (n = 0; (c = (unsigned char)s[n]) != '\0'; n++) {
		if (n >= 60 && (c & 0xc0) != 0x80) {
			import_buf_add(&b, "...", 3);
			break;
		}
		if (c == '"' || c == '\\')
			snprintf(tmp, sizeof tmp, "\\%c", c);
		else if (c == '\n')
			snprintf(tmp, sizeof tmp, "\\n");
		else if (c < 0x20 || c == 0x7f)
			snprintf(tmp, sizeof tmp, "\\x%02x", c);
		else
			snprintf(tmp, sizeof tmp, "%c", c);
		import_buf_add(&b, tmp, strlen(tmp));
	}
	import_buf_add(&b, "\"", quotes);
	return (b.data);
}

/* Record a bad row or cell, "COLUMN: reason" or "reason". */
static void PRINTFLIKE(4, 5)
import_error(struct import *imp, size_t line, int column, const char *fmt,
    ...)
{
	struct import_error	*e;
	va_list			 ap;
	char			*text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	if (imp->nerrors == imp->nalloc) {
		imp->nalloc = imp->nalloc == 0 ? 64 : imp->nalloc * 2;
		imp->errors = xreallocarray(imp->errors, imp->nalloc,
		    sizeof *imp->errors);
	}
	e = &imp->errors[imp->nerrors];
	e->line = line;
	e->column = column;
	e->seq = imp->nerrors++;
	e->text = text;
}

/* The value of the n digits at s, or -1. */
static int
import_digits(const char *s, size_t n)
{
	size_t	i;
	int	v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		v = v * 10 + s[i] - '0';
	}
	return (v);
}

/* Check the date YYYY-MM-DD at the start of s; 0 or -1. */
static int
import_date(const char *s, int *y, int *m, int *d)
{
	if ((*y = import_digits(s, 4)) < 1 || s[4] != '-' ||
	    (*m = import_digits(s + 5, 2)) < 1 || s[7] != '-' ||
	    (*d = import_digits(s + 8, 2)) < 1 ||
	    !calendar_is_date(*y, *m, *d))
		return (-1);
	return (0);
}

/* Check HH:MM[:SS[.frac]] at *sp and move past it; 0 or -1. */
static int
import_clock(const char **sp, int *h, int *mi, int *sec, char *frac,
    size_t size)
{
	const char	*s = *sp;
	size_t		 n;

	if ((*h = import_digits(s, 2)) < 0 || *h > 23 || s[2] != ':' ||
	    (*mi = import_digits(s + 3, 2)) < 0 || *mi > 59)
		return (-1);
	s += 5;
	*sec = 0;
	*frac = '\0';
	if (*s == ':') {
		if ((*sec = import_digits(s + 1, 2)) < 0 || *sec > 59)
			return (-1);
		s += 3;
		if (*s == '.') {
			n = strspn(s + 1, "0123456789");
			if (n < 1 || n > 6)
				return (-1);
			snprintf(frac, size, "%.*s", (int)n + 1, s);
			s += n + 1;
		}
	}
	*sp = s;
	return (0);
}

/* Check an optional offset, Z or +HH:MM, at *sp and move past it. */
static int
import_offset(const char **sp, char *off, size_t size)
{
	const char	*s = *sp;
	int		 h, m;

	if (*s == 'Z') {
		snprintf(off, size, "+00:00");
		*sp = s + 1;
	} else if (*s == '+' || *s == '-') {
		if ((h = import_digits(s + 1, 2)) < 0 || h > 15 || s[3] != ':' ||
		    (m = import_digits(s + 4, 2)) < 0 || m > 59)
			return (-1);
		snprintf(off, size, "%c%02d:%02d", *s, h, m);
		*sp = s + 6;
	}
	return (0);
}

/*
 * Check a date, or a date and time with an optional offset, and write it
 * as "YYYY-MM-DD HH:MM:SS[.frac][+HH:MM]"; 0 or -1.
 */
static int
import_time(const char *s, char *out, size_t size)
{
	const char	*p = s + 10;
	char		 frac[8] = "", off[8] = "";
	int		 y, m, d, h = 12, mi = 0, sec = 0;

	if (import_date(s, &y, &m, &d) != 0)
		return (-1);
	if (*p != '\0') {
		if (*p != 'T' && *p != ' ')
			return (-1);
		p++;
		if (import_clock(&p, &h, &mi, &sec, frac, sizeof frac) != 0 ||
		    import_offset(&p, off, sizeof off) != 0 || *p != '\0')
			return (-1);
	}
	snprintf(out, size, "%04d-%02d-%02d %02d:%02d:%02d%s%s", y, m, d, h,
	    mi, sec, frac, off);
	return (0);
}

/* Check an email address: one @, a domain with a dot, no blanks. */
static int
import_email(const char *s)
{
	const char	*at = strchr(s, '@'), *dot, *p;
	size_t		 len = strlen(s);

	if (len > 254 || at == NULL || at == s || strchr(at + 1, '@') != NULL)
		return (-1);
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return (-1);
	}
	dot = strchr(at + 1, '.');
	if (dot == NULL || dot == at + 1 || s[len - 1] == '.')
		return (-1);
	return (0);
}

/* The word of s from a list, or NULL. */
static const char *
import_word(const char *s, const char *const *words, const char *const *to)
{
	for (; *words != NULL; words++, to++) {
		if (strcasecmp(s, *words) == 0)
			return (*to);
	}
	return (NULL);
}

/*
 * The value to load for the non-empty cell s of a column of type t: s, or
 * its form written in out; NULL if it is not one.
 */
static const char *
import_value(enum import_type t, const char *s, char *out, size_t size)
{
	static const char *const	 yesno[] = { "yes", "y", "true", "1",
					    "no", "n", "false", "0", NULL };
	static const char *const	 tf[] = { "t", "t", "t", "t", "f",
					    "f", "f", "f", NULL };
	static const char *const	 status[] = { "booked", "cancelled",
					    "done", NULL };
	size_t				 n;
	int				 y, m, d;

	switch (t) {
	case IMPORT_TEXT:
		return (s);
	case IMPORT_EMAIL:
		return (import_email(s) == 0 ? s : NULL);
	case IMPORT_YESNO:
		return (import_word(s, yesno, tf));
	case IMPORT_STATUS:
		return (import_word(s, status, status));
	case IMPORT_DATE:
		return (strlen(s) == 10 && import_date(s, &y, &m, &d) == 0 ?
		    s : NULL);
	case IMPORT_TIME:
		return (import_time(s, out, size) == 0 ? out : NULL);
	case IMPORT_NUMBER:
		n = strspn(s, "0123456789");
		if (n > 0 && s[n] == '.' && strspn(s + n + 1, "0123456789") > 0)
			n += 1 + strspn(s + n + 1, "0123456789");
		return (n > 0 && s[n] == '\0' ? s : NULL);
	case IMPORT_COUNT:
		n = strspn(s, "0123456789");
		if (n == 0 || s[n] != '\0' || n > 10 ||
		    strtoll(s, NULL, 10) > INT_MAX)
			return (NULL);
		return (s);
	}
	return (NULL);
}

/* s without leading and trailing blanks, in place. */
static char *
import_trim(char *s)
{
	size_t	len;

	s += strspn(s, " \t");
	len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	return (s);
}

/* The index of the kind's column called name, any case, or -1. */
static int
import_column_index(const struct import_kind *kind, const char *name)
{
	size_t	i;

	for (i = 0; i < kind->ncolumns; i++) {
		if (strcasecmp(kind->columns[i].name, name) == 0)
			return ((int)i);
	}
	return (-1);
}

/* Map the header's fields to the kind's columns; 0 or -1 (recorded). */
static int
import_header(struct import *imp, struct csv_record *rec)
{
	const struct import_kind	*kind = imp->kind;
	char				*name, *shown;
	size_t				 j;
	int				 k;

	imp->map = xcalloc(rec->nfields, sizeof *imp->map);
	for (j = 0; j < rec->nfields; j++) {
		name = import_trim(rec->fields[j]);
		shown = import_shown(name, 0);
		if (*name == '\0')
			import_error(imp, rec->line, IMPORT_ROW,
			    "column %zu: no name", j + 1);
		else if ((k = import_column_index(kind, name)) == -1)
			import_error(imp, rec->line, IMPORT_ROW,
			    "column %s: unknown column", shown);
		else if (imp->given[k])
			import_error(imp, rec->line, IMPORT_ROW,
			    "column %s: given twice", shown);
		else {
			imp->given[k] = 1;
			imp->map[j] = k;
		}
		free(shown);
	}
	for (j = 0; j < kind->ncolumns; j++) {
		if (kind->columns[j].required && !imp->given[j])
			import_error(imp, rec->line, IMPORT_ROW,
			    "column %s: required column missing",
			    kind->columns[j].name);
	}
	return (imp->nerrors == 0 ? 0 : -1);
}

/* Append a value to the COPY text: tabs, line ends, backslashes escaped. */
static void
import_copy_value(struct import_buf *b, const char *s)
{
	const char	*p;

	if (s == NULL) {
		import_buf_add(b, "\\N", 2);
		return;
	}
	for (p = s; *p != '\0'; p++) {
		if (*p == '\\')
			import_buf_add(b, "\\\\", 2);
		else if (*p == '\t')
			import_buf_add(b, "\\t", 2);
		else if (*p == '\n')
			import_buf_add(b, "\\n", 2);
		else if (*p == '\r')
			import_buf_add(b, "\\r", 2);
		else
			import_buf_add(b, p, 1);
	}
}

/* Check a data row's cells and add it to the COPY text. */
static void
import_row(struct import *imp, struct csv_record *rec)
{
	const struct import_column	*col;
	const char			*values[IMPORT_MAXCOLUMNS];
	char				 forms[IMPORT_MAXCOLUMNS][48], num[24];
	char				*s, *shown;
	size_t				 j;
	int				 k;

	memset(values, 0, sizeof values);
	for (j = 0; j < rec->nfields; j++) {
		k = imp->map[j];
		col = &imp->kind->columns[k];
		s = import_trim(rec->fields[j]);
		if (*s == '\0') {
			if (col->required)
				import_error(imp, rec->line, k,
				    "%s: required but empty", col->name);
			values[k] = col->empty;
		} else if ((values[k] = import_value(col->type, s, forms[k],
		    sizeof forms[k])) == NULL) {
			shown = import_shown(s, 1);
			import_error(imp, rec->line, k, "%s: %s %s", col->name,
			    import_reasons[col->type], shown);
			free(shown);
		}
	}
	snprintf(num, sizeof num, "%zu", rec->line);
	import_buf_add(&imp->copy, num, strlen(num));
	for (j = 0; j < imp->kind->ncolumns; j++) {
		import_buf_add(&imp->copy, "\t", 1);
		import_copy_value(&imp->copy, values[j]);
	}
	import_buf_add(&imp->copy, "\n", 1);
	imp->rows++;
}

/* Record a record the CSV reader refused. */
static void
import_bad_record(struct import *imp, struct csv_record *rec,
    size_t nheader)
{
	const char	*name;
	int		 k;

	if (rec->field == CSV_NOFIELD || rec->field >= nheader) {
		import_error(imp, rec->line, IMPORT_ROW, "%s", rec->error);
		return;
	}
	k = imp->map[rec->field];
	name = imp->kind->columns[k].name;
	import_error(imp, rec->line, k, "%s: %s", name, rec->error);
}

/*
 * Read the header and the rows of the file; -1 if the header is missing or
 * bad (recorded), else 0 with the rows' errors recorded.
 */
static int
import_parse(struct import *imp, const char *buf, size_t len)
{
	struct csv		*csv;
	struct csv_record	 rec;
	size_t			 nheader;
	int			 rc;

	csv = csv_new(buf, len);
	if ((rc = csv_next(csv, &rec)) == CSV_END) {
		import_error(imp, 1, IMPORT_ROW, "no header row");
		csv_free(csv);
		return (-1);
	}
	if (rc == CSV_ERROR || import_header(imp, &rec) != 0) {
		if (rc == CSV_ERROR)
			import_error(imp, rec.line, IMPORT_ROW, "header: %s",
			    rec.error);
		csv_free(csv);
		return (-1);
	}
	nheader = rec.nfields;
	while ((rc = csv_next(csv, &rec)) != CSV_END) {
		if (rc == CSV_ERROR) {
			import_bad_record(imp, &rec, nheader);
			imp->rows++;
		} else
			import_row(imp, &rec);
	}
	csv_free(csv);
	return (0);
}

/* The whole file at path, or NULL (reported). */
static char *
import_read(const char *path, size_t *lenp)
{
	FILE	*f;
	char	*buf = NULL;
	size_t	 len = 0, size = 0, n;

	if ((f = fopen(path, "rb")) == NULL) {
		ctl_warnx("import: %s: %s", path, strerror(errno));
		return (NULL);
	}
	do {
		if (size - len < 65536) {
			size = size == 0 ? 65536 : size * 2;
			buf = xreallocarray(buf, size, 1);
		}
		n = fread(buf + len, 1, size - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		ctl_warnx("import: %s: %s", path, strerror(errno));
		fclose(f);
		free(buf);
		return (NULL);
	}
	fclose(f);
	*lenp = len;
	return (buf);
}

/* Begin, and load the rows into the temporary table; 0 or -1 (reported). */
static int
import_load(struct import *imp)
{
	struct ctl	*ctl = imp->ctl;
	PGresult	*res;
	size_t		 off, n;
	int		 rc = 0;

	if (ctl_exec(ctl, "begin") != 0 ||
	    ctl_exec(ctl, imp->kind->table_sql) != 0)
		return (-1);
	res = PQexec(ctl->conn, "copy pg_temp.import_row from stdin");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		ctl_pg_error(ctl, res, ctl->context, 0);
		PQclear(res);
		return (-1);
	}
	PQclear(res);
	for (off = 0; off < imp->copy.len && rc == 0; off += n) {
		n = imp->copy.len - off;
		if (n > IMPORT_CHUNK)
			n = IMPORT_CHUNK;
		if (PQputCopyData(ctl->conn, imp->copy.data + off, (int)n) != 1)
			rc = -1;
	}
	if (PQputCopyEnd(ctl->conn, rc == 0 ? NULL : "write failed") != 1)
		rc = -1;
	while ((res = PQgetResult(ctl->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			ctl_pg_error(ctl, res, ctl->context, 0);
			rc = -1;
		}
		PQclear(res);
	}
	if (rc == 0)
		rc = ctl_exec(ctl, "analyze pg_temp.import_row");
	return (rc);
}

/* Record the rows that refer to nothing or repeat a key; 0 or -1. */
static int
import_check(struct import *imp)
{
	PGresult	*res;
	const char	*column, *what;
	char		*value, *clinic;
	size_t		 line;
	int		 i, k;

	if ((res = ctl_query(imp->ctl, imp->kind->check_sql, 0, NULL)) == NULL)
		return (-1);
	for (i = 0; i < PQntuples(res); i++) {
		line = strtoul(PQgetvalue(res, i, 0), NULL, 10);
		column = PQgetvalue(res, i, 1);
		what = PQgetvalue(res, i, 2);
		k = import_column_index(imp->kind, column);
		value = import_shown(PQgetvalue(res, i, 3), 1);
		clinic = import_shown(PQgetvalue(res, i, 4), 1);
		if (strcmp(what, "same") == 0)
			import_error(imp, line, k, "%s: same as line %s",
			    column, PQgetvalue(res, i, 3));
		else if (strcmp(what, "clinic") == 0)
			import_error(imp, line, k, "%s: unknown clinic %s",
			    column, value);
		else
			import_error(imp, line, k, "%s: unknown %s %s in "
			    "clinic %s", column, what, value, clinic);
		free(value);
		free(clinic);
	}
	PQclear(res);
	return (0);
}

/* Write the rows; 0 or -1 (reported).  *fresh are new, *written changed. */
static int
import_upsert(struct import *imp, long long *fresh, long long *written)
{
	struct import_buf	 given = { NULL, 0, 0 };
	const char		*params[1];
	PGresult		*res;
	size_t			 i;

	import_buf_add(&given, "{", 1);
	for (i = 0; i < imp->kind->ncolumns; i++) {
		if (!imp->given[i])
			continue;
		if (given.len > 1)
			import_buf_add(&given, ",", 1);
		import_buf_add(&given, imp->kind->columns[i].name,
		    strlen(imp->kind->columns[i].name));
	}
	import_buf_add(&given, "}", 1);
	params[0] = given.data;
	res = ctl_query(imp->ctl, imp->kind->upsert_sql, 1, params);
	free(given.data);
	if (res == NULL)
		return (-1);
	*fresh = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*written = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return (0);
}

static int
import_error_cmp(const void *a, const void *b)
{
	const struct import_error	*x = a, *y = b;

	if (x->line != y->line)
		return (x->line < y->line ? -1 : 1);
	if (x->column != y->column)
		return (x->column < y->column ? -1 : 1);
	return (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* Print the errors by line as FILE:LINE: text; the number of lines. */
static size_t
import_report(struct import *imp)
{
	size_t	i, lines = 0;

	qsort(imp->errors, imp->nerrors, sizeof *imp->errors,
	    import_error_cmp);
	fflush(stdout);
	for (i = 0; i < imp->nerrors; i++) {
		if (i == 0 || imp->errors[i].line != imp->errors[i - 1].line)
			lines++;
		fprintf(stderr, "%s:%zu: %s\n", imp->path, imp->errors[i].line,
		    imp->errors[i].text);
	}
	return (lines);
}

/* Check and import the file in buf; the exit status. */
static int
import_run(struct import *imp, const char *buf, size_t len)
{
	long long	fresh, written;
	size_t		bad;

	if (import_parse(imp, buf, len) != 0) {
		import_report(imp);
		fprintf(stderr, "%s: bad header, nothing imported\n",
		    imp->path);
		return (1);
	}
	if (import_load(imp) != 0 || import_check(imp) != 0)
		return (1);
	if (imp->nerrors > 0) {
		bad = import_report(imp);
		fprintf(stderr, "%s: %zu bad row%s, nothing imported\n",
		    imp->path, bad, bad == 1 ? "" : "s");
		ctl_exec(imp->ctl, "rollback");
		return (1);
	}
	if (import_upsert(imp, &fresh, &written) != 0 ||
	    ctl_exec(imp->ctl, "commit") != 0)
		return (1);
	printf("%s: %zu row%s: %lld new, %lld updated, %lld unchanged\n",
	    imp->path, imp->rows, imp->rows == 1 ? "" : "s", fresh,
	    written - fresh, (long long)imp->rows - written);
	return (0);
}

/* vialwatchctl import patients|treatments|appointments|lots FILE.csv */
int
ctl_import(struct ctl *ctl, int argc, char **argv)
{
	struct import	 imp;
	char		*buf;
	size_t		 len, i;
	int		 rc;

	memset(&imp, 0, sizeof imp);
	for (i = 0; i < IMPORT_NKINDS; i++) {
		if (strcmp(argv[1], import_kinds[i].name) == 0)
			imp.kind = &import_kinds[i];
	}
	if (imp.kind == NULL) {
		ctl_warnx("import: unknown kind \"%s\": expected patients, "
		    "treatments, appointments or lots", argv[1]);
		return (CTL_USAGE);
	}
	imp.ctl = ctl;
	imp.path = argv[2];
	if ((buf = import_read(imp.path, &len)) == NULL)
		return (1);
	ctl->context = "import";
	rc = import_run(&imp, buf, len);
	ctl->context = NULL;
	for (i = 0; i < imp.nerrors; i++)
		free(imp.errors[i].text);
	free(imp.errors);
	free(imp.map);
	free(imp.copy.data);
	free(buf);
	return (rc);
}
