/*
 * The rows a listing command prints: aligned columns under a header, or,
 * with --json (ctl_json), one JSON array of objects whose keys are the
 * header's names in lowercase.  A command that lists with ctl_list gets
 * --json by naming it in the args of its ctl_commands entry.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "ctl.h"
#include "xmalloc.h"

/* PostgreSQL type oids printed as JSON numbers or booleans. */
#define TABLE_OID_BOOL		16
#define TABLE_OID_INT8		20
#define TABLE_OID_INT2		21
#define TABLE_OID_INT4		23
#define TABLE_OID_FLOAT4	700
#define TABLE_OID_FLOAT8	701
#define TABLE_OID_NUMERIC	1700

int	ctl_json;

/* Characters a terminal shows for s (UTF-8 continuation bytes skipped). */
static int
table_width(const char *s)
{
	int	n = 0;

	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return (n);
}

/* Print a cell, control characters (from sensor keys) as '?'. */
static void
table_cell(const char *s, int width)
{
	int	n = table_width(s);

	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	while (n++ < width)
		putchar(' ');
}

/* A header's name as a JSON key: "LAST SEEN" -> "last_seen". */
static char *
table_key(const char *head)
{
	char	*k, *p;

	k = xstrdup(head);
	for (p = k; *p != '\0'; p++)
		*p = isalnum((unsigned char)*p) ? tolower((unsigned char)*p) :
		    '_';
	return (k);
}

/* One cell as JSON: SQL null and "-" are null, numbers stay numbers. */
static json_object *
table_value(const PGresult *res, int row, int col)
{
	const char	*v = PQgetvalue(res, row, col);

	if (PQgetisnull(res, row, col) || strcmp(v, "-") == 0)
		return (NULL);
	switch (PQftype(res, col)) {
	case TABLE_OID_BOOL:
		return (json_object_new_boolean(*v == 't'));
	case TABLE_OID_INT2:
	case TABLE_OID_INT4:
	case TABLE_OID_INT8:
		return (json_object_new_int64(strtoll(v, NULL, 10)));
	case TABLE_OID_FLOAT4:
	case TABLE_OID_FLOAT8:
	case TABLE_OID_NUMERIC:
		return (json_object_new_double_s(strtod(v, NULL), v));
	}
	return (json_object_new_string(v));
}

/* Print res as a JSON array of objects keyed by head. */
static void
table_json(const PGresult *res, const char *const *head, int ncols)
{
	json_object	*a, *o;
	char		*k;
	int		 i, j, n = PQntuples(res);

	a = json_object_new_array();
	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		for (j = 0; j < ncols; j++) {
			k = table_key(head[j]);
			json_object_object_add(o, k, table_value(res, i, j));
			free(k);
		}
		json_object_array_add(a, o);
	}
	printf("%s\n", json_object_to_json_string_ext(a,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(a);
}

/* Print res as aligned columns under head, or as JSON with --json. */
void
ctl_table(const PGresult *res, const char *const *head, int ncols)
{
	int	*w, i, j, n = PQntuples(res);

	if (ctl_json) {
		table_json(res, head, ncols);
		return;
	}
	w = xcalloc(ncols, sizeof *w);
	for (j = 0; j < ncols; j++)
		w[j] = table_width(head[j]);
	for (i = 0; i < n; i++) {
		for (j = 0; j < ncols; j++) {
			if (table_width(PQgetvalue(res, i, j)) > w[j])
				w[j] = table_width(PQgetvalue(res, i, j));
		}
	}
	for (j = 0; j < ncols; j++)
		table_cell(head[j], j + 1 < ncols ? w[j] + 2 : 0);
	putchar('\n');
	for (i = 0; i < n; i++) {
		for (j = 0; j < ncols; j++)
			table_cell(PQgetvalue(res, i, j),
			    j + 1 < ncols ? w[j] + 2 : 0);
		putchar('\n');
	}
	free(w);
}

/*
 * A listing: the table, or the line none when there are no rows (with
 * --json an empty array). The number of rows; a caller prints its summary
 * line only when it is not 0 and !ctl_json.
 */
int
ctl_list(const PGresult *res, const char *const *head, int ncols,
    const char *none)
{
	if (PQntuples(res) == 0 && !ctl_json)
		printf("%s\n", none);
	else
		ctl_table(res, head, ncols);
	return (ctl_json ? 0 : PQntuples(res));
}
