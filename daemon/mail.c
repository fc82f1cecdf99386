/*
 * Email messages: the headers and MIME body of one notification, as the
 * bytes the SMTP client hands to the server after DATA.
 *
 * Every header value goes through mail_clean first: control characters
 * (CR and LF among them) become a space, so no input can end a header
 * line or start another one (the Message-ID keeps only the characters of
 * a dot-atom, the unsubscribe URL has the others %-escaped). A subject or display name that is not plain
 * printable ASCII is sent as RFC 2047 encoded words (base64 of UTF-8),
 * each of whole characters and folded onto its own line; a plain subject
 * is folded at its spaces. Bodies are base64 in lines of 76, so a body
 * line is never too long and the boundary (which holds '_', a character
 * base64 never uses) never appears in them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "mail.h"
#include "xmalloc.h"

#define MAIL_LINE_MAX		78	/* RFC 5322 2.1.1, without the CRLF */
#define MAIL_EWORD_LINE		76	/* RFC 2047 2, a line with encoded words */
#define MAIL_EWORD_MAX		75	/* RFC 2047 2, one encoded word */
#define MAIL_B64_LINE		57	/* bytes per 76-character base64 line */
#define MAIL_PLAIN_WORD_MAX	68	/* longer: encode, so lines can fold */
#define MAIL_PLAIN_NAME_MAX	60	/* a longer display name is encoded */
#define MAIL_ID_MAX		128	/* of the Message-ID's left part */
#define MAIL_RANDOM_BYTES	16

/* The message being built. */
struct mail_buf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

static void	mail_buf_addf(struct mail_buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Make room for len more bytes and a NUL. */
static void
mail_buf_grow(struct mail_buf *b, size_t len)
{
	if (b->len + len + 1 <= b->cap)
		return;
	while (b->len + len + 1 > b->cap)
		b->cap = b->cap == 0 ? 1024 : b->cap * 2;
	b->s = xreallocarray(b->s, 1, b->cap);
}

static void
mail_buf_add(struct mail_buf *b, const char *s, size_t len)
{
	mail_buf_grow(b, len);
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

static void
mail_buf_adds(struct mail_buf *b, const char *s)
{
	mail_buf_add(b, s, strlen(s));
}

static void
mail_buf_addf(struct mail_buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	mail_buf_grow(b, n);
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

/* Base64 of len bytes, in one piece: a string to free. */
static char *
mail_b64(const void *in, size_t len)
{
	char	*out;

	out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return (out);
}

/* Lowercase hex of n random bytes, to free. */
static char *
mail_random_hex(size_t n)
{
	static unsigned long	 counter;
	unsigned char		 bytes[MAIL_RANDOM_BYTES];
	char			*out;
	size_t			 i;

	if (n > sizeof bytes)
		n = sizeof bytes;
	if (RAND_bytes(bytes, (int)n) != 1) {
		/*
		 * Unique in this process at least; a boundary needs no more
		 * (it holds '_', which base64 never does).
		 */
		memset(bytes, 0, sizeof bytes);
		counter++;
		memcpy(bytes, &counter, sizeof counter);
	}
	out = xmalloc(2 * n + 1);
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", bytes[i]);
	return (out);
}

/*
 * A header value from any input, to free: each run of control characters
 * becomes one space and leading and trailing spaces go.
 */
static char *
mail_clean(const char *in)
{
	const unsigned char	*p;
	char			*out, *q, *start;
	int			 run = 0;

	if (in == NULL)
		in = "";
	out = q = xmalloc(strlen(in) + 1);
	for (p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			*q++ = *p;
			run = 0;
		} else if (!run) {
			*q++ = ' ';
			run = 1;
		}
	}
	while (q > out && q[-1] == ' ')
		q--;
	*q = '\0';
	for (start = out; *start == ' '; start++)
		/* nothing */;
	memmove(out, start, strlen(start) + 1);
	return (out);
}

/* Whether s is printable ASCII and holds nothing that looks encoded. */
static int
mail_is_plain(const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e)
			return (0);
	}
	return (strstr(s, "=?") == NULL);
}

