/*
 * The pages of the signed links in emails: /ack/TOKEN, where who was
 * alarmed acknowledges an excursion, and /unsubscribe/TOKEN, where a
 * patient stops the reminders.
 *
 * A GET only shows the excursion and a form: mail scanners and link
 * previews fetch links, and must not acknowledge anything.  The POST of
 * the form, with a name and the corrective action taken, does.  A token
 * that is malformed, forged, altered or expired gets 403 and changes
 * nothing.  The database is reached through the pages' own connection
 * (http_pgconn), as role vialwatch_web; while it is away the pages answer
 * 503.
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

#include "clock.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pages.h"
#include "pgconn.h"
#include "token.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define PAGES_NAME_MAX		200
#define PAGES_NOTE_MAX		4000

/* Forged links come in floods: a few lines a minute. */
static struct ratelimit	pages_rl_refused;

static TAILQ_HEAD(, pages_wait) pages_waits =
    TAILQ_HEAD_INITIALIZER(pages_waits);


/* Text into HTML. */
void
pages_escape(struct evbuffer *b, const char *s)
{
	char	*e;

	if (s == NULL)
		return;
	if ((e = evhttp_htmlescape(s)) == NULL)
		fatalx("evhttp_htmlescape");
	evbuffer_add(b, e, strlen(e));
	free(e);
}

void
pages_head(struct evbuffer *b, const char *title)
{
	evbuffer_add_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" "
	    "content=\"width=device-width, initial-scale=1\">"
	    "<meta name=\"robots\" content=\"noindex\"><title>");
	pages_escape(b, title);
	evbuffer_add_printf(b, " - vialwatch</title><style>body{font-family:"
	    "sans-serif;max-width:40em;margin:2em auto;padding:0 1em;"
	    "line-height:1.4}th{text-align:left;padding-right:1em}"
	    "input,textarea{width:100%%;box-sizing:border-box;"
	    "margin-bottom:1em}</style></head><body><h1>");
	pages_escape(b, title);
	evbuffer_add_printf(b, "</h1>\n");
}

void
pages_reply(struct evhttp_request *req, int code, const char *reason,
    struct evbuffer *b)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);

	evbuffer_add_printf(b, "</body></html>\n");
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Content-Security-Policy",
	    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
	evhttp_send_reply(req, code, reason, b);
}

/* A page of one sentence. */
void
pages_message(struct evhttp_request *req, int code, const char *reason,
    const char *title, const char *text)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	pages_head(b, title);
	evbuffer_add_printf(b, "<p>");
	pages_escape(b, text);
	evbuffer_add_printf(b, "</p>\n");
	pages_reply(req, code, reason, b);
	evbuffer_free(b);
}

/*
 * The client went away.  libevent keeps a request its callback has not
 * answered yet, detached from the connection, and frees it when it is
 * answered: the answer is still sent, to nobody.
 */
static void
pages_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct pages_wait	*w = arg;

	w->closed = 1;
}

struct pages_wait *
pages_wait_new(struct vialwatchd *vw, struct evhttp_request *req, int64_t id,
    char *who, int post)
{
	struct pages_wait	*w;

	w = xcalloc(1, sizeof *w);
	w->req = req;
	w->http = vw->http;
	w->path = xstrdup(evhttp_request_get_uri(req));
	w->who = who;
	w->id = id;
	w->post = post;
	http_watch_close(w->http, req, pages_on_close, w);
	TAILQ_INSERT_TAIL(&pages_waits, w, entry);
	return (w);
}

/* The answer is there: stop watching the client, and free. */
struct evhttp_request *
pages_wait_end(struct pages_wait *w)
{
	struct evhttp_request	*req = w->req;

	if (req != NULL && !w->closed)
		http_watch_close(w->http, req, NULL, NULL);
	return (req);
}

void
pages_wait_free(struct pages_wait *w)
{
	TAILQ_REMOVE(&pages_waits, w, entry);
	free(w->path);
	free(w->who);
	free(w);
}

