/*
 * template.c: the reminder email templates, a small mustache (pure,
 * unit-tested): {{name}}, {{#name}}...{{/name}} (when the value is not
 * empty), {{^name}}...{{/name}} (when it is) and {{! comments }}, with
 * names from a fixed list, so that a typo is a load error and never a
 * blank in a patient's mail.
 */
#ifndef TEMPLATE_H
#define TEMPLATE_H

/* reminder.txt: "Subject: ...", an empty line, the text body. */
#define TEMPLATE_TEXT_FILE	"reminder.txt"
/* reminder.html: the HTML body, optional. */
#define TEMPLATE_HTML_FILE	"reminder.html"

struct templates;

/* The value of a variable, NULL or "" when it has none. */
typedef const char *(*template_lookup_cb)(const char *name, void *arg);

/* The names a template may use, NULL-terminated. */
extern const char *const template_names[];

/*
 * Read and compile the templates in dir.  Returns them, or NULL with
 * *cause (to free) set to "FILE:LINE: message" or "FILE: message".
 */
struct templates	*template_load(const char *dir, char **cause);
void			 template_free(struct templates *);
/* Whether the text body shows variable name outside any section. */
int			 template_shows(const struct templates *, const char *);

/*
 * Render one mail: *subject (one line: controls become spaces), *text,
 * and *html with the values HTML-escaped (NULL when there is no
 * reminder.html); all three to free.
 */
void			 template_render(const struct templates *,
			    template_lookup_cb get, void *arg, char **subject,
			    char **text, char **html);

#endif
