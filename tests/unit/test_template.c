/*
 * Unit tests for template.c: each case writes reminder.txt (and maybe
 * reminder.html) into a fresh directory, loads it and renders it with a
 * table of values, or checks the FILE:LINE of the load error.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "template.h"

/* The directory of the shipped templates. */
#define SHIPPED		TOP_SRCDIR "/conf/templates"

/* name=value pairs, NULL-terminated, for lookup. */
struct values {
	const char	*const *pairs;
	int		 calls;
};

static const char *
lookup(const char *name, void *arg)
{
	struct values	*v = arg;
	size_t		 i;

	v->calls++;
	for (i = 0; v->pairs[i] != NULL; i += 2) {
		if (strcmp(v->pairs[i], name) == 0)
			return (v->pairs[i + 1]);
	}
	return (NULL);
}

static const char *const full[] = {
	"patient.first_name", "Ana",
	"patient.last_name", "Souza",
	"clinic.name", "Lindenhof Aesthetics",
	"clinic.phone", "+49 30 5550100",
	"clinic.booking_url", "https://book.example/lindenhof?src=vw&x=1",
	"treatment.product", "Botox",
	"treatment.area", "glabella",
	"treatment.date", "November 20, 2026",
	"due_date", "February 19, 2027",
	"step", "1",
	"unsubscribe_url", "http://127.0.0.1:8470/unsubscribe/42.1.abc.def",
	NULL
};

static const char *const sparse[] = {
	"patient.first_name", "",
	"clinic.name", "Lindenhof",
	"treatment.product", "Dysport",
	"treatment.date", "1 March 2026",
	"due_date", "1 June 2026",
	"unsubscribe_url", "http://x.example/u/1",
	NULL
};

static char	dir[64];

/* Write name in dir with body, or remove it when body is NULL. */
static void
put(const char *name, const char *body)
{
	char	 path[128];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (body == NULL) {
		unlink(path);
		return;
	}
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(99);
	}
	fputs(body, f);
	fclose(f);
}

/* Render the templates in dir with values; all three outputs to free. */
static int
render(const char *in, const char *const *pairs, char **subject, char **text,
    char **html, char **cause)
{
	struct templates	*t;
	struct values		 v = { pairs, 0 };

	*subject = *text = *html = *cause = NULL;
	if ((t = template_load(in, cause)) == NULL)
		return (-1);
	template_render(t, lookup, &v, subject, text, html);
	template_free(t);
	return (0);
}

/* A body rendered with values, and what it must give. */
static const struct {
	const char		*name;
	const char		*body;
	const char *const	*values;
	const char		*want;
} bodies[] = {
	{ "variables", "Hi {{patient.first_name}} {{ patient.last_name }}!\n",
	    full, "Hi Ana Souza!\n" },
	{ "missing value is empty", "[{{treatment.area}}]\n", sparse, "[]\n" },
	{ "section with a value", "a{{#clinic.phone}} call {{clinic.phone}}"
	    "{{/clinic.phone}}.\n", full, "a call +49 30 5550100.\n" },
	{ "section without a value", "a{{#clinic.phone}} call "
	    "{{clinic.phone}}{{/clinic.phone}}.\n", sparse, "a.\n" },
	{ "section with an empty value", "{{#patient.first_name}}Hi "
	    "{{patient.first_name}}{{/patient.first_name}}.\n", sparse, ".\n" },
	{ "inverted with a value", "{{^clinic.phone}}no phone"
	    "{{/clinic.phone}}.\n", full, ".\n" },
	{ "inverted without a value", "{{^clinic.phone}}no phone"
	    "{{/clinic.phone}}.\n", sparse, "no phone.\n" },
	{ "nested, both set", "{{#clinic.phone}}P{{#clinic.booking_url}}B"
	    "{{/clinic.booking_url}}{{^clinic.booking_url}}-"
	    "{{/clinic.booking_url}}p{{/clinic.phone}}.\n", full, "PBp.\n" },
	{ "nested, inner unset", "{{#clinic.name}}P{{#clinic.booking_url}}B"
	    "{{/clinic.booking_url}}{{^clinic.booking_url}}-"
	    "{{/clinic.booking_url}}p{{/clinic.name}}.\n", sparse, "P-p.\n" },
	{ "nested, outer unset", "{{#clinic.phone}}P{{#clinic.name}}N"
	    "{{/clinic.name}}p{{/clinic.phone}}.\n", sparse, ".\n" },
	{ "lone section lines vanish", "a\n{{#clinic.phone}}\nphone\n"
	    "  {{/clinic.phone}}  \n{{^clinic.phone}}\nnone\n"
	    "{{/clinic.phone}}\nb\n", sparse, "a\nnone\nb\n" },
	{ "lone comment line vanishes", "a\n{{! a note for the editor }}\nb "
	    "{{! inline }}c\n", full, "a\nb c\n" },
	{ "section at the end without newline", "a\n{{#step}}\ns\n{{/step}}",
	    full, "a\ns\n" },
	{ "text values are not escaped", "{{clinic.booking_url}}\n", full,
	    "https://book.example/lindenhof?src=vw&x=1\n" },
	{ "single braces are text", "{x} { {y} }\n", full, "{x} { {y} }\n" },
};

