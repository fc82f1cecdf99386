/*
 * An RFC 4180 reader: comma-separated fields, double quotes around a field
 * that holds commas, quotes (doubled) or line ends, a header record first.
 * A state machine reads one byte at a time; each record comes with the
 * physical line it starts on, so that errors can name it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "xmalloc.h"

#define CSV_EOF		(-1)

enum csv_state {
	CSV_FIELD,		/* before the first byte of a field */
	CSV_UNQUOTED,		/* inside a field without quotes */
	CSV_QUOTED,		/* inside a quoted field */
	CSV_QUOTE,		/* after a quote in a quoted field */
};

struct csv {
	const char	 *p;
	const char	 *end;
	size_t		  line;		/* of the byte at p */
	size_t		  header;	/* fields of the first record */

	char		 *buf;		/* the record's fields, NUL-ended */
	size_t		  len;
	size_t		  size;
	size_t		 *offsets;	/* where each field starts in buf */
	char		**fields;
	size_t		  nfields;
	size_t		  nalloc;

	const char	 *error;	/* the first bad field's */
	size_t		  bad;
	char		  why[64];
};

struct csv *
csv_new(const char *buf, size_t len)
{
	struct csv	*csv;

	csv = xcalloc(1, sizeof *csv);
	csv->p = buf;
	csv->end = buf + len;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		csv->p += 3;
	csv->line = 1;
	return (csv);
}

void
csv_free(struct csv *csv)
{
	if (csv == NULL)
		return;
	free(csv->buf);
	free(csv->offsets);
	free(csv->fields);
	free(csv);
}

/* The next byte, or CSV_EOF; lines are counted here. */
static int
csv_getc(struct csv *csv)
{
	int	c;

	if (csv->p == csv->end)
		return (CSV_EOF);
	c = (unsigned char)*csv->p++;
	if (c == '\n')
		csv->line++;
	return (c);
}

/* Whether c ends a line: LF, or CR before LF (which is taken too). */
static int
csv_eol(struct csv *csv, int c)
{
	if (c == '\n')
		return (1);
	if (c == '\r' && csv->p < csv->end && *csv->p == '\n') {
		csv_getc(csv);
		return (1);
	}
	return (0);
}

/* Skip empty lines; 0 at the end of the input. */
static int
csv_skip_empty(struct csv *csv)
{
	while (csv->p < csv->end) {
		if (*csv->p == '\n' || (*csv->p == '\r' &&
		    csv->p + 1 < csv->end && csv->p[1] == '\n'))
			csv_eol(csv, csv_getc(csv));
		else
			return (1);
	}
	return (0);
}

static void
csv_add(struct csv *csv, int c)
{
	if (csv->len == csv->size) {
		csv->size = csv->size == 0 ? 256 : csv->size * 2;
		csv->buf = xreallocarray(csv->buf, csv->size, 1);
	}
	csv->buf[csv->len++] = (char)c;
}

/* Why the n bytes at s are not UTF-8 text, or NULL if they are. */
static const char *
csv_check_text(const unsigned char *s, size_t n)
{
	static const unsigned int	 min[] = { 0, 0x80, 0x800, 0x10000 };
	unsigned int			 cp;
	size_t				 i = 0, k, more;

	while (i < n) {
		if (s[i] == '\0')
			return ("contains a NUL byte");
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0)
			more = 1;
		else if ((s[i] & 0xf0) == 0xe0)
			more = 2;
		else if ((s[i] & 0xf8) == 0xf0)
			more = 3;
		else
			return ("not valid UTF-8");
		if (n - i - 1 < more)
			return ("not valid UTF-8");
		cp = s[i] & (0x3f >> more);
		for (k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return ("not valid UTF-8");
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates, beyond Unicode. */
		if (cp < min[more] || (cp >= 0xd800 && cp <= 0xdfff) ||
		    cp > 0x10ffff)
			return ("not valid UTF-8");
		i += more + 1;
	}
	return (NULL);
}

