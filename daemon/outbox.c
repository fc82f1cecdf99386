/*
 * The outbox: every notification is a vialwatch.notification row, queued
 * in the transaction of its cause (sql/004_excursions.sql,
 * sql/006_outbox.sql); this sends them.
 *
 * Due rows are claimed with vialwatch.notification_claim(), which takes
 * them FOR UPDATE SKIP LOCKED, most urgent first (alarms before warnings
 * before reminders), and leases them: another daemon on the same
 * database skips them until the lease runs out.  Emails and hooks have
 * in-flight slots of their own, so that hung hooks never hold an email.  Each is sent, by SMTP
 * (smtp.c) or by running a hook (hook.c), and its outcome is written with
 * vialwatch.notification_done(): sent, or failed and due again after an
 * exponential backoff with jitter, or dead after OUTBOX_ATTEMPTS_MAX
 * attempts, with the error kept.  An outcome that cannot be written (the
 * database is away) is kept and written on reconnect.
 *
 * A NOTIFY on vialwatch_outbox, sent by each insert, wakes the claim at
 * once; a poll each second finds the retries.  A timer runs
 * vialwatch.escalate(), which queues the escalations and repeats of
 * alarms nobody has acknowledged.
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
#include <event2/event_struct.h>

#include <json-c/json.h>

#include "calendar.h"
#include "checks.h"
#include "clock.h"
#include "conf.h"
#include "hook.h"
#include "log.h"
#include "mail.h"
#include "metrics.h"
#include "outbox.h"
#include "pgconn.h"
#include "smtp.h"
#include "template.h"
#include "token.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define OUTBOX_INFLIGHT_MAX	8	/* emails at once */
#define OUTBOX_HOOKS_MAX	8	/* hooks at once, beside the emails */
#define OUTBOX_ATTEMPTS_MAX	20	/* then dead: about 4 h of retries */
#define OUTBOX_PERMANENT_MAX	3	/* attempts at a 5xx answer */
#define OUTBOX_RETRY_MIN_MS	5000
#define OUTBOX_RETRY_MAX_MS	(15 * 60 * 1000)
/* Two rounds of 4 sends of at most 60 s (smtp.c) plus QUIT, and more. */
#define OUTBOX_LEASE_MIN_MS	(5 * 60 * 1000)
#define OUTBOX_POLL_MS		1000
#define OUTBOX_STATS_MS		10000
#define OUTBOX_ACK_VALID_S	(30 * 24 * 3600)
#define OUTBOX_UNSUBSCRIBE_VALID_S (400 * 24 * 3600)
#define OUTBOX_CHANNEL		"vialwatch_outbox"

/* One claimed row being sent. */
struct outbox_send {
	struct outbox		*ob;
	int64_t			 id;
	int			 attempts;
	int			 kind;		/* OUTBOX_EMAIL, OUTBOX_HOOK */
	double			 age_s;		/* since queued, at claim */
	int64_t			 claimed_ms;
	TAILQ_ENTRY(outbox_send) entry;
};
TAILQ_HEAD(outbox_sends, outbox_send);

/* The outcome of a send, until written. */
struct outbox_result {
	struct outbox		*ob;
	int64_t			 id;
	int			 attempts;
	char			*error;		/* NULL: sent */
	int64_t			 retry_ms;
	int			 dead;
	int			 writing;
	TAILQ_ENTRY(outbox_result) entry;
};
TAILQ_HEAD(outbox_results, outbox_result);

/* The claim of one kind of channel: emails, or hooks. */
struct outbox_claim {
	struct outbox		*ob;
	int			 kind;
	int			 claiming;
	int			 again;		/* claim once more after */
};

struct outbox {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	struct smtp		*smtp;
	struct outbox_sends	 sends;
	int			 nsends;
	int			 nkind[OUTBOX_CHANNELS];	/* sends by kind */
	struct outbox_results	 results;
	int			 nresults;
	struct outbox_claim	 claims[OUTBOX_CHANNELS];
	int			 escalating;
	int			 counting;
	int			 draining;
	void			(*drained)(void *);
	void			*drained_arg;
	int64_t			 backlog[OUTBOX_CHANNELS][OUTBOX_STATES];