/* The length of the UTF-8 character at s; 1 for a byte out of place. */
static size_t
mail_utf8_len(const unsigned char *s, size_t left)
{
	size_t	n, i;

	if (s[0] < 0xc0 || s[0] >= 0xf8)
		return (1);
	n = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (n > left)
		return (1);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return (1);
	}
	return (n);
}

/*
 * Append s as encoded words, the first starting at column col, each
 * followed by a fold when another comes. Each word holds whole UTF-8
 * characters and each line is at most 76 characters. Returns the column
 * after the last word.
 */
static size_t
mail_add_encoded(struct mail_buf *b, const char *s, size_t col)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 len = strlen(s), off = 0, max, n, c;
	char			*b64;

	while (off < len) {
		if (off != 0) {
			mail_buf_adds(b, "\r\n ");
			col = 1;
		}
		/* "=?UTF-8?B?" and "?=" take 12 of the word's 75. */
		max = MAIL_EWORD_MAX;
		if (col + max > MAIL_EWORD_LINE)
			max = MAIL_EWORD_LINE - col;
		if (max < 12 + 8)
			max = 12 + 8;
		max = (max - 12) / 4 * 3;
		n = 0;
		while (off + n < len) {
			c = mail_utf8_len(u + off + n, len - off - n);
			if (n != 0 && n + c > max)
				break;
			n += c;
		}
		b64 = mail_b64(s + off, n);
		mail_buf_addf(b, "=?UTF-8?B?%s?=", b64);
		col += 12 + strlen(b64);
		free(b64);
		off += n;
	}
	return (col);
}

/* The Subject header: plain and folded at spaces, or encoded words. */
static void
mail_add_subject(struct mail_buf *b, const char *subject)
{
	const char	*p, *q, *w;
	char		*s;
	size_t		 col, longest = 0;

	s = mail_clean(subject);
	for (p = s; *p != '\0'; p = q) {
		for (q = p; *q != '\0' && *q != ' '; q++)
			/* nothing */;
		if ((size_t)(q - p) > longest)
			longest = q - p;
		while (*q == ' ')
			q++;
	}

	mail_buf_adds(b, "Subject: ");
	col = strlen("Subject: ");
	if (!mail_is_plain(s) || longest > MAIL_PLAIN_WORD_MAX) {
		mail_add_encoded(b, s, col);
		mail_buf_adds(b, "\r\n");
		free(s);
		return;
	}
	/* A fold goes before a space, which unfolding keeps. */
	for (p = s; *p != '\0'; p = q) {
		for (w = p; *w == ' '; w++)
			/* nothing */;
		for (q = w; *q != '\0' && *q != ' '; q++)
			/* nothing */;
		if (p != s && col + (q - p) > MAIL_LINE_MAX) {
			mail_buf_adds(b, "\r\n");
			col = 0;
		}
		mail_buf_add(b, p, q - p);
		col += q - p;
	}
	mail_buf_adds(b, "\r\n");
	free(s);
}

/* Whether a display name can go as it is: atoms and spaces. */
static int
mail_is_atoms(const char *s)
{
	const char	*specials = "!#$%&'*+-/=?^_`{|}~ ";

	for (; *s != '\0'; s++) {
		if ((*s < 'a' || *s > 'z') && (*s < 'A' || *s > 'Z') &&
		    (*s < '0' || *s > '9') && strchr(specials, *s) == NULL)
			return (0);
	}
	return (1);
}

/*
 * The display name of "Name <a@b>", to free, without its quotes if it
 * had some; NULL if there is none.
 */
static char *
mail_display_name(const char *s)
{
	const char	*lt, *p;
	char		*name, *q;
	size_t		 len;

	if ((lt = strrchr(s, '<')) == NULL)
		return (NULL);
	len = lt - s;
	while (len > 0 && s[len - 1] == ' ')
		len--;
	if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
		name = q = xmalloc(len);
		for (p = s + 1; p < s + len - 1; p++) {
			if (*p == '\\' && p + 1 < s + len - 1)
				p++;
			*q++ = *p;
		}
		*q = '\0';
	} else
		name = xstrndup(s, len);
	if (*name == '\0') {
		free(name);
		return (NULL);
	}
	return (name);
}

