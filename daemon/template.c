/*
 * Reminder email templates: reminder.txt (a "Subject:" line, an empty
 * line, the text body) and reminder.html, read once and compiled into a
 * list of nodes: literal text, variables, and sections that jump to their
 * end when their condition fails.
 *
 * The syntax is a subset of mustache. Every name must be one of
 * template_names, every {{ must have its }} on the same line and every
 * section its {{/name}}; anything else is an error with the template's
 * FILE:LINE, so that a typo stops a config check instead of leaving a
 * blank in a patient's mail. A section tag or comment alone on its line
 * takes the whole line with it, as in mustache, so that a text body does
 * not fill with empty lines where sections were left out.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "template.h"
#include "xmalloc.h"

#define TEMPLATE_FILE_MAX	(1024 * 1024)
#define TEMPLATE_TAG_SHOW	60	/* of a tag quoted in an error */

const char *const template_names[] = {
	"patient.first_name",
	"patient.last_name",
	"clinic.name",
	"clinic.phone",
	"clinic.booking_url",
	"treatment.product",
	"treatment.area",
	"treatment.date",
	"due_date",
	"step",
	"unsubscribe_url",
	NULL
};

enum template_node_type {
	NODE_TEXT,
	NODE_VAR,
	NODE_SECTION,		/* {{#name}}: when the value is not empty */
	NODE_INVERTED,		/* {{^name}}: when it is */
	NODE_END,		/* {{/name}} */
};

struct template_node {
	enum template_node_type	 type;
	const char		*text;		/* NODE_TEXT: into part's src */
	size_t			 len;
	int			 var;		/* index in template_names */
	size_t			 end;		/* sections: their NODE_END */
	int			 line;
};

/* One compiled template: the subject, the text or the HTML body. */
struct template_part {
	char			*src;
	struct template_node	*nodes;
	size_t			 n;
};

struct templates {
	struct template_part	 subject;
	struct template_part	 text;
	struct template_part	 html;
	int			 has_html;
};

/* How values are put into the output. */
enum template_escape {
	ESCAPE_NONE,		/* text body: as they are */
	ESCAPE_HTML,		/* & < > " ' as entities */
	ESCAPE_LINE,		/* subject: control characters become spaces */
};

/* A template being compiled. */
struct template_parse {
	const char		*file;
	const char		*src;		/* the part's own copy */
	size_t			 len;
	int			 line;		/* of src[pos] */
	size_t			 pos;
	int			 standalone;	/* lone section lines vanish */
	struct template_part	*part;
	size_t			*open;		/* stack of open sections */
	size_t			 depth;
	char			*cause;
};

struct template_buf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