/* A row of the details table. */
void
pages_row(struct evbuffer *b, const char *name, const char *value)
{
	if (value == NULL || *value == '\0')
		return;
	evbuffer_add_printf(b, "<tr><th>%s</th><td>", name);
	pages_escape(b, value);
	evbuffer_add_printf(b, "</td></tr>\n");
}

/* GET: the excursion, and the form unless it is acknowledged already. */
static void
pages_on_ack_page(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req = pages_wait_end(w);
	struct evbuffer		*b;
	char			 title[64];

	if (req == NULL)
		goto out;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now. Reload this "
		    "page in a minute.");
		goto out;
	}
	if (PQntuples(res) != 1) {
		pages_message(req, 404, "Not Found", "Unknown excursion",
		    "This excursion is not in the database any more.");
		goto out;
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	snprintf(title, sizeof title, "Excursion %lld", (long long)w->id);
	pages_head(b, title);
	evbuffer_add_printf(b, "<table>\n");
	pages_row(b, "Clinic", pgconn_text(res, 0, 2));
	pages_row(b, "Fridge", pgconn_text(res, 0, 3));
	pages_row(b, "Kind", pgconn_text(res, 0, 1));
	pages_row(b, "Since", pgconn_text(res, 0, 5));
	pages_row(b, "Ended", pgconn_text(res, 0, 6));
	pages_row(b, "Peak (\xc2\xb0" "C)", pgconn_text(res, 0, 7));
	pages_row(b, "Time zone", pgconn_text(res, 0, 4));
	evbuffer_add_printf(b, "</table>\n");
	if (!PQgetisnull(res, 0, 8)) {
		evbuffer_add_printf(b, "<p>Acknowledged by <strong>");
		pages_escape(b, pgconn_text(res, 0, 9));
		evbuffer_add_printf(b, "</strong> at ");
		pages_escape(b, pgconn_text(res, 0, 8));
		evbuffer_add_printf(b, ".</p>\n<p>");
		pages_escape(b, pgconn_text(res, 0, 10));
		evbuffer_add_printf(b, "</p>\n");
	} else {
		evbuffer_add_printf(b, "<form method=\"post\" action=\"");
		pages_escape(b, w->path);
		evbuffer_add_printf(b, "\">\n<label for=\"name\">Your name"
		    "</label><input id=\"name\" name=\"name\" required "
		    "maxlength=\"%d\">\n<label for=\"action\">Corrective "
		    "action taken</label><textarea id=\"action\" "
		    "name=\"action\" rows=\"5\" maxlength=\"%d\"></textarea>"
		    "\n<button type=\"submit\">Acknowledge</button>\n</form>\n"
		    "<p>Acknowledging stops the escalation to other people. "
		    "The lots of this fridge stay in quarantine until someone "
		    "releases or discards them.</p>\n", PAGES_NAME_MAX,
		    PAGES_NOTE_MAX);
	}
	pages_closeout_more(w, b);
	return;
out:
	pages_wait_free(w);
}