static void
test_bodies(void)
{
	char	 txt[4096], *subject, *text, *html, *cause;
	size_t	 i;

	put("reminder.html", NULL);
	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		snprintf(txt, sizeof txt, "Subject: s\n\n%s", bodies[i].body);
		put("reminder.txt", txt);
		if (render(dir, bodies[i].values, &subject, &text, &html,
		    &cause) == -1) {
			ok(0, "%s: loads", bodies[i].name);
			printf("#   %s\n", cause);
			free(cause);
			continue;
		}
		is_str(text, bodies[i].want, "%s", bodies[i].name);
		free(subject);
		free(text);
		free(html);
	}
}

static void
test_subject_and_html(void)
{
	static const char *const evil[] = {
		"patient.first_name", "Ana\r\nBcc: x@evil.example\tZ\x7f",
		"clinic.name", "Tom & Jerry's <b>\"Clinic\"</b>",
		"unsubscribe_url", "http://x.example/u?a=1&b=\"2\"",
		NULL
	};
	char	*subject, *text, *html, *cause;

	put("reminder.txt", "Subject:   Hello {{patient.first_name}} from "
	    "{{clinic.name}}  \r\n\r\nHi {{patient.first_name}}\n");
	put("reminder.html", "<p>{{clinic.name}}</p>\n<a href=\""
	    "{{unsubscribe_url}}\">x</a>\n");
	if (render(dir, evil, &subject, &text, &html, &cause) == -1) {
		ok(0, "subject and html: load");
		printf("#   %s\n", cause);
		free(cause);
		return;
	}
	is_str(subject, "Hello Ana  Bcc: x@evil.example Z  from Tom & Jerry's "
	    "<b>\"Clinic\"</b>", "subject: controls become spaces, no escaping");
	is_str(text, "Hi Ana\r\nBcc: x@evil.example\tZ\x7f\n",
	    "text: values as they are");
	is_str(html, "<p>Tom &amp; Jerry&#39;s &lt;b&gt;&quot;Clinic&quot;"
	    "&lt;/b&gt;</p>\n<a href=\"http://x.example/u?a=1&amp;b=&quot;2"
	    "&quot;\">x</a>\n", "html: values escaped, template kept");
	free(subject);
	free(text);
	free(html);

	/* Without reminder.html there is no HTML part. */
	put("reminder.html", NULL);
	if (render(dir, evil, &subject, &text, &html, &cause) == 0) {
		ok(html == NULL, "no reminder.html: no html");
		free(subject);
		free(text);
		free(html);
	} else {
		ok(0, "no reminder.html: loads");
		free(cause);
	}

	/* A byte order mark and a slash at the end of the directory. */
	put("reminder.txt", "\xef\xbb\xbfSubject: {{step}}\n\nb\n");
	snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/");
	if (render(dir, full, &subject, &text, &html, &cause) == 0) {
		is_str(subject, "1", "byte order mark skipped");
		free(subject);
		free(text);
		free(html);
	} else {
		ok(0, "byte order mark: loads");
		printf("#   %s\n", cause);
		free(cause);
	}
	dir[strlen(dir) - 1] = '\0';
}

