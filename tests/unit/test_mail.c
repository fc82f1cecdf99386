/*
 * Unit tests for mail.c: each message mail_format builds is taken apart
 * again here (headers unfolded, encoded words and base64 bodies decoded
 * with OpenSSL) and compared with what went in.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "mail.h"
#include "tap.h"
#include "xmalloc.h"

#define BASE	1700000000000000LL	/* Tue, 14 Nov 2023 22:13:20 UTC */
#define FROM	"vialwatch <alerts@clinic.example>"

/* Base64 to bytes, NUL-terminated, to free; NULL if it is not base64. */
static char *
b64_decode(const char *in, size_t len, size_t *outlen)
{
	char	*out;
	size_t	 pad = 0;
	int	 n;

	if (len % 4 != 0)
		return (NULL);
	out = malloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in,
	    (int)len);
	if (n < 0) {
		free(out);
		return (NULL);
	}
	while (pad < 2 && pad < len && in[len - 1 - pad] == '=')
		pad++;
	*outlen = n - pad;
	out[*outlen] = '\0';
	return (out);
}

/* Whether every CR is followed by LF and every LF follows a CR. */
static int
crlf_only(const char *s)
{
	const char	*p;

	for (p = s; *p != '\0'; p++) {
		if (*p == '\r' && p[1] != '\n')
			return (0);
		if (*p == '\n' && (p == s || p[-1] != '\r'))
			return (0);
	}
	return (1);
}

/* The length of the header block, up to and including its CRLF CRLF. */
static size_t
head_len(const char *msg)
{
	const char	*end;

	if ((end = strstr(msg, "\r\n\r\n")) == NULL)
		return (strlen(msg));
	return (end - msg + 4);
}

/*
 * The unfolded value of the first header called name in the block at
 * head (CRLF before a space or tab removed), to free; NULL if absent.
 */
static char *
header(const char *head, const char *name)
{
	size_t		 len = strlen(name), hl = head_len(head);
	const char	*p, *end;
	char		*out, *q;

	for (p = head; p < head + hl; p = strstr(p, "\r\n") + 2) {
		if (strncasecmp(p, name, len) == 0 && p[len] == ':')
			break;
		if (strstr(p, "\r\n") == NULL)
			return (NULL);
	}
	if (p >= head + hl)
		return (NULL);
	p += len + 1;
	while (*p == ' ')
		p++;
	end = p;
	while ((end = strstr(end, "\r\n")) != NULL &&
	    (end[2] == ' ' || end[2] == '\t'))
		end += 2;
	if (end == NULL)
		end = p + strlen(p);
	out = q = malloc(end - p + 1);
	for (; p < end; p++) {
		if (p[0] == '\r' && p[1] == '\n')
			p++;
		else
			*q++ = *p;
	}
	*q = '\0';
	return (out);
}

/* How many physical lines the header called name takes. */
static int
header_lines(const char *msg, const char *name)
{
	const char	*p;
	int		 n = 1;

	for (p = msg; strncmp(p, name, strlen(name)) != 0 ||
	    p[strlen(name)] != ':'; p = strstr(p, "\r\n") + 2) {
		if (strstr(p, "\r\n") == NULL)
			return (0);
	}
	while ((p = strstr(p, "\r\n")) != NULL && p[2] == ' ') {
		n++;
		p += 2;
	}
	return (n);
}

/* How many lines of msg start with "name:", in any case. */
static int
count_lines(const char *msg, const char *name)
{
	const char	*p;
	size_t		 len = strlen(name);
	int		 n = 0;

	for (p = msg; p != NULL; p = strstr(p, "\r\n")) {
		if (p != msg)
			p += 2;
		if (strncasecmp(p, name, len) == 0 && p[len] == ':')
			n++;
	}
	return (n);
}

/*
 * Whether the header block is well-formed: each line is "Name: value" or
 * a continuation starting with a space, without control characters, and
 * at most max characters long.
 */
static int
head_ok(const char *msg, size_t max)
{
	size_t		 hl = head_len(msg), n;
	const char	*p, *eol, *c;

	for (p = msg; p < msg + hl - 2; p = eol + 2) {
		if ((eol = strstr(p, "\r\n")) == NULL)
			return (0);
		n = eol - p;
		if (n == 0 || n > max) {
			printf("#   bad length %zu: %.*s\n", n, (int)n, p);
			return (0);
		}
		for (c = p; c < eol; c++) {
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return (0);
		}
		if (*p == ' ' || *p == '\t')
			continue;
		for (c = p; c < eol && *c != ':'; c++) {
			if (!isalnum((unsigned char)*c) && *c != '-')
				return (0);
		}
		if (c == eol || c[1] != ' ')
			return (0);
	}
	return (1);
}

