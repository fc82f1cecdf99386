/*
 * vialwatchctl watchdog: for cron or a systemd timer, best on another
 * machine than the daemons.  It runs vialwatch.daemon_watch()
 * (sql/010_staying_loud.sql) as the daemons do: a daemon whose heartbeat is
 * older than [alerts] daemon_silent_after is reported to the clinics'
 * admin contacts, once, and again once it is back.  Those emails are sent
 * from here too, by [smtp], since no daemon may be left to send them.
 * Exit status 1 when a daemon is silent, an email could not be sent or the
 * database cannot be reached.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/time.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "conf.h"
#include "ctl.h"
#include "mail.h"
#include "xmalloc.h"

#define WATCHDOG_LEASE		"5 minutes"
#define WATCHDOG_RETRY		"1 minute"
#define WATCHDOG_TIMEOUT_S	60L

static const char watch_sql[] =
    "select name, host, pid::text, to_char(beat_at at time zone 'UTC',"
    " 'YYYY-MM-DD HH24:MI:SS') || ' UTC', case when silent then 'silent'"
    " else 'ok' end, coalesce(reported, '-'), coalesce(queued, 0)::text,"
    " json_build_object('name', name, 'host', host, 'pid', pid,"
    " 'version', version, 'started_at', started_at, 'beat_at', beat_at,"
    " 'silent', silent, 'reported', reported)::text"
    " from vialwatch.daemon_watch($1::bigint * interval '1 millisecond',"
    " null)";

/* The daemons' emails due, taken for a lease as the outbox does. */
static const char claim_sql[] =
    "update vialwatch.notification n"
    " set attempts = n.attempts + 1,"
    " next_attempt_at = now() + interval '" WATCHDOG_LEASE "'"
    " where n.id in (select d.id from vialwatch.notification d"
    " where d.dedupe_key like 'daemon:%' and d.channel = 'email'"
    " and d.status in ('pending', 'failed') and d.next_attempt_at <= now()"
    " order by d.id for update skip locked)"
    " returning n.id::text, n.attempts::text, n.recipient, n.subject, n.body";

static const char done_sql[] =
    "select vialwatch.notification_done($1, $2, $3,"
    " interval '" WATCHDOG_RETRY "', false)";

/* The message being uploaded. */
struct watchdog_upload {
	const char	*data;
	size_t		 left;
};

static size_t
watchdog_on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct watchdog_upload	*u = arg;
	size_t			 len = size * n;

	if (len > u->left)
		len = u->left;
	memcpy(buf, u->data, len);
	u->data += len;
	u->left -= len;
	return (len);
}

/* Send one message by [smtp]; NULL, or the error to free. */
static char *
watchdog_send(const struct conf *c, const struct mail *m)
{
	struct watchdog_upload	 u;
	struct curl_slist	*rcpt = NULL;
	struct timeval		 tv;
	char			 err[CURL_ERROR_SIZE] = "", *data, *from, *to;
	char			*cause = NULL;
	CURL			*e;
	CURLcode		 rc;

	gettimeofday(&tv, NULL);
	data = mail_format(m, tv.tv_sec * 1000000LL + tv.tv_usec);
	from = mail_address(c->smtp_from);
	xasprintf(&to, "<%s>", m->to);
	rcpt = curl_slist_append(rcpt, to);
	u.data = data;
	u.left = strlen(data);
	if ((e = curl_easy_init()) == NULL)
		return (xstrdup("curl_easy_init failed"));
	curl_easy_setopt(e, CURLOPT_URL, c->smtp_url);
	curl_easy_setopt(e, CURLOPT_USE_SSL, c->smtp_tls_required &&
	    strncmp(c->smtp_url, "smtp://", 7) == 0 ? (long)CURLUSESSL_ALL :
	    (long)CURLUSESSL_NONE);
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.left);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, watchdog_on_read);
	curl_easy_setopt(e, CURLOPT_READDATA, &u);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, WATCHDOG_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
	if (c->smtp_username != NULL) {
		curl_easy_setopt(e, CURLOPT_USERNAME, c->smtp_username);
		if (c->smtp_password != NULL)
			curl_easy_setopt(e, CURLOPT_PASSWORD, c->smtp_password);
	}
	if ((rc = curl_easy_perform(e)) != CURLE_OK)
		xasprintf(&cause, "%s", *err != '\0' ? err :
		    curl_easy_strerror(rc));
	curl_easy_cleanup(e);
	curl_slist_free_all(rcpt);
	free(to);
	free(from);
	free(data);
	return (cause);
}

