/*
 * The close-out of an excursion on its acknowledge page (/ack/TOKEN):
 * the CDC's Troubleshooting Record.
 *
 * The GET of the page (pages.c) shows the record as it stands (the time
 * out of range estimated from the readings, min and max, the exposed lots
 * with their funding and disposition) and, once the excursion has alarmed
 * and ended and until it is closed out, a second form: room temperature,
 * cause, preventive action, the call to the manufacturer, and a
 * disposition per lot.  Its POST (marked by the field "closeout") closes
 * the excursion out in the name of the contact the link was sent to,
 * all or nothing: what is missing is named and nothing is recorded.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <json-c/json.h>

#include "log.h"
#include "pages.h"
#include "pgconn.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define PAGES_CLOSEOUT_TEXT_MAX	4000

/* The form's text fields: name, label, and the SQL parameter they go to. */
static const struct {
	const char	*name;
	const char	*label;
	const char	*type;
} pages_closeout_fields[] = {
	{ "room_c", "Room temperature (\xc2\xb0" "C), if known", "number" },
	{ "cause", "Cause", NULL },
	{ "preventive", "Preventive action", NULL },
	{ "mfr_by", "Who contacted the manufacturer", "text" },
	{ "mfr_at", "When (local time)", "datetime-local" },
	{ "mfr_case", "Manufacturer's case number", "text" },
	{ "mfr_guidance", "Manufacturer's guidance", NULL },
};
#define PAGES_CLOSEOUT_NFIELDS \
	(sizeof pages_closeout_fields / sizeof pages_closeout_fields[0])

static const char *pages_closeout_dispositions[] = {
	"usable", "discard", "returned", "pending_manufacturer"
};

int
pages_closeout_wanted(struct evhttp_request *req)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(req);
	struct evbuffer_ptr p;

	p = evbuffer_search(in, "closeout=", 9, NULL);
	return (p.pos != -1);
}

/* The record as it stands: field and value rows of excursion_record(). */
static void
pages_on_record(const PGresult *res, void *arg)
{
	struct evbuffer	*b = arg;
	int		 i;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		return;
	evbuffer_add_printf(b, "<h2>Troubleshooting Record</h2>\n<table>\n");
	for (i = 0; i < PQntuples(res); i++)
		pages_row(b, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	evbuffer_add_printf(b, "</table>\n");
}

/* The select of one lot's disposition. */
static void
pages_closeout_lot(struct evbuffer *b, const PGresult *res, int i)
{
	const char	*lot = PQgetvalue(res, i, 0);
	size_t		 j;

	evbuffer_add_printf(b, "<label for=\"disp_%s\">", lot);
	pages_escape(b, PQgetvalue(res, i, 1));
	evbuffer_add_printf(b, " (");
	pages_escape(b, PQgetisnull(res, i, 2) ? "funding unknown" :
	    PQgetvalue(res, i, 2));
	evbuffer_add_printf(b, ")</label><select id=\"disp_%s\" "
	    "name=\"disp_%s\" required><option value=\"\"></option>", lot, lot);
	for (j = 0; j < sizeof pages_closeout_dispositions /
	    sizeof pages_closeout_dispositions[0]; j++)
		evbuffer_add_printf(b, "<option%s>%s</option>",
		    strcmp(PQgetvalue(res, i, 4),
		    pages_closeout_dispositions[j]) == 0 ? " selected" : "",
		    pages_closeout_dispositions[j]);
	evbuffer_add_printf(b, "</select><input name=\"dnote_%s\" "
	    "placeholder=\"note on this lot\" maxlength=\"%d\">\n", lot,
	    PAGES_CLOSEOUT_TEXT_MAX);
}

/* The form, or who closed it out; then the page goes out. */
static void
pages_on_closeout_page(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req = pages_wait_end(w);
	struct evbuffer		*b = w->page;
	size_t			 i;
	int			 n;

	if (req == NULL)
		goto out;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK ||
	    (n = PQntuples(res)) == 0)
		goto reply;
	if (!PQgetisnull(res, 0, 5)) {
		evbuffer_add_printf(b, "<p>Closed out by <strong>");
		pages_escape(b, PQgetvalue(res, 0, 5));
		evbuffer_add_printf(b, "</strong>.</p>\n");
		goto reply;
	}
	if (strcmp(PQgetvalue(res, 0, 6), "t") != 0) {
		evbuffer_add_printf(b, "<p>It can be closed out once it has "
		    "ended.</p>\n");
		goto reply;
	}
	evbuffer_add_printf(b, "<h2>Close out</h2>\n<form method=\"post\" "
	    "action=\"");
	pages_escape(b, w->path);
	evbuffer_add_printf(b, "\">\n<input type=\"hidden\" name=\"closeout\" "
	    "value=\"1\">\n");
	for (i = 0; i < PAGES_CLOSEOUT_NFIELDS; i++) {
		evbuffer_add_printf(b, "<label for=\"%s\">%s</label>",
		    pages_closeout_fields[i].name,
		    pages_closeout_fields[i].label);
		if (pages_closeout_fields[i].type == NULL)
			evbuffer_add_printf(b, "<textarea id=\"%s\" name=\"%s\" "
			    "rows=\"3\" maxlength=\"%d\"></textarea>\n",
			    pages_closeout_fields[i].name,
			    pages_closeout_fields[i].name,
			    PAGES_CLOSEOUT_TEXT_MAX);
		else
			evbuffer_add_printf(b, "<input id=\"%s\" name=\"%s\" "
			    "type=\"%s\"%s>\n", pages_closeout_fields[i].name,
			    pages_closeout_fields[i].name,
			    pages_closeout_fields[i].type,
			    strcmp(pages_closeout_fields[i].type, "number") == 0
			    ? " step=\"0.1\"" : "");
	}
	for (i = 0; i < (size_t)n; i++) {
		if (!PQgetisnull(res, (int)i, 0))
			pages_closeout_lot(b, res, (int)i);
	}
	evbuffer_add_printf(b, "<button type=\"submit\">Close out</button>\n"
	    "</form>\n<p>Lots leave quarantine by their disposition: usable "
	    "lots are released, discarded and returned ones leave the stock."
	    "</p>\n");
reply:
	pages_reply(req, 200, "OK", b);
out:
	evbuffer_free(b);
	pages_wait_free(w);
}