static void	template_error(struct template_parse *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
template_buf_add(struct template_buf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		while (b->len + len + 1 > b->cap)
			b->cap = b->cap == 0 ? 1024 : b->cap * 2;
		b->s = xreallocarray(b->s, 1, b->cap);
	}
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

/* The first error only: "FILE:LINE: message". */
static void
template_error(struct template_parse *tp, int line, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (tp->cause != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	xasprintf(&tp->cause, "%s:%d: %s", tp->file, line,
	    msg != NULL ? msg : fmt);
	free(msg);
}

/* Index of name in template_names, or -1. */
static int
template_find(const char *name, size_t len)
{
	int	i;

	for (i = 0; template_names[i] != NULL; i++) {
		if (strlen(template_names[i]) == len &&
		    strncmp(template_names[i], name, len) == 0)
			return (i);
	}
	return (-1);
}

static struct template_node *
template_add_node(struct template_part *part, enum template_node_type type,
    int line)
{
	struct template_node	*node;

	part->nodes = xreallocarray(part->nodes, part->n + 1,
	    sizeof *part->nodes);
	node = &part->nodes[part->n++];
	memset(node, 0, sizeof *node);
	node->type = type;
	node->line = line;
	node->var = -1;
	return (node);
}

static void
template_add_text(struct template_parse *tp, size_t start, size_t end)
{
	struct template_node	*node;

	if (end <= start)
		return;
	node = template_add_node(tp->part, NODE_TEXT, 0);
	node->text = tp->src + start;
	node->len = end - start;
}

/* Move pos to to, counting lines. */
static void
template_advance(struct template_parse *tp, size_t to)
{
	for (; tp->pos < to; tp->pos++) {
		if (tp->src[tp->pos] == '\n')
			tp->line++;
	}
}

/*
 * Whether the tag from start to end (after its "}}") is alone on its
 * line; if so, *ls is where the line starts and *le where the next begins.
 */
static int
template_standalone(struct template_parse *tp, size_t start, size_t end,
    size_t *ls, size_t *le)
{
	const char	*s = tp->src;
	size_t		 i;

	for (i = start; i > 0 && s[i - 1] != '\n'; i--) {
		if (s[i - 1] != ' ' && s[i - 1] != '\t')
			return (0);
	}
	*ls = i;
	for (i = end; i < tp->len && s[i] != '\n'; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return (0);
	}
	*le = i < tp->len ? i + 1 : i;
	return (1);
}

/* The tag between "{{" and "}}" as a node; -1 on error. */
static int
template_tag(struct template_parse *tp, const char *tag, size_t len)
{
	struct template_node	*node, *opener;
	enum template_node_type	 type = NODE_VAR;
	const char		*name = tag;
	size_t			 nlen = len;
	int			 var;

	if (nlen > 0 && strchr("#^/", *name) != NULL) {
		type = *name == '#' ? NODE_SECTION : *name == '^' ?
		    NODE_INVERTED : NODE_END;
		name++;
		nlen--;
	}
	while (nlen > 0 && (*name == ' ' || *name == '\t')) {
		name++;
		nlen--;
	}
	while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
		nlen--;
	if ((var = template_find(name, nlen)) == -1) {
		template_error(tp, tp->line, nlen == 0 ? "empty tag {{%.*s}}" :
		    "unknown variable {{%.*s}}", (int)(len > TEMPLATE_TAG_SHOW ?
		    TEMPLATE_TAG_SHOW : len), tag);
		return (-1);
	}
	if (type == NODE_END) {
		if (tp->depth == 0) {
			template_error(tp, tp->line, "{{/%s}} without {{#%s}}",
			    template_names[var], template_names[var]);
			return (-1);
		}
		opener = &tp->part->nodes[tp->open[tp->depth - 1]];
		if (opener->var != var) {
			template_error(tp, tp->line, "{{/%s}} where {{%c%s}} of "
			    "line %d must be closed", template_names[var],
			    opener->type == NODE_SECTION ? '#' : '^',
			    template_names[opener->var], opener->line);
			return (-1);
		}
		opener->end = tp->part->n;
		tp->depth--;
	}
	node = template_add_node(tp->part, type, tp->line);
	node->var = var;
	if (type == NODE_SECTION || type == NODE_INVERTED) {
		tp->open = xreallocarray(tp->open, tp->depth + 1,
		    sizeof *tp->open);
		tp->open[tp->depth++] = tp->part->n - 1;
	}
	return (0);
}

/* Compile the source of one part into its nodes; -1 on error. */
static int
template_compile(struct template_parse *tp)
{
	const char		*s = tp->src, *o, *c, *nl;
	size_t			 lit = 0, start, end, ls, le;
	struct template_node	*opener;

	while ((o = strstr(s + tp->pos, "{{")) != NULL) {
		start = o - s;
		template_advance(tp, start);
		c = strstr(o + 2, "}}");
		nl = strchr(o + 2, '\n');
		if (c == NULL || (nl != NULL && nl < c)) {
			template_error(tp, tp->line, "unclosed {{ (no }} on "
			    "the same line)");
			return (-1);
		}
		end = c + 2 - s;
		/* A comment or section tag alone on its line takes the line. */
		if (tp->standalone && o[2] != '\0' &&
		    strchr("!#^/", o[2]) != NULL &&
		    template_standalone(tp, start, end, &ls, &le)) {
			start = ls;
			end = le;
		}
		template_add_text(tp, lit, start);
		if (o[2] != '!' && template_tag(tp, o + 2, c - o - 2) == -1)
			return (-1);
		template_advance(tp, end);
		lit = end;
	}
	template_add_text(tp, lit, tp->len);
	template_advance(tp, tp->len);
	if (tp->depth > 0) {
		opener = &tp->part->nodes[tp->open[tp->depth - 1]];
		template_error(tp, opener->line, "{{%c%s}} is never closed",
		    opener->type == NODE_SECTION ? '#' : '^',
		    template_names[opener->var]);
		return (-1);
	}
	return (0);
}

/* Compile len bytes of src, found at line of file, into part. */
static int
template_part_compile(struct template_part *part, const char *file, int line,
    const char *src, size_t len, int standalone, char **cause)
{
	struct template_parse	tp;

	memset(&tp, 0, sizeof tp);
	part->src = xstrndup(src, len);
	tp.file = file;
	tp.src = part->src;
	tp.len = len;
	tp.line = line;
	tp.standalone = standalone;
	tp.part = part;
	template_compile(&tp);
	free(tp.open);
	if (tp.cause != NULL) {
		*cause = tp.cause;
		return (-1);
	}
	return (0);
}

static void
template_part_free(struct template_part *part)
{
	free(part->src);
	free(part->nodes);
	memset(part, 0, sizeof *part);
}

/*
 * The line of the first byte that is not UTF-8 (or a NUL), or 0 when the
 * whole text is. Overlong forms and surrogates count as not UTF-8.
 */
static int
template_bad_utf8(const unsigned char *s, size_t len)
{
	size_t	i, n, k;
	int	line = 1;

	for (i = 0; i < len; i += n) {
		n = 1;
		if (s[i] == '\n')
			line++;
		if (s[i] == '\0')
			return (line);
		if (s[i] < 0x80)
			continue;
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 2;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			n = 3;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			n = 4;
		else
			return (line);
		if (i + n > len)
			return (line);
		for (k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (line);
		}
		if ((s[i] == 0xe0 && s[i + 1] < 0xa0) ||
		    (s[i] == 0xed && s[i + 1] >= 0xa0) ||
		    (s[i] == 0xf0 && s[i + 1] < 0x90) ||
		    (s[i] == 0xf4 && s[i + 1] >= 0x90))
			return (line);
	}
	return (0);
}

/*
 * A whole template file, to free, checked to be UTF-8 without its byte
 * order mark. NULL with *cause unset when an optional file is absent.
 */
static char *
template_read(const char *path, int optional, size_t *lenp, char **cause)
{
	FILE	*f;
	char	*buf;
	size_t	 len;
	int	 line;

	if ((f = fopen(path, "r")) == NULL) {
		if (!optional || errno != ENOENT)
			xasprintf(cause, "%s: cannot open: %s", path,
			    strerror(errno));
		return (NULL);
	}
	buf = xmalloc(TEMPLATE_FILE_MAX + 1);
	len = fread(buf, 1, TEMPLATE_FILE_MAX + 1, f);
	if (ferror(f) || len > TEMPLATE_FILE_MAX) {
		xasprintf(cause, "%s: cannot read: %s", path, ferror(f) ?
		    strerror(errno) : "larger than 1 MiB");
		fclose(f);
		free(buf);
		return (NULL);
	}
	fclose(f);
	buf[len] = '\0';
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
		memmove(buf, buf + 3, len - 3 + 1);
		len -= 3;
	}
	if ((line = template_bad_utf8((unsigned char *)buf, len)) != 0) {
		xasprintf(cause, "%s:%d: not valid UTF-8", path, line);
		free(buf);
		return (NULL);
	}
	*lenp = len;
	return (buf);
}

/* Whether len bytes of s are all white space. */
static int
template_blank(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (strchr(" \t\r\n", s[i]) == NULL)
			return (0);
	}
	return (1);
}