	struct event		 ev_poll;
	struct event		 ev_escalate;
	struct event		 ev_stats;
};

static void	outbox_claim(struct outbox *);
static void	outbox_write_results(struct outbox *);

/* "1234 milliseconds", an interval PostgreSQL reads. */
static const char *
outbox_interval(char *buf, size_t len, int64_t ms)
{
	snprintf(buf, len, "%lld milliseconds", (long long)ms);
	return (buf);
}

/* The wait before attempt n + 1: doubling, capped, jittered by 20 %. */
static int64_t
outbox_retry_ms(int attempts)
{
	int64_t	ms = OUTBOX_RETRY_MIN_MS;
	int	i;

	for (i = 1; i < attempts && ms < OUTBOX_RETRY_MAX_MS; i++)
		ms *= 2;
	if (ms > OUTBOX_RETRY_MAX_MS)
		ms = OUTBOX_RETRY_MAX_MS;
	return (ms - ms / 5 + random() % (2 * (ms / 5) + 1));
}

/* The lease of a claim: longer than any send may take. */
static int64_t
outbox_lease_ms(const struct conf *c)
{
	int64_t	ms = OUTBOX_LEASE_MIN_MS;
	int	i;

	for (i = 0; i < c->nhooks; i++) {
		if (c->hooks[i].timeout_ms + 60000 > ms)
			ms = c->hooks[i].timeout_ms + 60000;
	}
	return (ms);
}

/* The contents of b as a string to free; b is freed. */
static char *
outbox_string(struct evbuffer *b)
{
	size_t	 len = evbuffer_get_length(b);
	char	*s;

	s = xmalloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return (s);
}

/*
 * The channels of a kind this daemon sends, a text[] literal: "email", or
 * its hooks; NULL for hooks when it has none.
 */
static char *
outbox_channels(const struct conf *c, int kind)
{
	struct evbuffer	*b;
	const char	*p;
	int		 i;

	if (kind == OUTBOX_EMAIL)
		return (xstrdup("{\"email\"}"));
	if (c->nhooks == 0)
		return (NULL);
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add(b, "{", 1);
	for (i = 0; i < c->nhooks; i++) {
		evbuffer_add_printf(b, "%s\"hook:", i > 0 ? "," : "");
		for (p = c->hooks[i].name; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				evbuffer_add(b, "\\", 1);
			evbuffer_add(b, p, 1);
		}
		evbuffer_add(b, "\"", 1);
	}
	evbuffer_add(b, "}", 1);
	return (outbox_string(b));
}

/* The signed link to page purpose ("ack", "check") of id for recipient. */
static char *
outbox_link(const struct conf *c, const char *purpose, int64_t id,
    const char *recipient, int64_t valid_s)
{
	char	*token, *url;

	if (c->http_secret == NULL) {
		xasprintf(&url, "(no link: [http] secret_file is not set)");
		return (url);
	}
	token = token_make(c->http_secret, c->http_secret_len, purpose, id,
	    recipient, clock_now_us() / 1000000 + valid_s);
	xasprintf(&url, "%s/%s/%s", c->http_public_url, purpose, token);
	free(token);
	return (url);
}

/*
 * body with each {{ack_url}} replaced by the link acknowledging the
 * excursion for recipient, and each {{check_url:ID}} by the link of clinic
 * ID's check page (checks.c).
 */
static char *
outbox_body(const struct conf *c, const char *body, int64_t excursion_id,
    const char *recipient)
{
	static const char	 ack[] = "{{ack_url}}", check[] = "{{check_url:";
	struct evbuffer		*b;
	const char		*p, *q;
	char			*url, *end;
	long long		 id;

	if (strstr(body, "{{") == NULL)
		return (xstrdup(body));
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	for (p = body; (q = strstr(p, "{{")) != NULL; ) {
		evbuffer_add(b, p, q - p);
		if (excursion_id != 0 && strncmp(q, ack, strlen(ack)) == 0) {
			url = outbox_link(c, "ack", excursion_id, recipient,
			    OUTBOX_ACK_VALID_S);
			p = q + strlen(ack);
		} else if (strncmp(q, check, strlen(check)) == 0 &&
		    (id = strtoll(q + strlen(check), &end, 10)) > 0 &&
		    strncmp(end, "}}", 2) == 0) {
			url = outbox_link(c, "check", id, recipient,
			    CHECKS_LINK_VALID_S);
			p = end + 2;
		} else {
			evbuffer_add(b, "{{", 2);
			p = q + 2;
			continue;
		}
		evbuffer_add(b, url, strlen(url));
		free(url);
	}
	evbuffer_add(b, p, strlen(p));
	return (outbox_string(b));
}