/* Whether s holds only whole UTF-8 characters. */
static int
utf8_whole(const unsigned char *s, size_t len)
{
	size_t	i = 0, n, j;

	while (i < len) {
		if (s[i] < 0x80)
			n = 1;
		else if (s[i] >= 0xc2 && s[i] < 0xe0)
			n = 2;
		else if (s[i] >= 0xe0 && s[i] < 0xf0)
			n = 3;
		else if (s[i] >= 0xf0 && s[i] < 0xf5)
			n = 4;
		else
			return (0);
		if (i + n > len)
			return (0);
		for (j = 1; j < n; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return (0);
		}
		i += n;
	}
	return (1);
}

/*
 * Decode a value made of encoded words separated by spaces, to free;
 * NULL if a word is malformed, longer than 75 characters or does not
 * hold whole characters.
 */
static char *
decode_words(const char *value)
{
	const char	*p = value, *end;
	char		*out, *dec;
	size_t		 len = 0, n;

	out = calloc(1, strlen(value) + 1);
	while (*p != '\0') {
		if (strncmp(p, "=?UTF-8?B?", 10) != 0 ||
		    (end = strstr(p + 10, "?=")) == NULL ||
		    end + 2 - p > 75) {
			printf("#   bad word at \"%.20s\"\n", p);
			goto bad;
		}
		if ((dec = b64_decode(p + 10, end - p - 10, &n)) == NULL)
			goto bad;
		if (!utf8_whole((unsigned char *)dec, n)) {
			printf("#   word splits a character\n");
			free(dec);
			goto bad;
		}
		memcpy(out + len, dec, n);
		len += n;
		free(dec);
		p = end + 2;
		while (*p == ' ')
			p++;
	}
	return (out);
bad:
	free(out);
	return (NULL);
}

/*
 * The base64 lines of the body part starting at part (its headers, a
 * blank line, then lines up to the next "--" line or the end), decoded;
 * NULL if a line is not base64 or longer than 76. *enc is set to the
 * encoded text with its line ends, to free.
 */
static char *
decode_part(const char *part, char **enc)
{
	const char	*p, *eol;
	char		*b64, *out;
	size_t		 len = 0, n;

	*enc = NULL;
	if ((p = strstr(part, "\r\n\r\n")) == NULL)
		return (NULL);
	p += 4;
	b64 = calloc(1, strlen(p) + 1);
	*enc = calloc(1, strlen(p) + 1);
	for (; *p != '\0' && strncmp(p, "--", 2) != 0; p = eol + 2) {
		if ((eol = strstr(p, "\r\n")) == NULL || eol - p > 76 ||
		    eol - p == 0) {
			free(b64);
			return (NULL);
		}
		memcpy(b64 + len, p, eol - p);
		strncat(*enc, p, eol - p + 2);
		len += eol - p;
	}
	out = b64_decode(b64, len, &n);
	free(b64);
	return (out);
}

/* A message with a given subject and otherwise plain. */
static char *
format_subject(const char *subject)
{
	struct mail	m = { FROM, "ops@clinic.example", subject, "body",
			    NULL, NULL, "s1" };

	return (mail_format(&m, BASE));
}

static void
test_headers(void)
{
	struct mail	 m = { FROM, "ops@clinic.example", "Fridge 3: high",
			    "Temperature 9.4 C\nsince 10:02\n", NULL, NULL,
			    "alarm-42.tier1" };
	char		*msg, *v, *enc, *body;
	size_t		 hl;

	msg = mail_format(&m, BASE);
	ok(msg != NULL, "plain message built");
	ok(crlf_only(msg), "plain message: CRLF line ends only");
	ok(head_ok(msg, 78), "plain message: header lines well-formed");
	hl = head_len(msg);
	ok(hl < strlen(msg), "plain message: headers end with a blank line");

	v = header(msg, "Date");
	is_str(v, "Tue, 14 Nov 2023 22:13:20 +0000", "Date in RFC 5322 form");
	free(v);
	v = header(msg, "From");
	is_str(v, FROM, "From as configured");
	free(v);
	v = header(msg, "To");
	is_str(v, "ops@clinic.example", "To");
	free(v);
	v = header(msg, "Subject");
	is_str(v, "Fridge 3: high", "ASCII subject unencoded");
	free(v);
	v = header(msg, "Message-ID");
	is_str(v, "<alarm-42.tier1@clinic.example>", "Message-ID uses the id");
	free(v);
	v = header(msg, "MIME-Version");
	is_str(v, "1.0", "MIME-Version");
	free(v);
	v = header(msg, "Content-Type");
	is_str(v, "text/plain; charset=UTF-8", "single part is text/plain");
	free(v);
	v = header(msg, "Content-Transfer-Encoding");
	is_str(v, "base64", "body in base64");
	free(v);
	is_int(count_lines(msg, "List-Unsubscribe"), 0,
	    "no List-Unsubscribe without a URL");
	is_int(count_lines(msg, "List-Unsubscribe-Post"), 0,
	    "no List-Unsubscribe-Post without a URL");

	body = decode_part(msg, &enc);
	is_str(body, m.text, "body decodes to the text");
	free(enc);
	free(body);
	free(msg);
}