/* POST: acknowledged, or it was already. */
static void
pages_on_acked(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req = pages_wait_end(w);
	struct evbuffer		*b;
	const char		*code;
	int			 now;

	if (res == NULL) {
		if (req != NULL)
			pages_message(req, 503, "Service Unavailable",
			    "Try again", "The database cannot be reached just "
			    "now: nothing was recorded. Send the form again in "
			    "a minute.");
		goto out;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		log_warnx("ack: excursion %lld: %.*s", (long long)w->id,
		    (int)strcspn(PQresultErrorMessage(res), "\n"),
		    PQresultErrorMessage(res));
		if (req == NULL)
			goto out;
		if (code != NULL && strcmp(code, "P0002") == 0)
			pages_message(req, 404, "Not Found",
			    "Unknown excursion", "This excursion is not in "
			    "the database any more.");
		else if (code != NULL && strcmp(code, "55000") == 0)
			pages_message(req, 409, "Conflict", "Not alarmed",
			    "This excursion has not raised an alarm.");
		else if (code != NULL && strcmp(code, "28000") == 0)
			pages_message(req, 403, "Forbidden", "Not a contact",
			    "This link was sent to someone who is no longer a "
			    "contact of the clinic: nothing was recorded.");
		else
			pages_message(req, 500, "Internal Server Error",
			    "Not recorded", "The acknowledgement could not be "
			    "recorded; the daemon's log says why.");
		goto out;
	}
	now = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (now) {
		metrics.acks++;
		log_info("ack: excursion %lld acknowledged by %s (link sent to "
		    "%s)", (long long)w->id, PQgetvalue(res, 0, 2), w->who);
	}
	if (req == NULL)
		goto out;
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	pages_head(b, now ? "Acknowledged" : "Already acknowledged");
	evbuffer_add_printf(b, "<p>Excursion %lld was acknowledged by "
	    "<strong>", (long long)w->id);
	pages_escape(b, PQgetvalue(res, 0, 2));
	evbuffer_add_printf(b, "</strong> (%s).</p>\n<p>",
	    PQgetvalue(res, 0, 1));
	pages_escape(b, pgconn_text(res, 0, 3));
	evbuffer_add_printf(b, "</p>\n<p>No more alarm emails go out for it; "
	    "a last one says when the temperature is back in range.</p>\n");
	pages_reply(req, 200, "OK", b);
	evbuffer_free(b);
out:
	pages_wait_free(w);
}

/* The value of a form field, NULL if missing; to free. */
static char *
pages_field(struct evkeyvalq *form, const char *name)
{
	const char	*v = evhttp_find_header(form, name);

	return (v != NULL ? xstrdup(v) : NULL);
}

/* Parse the POSTed form; 0, or -1 with a page sent. */
static int
pages_form(struct evhttp_request *req, char **name, char **note)
{
	struct evbuffer		*in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq	 form;
	size_t			 len = evbuffer_get_length(in);
	char			*body, *p;

	body = xmalloc(len + 1);
	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	TAILQ_INIT(&form);
	if (evhttp_parse_query_str(body, &form) != 0) {
		free(body);
		pages_message(req, 400, "Bad Request", "Not understood",
		    "The form could not be read.");
		return (-1);
	}
	free(body);
	*name = pages_field(&form, "name");
	*note = pages_field(&form, "action");
	evhttp_clear_headers(&form);
	if (*name != NULL) {
		for (p = *name; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		}
	}
	if (*name == NULL || strspn(*name, " ") == strlen(*name) ||
	    strlen(*name) > PAGES_NAME_MAX ||
	    (*note != NULL && strlen(*note) > PAGES_NOTE_MAX)) {
		free(*name);
		free(*note);
		pages_message(req, 400, "Bad Request", "Name required",
		    "Give your name (at most 200 characters) and the "
		    "corrective action (at most 4000); go back and try again.");
		return (-1);
	}
	return (0);
}

/*
 * The HTTP server is about to be freed (a new listen address): answer
 * every request still waiting, which libevent would free with it; the
 * database's answer then goes nowhere.
 */
void
pages_abort_all(void)
{
	struct pages_wait	*w;
	struct evhttp_request	*req;

	TAILQ_FOREACH(w, &pages_waits, entry) {
		if ((req = pages_wait_end(w)) == NULL)
			continue;
		w->req = NULL;
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The server is being reconfigured. Send this again in a "
		    "moment.");
	}
}