/* A reminder's template variable, from its JSON object. */
static const char *
outbox_var(const char *name, void *arg)
{
	struct json_object	*x;

	if (!json_object_object_get_ex(arg, name, &x))
		return (NULL);
	return (json_object_get_string(x));
}

/* "2027-02-19" in the clinic's locale's long form, to free. */
static char *
outbox_date(const char *locale, const char *iso)
{
	int	y, m, d;

	if (iso == NULL || sscanf(iso, "%d-%d-%d", &y, &m, &d) != 3)
		return (xstrdup(iso != NULL ? iso : ""));
	return (calendar_format_date(locale, y, m, d));
}

/*
 * A reminder: its body holds the templates' variables (sql/007); render
 * the email, with the link that unsubscribes the patient.  0, or -1 with
 * *cause set (-2 when another daemon could send it).
 */
static int
outbox_reminder(const struct conf *c, const char *body, const char *recipient,
    struct mail *m, char **subject, char **text, char **html, char **url,
    char **from, char **cause)
{
	static const char	*dates[] = { "treatment.date", "due_date" };
	struct json_object	*o, *x;
	const char		*locale;
	char			*token, *addr, *s, *p;
	long long		 patient;
	size_t			 i;

	*subject = *text = *html = *url = *from = NULL;
	if (c->http_secret == NULL) {
		*cause = xstrdup("no unsubscribe link: [http] secret_file is "
		    "not set");
		return (-2);	/* another daemon may have it */
	}
	if ((o = json_tokener_parse(body)) == NULL ||
	    !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "patient.id", &x) ||
	    (patient = json_object_get_int64(x)) <= 0) {
		json_object_put(o);
		*cause = xstrdup("the reminder's variables are not readable");
		return (-1);
	}
	/* The dates in the clinic's language, and the link. */
	locale = outbox_var("clinic.locale", o);
	for (i = 0; i < sizeof dates / sizeof dates[0]; i++) {
		s = outbox_date(locale, outbox_var(dates[i], o));
		json_object_object_add(o, dates[i], json_object_new_string(s));
		free(s);
	}
	token = token_make(c->http_secret, c->http_secret_len, "unsubscribe",
	    patient, recipient, clock_now_us() / 1000000 +
	    OUTBOX_UNSUBSCRIBE_VALID_S);
	xasprintf(url, "%s/unsubscribe/%s", c->http_public_url, token);
	free(token);
	json_object_object_add(o, "unsubscribe_url",
	    json_object_new_string(*url));

	/* From the clinic, at the address of [smtp] from. */
	if ((addr = mail_address(c->smtp_from)) != NULL) {
		s = xstrdup(outbox_var("clinic.name", o) != NULL ?
		    outbox_var("clinic.name", o) : "");
		for (p = s; *p != '\0'; p++) {
			if (*p == '<' || *p == '>' || *p == '"')
				*p = ' ';
		}
		xasprintf(from, "%s <%s>", s, addr);
		m->from = *from;
		free(s);
		free(addr);
	}

	template_render(c->templates, outbox_var, o, subject, text, html);
	json_object_put(o);
	m->subject = *subject;
	m->text = *text;
	m->html = *html;
	m->unsubscribe = *url;
	return (0);
}

/* Written: forget it; lost: keep it for the next connection. */
static void
outbox_on_written(const PGresult *res, void *arg)
{
	struct outbox_result	*r = arg;
	struct outbox		*ob = r->ob;
	char			 what[64];

	r->writing = 0;
	if (res == NULL)
		return;		/* written again on reconnect */
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(what, sizeof what, "recording notification %lld",
		    (long long)r->id);
		if (pgconn_failed(ob->pc, res, what)) {
			/* Rolled back by a restart or a failover: again. */
			pgconn_drop(ob->pc, "the outcome of a send will be "
			    "written again");
			return;
		}
	} else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		log_warnx("outbox: notification %lld was claimed again before "
		    "its outcome was recorded", (long long)r->id);
	TAILQ_REMOVE(&ob->results, r, entry);
	ob->nresults--;
	free(r->error);
	free(r);
	if (ob->draining)
		ob->drained(ob->drained_arg);
}