/* Send the daemons' emails due; the number that failed, or -1. */
static int
watchdog_mail(struct ctl *ctl, int *sent)
{
	struct mail	 m;
	PGresult	*res, *done;
	const char	*p[3];
	char		*cause, mid[48];
	int		 i, failed = 0;

	if ((res = ctl_query(ctl, claim_sql, 0, NULL)) == NULL)
		return (-1);
	for (i = 0; i < PQntuples(res); i++) {
		memset(&m, 0, sizeof m);
		snprintf(mid, sizeof mid, "notification-%s",
		    PQgetvalue(res, i, 0));
		m.from = ctl->conf->smtp_from;
		m.to = PQgetvalue(res, i, 2);
		m.subject = PQgetvalue(res, i, 3);
		m.text = PQgetvalue(res, i, 4);
		m.id = mid;
		if ((cause = watchdog_send(ctl->conf, &m)) != NULL) {
			ctl_warnx("watchdog: email to %s: %s", m.to, cause);
			failed++;
		} else
			(*sent)++;
		p[0] = PQgetvalue(res, i, 0);
		p[1] = PQgetvalue(res, i, 1);
		p[2] = cause;
		if ((done = ctl_query(ctl, done_sql, 3, p)) != NULL)
			PQclear(done);
		free(cause);
	}
	PQclear(res);
	return (failed);
}

/* Print the daemons, as a table or JSON; the number silent. */
static int
watchdog_print(const PGresult *res, int json, int sent)
{
	static const char *const	 head[] = { "NAME", "HOST", "PID",
					    "LAST_BEAT", "STATE", "REPORTED" };
	int				 i, n = PQntuples(res), silent = 0;

	for (i = 0; i < n; i++)
		silent += strcmp(PQgetvalue(res, i, 4), "silent") == 0;
	if (json) {
		printf("{\"daemons\":[");
		for (i = 0; i < n; i++)
			printf("%s%s", i > 0 ? "," : "", PQgetvalue(res, i, 7));
		printf("],\"silent\":%d,\"emails_sent\":%d}\n", silent, sent);
		return (silent);
	}
	ctl_table(res, head, 6);
	printf("%d daemon%s, %d silent; %d admin email%s sent\n", n,
	    n == 1 ? "" : "s", silent, sent, sent == 1 ? "" : "s");
	return (silent);
}

/* vialwatchctl watchdog --forget NAME */
static int
watchdog_forget(struct ctl *ctl, const char *name)
{
	PGresult	*res;
	const char	*p[1] = { name };
	int		 found;

	if ((res = ctl_query(ctl, "select vialwatch.daemon_forget($1)", 1,
	    p)) == NULL)
		return (1);
	found = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!found) {
		ctl_warnx("watchdog: no daemon named \"%s\"", name);
		return (1);
	}
	printf("daemon %s forgotten: its silence is no longer reported\n",
	    name);
	return (0);
}

/* vialwatchctl watchdog [--json] [--forget NAME] */
int
ctl_watchdog(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "forget", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*forget = NULL, *p[1];
	char				 ms[32];
	PGresult			*res;
	int				 ch, json = ctl_json, sent = 0, failed, silent;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (ch == 'j')
			json = 1;
		else if (ch == 'f')
			forget = optarg;
		else
			return (CTL_USAGE);
	}
	if (optind != argc) {
		ctl_warnx("watchdog: unexpected argument: %s", argv[optind]);
		return (CTL_USAGE);
	}
	if (forget != NULL)
		return (watchdog_forget(ctl, forget));

	snprintf(ms, sizeof ms, "%lld",
	    (long long)ctl->conf->alerts_daemon_silent_after_ms);
	p[0] = ms;
	ctl->context = "watchdog";
	if ((res = ctl_query(ctl, watch_sql, 1, p)) == NULL)
		return (1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	failed = watchdog_mail(ctl, &sent);
	curl_global_cleanup();
	silent = watchdog_print(res, json, sent);
	PQclear(res);
	ctl->context = NULL;
	return (silent > 0 || failed != 0 ? 1 : 0);
}
