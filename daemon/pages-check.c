/*
 * /check/TOKEN: the page of the link in the workday check email
 * (checks.c).  The token names the clinic and the contact it was sent to.
 *
 * A GET shows each fridge's current temperature and its minimum and
 * maximum since the previous check, and a form; it changes nothing.  The
 * POST of the form records the check of every fridge of the clinic by
 * that contact, in vialwatch.daily_check, with the figures as they are
 * then, in one transaction: when a figure is out of range and its fridge
 * has no note, nothing is recorded and the page says which needs one.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <json-c/json.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "http.h"
#include "pages.h"
#include "pgconn.h"
#include "token.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define PAGES_CHECK_NOTE_MAX	4000

int
pages_form_read(struct evhttp_request *req, struct evkeyvalq *form)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(req);
	size_t		 len = evbuffer_get_length(in);
	char		*body;
	int		 rc;

	body = xmalloc(len + 1);
	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	TAILQ_INIT(form);
	rc = evhttp_parse_query_str(body, form);
	free(body);
	if (rc != 0) {
		evhttp_clear_headers(form);
		pages_message(req, 400, "Bad Request", "Not understood",
		    "The form could not be read.");
		return (-1);
	}
	return (0);
}

void
pages_failed(struct pages_wait *w, const PGresult *res, const char *what)
{
	struct evhttp_request	*req = pages_wait_end(w);
	const char		*code, *msg;

	if (res == NULL) {
		if (req != NULL)
			pages_message(req, 503, "Service Unavailable",
			    "Try again", "The database cannot be reached just "
			    "now: nothing was recorded. Try again in a minute.");
		return;
	}
	code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	log_warnx("%s: %lld: %.*s", what, (long long)w->id,
	    (int)strcspn(PQresultErrorMessage(res), "\n"),
	    PQresultErrorMessage(res));
	if (req == NULL)
		return;
	if (code == NULL || msg == NULL)
		pages_message(req, 500, "Internal Server Error", "Not recorded",
		    "This could not be recorded; the daemon's log says why.");
	else if (strcmp(code, "P0002") == 0)
		pages_message(req, 404, "Not Found", "Not found", msg);
	else if (strncmp(code, "22", 2) == 0 || strcmp(code, "23502") == 0)
		pages_message(req, 400, "Bad Request", "Not recorded: go back",
		    msg);
	else if (strcmp(code, "23505") == 0 || strcmp(code, "55000") == 0)
		pages_message(req, 409, "Conflict", "Not recorded", msg);
	else
		pages_message(req, 500, "Internal Server Error", "Not recorded",
		    "This could not be recorded; the daemon's log says why.");
}

/* One fridge of the GET: its figures, and its note field. */
static void
pages_check_fridge(struct evbuffer *b, const PGresult *res, int i)
{
	const char	*out = PQgetvalue(res, i, 11), *checked;
	int		 bad = strcmp(out, "t") == 0;

	evbuffer_add_printf(b, "<tr><th>");
	pages_escape(b, PQgetvalue(res, i, 4));
	evbuffer_add_printf(b, "</th><td>%s</td><td>%s</td><td>%s</td>"
	    "<td>%s to %s</td><td>", PQgetisnull(res, i, 7) ? "no reading" :
	    PQgetvalue(res, i, 7), PQgetisnull(res, i, 8) ? "-" :
	    PQgetvalue(res, i, 8), PQgetisnull(res, i, 9) ? "-" :
	    PQgetvalue(res, i, 9), PQgetvalue(res, i, 5),
	    PQgetvalue(res, i, 6));
	pages_escape(b, PQgetvalue(res, i, 10));
	evbuffer_add_printf(b, "</td><td>%s", bad ? "<strong>OUT OF RANGE"
	    "</strong>" : "ok");
	if ((checked = pgconn_text(res, i, 12)) != NULL) {
		evbuffer_add_printf(b, "<br>checked by ");
		pages_escape(b, checked);
	}
	evbuffer_add_printf(b, "</td></tr>\n<tr><td colspan=\"7\"><label "
	    "for=\"note_%s\">Note%s</label><textarea id=\"note_%s\" "
	    "name=\"note_%s\" rows=\"2\" maxlength=\"%d\"%s></textarea>"
	    "</td></tr>\n", PQgetvalue(res, i, 3), bad ? " (required: "
	    "a figure is out of range)" : "", PQgetvalue(res, i, 3),
	    PQgetvalue(res, i, 3), PAGES_CHECK_NOTE_MAX, bad ? " required" :
	    "");
}

/* GET: the figures of every fridge, and the form. */
static void
pages_on_check_page(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req = pages_wait_end(w);
	struct evbuffer		*b;
	int			 i;

	if (req == NULL)
		goto out;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now. Reload this "
		    "page in a minute.");
		goto out;
	}
	if (PQntuples(res) == 0) {
		pages_message(req, 404, "Not Found", "Nothing to check",
		    "This clinic has no fridges any more.");
		goto out;
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	pages_head(b, "Fridge check");
	evbuffer_add_printf(b, "<p><strong>");
	pages_escape(b, PQgetvalue(res, 0, 0));
	evbuffer_add_printf(b, "</strong>, ");
	pages_escape(b, PQgetvalue(res, 0, 2));
	evbuffer_add_printf(b, " (");
	pages_escape(b, PQgetvalue(res, 0, 1));
	evbuffer_add_printf(b, "). Minimum and maximum since the previous "
	    "check, in \xc2\xb0" "C.</p>\n<form method=\"post\" action=\"");
	pages_escape(b, w->path);
	evbuffer_add_printf(b, "\">\n<table>\n<tr><th>Fridge</th><th>Now</th>"
	    "<th>Min</th><th>Max</th><th>Range</th><th>Since</th><th></th>"
	    "</tr>\n");
	for (i = 0; i < PQntuples(res); i++)
		pages_check_fridge(b, res, i);
	evbuffer_add_printf(b, "</table>\n<button type=\"submit\">Record the "
	    "check of every fridge</button>\n</form>\n<p>Recording takes the "
	    "figures as they are when you press the button, in your name.</p>"
	    "\n");
	pages_reply(req, 200, "OK", b);
	evbuffer_free(b);
out:
	pages_wait_free(w);
}