static void
test_message_id(void)
{
	struct mail	 m = { FROM, "ops@clinic.example", "s", "t", NULL, NULL,
			    "a b\r\n<c>@d..e." };
	char		*msg, *v, *w;
	const char	*p;
	int		 good;

	msg = mail_format(&m, BASE);
	v = header(msg, "Message-ID");
	good = v != NULL && v[0] == '<' && strchr(v, '@') != NULL;
	for (p = v + 1; good && *p != '@'; p++) {
		if (!isalnum((unsigned char)*p) && strchr("._-", *p) == NULL)
			good = 0;
	}
	good = good && strcmp(p, "@clinic.example>") == 0 &&
	    strstr(v, "..") == NULL && p[-1] != '.' && v[1] != '.';
	ok(good, "Message-ID of an odd id is a dot-atom: %s",
	    v != NULL ? v : "(null)");
	free(v);
	free(msg);

	m.id = NULL;
	msg = mail_format(&m, BASE);
	v = header(msg, "Message-ID");
	free(msg);
	msg = mail_format(&m, BASE);
	w = header(msg, "Message-ID");
	ok(v != NULL && strlen(v) == 1 + 32 + strlen("@clinic.example>") &&
	    strspn(v + 1, "0123456789abcdef") == 32,
	    "Message-ID without an id is random hex: %s",
	    v != NULL ? v : "(null)");
	ok(v != NULL && w != NULL && strcmp(v, w) != 0,
	    "two random Message-IDs differ");
	free(w);
	free(v);
	free(msg);
}

/* Header injection through every field: one header line per field. */
static void
test_injection(void)
{
	static const char	*evil[] = { "\r\nBcc: evil@x", "\nBcc: evil@x",
				    "\rBcc: evil@x", "\r\n\r\nBcc: evil@x",
				    "\x01\x7f\tBcc: evil@x" };
	struct mail		 m;
	char			*msg, *s, *v;
	size_t			 i, f;
	int			 good;

	for (i = 0; i < sizeof evil / sizeof evil[0]; i++) {
		for (f = 0; f < 5; f++) {
			m = (struct mail){ FROM, "ops@clinic.example",
			    "Alarm", "text", NULL, "https://x.example/u",
			    "id1" };
			switch (f) {
			case 0:
				xasprintf(&s, "Alarm%s", evil[i]);
				m.subject = s;
				break;
			case 1:
				xasprintf(&s, "ops@clinic.example%s", evil[i]);
				m.to = s;
				break;
			case 2:
				xasprintf(&s, "vialwatch%s <alerts@clinic."
				    "example>", evil[i]);
				m.from = s;
				break;
			case 3:
				xasprintf(&s, "https://x.example/u%s", evil[i]);
				m.unsubscribe = s;
				break;
			default:
				xasprintf(&s, "id%s", evil[i]);
				m.id = s;
				break;
			}
			msg = mail_format(&m, BASE);
			good = count_lines(msg, "Bcc") == 0 && crlf_only(msg) &&
			    head_ok(msg, 998) &&
			    count_lines(msg, "Subject") == 1 &&
			    count_lines(msg, "To") == 1 &&
			    count_lines(msg, "From") == 1;
			ok(good, "injection %zu in field %zu: no Bcc line", i,
			    f);
			free(msg);
			free(s);
		}
	}

	m = (struct mail){ FROM, "ops@clinic.example", "Fridge\r\n3  high\n",
	    "t", NULL, NULL, NULL };
	msg = mail_format(&m, BASE);
	v = header(msg, "Subject");
	is_str(v, "Fridge 3  high", "a run of CR LF becomes one space");
	free(v);
	free(msg);
}