/* Write every outcome not written yet. */
static void
outbox_write_results(struct outbox *ob)
{
	static const char	 sql[] = "select vialwatch.notification_done("
	    "$1, $2, $3, $4::interval, $5)";
	struct outbox_result	*r;
	const char		*p[5];
	char			 id[24], att[16], retry[48];

	TAILQ_FOREACH(r, &ob->results, entry) {
		if (r->writing || !pgconn_up(ob->pc))
			continue;
		snprintf(id, sizeof id, "%lld", (long long)r->id);
		snprintf(att, sizeof att, "%d", r->attempts);
		p[0] = id;
		p[1] = att;
		p[2] = r->error;
		p[3] = outbox_interval(retry, sizeof retry, r->retry_ms);
		p[4] = r->dead ? "true" : "false";
		if (pgconn_query(ob->pc, sql, 5, p, outbox_on_written, r) != 0)
			return;
		r->writing = 1;
	}
}

/* A send is over: count it, keep its outcome, claim more. */
static void
outbox_finish(struct outbox_send *s, const char *error, int permanent)
{
	struct outbox		*ob = s->ob;
	struct outbox_result	*r;

	r = xcalloc(1, sizeof *r);
	r->ob = ob;
	r->id = s->id;
	r->attempts = s->attempts;
	if (error == NULL) {
		metrics.notifications[s->kind][METRICS_SENT]++;
		metrics_delivery(s->age_s + (clock_mono_ms() - s->claimed_ms) /
		    1000.0);
		log_debug("outbox: notification %lld sent", (long long)s->id);
	} else {
		r->error = xstrdup(error);
		r->retry_ms = outbox_retry_ms(s->attempts);
		r->dead = s->attempts >= OUTBOX_ATTEMPTS_MAX ||
		    (permanent && s->attempts >= OUTBOX_PERMANENT_MAX);
		if (r->dead)
			metrics.notifications[s->kind][METRICS_DEAD]++;
		else
			metrics.notifications[s->kind][METRICS_FAILED]++;
		log_warnx("outbox: notification %lld (%s, attempt %d) %s: %s",
		    (long long)s->id, s->kind == OUTBOX_EMAIL ? "email" :
		    "hook", s->attempts, r->dead ? "is dead" :
		    "failed, will be retried", error);
	}
	TAILQ_INSERT_TAIL(&ob->results, r, entry);
	ob->nresults++;
	TAILQ_REMOVE(&ob->sends, s, entry);
	ob->nsends--;
	ob->nkind[s->kind]--;
	free(s);
	outbox_write_results(ob);
	outbox_claim(ob);
}

static void
outbox_on_smtp(const char *error, int permanent, void *arg)
{
	outbox_finish(arg, error, permanent);
}

static void
outbox_on_hook(const char *error, void *arg)
{
	outbox_finish(arg, error, 0);
}

