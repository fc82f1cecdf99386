/* mail.c: RFC 5322 messages for the SMTP client (pure, unit-tested). */
#ifndef MAIL_H
#define MAIL_H

#include <stddef.h>
#include <stdint.h>

struct mail {
	const char	*from;		/* "Name <a@b>" or "a@b": [smtp] from */
	const char	*to;		/* one address, "a@b" */
	const char	*subject;	/* UTF-8, any length */
	const char	*text;		/* text/plain body, UTF-8 */
	const char	*html;		/* text/html alternative, or NULL */
	const char	*unsubscribe;	/* URL: List-Unsubscribe(-Post), or NULL */
	const char	*id;		/* unique token for Message-ID, or NULL */
};

/*
 * The whole message, CRLF line ends, ready for DATA (libcurl does the dot
 * stuffing): Date (of now_us, epoch microseconds), From, To, Subject
 * (RFC 2047 when not ASCII), Message-ID, MIME-Version, and a text/plain
 * UTF-8 part, or multipart/alternative with text/html when html is set.
 * No header value holds CR or LF whatever the input.  Returns a string
 * to free.
 */
char	*mail_format(const struct mail *, int64_t now_us);

/* The bare address of "Name <a@b>" or "a@b", to free; NULL if none. */
char	*mail_address(const char *);

#endif