void
pages_closeout_more(struct pages_wait *w, struct evbuffer *b)
{
	struct evhttp_request	*req;
	const char		*p[2];
	char			 id[24], now[32];

	snprintf(id, sizeof id, "%lld", (long long)w->id);
	snprintf(now, sizeof now, "%.6f", clock_now_us() / 1e6);
	p[0] = id;
	p[1] = now;
	w->page = b;
	if (pgconn_query(w->pc, "select * from vialwatch.excursion_record("
	    "$1::bigint, to_timestamp($2::float8))", 2, p, pages_on_record,
	    b) == 0 && pgconn_query(w->pc, "select * from "
	    "vialwatch.excursion_closeout_page($1::bigint)", 1, p,
	    pages_on_closeout_page, w) == 0)
		return;
	if ((req = pages_wait_end(w)) != NULL)
		pages_reply(req, 200, "OK", b);
	evbuffer_free(b);
	pages_wait_free(w);
}

/* POST: closed out. */
static void
pages_on_closed_out(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req;
	struct evbuffer		*b;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		pages_failed(w, res, "close-out: excursion");
		goto out;
	}
	log_info("close-out: excursion %lld closed out by %s",
	    (long long)w->id, w->who);
	if ((req = pages_wait_end(w)) == NULL)
		goto out;
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	pages_head(b, "Closed out");
	evbuffer_add_printf(b, "<p>Excursion %lld was closed out by ",
	    (long long)w->id);
	pages_escape(b, w->who);
	evbuffer_add_printf(b, " at ");
	pages_escape(b, PQgetvalue(res, 0, 0));
	evbuffer_add_printf(b, ".</p>\n");
	pages_reply(req, 200, "OK", b);
	evbuffer_free(b);
out:
	pages_wait_free(w);
}

/* The lots of the form as [{"lot", "disposition", "note"}], to free. */
static char *
pages_closeout_lots(struct evkeyvalq *form)
{
	struct evkeyval		*kv;
	struct json_object	*a, *o;
	const char		*note;
	char			 name[40], *s;

	a = json_object_new_array();
	TAILQ_FOREACH(kv, form, next) {
		if (strncmp(kv->key, "disp_", 5) != 0 || *kv->value == '\0' ||
		    strspn(kv->key + 5, "0123456789") != strlen(kv->key + 5) ||
		    strlen(kv->key) > 25)
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "lot",
		    json_object_new_string(kv->key + 5));
		json_object_object_add(o, "disposition",
		    json_object_new_string(kv->value));
		snprintf(name, sizeof name, "dnote_%s", kv->key + 5);
		if ((note = evhttp_find_header(form, name)) != NULL)
			json_object_object_add(o, "note",
			    json_object_new_string(note));
		json_object_array_add(a, o);
	}
	s = xstrdup(json_object_to_json_string(a));
	json_object_put(a);
	return (s);
}

/* A field of the form, NULL when missing or blank. */
static const char *
pages_closeout_field(struct evkeyvalq *form, const char *name)
{
	const char	*v = evhttp_find_header(form, name);

	if (v == NULL || strspn(v, " \t\r\n") == strlen(v))
		return (NULL);
	return (v);
}

void
pages_closeout_post(struct vialwatchd *vw, struct pgconn *pc,
    struct evhttp_request *req, int64_t xid, char *who)
{
	struct evkeyvalq	 form;
	struct pages_wait	*w;
	const char		*p[11];
	char			 id[24], now[32], *lots;
	size_t			 i;
	int			 rc;

	if (pages_form_read(req, &form) != 0) {
		free(who);
		return;
	}
	for (i = 0; i < PAGES_CLOSEOUT_NFIELDS; i++) {
		p[3 + i] = pages_closeout_field(&form,
		    pages_closeout_fields[i].name);
		if (p[3 + i] != NULL &&
		    strlen(p[3 + i]) > PAGES_CLOSEOUT_TEXT_MAX) {
			evhttp_clear_headers(&form);
			free(who);
			pages_message(req, 400, "Bad Request", "Too long",
			    "A field has at most 4000 characters.");
			return;
		}
	}
	if (!pgconn_up(pc)) {
		evhttp_clear_headers(&form);
		free(who);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now: nothing was "
		    "recorded. Try again in a minute.");
		return;
	}
	lots = pages_closeout_lots(&form);
	w = pages_wait_new(vw, req, xid, who, 1);
	w->pc = pc;
	snprintf(id, sizeof id, "%lld", (long long)xid);
	snprintf(now, sizeof now, "%.6f", clock_now_us() / 1e6);
	p[0] = id;
	p[1] = who;
	p[2] = now;
	p[10] = lots;
	rc = pgconn_query(pc, "select vialwatch.excursion_closeout_link("
	    "$1::bigint, $2, to_timestamp($3::float8), $4::float8, $5, $6, $7, "
	    "$8::timestamp, $9, $10, $11::jsonb)", 11, p, pages_on_closed_out,
	    w);
	evhttp_clear_headers(&form);
	free(lots);
	if (rc != 0) {
		pages_wait_end(w);
		pages_wait_free(w);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now.");
	}
}