/* Start sending one claimed row. */
static void
outbox_dispatch(struct outbox *ob, const PGresult *res, int i)
{
	const struct conf	*c = ob->vw->conf;
	struct outbox_send	*s;
	struct mail		 m;
	const char		*channel = PQgetvalue(res, i, 1);
	const char		*recipient = PQgetvalue(res, i, 2);
	const char		*body = pgconn_text(res, i, 4);
	char			*text, *cause = NULL, mid[48];
	char			*subject, *plain, *html, *url, *from;
	int			 j, rc = -1, permanent = 1;

	s = xcalloc(1, sizeof *s);
	s->ob = ob;
	s->id = pgconn_int(res, i, 0);
	s->attempts = (int)pgconn_int(res, i, 5);
	s->age_s = pgconn_double(res, i, 9);
	s->claimed_ms = clock_mono_ms();
	s->kind = strncmp(channel, "hook:", 5) == 0 ? OUTBOX_HOOK :
	    OUTBOX_EMAIL;
	TAILQ_INSERT_TAIL(&ob->sends, s, entry);
	ob->nsends++;
	ob->nkind[s->kind]++;
	if (body == NULL)
		body = "";

	if (strcmp(channel, "email") == 0) {
		snprintf(mid, sizeof mid, "notification-%lld",
		    (long long)s->id);
		memset(&m, 0, sizeof m);
		m.from = c->smtp_from;
		m.to = recipient;
		m.id = mid;
		if (strncmp(PQgetvalue(res, i, 8), "reminder:", 9) == 0 &&
		    PQgetisnull(res, i, 7))
			cause = xstrdup("the reminder was deleted");
		else if (!PQgetisnull(res, i, 7)) {
			text = NULL;
			if ((rc = outbox_reminder(c, body, recipient, &m,
			    &subject, &plain, &html, &url, &from, &cause)) == 0)
				rc = smtp_send(ob->smtp, &m, outbox_on_smtp, s);
			else if (rc == -2)
				permanent = 0;
			free(from);
			free(subject);
			free(plain);
			free(html);
			free(url);
		} else {
			text = outbox_body(c, body, pgconn_int(res, i, 6),
			    recipient);
			m.subject = pgconn_text(res, i, 3);
			if (m.subject == NULL)
				m.subject = "";
			m.text = text;
			rc = smtp_send(ob->smtp, &m, outbox_on_smtp, s);
			free(text);
		}
		if (rc != 0 && cause == NULL)
			cause = xstrdup("the mail could not be started");
	} else if (s->kind == OUTBOX_HOOK) {
		for (j = 0; j < c->nhooks; j++) {
			if (strcmp(c->hooks[j].name, channel + 5) == 0)
				break;
		}
		if (j == c->nhooks)
			cause = xstrdup("no such hook in the configuration");
		else
			rc = hook_run(ob->vw->base, &c->hooks[j], body,
			    outbox_on_hook, s, &cause);
	} else
		cause = xstrdup("unknown channel");
	if (rc != 0) {
		/* Mostly nothing to retry for: a bad address, no such hook. */
		outbox_finish(s, cause, permanent);
		free(cause);
	}
}

static void
outbox_on_claimed(const PGresult *res, void *arg)
{
	struct outbox_claim	*cl = arg;
	struct outbox		*ob = cl->ob;
	int			 i, n;

	/*
	 * Still claiming while dispatching: a send that fails at once must
	 * not claim again with room counted wrong.
	 */
	if (res != NULL && (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQnfields(res) != 10)) {
		pgconn_failed(ob->pc, res, "claiming");
	} else if (res != NULL) {
		n = PQntuples(res);
		if (n > 0)
			log_debug("outbox: claimed %d notifications", n);
		for (i = 0; i < n; i++)
			outbox_dispatch(ob, res, i);
	}
	cl->claiming = 0;
	if (ob->draining)
		ob->drained(ob->drained_arg);
	else if (cl->again && res != NULL) {
		cl->again = 0;
		outbox_claim(ob);
	}
}

/* Claim as many due rows of a kind as there is room for. */
static void
outbox_claim_kind(struct outbox *ob, struct outbox_claim *cl, int room)
{
	static const char	 sql[] = "select * from "
	    "vialwatch.notification_claim($1, $2::interval, $3::text[], "
	    "$4::integer, $5::integer, to_timestamp($6::float8))";
	const struct conf	*c = ob->vw->conf;
	const char		*p[6];
	char			 limit[16], lease[48], *channels;
	char			 start[16], end[16], now[32];

	if (ob->draining || !pgconn_up(ob->pc) || room <= 0)
		return;
	if (cl->claiming) {
		cl->again = 1;
		return;
	}
	if ((channels = outbox_channels(c, cl->kind)) == NULL)
		return;
	snprintf(limit, sizeof limit, "%d", room);
	p[0] = limit;
	p[1] = outbox_interval(lease, sizeof lease, outbox_lease_ms(c));
	p[2] = channels;
	/*
	 * Reminders only inside the send window, and only with signed links
	 * to unsubscribe (NULL: none for this daemon).
	 */
	snprintf(start, sizeof start, "%d", c->reminders_window_start);
	snprintf(end, sizeof end, "%d", c->reminders_window_end);
	snprintf(now, sizeof now, "%.6f", clock_now_us() / 1e6);
	p[3] = c->http_secret != NULL ? start : NULL;
	p[4] = end;
	p[5] = now;
	if (pgconn_query(ob->pc, sql, 6, p, outbox_on_claimed, cl) == 0)
		cl->claiming = 1;
	free(channels);
}