/* POST: recorded. */
static void
pages_on_checked(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req;
	struct evbuffer		*b;
	int			 i;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		pages_failed(w, res, "check: clinic");
		goto out;
	}
	log_info("check: clinic %lld: %d fridge(s) checked by %s",
	    (long long)w->id, PQntuples(res), w->who);
	if ((req = pages_wait_end(w)) == NULL)
		goto out;
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	pages_head(b, "Check recorded");
	evbuffer_add_printf(b, "<table>\n<tr><th>Fridge</th><th>Now</th>"
	    "<th>Min</th><th>Max</th><th>Note</th></tr>\n");
	for (i = 0; i < PQntuples(res); i++) {
		evbuffer_add_printf(b, "<tr><td>");
		pages_escape(b, PQgetvalue(res, i, 0));
		evbuffer_add_printf(b, "</td><td>%s</td><td>%s</td><td>%s</td>"
		    "<td>", PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
		    PQgetvalue(res, i, 3));
		pages_escape(b, PQgetvalue(res, i, 4));
		evbuffer_add_printf(b, "</td></tr>\n");
	}
	evbuffer_add_printf(b, "</table>\n<p>Recorded by ");
	pages_escape(b, w->who);
	evbuffer_add_printf(b, ".</p>\n");
	pages_reply(req, 200, "OK", b);
	evbuffer_free(b);
out:
	pages_wait_free(w);
}

/* The notes of the POST as {"FRIDGE": "note"}, to free; NULL: page sent. */
static char *
pages_check_notes(struct evhttp_request *req)
{
	struct evkeyvalq	 form;
	struct evkeyval		*kv;
	struct json_object	*o;
	char			*s;

	if (pages_form_read(req, &form) != 0)
		return (NULL);
	o = json_object_new_object();
	TAILQ_FOREACH(kv, &form, next) {
		if (strncmp(kv->key, "note_", 5) != 0 ||
		    strspn(kv->key + 5, "0123456789") != strlen(kv->key + 5))
			continue;
		if (strlen(kv->value) > PAGES_CHECK_NOTE_MAX) {
			json_object_put(o);
			evhttp_clear_headers(&form);
			pages_message(req, 400, "Bad Request", "Note too long",
			    "A note has at most 4000 characters.");
			return (NULL);
		}
		json_object_object_add(o, kv->key + 5,
		    json_object_new_string(kv->value));
	}
	evhttp_clear_headers(&form);
	s = xstrdup(json_object_to_json_string(o));
	json_object_put(o);
	return (s);
}

/* /check/TOKEN */
void
pages_check(struct vialwatchd *vw, struct evhttp_request *req,
    const char *token)
{
	const struct conf	*c = vw->conf;
	struct pgconn		*pc = http_pgconn(vw->http);
	struct pages_wait	*w;
	const char		*p[4];
	char			*who, *notes = NULL, id[24], now[32];
	int64_t			 clinic;
	int			 rc, post;

	post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
	if (c->http_secret == NULL) {
		pages_message(req, 404, "Not Found", "No links",
		    "Signed links are off on this server.");
		return;
	}
	rc = token_check(c->http_secret, c->http_secret_len, "check", token,
	    clock_now_us() / 1000000, &clinic, &who);
	if (rc != TOKEN_OK) {
		log_info("check: refused a link that is %s",
		    rc == TOKEN_EXPIRED ? "expired" : "not valid");
		pages_message(req, 403, "Forbidden", rc == TOKEN_EXPIRED ?
		    "Link expired" : "Link not valid", rc == TOKEN_EXPIRED ?
		    "This link has expired. Use the link of today's email, or "
		    "vialwatchctl check." : "This link is not valid: it may "
		    "have been cut short in the email. Open it from the email "
		    "again.");
		return;
	}
	if ((post && (notes = pages_check_notes(req)) == NULL)) {
		free(who);
		return;
	}
	if (!pgconn_up(pc)) {
		free(who);
		free(notes);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now. Try again in a "
		    "minute.");
		return;
	}
	w = pages_wait_new(vw, req, clinic, who, post);
	w->pc = pc;
	snprintf(id, sizeof id, "%lld", (long long)clinic);
	snprintf(now, sizeof now, "%.6f", clock_now_us() / 1e6);
	p[0] = id;
	p[1] = now;
	if (post) {
		p[1] = who;
		p[2] = notes;
		p[3] = now;
		rc = pgconn_query(pc, "select fridge, coalesce(current_c::text, "
		    "'no reading'), coalesce(min_c::text, '-'), "
		    "coalesce(max_c::text, '-'), coalesce(note, '') from "
		    "vialwatch.check_record_link($1::bigint, $2, $3::jsonb, "
		    "to_timestamp($4::float8))", 4, p, pages_on_checked, w);
	} else
		rc = pgconn_query(pc, "select * from vialwatch.check_page("
		    "$1::bigint, to_timestamp($2::float8))", 2, p,
		    pages_on_check_page, w);
	free(notes);
	if (rc != 0) {
		pages_wait_end(w);
		pages_wait_free(w);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now.");
	}
}