/* End the field that starts at offset start; the first bad one is kept. */
static void
csv_end_field(struct csv *csv, size_t start)
{
	const char	*why;

	why = csv_check_text((unsigned char *)csv->buf + start,
	    csv->len - start);
	if (why != NULL && csv->error == NULL) {
		csv->error = why;
		csv->bad = csv->nfields;
	}
	csv_add(csv, '\0');
	if (csv->nfields == csv->nalloc) {
		csv->nalloc = csv->nalloc == 0 ? 16 : csv->nalloc * 2;
		csv->offsets = xreallocarray(csv->offsets, csv->nalloc,
		    sizeof *csv->offsets);
		csv->fields = xreallocarray(csv->fields, csv->nalloc,
		    sizeof *csv->fields);
	}
	csv->offsets[csv->nfields++] = start;
}

/* A malformed record: skip the rest of its line. */
static int
csv_fail(struct csv *csv, struct csv_record *rec, const char *why)
{
	int	c;

	rec->error = why;
	rec->field = csv->nfields;
	while ((c = csv_getc(csv)) != CSV_EOF && c != '\n')
		;
	return (CSV_ERROR);
}

/* A complete record: check its fields and hand them out. */
static int
csv_done(struct csv *csv, struct csv_record *rec)
{
	size_t	i;

	for (i = 0; i < csv->nfields; i++)
		csv->fields[i] = csv->buf + csv->offsets[i];
	rec->fields = csv->fields;
	rec->nfields = csv->nfields;
	if (csv->error != NULL) {
		rec->error = csv->error;
		rec->field = csv->bad;
		return (CSV_ERROR);
	}
	if (csv->header == 0)
		csv->header = csv->nfields;
	else if (csv->nfields != csv->header) {
		snprintf(csv->why, sizeof csv->why, "%zu field%s, the header "
		    "has %zu", csv->nfields, csv->nfields == 1 ? "" : "s",
		    csv->header);
		rec->error = csv->why;
		return (CSV_ERROR);
	}
	return (CSV_RECORD);
}

int
csv_next(struct csv *csv, struct csv_record *rec)
{
	enum csv_state	state = CSV_FIELD;
	size_t		start = 0;
	int		c;

	memset(rec, 0, sizeof *rec);
	rec->field = CSV_NOFIELD;
	if (!csv_skip_empty(csv))
		return (CSV_END);
	rec->line = csv->line;
	csv->len = csv->nfields = 0;
	csv->error = NULL;
	for (;;) {
		c = csv_getc(csv);
		switch (state) {
		case CSV_FIELD:
			start = csv->len;
			if (c == '"') {
				state = CSV_QUOTED;
				break;
			}
			state = CSV_UNQUOTED;
			/* FALLTHROUGH */
		case CSV_UNQUOTED:
			if (c == '"')
				return (csv_fail(csv, rec,
				    "quote in an unquoted field"));
			if (c == ',') {
				csv_end_field(csv, start);
				state = CSV_FIELD;
			} else if (c == CSV_EOF || csv_eol(csv, c)) {
				csv_end_field(csv, start);
				return (csv_done(csv, rec));
			} else
				csv_add(csv, c);
			break;
		case CSV_QUOTED:
			if (c == CSV_EOF)
				return (csv_fail(csv, rec,
				    "quoted field not closed"));
			if (c == '"')
				state = CSV_QUOTE;
			else
				csv_add(csv, c);
			break;
		case CSV_QUOTE:
			if (c == '"') {
				csv_add(csv, c);
				state = CSV_QUOTED;
			} else if (c == ',') {
				csv_end_field(csv, start);
				state = CSV_FIELD;
			} else if (c == CSV_EOF || csv_eol(csv, c)) {
				csv_end_field(csv, start);
				return (csv_done(csv, rec));
			} else
				return (csv_fail(csv, rec,
				    "characters after a closing quote"));
			break;
		}
	}
}