/* Claim emails and hooks, each into its own free slots. */
static void
outbox_claim(struct outbox *ob)
{
	outbox_claim_kind(ob, &ob->claims[OUTBOX_EMAIL],
	    OUTBOX_INFLIGHT_MAX - ob->nkind[OUTBOX_EMAIL]);
	outbox_claim_kind(ob, &ob->claims[OUTBOX_HOOK],
	    OUTBOX_HOOKS_MAX - ob->nkind[OUTBOX_HOOK]);
}

static void
outbox_on_escalated(const PGresult *res, void *arg)
{
	struct outbox	*ob = arg;

	ob->escalating = 0;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		pgconn_failed(ob->pc, res, "escalating");
	else if (pgconn_int(res, 0, 0) > 0)
		log_info("outbox: %lld escalations and repeats queued",
		    pgconn_int(res, 0, 0));
}

static void
outbox_escalate(struct outbox *ob)
{
	const struct conf	*c = ob->vw->conf;
	const char		*p[2];
	char			 esc[48], rep[48];

	if (ob->escalating || ob->draining || !pgconn_up(ob->pc))
		return;
	p[0] = outbox_interval(esc, sizeof esc, c->alerts_escalate_after_ms);
	p[1] = outbox_interval(rep, sizeof rep, c->alerts_repeat_every_ms);
	if (pgconn_query(ob->pc, "select vialwatch.escalate($1::interval, "
	    "$2::interval)", 2, p, outbox_on_escalated, ob) == 0)
		ob->escalating = 1;
}

static void
outbox_on_counted(const PGresult *res, void *arg)
{
	struct outbox	*ob = arg;
	const char	*status;
	int		 i, k, st;

	ob->counting = 0;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		return;
	for (k = 0; k < OUTBOX_CHANNELS; k++) {
		for (st = 0; st < OUTBOX_STATES; st++)
			ob->backlog[k][st] = 0;
	}
	for (i = 0; i < PQntuples(res); i++) {
		k = strcmp(PQgetvalue(res, i, 0), "email") == 0 ?
		    OUTBOX_EMAIL : OUTBOX_HOOK;
		status = PQgetvalue(res, i, 1);
		if (strcmp(status, "pending") == 0)
			st = OUTBOX_PENDING;
		else if (strcmp(status, "failed") == 0)
			st = OUTBOX_FAILED;
		else
			st = OUTBOX_DEAD;
		ob->backlog[k][st] += pgconn_int(res, i, 2);
	}
}

/* Count what waits in the outbox, for /metrics and status. */
static void
outbox_count(struct outbox *ob)
{
	if (ob->counting || !pgconn_up(ob->pc))
		return;
	if (pgconn_query(ob->pc, "select split_part(channel, ':', 1), status, "
	    "count(*) from vialwatch.notification where status <> 'sent' "
	    "group by 1, 2", 0, NULL, outbox_on_counted, ob) == 0)
		ob->counting = 1;
}

static void
outbox_on_poll(evutil_socket_t fd, short events, void *arg)
{
	outbox_claim(arg);
}

static void
outbox_on_escalate(evutil_socket_t fd, short events, void *arg)
{
	outbox_escalate(arg);
}

static void
outbox_on_stats(evutil_socket_t fd, short events, void *arg)
{
	outbox_count(arg);
}

static void
outbox_up(void *arg)
{
	struct outbox	*ob = arg;

	pgconn_query(ob->pc, "listen " OUTBOX_CHANNEL, 0, NULL, NULL, NULL);
	outbox_write_results(ob);
	outbox_escalate(ob);
	outbox_claim(ob);
	outbox_count(ob);
}

static void
outbox_notify(const char *channel, const char *extra, void *arg)
{
	outbox_claim(arg);
}