/* /ack/TOKEN */
void
pages_ack(struct vialwatchd *vw, struct evhttp_request *req,
    const char *token)
{
	const struct conf	*c = vw->conf;
	struct pgconn		*pc = http_pgconn(vw->http);
	struct pages_wait	*w;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	const char		*p[4];
	char			*who, *name = NULL, *note = NULL, id[24];
	int64_t			 xid;
	int			 rc;

	if (c->http_secret == NULL) {
		pages_message(req, 404, "Not Found", "No links",
		    "Signed links are off on this server.");
		return;
	}
	rc = token_check(c->http_secret, c->http_secret_len, "ack", token,
	    clock_now_us() / 1000000, &xid, &who);
	if (rc == TOKEN_EXPIRED) {
		pages_message(req, 403, "Forbidden", "Link expired",
		    "This link has expired. Acknowledge with vialwatchctl, or "
		    "from a newer alarm email.");
		return;
	}
	if (rc != TOKEN_OK) {
		if (log_ratelimit(&pages_rl_refused, 5, clock_mono_ms()))
			log_info("ack: refused a link that is not valid");
		pages_message(req, 403, "Forbidden", "Link not valid",
		    "This link is not valid: it may have been cut short in "
		    "the email. Open it from the email again.");
		return;
	}
	if (cmd == EVHTTP_REQ_POST && pages_closeout_wanted(req)) {
		pages_closeout_post(vw, pc, req, xid, who);
		return;
	}
	if (cmd == EVHTTP_REQ_POST && pages_form(req, &name, &note) != 0) {
		free(who);
		return;
	}
	if (!pgconn_up(pc)) {
		free(who);
		free(name);
		free(note);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now. Try again in a "
		    "minute.");
		return;
	}
	w = pages_wait_new(vw, req, xid, who, cmd == EVHTTP_REQ_POST);
	w->pc = pc;
	snprintf(id, sizeof id, "%lld", (long long)xid);
	p[0] = id;
	if (w->post) {
		p[1] = name;
		p[2] = note;
		p[3] = who;
		rc = pgconn_query(pc, "select acked_now, to_char(acked_at, "
		    "'YYYY-MM-DD HH24:MI:SS TZ'), acked_by, action_note from "
		    "vialwatch.excursion_ack($1, $2, $3, $4)", 4, p,
		    pages_on_acked, w);
	} else
		rc = pgconn_query(pc, "select * from "
		    "vialwatch.excursion_ack_page($1)", 1, p,
		    pages_on_ack_page, w);
	free(name);
	free(note);
	if (rc != 0) {
		pages_wait_end(w);
		pages_wait_free(w);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "The database cannot be reached just now.");
	}
}

/* GET /unsubscribe/TOKEN: who, and a button; changes nothing. */
static void
pages_on_unsubscribe_page(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req = pages_wait_end(w);
	struct evbuffer		*b;
	const char		*clinic, *name, *since;

	if (req == NULL)
		goto out;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "This page cannot be shown just now. Reload it in a "
		    "minute.");
		goto out;
	}
	if (PQntuples(res) != 1) {
		pages_message(req, 404, "Not Found", "Unknown link",
		    "There is nobody to unsubscribe for this link any more.");
		goto out;
	}
	clinic = pgconn_text(res, 0, 0);
	name = pgconn_text(res, 0, 1);
	since = pgconn_text(res, 0, 2);
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	pages_head(b, since != NULL ? "Unsubscribed" : "Unsubscribe");
	if (since != NULL) {
		evbuffer_add_printf(b, "<p>You get no reminders from <strong>");
		pages_escape(b, clinic);
		evbuffer_add_printf(b, "</strong> since ");
		pages_escape(b, since);
		evbuffer_add_printf(b, ".</p>\n");
	} else {
		evbuffer_add_printf(b, "<p>");
		if (name != NULL && *name != '\0') {
			evbuffer_add_printf(b, "Hello ");
			pages_escape(b, name);
			evbuffer_add_printf(b, ", do");
		} else
			evbuffer_add_printf(b, "Do");
		evbuffer_add_printf(b, " you want to stop the treatment "
		    "reminders from <strong>");
		pages_escape(b, clinic);
		evbuffer_add_printf(b, "</strong>?</p>\n<form method=\"post\" "
		    "action=\"");
		pages_escape(b, w->path);
		evbuffer_add_printf(b, "\">\n<button type=\"submit\">"
		    "Unsubscribe</button>\n</form>\n<p>Nothing changes until "
		    "you press the button. The clinic can still contact you "
		    "about your appointments.</p>\n");
	}
	pages_reply(req, 200, "OK", b);
	evbuffer_free(b);
out:
	pages_wait_free(w);
}

