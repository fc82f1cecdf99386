/*
 * csv.c: a table of inputs, each with every record (or error) it must
 * give, written as "LINE[field|field]" and "LINE!FIELD:reason", one per
 * record; then line counting over a long input.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "tap.h"

struct tcase {
	const char	*name;
	const char	*in;
	size_t		 len;		/* 0: use strlen */
	const char	*want;
};

static const struct tcase cases[] = {
	/* Line ends, and the last line with or without one. */
	{ "LF", "a,b\n1,2\n3,4\n", 0, "1[a|b] 2[1|2] 3[3|4]" },
	{ "CRLF", "a,b\r\n1,2\r\n3,4\r\n", 0, "1[a|b] 2[1|2] 3[3|4]" },
	{ "no line end at the end", "a,b\n1,2", 0, "1[a|b] 2[1|2]" },
	{ "CRLF, none at the end", "a,b\r\n1,2", 0, "1[a|b] 2[1|2]" },
	{ "mixed line ends", "a,b\r\n1,2\n3,4\r\n", 0,
	    "1[a|b] 2[1|2] 3[3|4]" },
	{ "a lone CR is data", "a,b\n1\r2,3\n", 0, "1[a|b] 2[1\\r2|3]" },

	/* The byte order mark, empty input. */
	{ "BOM skipped", "\xef\xbb\xbf" "clinic,name\nx,y\n", 0,
	    "1[clinic|name] 2[x|y]" },
	{ "BOM only in front", "a\n\xef\xbb\xbf\n", 0, "1[a] 2[\xef\xbb\xbf]" },
	{ "empty input", "", 0, "" },
	{ "BOM alone", "\xef\xbb\xbf", 0, "" },
	{ "empty lines only", "\n\r\n\n", 0, "" },

	/* Empty fields and empty lines. */
	{ "empty fields", "a,b,c\n,,\n1,,3\n", 0, "1[a|b|c] 2[||] 3[1||3]" },
	{ "trailing comma at the end", "a,b\n1,", 0, "1[a|b] 2[1|]" },
	{ "quoted empty field", "a,b\n\"\",x\n", 0, "1[a|b] 2[|x]" },
	{ "empty lines skipped", "\na,b\n\n1,2\r\n\r\n3,4\n\n", 0,
	    "2[a|b] 4[1|2] 6[3|4]" },
	{ "spaces are kept", "a,b\n 1 , 2\n", 0, "1[a|b] 2[ 1 | 2]" },

	/* Quoting. */
	{ "quoted comma", "a,b\n\"x,y\",z\n", 0, "1[a|b] 2[x,y|z]" },
	{ "doubled quote", "a\n\"say \"\"hi\"\"\"\n", 0, "1[a] 2[say \"hi\"]" },
	{ "only a quote", "a\n\"\"\"\"\n", 0, "1[a] 2[\"]" },
	{ "quoted LF, lines counted", "a,b\n\"1\n2\n3\",x\ny,z\n", 0,
	    "1[a|b] 2[1\\n2\\n3|x] 5[y|z]" },
	{ "quoted CRLF kept", "a,b\r\n\"1\r\n2\",x\r\ny,z\r\n", 0,
	    "1[a|b] 2[1\\r\\n2|x] 4[y|z]" },
	{ "quoted field last, no line end", "a,b\n1,\"2,3\"", 0,
	    "1[a|b] 2[1|2,3]" },
	{ "quoted header", "\"first name\",\"e,mail\"\nA,B\n", 0,
	    "1[first name|e,mail] 2[A|B]" },

	/* Malformed records, and reading on after them. */
	{ "quote not closed", "a,b\n1,2\n\"x,y\nz\n", 0,
	    "1[a|b] 2[1|2] 3!0:quoted field not closed" },
	{ "quote not closed at the end", "a,b\n1,\"2", 0,
	    "1[a|b] 2!1:quoted field not closed" },
	{ "quote in an unquoted field", "a,b\n1,x\"y\n3,4\n", 0,
	    "1[a|b] 2!1:quote in an unquoted field 3[3|4]" },
	{ "quote after a space", "a,b\n1, \"y\"\n3,4\n", 0,
	    "1[a|b] 2!1:quote in an unquoted field 3[3|4]" },
	{ "characters after a closing quote", "a,b\n\"x\"y,2\n3,4\n", 0,
	    "1[a|b] 2!0:characters after a closing quote 3[3|4]" },
	{ "space after a closing quote", "a,b\n1,\"2\" \r\n3,4\r\n", 0,
	    "1[a|b] 2!1:characters after a closing quote 3[3|4]" },
	{ "error in a record on two lines", "a,b\n\"1\n2\"x,3\n4,5\n", 0,
	    "1[a|b] 2!0:characters after a closing quote 4[4|5]" },
	{ "too many fields", "a,b\n1,2,3\n4,5\n", 0,
	    "1[a|b] 2!-:3 fields, the header has 2 3[4|5]" },
	{ "too few fields", "a,b\n1\n4,5\n", 0,
	    "1[a|b] 2!-:1 field, the header has 2 3[4|5]" },

	/* UTF-8 and NUL. */
	{ "UTF-8 text", "name\nJos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\x89\n",
	    0, "1[name] 2[Jos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\x89]" },
	{ "Latin-1 byte", "a,b\nx,Jos\xe9\n3,4\n", 0,
	    "1[a|b] 2!1:not valid UTF-8 3[3|4]" },
	{ "continuation byte alone", "a\n\x80\n", 0, "1[a] 2!0:not valid UTF-8" },
	{ "overlong slash", "a\n\xc0\xaf\n", 0, "1[a] 2!0:not valid UTF-8" },
	{ "overlong 3 bytes", "a\n\xe0\x80\xaf\n", 0,
	    "1[a] 2!0:not valid UTF-8" },
	{ "surrogate", "a\n\xed\xa0\x80\n", 0, "1[a] 2!0:not valid UTF-8" },
	{ "beyond U+10FFFF", "a\n\xf4\x90\x80\x80\n", 0,
	    "1[a] 2!0:not valid UTF-8" },
	{ "truncated sequence", "a,b\n\xe2\x82,x\n", 0,
	    "1[a|b] 2!0:not valid UTF-8" },
	{ "truncated at the end", "a\n\xe2\x82", 0, "1[a] 2!0:not valid UTF-8" },
	{ "five-byte form", "a\n\xf8\x88\x80\x80\x80\n", 0,
	    "1[a] 2!0:not valid UTF-8" },
	{ "bad UTF-8 in a quoted field", "a,b\n1,\"\xff\"\n", 0,
	    "1[a|b] 2!1:not valid UTF-8" },
	{ "NUL byte", "a,b\nx,y\0z\n3,4\n", 14,
	    "1[a|b] 2!1:contains a NUL byte 3[3|4]" },
	{ "NUL in a quoted field", "a\n\"\0\"\n", 5,
	    "1[a] 2!0:contains a NUL byte" },
	{ "bad header", "a,\xff\n1,2\n", 0,
	    "1!1:not valid UTF-8 2[1|2]" },
};

