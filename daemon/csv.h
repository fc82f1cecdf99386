/* csv.c: an RFC 4180 reader over a buffer in memory, pure. */
#ifndef CSV_H
#define CSV_H

#include <stddef.h>

#define CSV_END		0
#define CSV_RECORD	1
#define CSV_ERROR	(-1)

#define CSV_NOFIELD	((size_t)-1)

/* A record; its strings belong to the reader until its next call. */
struct csv_record {
	size_t		  line;		/* physical line it starts on, from 1 */
	size_t		  nfields;
	char		**fields;	/* UTF-8, without NUL bytes */
	const char	 *error;	/* CSV_ERROR: why */
	size_t		  field;	/* CSV_ERROR: which field, or CSV_NOFIELD */
};

/*
 * A reader of len bytes at buf, which must outlive it.  A UTF-8 byte order
 * mark at the start is skipped.
 */
struct csv	*csv_new(const char *, size_t);
void		 csv_free(struct csv *);
/*
 * Read the next record: CSV_RECORD, CSV_END, or CSV_ERROR for a record
 * that is malformed, holds a field that is not UTF-8 or has a NUL byte, or
 * whose number of fields differs from the first record's (the header).
 * After an error the reader goes on at the next line.  Lines end with LF
 * or CRLF, the last one may have no end, and empty lines are skipped.
 */
int		 csv_next(struct csv *, struct csv_record *);

#endif