/* A broken template and the error it must give, after "DIR/". */
static const struct {
	const char	*name;
	const char	*txt;
	const char	*html;		/* NULL: no reminder.html */
	const char	*error;
} errors[] = {
	{ "unknown variable", "Subject: s\n\nHi {{patient.first_name}},\n\n"
	    "{{patient.frist_name}}\n", NULL,
	    "reminder.txt:5: unknown variable {{patient.frist_name}}" },
	{ "unknown variable in the subject", "Subject: {{clinic}}\n\nb\n",
	    NULL, "reminder.txt:1: unknown variable {{clinic}}" },
	{ "unknown section", "Subject: s\n\n{{#phone}}x{{/phone}}\n", NULL,
	    "reminder.txt:3: unknown variable {{#phone}}" },
	{ "triple mustache", "Subject: s\n\na\n{{{clinic.name}}}\n", NULL,
	    "reminder.txt:4: unknown variable {{{clinic.name}}" },
	{ "empty tag", "Subject: s\n\na {{ }}\n", NULL,
	    "reminder.txt:3: empty tag {{ }}" },
	{ "unclosed tag", "Subject: s\n\na\nb {{clinic.name\n}}\n", NULL,
	    "reminder.txt:4: unclosed {{ (no }} on the same line)" },
	{ "unclosed tag at the end", "Subject: s\n\na {{clinic.name}}\n{{", NULL,
	    "reminder.txt:4: unclosed {{ (no }} on the same line)" },
	{ "section never closed", "Subject: s\n\n{{#clinic.phone}}\nx\n",
	    NULL, "reminder.txt:3: {{#clinic.phone}} is never closed" },
	{ "inverted never closed", "Subject: s\n\na\n{{^step}}x\n", NULL,
	    "reminder.txt:4: {{^step}} is never closed" },
	{ "close without open", "Subject: s\n\nx\n\n{{/clinic.phone}}\n",
	    NULL, "reminder.txt:5: {{/clinic.phone}} without {{#clinic.phone}}" },
	{ "crossed sections", "Subject: s\n\n{{#step}}\n{{#due_date}}\n"
	    "{{/step}}\n{{/due_date}}\n", NULL,
	    "reminder.txt:5: {{/step}} where {{#due_date}} of line 4 must be "
	    "closed" },
	{ "section open in the subject", "Subject: {{#step}}x\n\nb\n", NULL,
	    "reminder.txt:1: {{#step}} is never closed" },
	{ "no subject line", "Hello\n\nb\n", NULL,
	    "reminder.txt:1: the first line must be \"Subject: ...\"" },
	{ "empty subject", "Subject:  \n\nb\n", NULL,
	    "reminder.txt:1: the subject is empty" },
	{ "no empty line", "Subject: s\nb\n", NULL,
	    "reminder.txt:2: an empty line must follow the subject" },
	{ "empty body", "Subject: s\n\n \n", NULL,
	    "reminder.txt:3: the text body is empty" },
	{ "not UTF-8", "Subject: s\n\na\nCaf\xe9\n", NULL,
	    "reminder.txt:4: not valid UTF-8" },
	{ "html unknown variable", "Subject: s\n\nb\n",
	    "<p>\n{{clinic.name}}\n<a href=\"{{unsubscribe}}\">x</a>\n",
	    "reminder.html:3: unknown variable {{unsubscribe}}" },
	{ "html section never closed", "Subject: s\n\nb\n",
	    "<p>\n\n{{#clinic.booking_url}}\n<a>\n", 
	    "reminder.html:3: {{#clinic.booking_url}} is never closed" },
	{ "html empty", "Subject: s\n\nb\n", "\n",
	    "reminder.html:1: the HTML body is empty" },
};