/* How often to escalate: a tenth of the shortest interval, 1 to 60 s. */
static void
outbox_escalate_timer(struct outbox *ob)
{
	const struct conf	*c = ob->vw->conf;
	struct timeval		 tv;
	int64_t			 ms;

	ms = c->alerts_escalate_after_ms < c->alerts_repeat_every_ms ?
	    c->alerts_escalate_after_ms : c->alerts_repeat_every_ms;
	ms /= 10;
	if (ms < 1000)
		ms = 1000;
	if (ms > 60000)
		ms = 60000;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = ms % 1000 * 1000;
	event_del(&ob->ev_escalate);
	event_add(&ob->ev_escalate, &tv);
}

struct outbox *
outbox_new(struct vialwatchd *vw)
{
	static const struct pgconn_events events = {
		outbox_up, NULL, outbox_notify
	};
	struct outbox	*ob;
	int		 k, st;

	ob = xcalloc(1, sizeof *ob);
	ob->vw = vw;
	TAILQ_INIT(&ob->sends);
	TAILQ_INIT(&ob->results);
	for (k = 0; k < OUTBOX_CHANNELS; k++) {
		ob->claims[k].ob = ob;
		ob->claims[k].kind = k;
		for (st = 0; st < OUTBOX_STATES; st++)
			ob->backlog[k][st] = -1;
	}
	ob->pc = pgconn_new(vw->base, &vw->conf, "outbox", &events, ob);
	ob->smtp = smtp_new(vw->base, vw->conf);
	event_assign(&ob->ev_poll, vw->base, -1, EV_PERSIST, outbox_on_poll,
	    ob);
	event_assign(&ob->ev_escalate, vw->base, -1, EV_PERSIST,
	    outbox_on_escalate, ob);
	event_assign(&ob->ev_stats, vw->base, -1, EV_PERSIST, outbox_on_stats,
	    ob);
	return (ob);
}

void
outbox_start(struct outbox *ob)
{
	struct timeval	poll = { 0, OUTBOX_POLL_MS * 1000 };
	struct timeval	stats = { OUTBOX_STATS_MS / 1000, 0 };

	pgconn_start(ob->pc);
	event_add(&ob->ev_poll, &poll);
	event_add(&ob->ev_stats, &stats);
	outbox_escalate_timer(ob);
}

void
outbox_reconfigure(struct outbox *ob, const struct conf *old)
{
	smtp_reconfigure(ob->smtp, ob->vw->conf);
	outbox_escalate_timer(ob);
	pgconn_reconfigure(ob->pc, old);
}

void
outbox_drain(struct outbox *ob, void (*drained)(void *), void *arg)
{
	ob->drained = drained;
	ob->drained_arg = arg;
	ob->draining = 1;
	event_del(&ob->ev_poll);
	event_del(&ob->ev_escalate);
	event_del(&ob->ev_stats);
	ob->drained(ob->drained_arg);
}

int
outbox_pending(const struct outbox *ob)
{
	return (ob->nsends + ob->nresults + ob->claims[OUTBOX_EMAIL].claiming +
	    ob->claims[OUTBOX_HOOK].claiming);
}

int64_t
outbox_backlog(const struct outbox *ob, int kind, int state)
{
	return (ob->backlog[kind][state]);
}

struct pgconn *
outbox_conn(struct outbox *ob)
{
	return (ob->pc);
}

void
outbox_free(struct outbox *ob)
{
	struct outbox_send	*s;
	struct outbox_result	*r;

	if (ob == NULL)
		return;
	if (ob->nsends > 0 || ob->nresults > 0)
		log_warnx("outbox: %d sends under way and %d outcomes not "
		    "recorded: those rows will be sent again once their "
		    "lease runs out", ob->nsends, ob->nresults);
	event_del(&ob->ev_poll);
	event_del(&ob->ev_escalate);
	event_del(&ob->ev_stats);
	smtp_free(ob->smtp);
	hook_kill_all();
	pgconn_free(ob->pc);
	while ((s = TAILQ_FIRST(&ob->sends)) != NULL) {
		TAILQ_REMOVE(&ob->sends, s, entry);
		free(s);
	}
	while ((r = TAILQ_FIRST(&ob->results)) != NULL) {
		TAILQ_REMOVE(&ob->results, r, entry);
		free(r->error);
		free(r);
	}
	free(ob);
}