/* A From or To header: "Name <a@b>" or "a@b", the name encoded if needed. */
static void
mail_add_mailbox(struct mail_buf *b, const char *header, const char *value)
{
	char		*s, *name, *addr;
	const char	*p;
	size_t		 col;

	s = mail_clean(value);
	name = mail_display_name(s);
	addr = mail_address(s);
	mail_buf_addf(b, "%s: ", header);
	col = strlen(header) + 2;
	if (addr == NULL) {
		/* Not an address, but one line of a sane length. */
		mail_buf_addf(b, "%.900s\r\n", s);
		free(s);
		return;
	}
	if (name != NULL) {
		if (!mail_is_plain(name) ||
		    strlen(name) > MAIL_PLAIN_NAME_MAX)
			col = mail_add_encoded(b, name, col);
		else if (mail_is_atoms(name)) {
			mail_buf_adds(b, name);
			col += strlen(name);
		} else {
			mail_buf_adds(b, "\"");
			for (p = name; *p != '\0'; p++) {
				if (*p == '"' || *p == '\\') {
					mail_buf_adds(b, "\\");
					col++;
				}
				mail_buf_add(b, p, 1);
			}
			mail_buf_adds(b, "\"");
			col += strlen(name) + 2;
		}
		if (col + strlen(addr) + 3 > MAIL_LINE_MAX)
			mail_buf_adds(b, "\r\n");
		mail_buf_addf(b, " <%s>\r\n", addr);
	} else
		mail_buf_addf(b, "%s\r\n", addr);
	free(addr);
	free(name);
	free(s);
}