static void
test_encoded_subjects(void)
{
	static const char	*cases[] = {
		"Température élevée: Réfrigérateur 3",
		"Kühlschrank 🧊 Alarm: 9,4 °C seit 10:02 Uhr — bitte sofort "
		"prüfen, Impfstoffe in Quarantäne genommen (Charge ÄÖÜ-1234)",
		"冷蔵庫の温度が高すぎます冷蔵庫の温度が高すぎます冷蔵庫の温度が"
		"高すぎます冷蔵庫の温度が高すぎます",
		"🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊"
		"x🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊🧊",
		"é",
		"plain ASCII that looks =?UTF-8?B?ZW5jb2RlZA==?= inside",
	};
	char			*msg, *v, *dec;
	size_t			 i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		msg = format_subject(cases[i]);
		ok(crlf_only(msg) && head_ok(msg, 76),
		    "encoded subject %zu: lines of at most 76", i);
		v = header(msg, "Subject");
		ok(v != NULL && strncmp(v, "=?UTF-8?B?", 10) == 0,
		    "encoded subject %zu: encoded words", i);
		dec = v != NULL ? decode_words(v) : NULL;
		is_str(dec, cases[i], "encoded subject %zu: decodes exactly", i);
		free(dec);
		free(v);
		free(msg);
	}
}

static void
test_ascii_subjects(void)
{
	static const char	*cases[] = {
		"Reminder: the weekly temperature log of Fridge 3 (Pharmacy, "
		"level 2) is due today, please sign it before 17:00",
		"Short",
		"Two  spaces  kept  as  they  are  in  a  subject  long  "
		"enough  to  be  folded  somewhere  in  the  middle",
	};
	char			*msg, *v;
	size_t			 i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		msg = format_subject(cases[i]);
		ok(head_ok(msg, 78), "ASCII subject %zu: lines of at most 78",
		    i);
		is_int(header_lines(msg, "Subject"),
		    strlen("Subject: ") + strlen(cases[i]) > 78 ? 2 : 1,
		    "ASCII subject %zu: folded only when long", i);
		v = header(msg, "Subject");
		is_str(v, cases[i], "ASCII subject %zu: unfolds to itself", i);
		free(v);
		free(msg);
	}
}

static void
test_from(void)
{
	static const struct {
		const char	*from;
		const char	*name;	/* decoded, or NULL if unencoded */
		const char	*value;	/* the header, if not encoded */
	} cases[] = {
		{ "Kühlschrank Wächter <alerts@clinic.example>",
		    "Kühlschrank Wächter", NULL },
		{ "\"Dr. Smith, Pharmacy\" <alerts@clinic.example>", NULL,
		    "\"Dr. Smith, Pharmacy\" <alerts@clinic.example>" },
		{ "Dr. Smith, Pharmacy <alerts@clinic.example>", NULL,
		    "\"Dr. Smith, Pharmacy\" <alerts@clinic.example>" },
		{ "alerts@clinic.example", NULL, "alerts@clinic.example" },
		{ "<alerts@clinic.example>", NULL, "alerts@clinic.example" },
	};
	struct mail	 m = { NULL, "ops@clinic.example", "s", "t", NULL, NULL,
			    "x" };
	char		*msg, *v, *dec, *lt;
	size_t		 i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		m.from = cases[i].from;
		msg = mail_format(&m, BASE);
		ok(head_ok(msg, 78), "From %zu: header lines well-formed", i);
		v = header(msg, "From");
		if (cases[i].value != NULL)
			is_str(v, cases[i].value, "From %zu: as expected", i);
		else {
			lt = v != NULL ? strstr(v, " <alerts@clinic.example>") :
			    NULL;
			ok(lt != NULL && lt[24] == '\0',
			    "From %zu: address after the name", i);
			if (lt != NULL)
				*lt = '\0';
			dec = lt != NULL ? decode_words(v) : NULL;
			is_str(dec, cases[i].name, "From %zu: name decodes", i);
			free(dec);
		}
		free(v);
		free(msg);
	}
}