/* Whether a part shows variable name outside any section. */
static int
template_part_shows(const struct template_part *part, const char *name)
{
	size_t	i;
	int	depth = 0;

	for (i = 0; i < part->n; i++) {
		switch (part->nodes[i].type) {
		case NODE_SECTION:
		case NODE_INVERTED:
			depth++;
			break;
		case NODE_END:
			depth--;
			break;
		case NODE_VAR:
			if (depth == 0 &&
			    strcmp(template_names[part->nodes[i].var], name) == 0)
				return (1);
			break;
		default:
			break;
		}
	}
	return (0);
}

/* reminder.txt: the subject line, an empty line, then the text body. */
static int
template_load_text(struct templates *t, const char *path, char **cause)
{
	char	*buf, *subject, *eol, *body;
	size_t	 len, slen;
	int	 rc = -1;

	if ((buf = template_read(path, 0, &len, cause)) == NULL)
		return (-1);
	eol = buf + strcspn(buf, "\n");
	if (strncasecmp(buf, "Subject:", 8) != 0) {
		xasprintf(cause, "%s:1: the first line must be \"Subject: "
		    "...\"", path);
		goto out;
	}
	subject = buf + 8 + strspn(buf + 8, " \t");
	slen = eol - subject;
	while (slen > 0 && strchr(" \t\r", subject[slen - 1]) != NULL)
		slen--;
	if (slen == 0) {
		xasprintf(cause, "%s:1: the subject is empty", path);
		goto out;
	}
	body = *eol == '\n' ? eol + 1 : eol;
	if (*body == '\r')
		body++;
	if (*body != '\n') {
		xasprintf(cause, "%s:2: an empty line must follow the subject",
		    path);
		goto out;
	}
	body++;
	if (template_blank(body, len - (body - buf))) {
		xasprintf(cause, "%s:3: the text body is empty", path);
		goto out;
	}
	if (template_part_compile(&t->subject, path, 1, subject, slen, 0,
	    cause) == 0 && template_part_compile(&t->text, path, 3, body,
	    len - (body - buf), 1, cause) == 0)
		rc = 0;
out:
	free(buf);
	return (rc);
}