/* POST /unsubscribe/TOKEN: done, or it was already. */
static void
pages_on_unsubscribed(const PGresult *res, void *arg)
{
	struct pages_wait	*w = arg;
	struct evhttp_request	*req = pages_wait_end(w);
	struct evbuffer		*b;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (res != NULL)
			log_warnx("unsubscribe: patient %lld: %.*s",
			    (long long)w->id,
			    (int)strcspn(PQresultErrorMessage(res), "\n"),
			    PQresultErrorMessage(res));
		if (req != NULL)
			pages_message(req, 503, "Service Unavailable",
			    "Try again", "This could not be recorded just "
			    "now. Press the button again in a minute.");
		goto out;
	}
	if (PQntuples(res) != 1) {
		if (req != NULL)
			pages_message(req, 404, "Not Found", "Unknown link",
			    "There is nobody to unsubscribe for this link any "
			    "more.");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
		metrics.unsubscribes++;
		log_info("unsubscribe: patient %lld unsubscribed",
		    (long long)w->id);
	}
	if (req == NULL)
		goto out;
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	pages_head(b, "Unsubscribed");
	evbuffer_add_printf(b, "<p>You will get no more treatment reminders "
	    "from <strong>");
	pages_escape(b, PQgetvalue(res, 0, 0));
	evbuffer_add_printf(b, "</strong> (since ");
	pages_escape(b, PQgetvalue(res, 0, 1));
	evbuffer_add_printf(b, ").</p>\n");
	pages_reply(req, 200, "OK", b);
	evbuffer_free(b);
out:
	pages_wait_free(w);
}

/*
 * /unsubscribe/TOKEN.  The POST unsubscribes whatever its body: the
 * page's button, or a mail client's one-click List-Unsubscribe-Post
 * (RFC 8058) with "List-Unsubscribe=One-Click".
 */
void
pages_unsubscribe(struct vialwatchd *vw, struct evhttp_request *req,
    const char *token)
{
	const struct conf	*c = vw->conf;
	struct pgconn		*pc = http_pgconn(vw->http);
	struct pages_wait	*w;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	const char		*p[1];
	char			*who, id[24];
	int64_t			 pid;
	int			 rc;

	if (c->http_secret == NULL) {
		pages_message(req, 404, "Not Found", "No links",
		    "Signed links are off on this server.");
		return;
	}
	rc = token_check(c->http_secret, c->http_secret_len, "unsubscribe",
	    token, clock_now_us() / 1000000, &pid, &who);
	if (rc == TOKEN_EXPIRED) {
		pages_message(req, 403, "Forbidden", "Link expired",
		    "This link has expired. Use the link in a newer reminder, "
		    "or ask the clinic to stop the reminders.");
		return;
	}
	if (rc != TOKEN_OK) {
		if (log_ratelimit(&pages_rl_refused, 5, clock_mono_ms()))
			log_info("unsubscribe: refused a link that is not "
			    "valid");
		pages_message(req, 403, "Forbidden", "Link not valid",
		    "This link is not valid: it may have been cut short in "
		    "the email. Open it from the email again.");
		return;
	}
	if (!pgconn_up(pc)) {
		free(who);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "This cannot be done just now. Try again in a minute.");
		return;
	}
	w = pages_wait_new(vw, req, pid, who, cmd == EVHTTP_REQ_POST);
	snprintf(id, sizeof id, "%lld", (long long)pid);
	p[0] = id;
	if (w->post)
		rc = pgconn_query(pc, "select * from "
		    "vialwatch.patient_unsubscribe($1)", 1, p,
		    pages_on_unsubscribed, w);
	else
		rc = pgconn_query(pc, "select * from "
		    "vialwatch.patient_unsubscribe_page($1)", 1, p,
		    pages_on_unsubscribe_page, w);
	if (rc != 0) {
		pages_wait_end(w);
		pages_wait_free(w);
		pages_message(req, 503, "Service Unavailable", "Try again",
		    "This cannot be done just now. Try again in a minute.");
	}
}