static void
test_multipart(void)
{
	struct mail	 m = { FROM, "ops@clinic.example", "s",
			    "Fridge 3 is at 9.4 C.\r\n", NULL, NULL, "x" };
	char		*msg, *v, *b, *boundary, *delim, *p, *q, *enc, *dec;
	char		*text;
	size_t		 i;

	/* Long enough for many base64 lines. */
	text = malloc(4001);
	for (i = 0; i < 4000; i++)
		text[i] = "abcdefghij\n"[i % 11];
	text[4000] = '\0';
	m.text = text;
	m.html = "<p>Fridge 3 is at <b>9.4&nbsp;°C</b>.</p>";
	msg = mail_format(&m, BASE);
	ok(crlf_only(msg) && head_ok(msg, 78),
	    "multipart: CRLF and well-formed headers");
	v = header(msg, "Content-Type");
	b = v != NULL ? strstr(v, "boundary=\"") : NULL;
	ok(v != NULL && strncmp(v, "multipart/alternative;", 22) == 0 &&
	    b != NULL, "multipart: Content-Type multipart/alternative");
	boundary = NULL;
	if (b != NULL) {
		boundary = strdup(b + 10);
		if ((p = strchr(boundary, '"')) != NULL)
			*p = '\0';
	}
	ok(boundary != NULL && *boundary != '\0', "multipart: a boundary");
	if (boundary == NULL) {
		free(v);
		free(msg);
		free(text);
		return;
	}
	xasprintf(&delim, "\r\n--%s\r\n", boundary);
	p = strstr(msg, delim);
	q = p != NULL ? strstr(p + 1, delim) : NULL;
	ok(p != NULL && q != NULL && strstr(q + 1, delim) == NULL,
	    "multipart: two parts");
	free(delim);
	xasprintf(&delim, "\r\n--%s--\r\n", boundary);
	ok(strlen(msg) >= strlen(delim) &&
	    strcmp(msg + strlen(msg) - strlen(delim), delim) == 0,
	    "multipart: closing delimiter at the end");
	free(delim);

	if (p != NULL && q != NULL) {
		p += strlen(boundary) + 6;
		free(v);
		v = header(p, "Content-Type");
		is_str(v, "text/plain; charset=UTF-8",
		    "multipart: text/plain first");
		dec = decode_part(p, &enc);
		is_str(dec, text, "multipart: text part decodes");
		ok(enc != NULL && strstr(enc, boundary) == NULL,
		    "multipart: boundary not in the text part");
		free(enc);
		free(dec);

		q += strlen(boundary) + 6;
		free(v);
		v = header(q, "Content-Type");
		is_str(v, "text/html; charset=UTF-8",
		    "multipart: text/html second");
		dec = decode_part(q, &enc);
		is_str(dec, m.html, "multipart: html part decodes");
		ok(enc != NULL && strstr(enc, boundary) == NULL,
		    "multipart: boundary not in the html part");
		free(enc);
		free(dec);
	}
	free(boundary);
	free(v);
	free(msg);
	free(text);
}

static void
test_unsubscribe(void)
{
	struct mail	 m = { FROM, "ops@clinic.example", "Reminder", "t",
			    NULL, "https://vw.clinic.example/u?t=abc.def", "r1" };
	char		*msg, *v;

	msg = mail_format(&m, BASE);
	v = header(msg, "List-Unsubscribe");
	is_str(v, "<https://vw.clinic.example/u?t=abc.def>",
	    "List-Unsubscribe holds the URL");
	free(v);
	v = header(msg, "List-Unsubscribe-Post");
	is_str(v, "List-Unsubscribe=One-Click", "List-Unsubscribe-Post");
	free(v);
	is_int(count_lines(msg, "List-Unsubscribe"), 1,
	    "one List-Unsubscribe");
	free(msg);
}

static void
test_address(void)
{
	static const struct {
		const char	*in;
		const char	*want;
	} cases[] = {
		{ "vialwatch <alerts@clinic.example>", "alerts@clinic.example" },
		{ "alerts@clinic.example", "alerts@clinic.example" },
		{ "  alerts@clinic.example \t", "alerts@clinic.example" },
		{ "\"A <b>\" < a@b.example >", "a@b.example" },
		{ "Name <a@b.example", "a@b.example" },
		{ "Name <nobody>", NULL },
		{ "nobody", NULL },
		{ "", NULL },
		{ "a@b.example\r\nRCPT TO:<evil@x>", NULL },
		{ "a b@c.example", NULL },
		{ "Name <a@b.example> trailing", NULL },
		{ "Na\tme <a@b.example>", "a@b.example" },
		{ "Name <a@b.example>\r\n", "a@b.example" },
		{ "Name\r\n<a@b.example>", NULL },
	};
	char		*got;
	size_t		 i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		got = mail_address(cases[i].in);
		is_str(got, cases[i].want, "mail_address %zu", i);
		free(got);
	}
	ok(mail_address(NULL) == NULL, "mail_address of NULL");
}

int
main(void)
{
	test_headers();
	test_message_id();
	test_injection();
	test_encoded_subjects();
	test_ascii_subjects();
	test_from();
	test_multipart();
	test_unsubscribe();
	test_address();
	return (done_testing());
}