/* reminder.html, when there is one. */
static int
template_load_html(struct templates *t, const char *path, char **cause)
{
	char	*buf;
	size_t	 len;

	if ((buf = template_read(path, 1, &len, cause)) == NULL)
		return (*cause == NULL ? 0 : -1);
	if (template_blank(buf, len)) {
		xasprintf(cause, "%s:1: the HTML body is empty", path);
		free(buf);
		return (-1);
	}
	t->has_html = 1;
	if (template_part_compile(&t->html, path, 1, buf, len, 1, cause) == -1) {
		free(buf);
		return (-1);
	}
	free(buf);
	return (0);
}

struct templates *
template_load(const char *dir, char **cause)
{
	struct templates	*t;
	char			*path;
	const char		*sep;
	int			 rc;

	*cause = NULL;
	t = xcalloc(1, sizeof *t);
	sep = *dir != '\0' && dir[strlen(dir) - 1] == '/' ? "" : "/";
	xasprintf(&path, "%s%s%s", dir, sep, TEMPLATE_TEXT_FILE);
	rc = template_load_text(t, path, cause);
	free(path);
	if (rc == 0) {
		xasprintf(&path, "%s%s%s", dir, sep, TEMPLATE_HTML_FILE);
		rc = template_load_html(t, path, cause);
		free(path);
	}
	if (rc == -1) {
		template_free(t);
		return (NULL);
	}
	return (t);
}

int
template_shows(const struct templates *t, const char *name)
{
	return (template_part_shows(&t->text, name));
}

void
template_free(struct templates *t)
{
	if (t == NULL)
		return;
	template_part_free(&t->subject);
	template_part_free(&t->text);
	template_part_free(&t->html);
	free(t);
}

/* Append a value as escape wants it. */
static void
template_add_value(struct template_buf *b, const char *v,
    enum template_escape escape)
{
	const char	*p, *entity;
	size_t		 run;

	for (p = v; *p != '\0'; p += run) {
		run = escape == ESCAPE_HTML ? strcspn(p, "&<>\"'") : strlen(p);
		if (escape == ESCAPE_LINE) {
			for (run = 0; (unsigned char)p[run] >= 0x20 &&
			    p[run] != 0x7f; run++)
				/* nothing */;
		}
		template_buf_add(b, p, run);
		if (p[run] == '\0')
			continue;
		switch (p[run]) {
		case '&':
			entity = "&amp;";
			break;
		case '<':
			entity = "&lt;";
			break;
		case '>':
			entity = "&gt;";
			break;
		case '"':
			entity = "&quot;";
			break;
		case '\'':
			entity = "&#39;";
			break;
		default:
			entity = " ";	/* a control in the subject */
			break;
		}
		template_buf_add(b, entity, strlen(entity));
		run++;
	}
}

/* One part with the values of get, to free. */
static char *
template_render_part(const struct template_part *part,
    template_lookup_cb get, void *arg, enum template_escape escape)
{
	struct template_buf		 b = { NULL, 0, 0 };
	const struct template_node	*node;
	const char			*v;
	size_t				 i;
	int				 empty;

	template_buf_add(&b, "", 0);
	for (i = 0; i < part->n; i++) {
		node = &part->nodes[i];
		if (node->type == NODE_TEXT) {
			template_buf_add(&b, node->text, node->len);
			continue;
		}
		if (node->type == NODE_END)
			continue;
		v = get(template_names[node->var], arg);
		empty = v == NULL || *v == '\0';
		if (node->type == NODE_VAR && !empty)
			template_add_value(&b, v, escape);
		else if ((node->type == NODE_SECTION && empty) ||
		    (node->type == NODE_INVERTED && !empty))
			i = node->end;
	}
	return (b.s);
}

void
template_render(const struct templates *t, template_lookup_cb get, void *arg,
    char **subject, char **text, char **html)
{
	char	*p;

	*subject = template_render_part(&t->subject, get, arg, ESCAPE_LINE);
	/* The subject's own text cannot hold a newline, but be sure. */
	for (p = *subject; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	*text = template_render_part(&t->text, get, arg, ESCAPE_NONE);
	*html = t->has_html ? template_render_part(&t->html, get, arg,
	    ESCAPE_HTML) : NULL;
}