/* Append s to the string out of size bytes, cut if it does not fit. */
static void
append(char *out, const char *s, size_t size)
{
	size_t	len = strlen(out);

	snprintf(out + len, size - len, "%s", s);
}

/* Append s to out, line ends written visibly. */
static void
render_field(char *out, size_t size, const char *s)
{
	char	tmp[4] = "";

	for (; *s != '\0'; s++) {
		if (*s == '\n')
			append(out, "\\n", size);
		else if (*s == '\r')
			append(out, "\\r", size);
		else {
			tmp[0] = *s;
			tmp[1] = '\0';
			append(out, tmp, size);
		}
	}
}

/* Every record of in, as the table writes them. */
static void
render(const char *in, size_t len, char *out, size_t size)
{
	struct csv		*csv;
	struct csv_record	 rec;
	char			 tmp[128];
	size_t			 i;
	int			 rc, n = 0;

	*out = '\0';
	csv = csv_new(in, len);
	while ((rc = csv_next(csv, &rec)) != CSV_END && n++ < 20) {
		if (*out != '\0')
			append(out, " ", size);
		if (rc == CSV_ERROR) {
			if (rec.field == CSV_NOFIELD)
				snprintf(tmp, sizeof tmp, "%zu!-:%s", rec.line,
				    rec.error);
			else
				snprintf(tmp, sizeof tmp, "%zu!%zu:%s",
				    rec.line, rec.field, rec.error);
			append(out, tmp, size);
			continue;
		}
		snprintf(tmp, sizeof tmp, "%zu[", rec.line);
		append(out, tmp, size);
		for (i = 0; i < rec.nfields; i++) {
			if (i > 0)
				append(out, "|", size);
			render_field(out, size, rec.fields[i]);
		}
		append(out, "]", size);
	}
	csv_free(csv);
}

/* Records far apart: the line of each is exact, and so is the last. */
static void
test_many_lines(void)
{
	struct csv		*csv;
	struct csv_record	 rec;
	char			*in, *p;
	size_t			 i, n = 10000, wrong = 0, records = 0;

	in = p = malloc(n * 16 + 16);
	p += sprintf(p, "id,note\r\n");
	for (i = 2; i <= n; i++) {
		if (i % 3 == 0) {
			/* A record on two lines: the next starts at i + 2. */
			p += sprintf(p, "%zu,\"x\r\ny\"\r\n", i);
			i++;
		} else
			p += sprintf(p, "%zu,x\r\n", i);
	}
	csv = csv_new(in, (size_t)(p - in));
	while (csv_next(csv, &rec) == CSV_RECORD) {
		records++;
		if (records > 1 && strtoul(rec.fields[0], NULL, 10) !=
		    rec.line)
			wrong++;
	}
	is_int(wrong, 0, "line numbers over %zu lines", n);
	ok(records > n / 2, "%zu records read", records);
	csv_free(csv);
	free(in);
}

/* A record's strings survive until the next call, then are reused. */
static void
test_strings(void)
{
	const char		 in[] = "h\n\"a long first field, quoted\"\nb\n";
	struct csv		*csv;
	struct csv_record	 rec;
	char			*copy;

	csv = csv_new(in, sizeof in - 1);
	is_int(csv_next(csv, &rec), CSV_RECORD, "header read");
	is_int(csv_next(csv, &rec), CSV_RECORD, "first record read");
	copy = strdup(rec.fields[0]);
	is_str(copy, "a long first field, quoted", "its field, unquoted");
	is_int(csv_next(csv, &rec), CSV_RECORD, "second record read");
	is_str(rec.fields[0], "b", "the next record's field");
	is_int(csv_next(csv, &rec), CSV_END, "then the end");
	is_int(csv_next(csv, &rec), CSV_END, "and the end again");
	free(copy);
	csv_free(csv);
	csv_free(NULL);
}

int
main(void)
{
	char	out[1024];
	size_t	i, len;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].in);
		render(cases[i].in, len, out, sizeof out);
		is_str(out, cases[i].want, "%s", cases[i].name);
	}
	test_many_lines();
	test_strings();
	return (done_testing());
}