/* The Date header, RFC 5322 3.3, in UTC whatever the locale. */
static void
mail_add_date(struct mail_buf *b, int64_t now_us)
{
	static const char	*days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char	*months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
		"Oct", "Nov", "Dec"
	};
	struct tm		 tm;
	time_t			 t;

	t = (time_t)(now_us / 1000000);
	if (now_us < 0 && now_us % 1000000 != 0)
		t--;
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof tm);
	mail_buf_addf(b, "Date: %s, %d %s %04d %02d:%02d:%02d +0000\r\n",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * Keep only the characters of set in s, others becoming '-', and no dot
 * at either end or after another: a dot-atom (RFC 5322 3.2.3).
 */
static void
mail_dot_atom(char *s, const char *set)
{
	char	*p;

	for (p = s; *p != '\0'; p++) {
		if (((*p < 'a' || *p > 'z') && (*p < 'A' || *p > 'Z') &&
		    (*p < '0' || *p > '9') && strchr(set, *p) == NULL) ||
		    (*p == '.' && (p == s || p[-1] == '.' || p[1] == '\0')))
			*p = '-';
	}
}

/* The Message-ID header: the given id, or a random one, at from's domain. */
static void
mail_add_message_id(struct mail_buf *b, const struct mail *m)
{
	char		*left, *domain, *addr;
	const char	*at;

	if (m->id != NULL && *m->id != '\0') {
		left = xstrndup(m->id, MAIL_ID_MAX);
		mail_dot_atom(left, "._-");
	} else
		left = mail_random_hex(MAIL_RANDOM_BYTES);

	domain = NULL;
	if ((addr = mail_address(m->from)) != NULL &&
	    (at = strrchr(addr, '@')) != NULL && at[1] != '\0') {
		domain = xstrndup(at + 1, MAIL_ID_MAX);
		mail_dot_atom(domain, ".-");
	}
	mail_buf_addf(b, "Message-ID: <%s@%s>\r\n", left,
	    domain != NULL ? domain : "vialwatch.invalid");
	free(domain);
	free(addr);
	free(left);
}

/*
 * The List-Unsubscribe headers (RFC 2369, RFC 8058). The URL goes with
 * spaces, controls, angle brackets, quotes and non-ASCII bytes escaped.
 */
static void
mail_add_unsubscribe(struct mail_buf *b, const char *url)
{
	const unsigned char	*p;

	mail_buf_adds(b, "List-Unsubscribe: <");
	for (p = (const unsigned char *)url; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '<' || *p == '>' ||
		    *p == '"')
			mail_buf_addf(b, "%%%02X", *p);
		else
			mail_buf_add(b, (const char *)p, 1);
	}
	mail_buf_adds(b, ">\r\n");
	mail_buf_adds(b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
}

/* One body part's headers and its content in base64 lines of 76. */
static void
mail_add_part(struct mail_buf *b, const char *type, const char *content)
{
	size_t	 len, off, n;
	char	*b64;

	mail_buf_addf(b, "Content-Type: %s; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n", type);
	if (content == NULL)
		content = "";
	len = strlen(content);
	for (off = 0; off < len; off += n) {
		n = len - off < MAIL_B64_LINE ? len - off : MAIL_B64_LINE;
		b64 = mail_b64(content + off, n);
		mail_buf_addf(b, "%s\r\n", b64);
		free(b64);
	}
}

char *
mail_format(const struct mail *m, int64_t now_us)
{
	struct mail_buf	 b = { NULL, 0, 0 };
	char		*boundary, *rnd;

	mail_add_date(&b, now_us);
	mail_add_mailbox(&b, "From", m->from);
	mail_add_mailbox(&b, "To", m->to);
	mail_add_subject(&b, m->subject);
	mail_add_message_id(&b, m);
	mail_buf_adds(&b, "MIME-Version: 1.0\r\n");
	if (m->unsubscribe != NULL)
		mail_add_unsubscribe(&b, m->unsubscribe);
	/* An alarm is not a message to answer with a vacation notice. */
	mail_buf_adds(&b, "Auto-Submitted: auto-generated\r\n");

	if (m->html == NULL) {
		mail_add_part(&b, "text/plain", m->text);
		return (b.s);
	}

	rnd = mail_random_hex(MAIL_RANDOM_BYTES);
	xasprintf(&boundary, "=_vialwatch_%s", rnd);
	free(rnd);
	mail_buf_addf(&b, "Content-Type: multipart/alternative;\r\n"
	    " boundary=\"%s\"\r\n\r\n", boundary);
	mail_buf_addf(&b, "--%s\r\n", boundary);
	mail_add_part(&b, "text/plain", m->text);
	mail_buf_addf(&b, "--%s\r\n", boundary);
	mail_add_part(&b, "text/html", m->html);
	mail_buf_addf(&b, "--%s--\r\n", boundary);
	free(boundary);
	return (b.s);
}

/* Move *start and *end over the white space between them. */
static void
mail_trim(const char **start, const char **end)
{
	while (*start < *end && strchr(" \t\r\n", **start) != NULL)
		(*start)++;
	while (*end > *start && strchr(" \t\r\n", (*end)[-1]) != NULL)
		(*end)--;
}

char *
mail_address(const char *s)
{
	const char	*start, *end, *lt, *gt, *p;

	if (s == NULL)
		return (NULL);
	start = s;
	end = s + strlen(s);
	mail_trim(&start, &end);

	/*
	 * CR or LF inside is an attempt to add a recipient or a command, not
	 * an address.
	 */
	for (p = start; p < end; p++) {
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return (NULL);
	}
	lt = NULL;
	for (p = start; p < end; p++) {
		if (*p == '<')
			lt = p;
	}
	if (lt != NULL) {
		if ((gt = memchr(lt, '>', end - lt)) != NULL) {
			if (gt + 1 != end)
				return (NULL);
			end = gt;
		}
		start = lt + 1;
		mail_trim(&start, &end);
	}

	/* It goes into MAIL FROM and RCPT TO as well as headers. */
	if (start == end || memchr(start, '@', end - start) == NULL)
		return (NULL);
	for (p = start; p < end; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '<' ||
		    *p == '>')
			return (NULL);
	}
	return (xstrndup(start, end - start));
}