static void
test_errors(void)
{
	struct templates	*t;
	char			 want[512], *cause;
	size_t			 i;

	for (i = 0; i < sizeof errors / sizeof errors[0]; i++) {
		put("reminder.txt", errors[i].txt);
		put("reminder.html", errors[i].html);
		cause = NULL;
		t = template_load(dir, &cause);
		snprintf(want, sizeof want, "%s/%s", dir, errors[i].error);
		ok(t == NULL, "%s: refused", errors[i].name);
		is_str(cause, want, "%s: error", errors[i].name);
		template_free(t);
		free(cause);
	}
	put("reminder.html", NULL);
	put("reminder.txt", NULL);
	cause = NULL;
	t = template_load(dir, &cause);
	snprintf(want, sizeof want, "%s/reminder.txt: cannot open: No such "
	    "file or directory", dir);
	ok(t == NULL, "no reminder.txt: refused");
	is_str(cause, want, "no reminder.txt: error");
	free(cause);
}

/* Whether s holds a mustache tag that was left over. */
static int
leftover(const char *s)
{
	return (s != NULL && (strstr(s, "{{") != NULL ||
	    strstr(s, "}}") != NULL));
}

static void
test_shipped(void)
{
	static const char *const none[] = {
		"clinic.name", "Lindenhof", "treatment.product", "Botox",
		"treatment.date", "x", "due_date", "y",
		"unsubscribe_url", "http://u.example/1", NULL
	};
	struct templates	*t;
	struct values		 v = { full, 0 };
	char			*subject, *text, *html, *cause = NULL;
	size_t			 i;

	if ((t = template_load(SHIPPED, &cause)) == NULL) {
		ok(0, "shipped templates load");
		printf("#   %s\n", cause);
		free(cause);
		return;
	}
	ok(1, "shipped templates load");
	template_render(t, lookup, &v, &subject, &text, &html);
	ok(!leftover(subject) && !leftover(text) && !leftover(html),
	    "shipped: no {{ left");
	ok(html != NULL, "shipped: an HTML part");
	is_str(subject, "Time to plan your next visit to Lindenhof Aesthetics",
	    "shipped: subject");
	for (i = 0; full[i] != NULL; i += 2) {
		if (strcmp(full[i], "step") == 0 ||
		    strcmp(full[i], "patient.last_name") == 0)
			continue;	/* not used by the shipped texts */
		ok(strstr(text, full[i + 1]) != NULL, "shipped text has %s",
		    full[i]);
	}
	ok(strncmp(text, "Hi Ana,\n", 8) == 0, "shipped text: greeting");
	ok(html != NULL && strstr(html, "href=\"https://book.example/"
	    "lindenhof?src=vw&amp;x=1\"") != NULL,
	    "shipped html: booking link, escaped");
	ok(html != NULL && strstr(html, "href=\"http://127.0.0.1:8470/"
	    "unsubscribe/42.1.abc.def\"") != NULL,
	    "shipped html: unsubscribe link");
	ok(html != NULL && strstr(html, "Hi Ana,") != NULL &&
	    strstr(html, "Book your appointment") != NULL,
	    "shipped html: greeting and button");
	free(subject);
	free(text);
	free(html);

	/* No first name, phone or booking link: no holes either. */
	v.pairs = none;
	template_render(t, lookup, &v, &subject, &text, &html);
	ok(!leftover(text) && !leftover(html), "sparse: no {{ left");
	ok(strncmp(text, "Hello,\n", 7) == 0, "sparse: neutral greeting");
	ok(strstr(text, "call") == NULL && strstr(text, "\n\n\n\n") == NULL &&
	    strstr(text, "  ") == NULL, "sparse: no phone, no holes");
	ok(html != NULL && strstr(html, "Book your") == NULL &&
	    strstr(html, "Hello,") != NULL, "sparse html: no button");
	ok(strstr(text, "http://u.example/1") != NULL, "sparse: unsubscribe");
	free(subject);
	free(text);
	free(html);
	template_free(t);
}

int
main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_template.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (99);
	}
	test_bodies();
	test_subject_and_html();
	test_errors();
	test_shipped();
	put("reminder.txt", NULL);
	put("reminder.html", NULL);
	rmdir(dir);
	return (done_testing());
}
