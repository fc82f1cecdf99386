/*
 * The SMTP client: libcurl's multi interface on a sending thread.
 *
 * libcurl's SMTP waits for the answer to the end of the message and for
 * the answer to QUIT in a blocking loop (a known limit of its "done"
 * phase), each wait bounded by SMTP_RESPONSE_TIMEOUT_S. So that a slow or
 * dead mail server never holds up the event loop (MQTT, the database),
 * every transfer runs on one thread with an event base of its own, and
 * the loop only hands sends over and takes their ends back. On that base,
 * curl says which sockets to watch (smtp_on_socket) and when to wake it
 * (smtp_set_timer), the base tells it what happened through
 * curl_multi_socket_action, and finished transfers are collected from
 * curl_multi_info_read. A server that goes silent after the message still
 * holds the thread, and so the other sends, for up to twice
 * SMTP_RESPONSE_TIMEOUT_S (the end of the message, then QUIT).
 *
 * The loop and the thread share only what is under the lock: the sends not
 * started yet, the notes going back (ended sends and log lines: log.c is
 * not made for threads), the sockets curl has open and the stop flag. Each
 * side wakes the other with a byte on a pipe.
 *
 * Each send is one easy handle, set up in full by smtp_send with the
 * settings of that moment, and its own SMTP session: a connection is never
 * reused, so one opened before smtp_reconfigure (without TLS, say, or as
 * another user) never carries a later message. At most SMTP_ACTIVE_MAX run
 * at once; the others wait in order. A send's callback runs from the loop
 * only, so it may send again or free the client.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "mail.h"
#include "smtp.h"
#include "xmalloc.h"

#define SMTP_ACTIVE_MAX		4
#define SMTP_CONNECT_TIMEOUT_S	10
#define SMTP_TIMEOUT_S		60
/* Any one answer; the bound on curl's blocking waits on the thread. */
#define SMTP_RESPONSE_TIMEOUT_S	10

/* One message on its way: the thread's from the moment it is queued. */
struct smtp_job {
	CURL			*easy;
	struct curl_slist	*rcpt;
	char			*to;		/* for the log */
	char			*data;		/* the message */
	size_t			 len;
	size_t			 off;
	smtp_cb			 cb;
	void			*arg;
	char			 error[CURL_ERROR_SIZE];
	TAILQ_ENTRY(smtp_job)	 entry;
};
TAILQ_HEAD(smtp_jobs, smtp_job);

/* From the thread to the loop: a log line, or the end of a send. */
struct smtp_note {
	char			*line;		/* a log line at level, or NULL */
	int			 level;
	char			*to;
	char			*error;		/* NULL if the server took it */
	int			 permanent;
	smtp_cb			 cb;
	void			*arg;
	TAILQ_ENTRY(smtp_note)	 entry;
};
TAILQ_HEAD(smtp_notes, smtp_note);

/* A socket curl wants watched. */
struct smtp_sock {
	curl_socket_t		 fd;
	struct event		 ev;
	LIST_ENTRY(smtp_sock)	 entry;
};

struct smtp {
	/* The loop's. */
	struct event_base	*base;
	int			 done_pipe[2];	/* notes are waiting */
	struct event		 ev_done;
	int			 busy;		/* sent, end not reported */
	int			 reporting;	/* in smtp_on_done's callbacks */
	int			 dead;		/* smtp_free was called there */

	/*
	 * [smtp], copied: the conf goes on reload. Only the loop uses them;
	 * curl copies them into each easy handle in smtp_send.
	 */
	char			*url;
	int			 tls_required;
	char			*username;
	char			*password;
	char			*from;

	/* Shared. */
	pthread_mutex_t		 lock;
	struct smtp_jobs	 queue;		/* not started yet, oldest first */
	struct smtp_notes	 notes;		/* for the loop, oldest first */
	LIST_HEAD(, smtp_sock)	 socks;		/* smtp_free shuts them */
	int			 stopping;

	/* The thread's. */
	pthread_t		 thread;
	struct event_base	*tbase;
	int			 wake_pipe[2];	/* jobs are queued, or stop */
	struct event		 ev_wake;
	CURLM			*multi;
	struct event		 ev_timer;
	struct smtp_jobs	 active;	/* in curl */
	int			 nactive;
};

static int	smtp_global_done;

static void	smtp_check(struct smtp *);
static void	smtp_log(struct smtp *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Give curl its bytes of the message. */
static size_t
smtp_on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct smtp_job	*job = arg;
	size_t		 n = size * nitems;

	if (n > job->len - job->off)
		n = job->len - job->off;
	memcpy(buf, job->data + job->off, n);
	job->off += n;
	return (n);
}

/* Go back in the message, should curl need to send it again. */
static int
smtp_on_seek(void *arg, curl_off_t offset, int origin)
{
	struct smtp_job	*job = arg;

	if (origin != SEEK_SET || offset < 0 || (size_t)offset > job->len)
		return (CURL_SEEKFUNC_CANTSEEK);
	job->off = offset;
	return (CURL_SEEKFUNC_OK);
}

/* Free a job and its easy handle, out of curl's multi handle. */
static void
smtp_job_free(struct smtp_job *job)
{
	if (job->easy != NULL)
		curl_easy_cleanup(job->easy);
	curl_slist_free_all(job->rcpt);
	free(job->to);
	free(job->data);
	free(job);
}

/* Free a note; the callback's arg is not the client's. */
static void
smtp_note_free(struct smtp_note *n)
{
	free(n->line);
	free(n->to);
	free(n->error);
	free(n);
}

/* Wake the other side; a full pipe has woken it already. */
static void
smtp_wake(int fd)
{
	char	c = 0;

	while (write(fd, &c, 1) == -1 && errno == EINTR)
		;
}

/* Empty a wake pipe: one pass over the queues serves every byte. */
static void
smtp_drain(int fd)
{
	char	buf[64];
	ssize_t	n;

	while ((n = read(fd, buf, sizeof buf)) > 0 ||
	    (n == -1 && errno == EINTR))
		;
}

/* On the thread: hand a note to the loop. */
static void
smtp_note_add(struct smtp *s, struct smtp_note *n)
{
	pthread_mutex_lock(&s->lock);
	TAILQ_INSERT_TAIL(&s->notes, n, entry);
	pthread_mutex_unlock(&s->lock);
	smtp_wake(s->done_pipe[1]);
}

/* On the thread: a line for the loop to log. */
static void
smtp_log(struct smtp *s, int level, const char *fmt, ...)
{
	struct smtp_note	*n;
	char			 buf[1024];
	va_list			 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	n = xcalloc(1, sizeof *n);
	n->line = xstrdup(buf);
	n->level = level;
	smtp_note_add(s, n);
}

/* Events on a socket: hand them to curl. */
static void
smtp_on_io(evutil_socket_t fd, short events, void *arg)
{
	struct smtp	*s = arg;
	int		 flags = 0, running;
	CURLMcode	 rc;

	if (events & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	rc = curl_multi_socket_action(s->multi, fd, flags, &running);
	if (rc != CURLM_OK)
		smtp_log(s, LOG_LEVEL_WARNING, "smtp: %s",
		    curl_multi_strerror(rc));
	smtp_check(s);
}

/* curl's timeout is due. */
static void
smtp_on_timer(evutil_socket_t fd, short events, void *arg)
{
	struct smtp	*s = arg;
	int		 running;
	CURLMcode	 rc;

	rc = curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0,
	    &running);
	if (rc != CURLM_OK)
		smtp_log(s, LOG_LEVEL_WARNING, "smtp: %s",
		    curl_multi_strerror(rc));
	smtp_check(s);
}

/* curl asks for its timeout to be set (-1: none). */
static int
smtp_set_timer(CURLM *multi, long ms, void *arg)
{
	struct smtp	*s = arg;
	struct timeval	 tv;

	if (ms < 0) {
		evtimer_del(&s->ev_timer);
		return (0);
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&s->ev_timer, &tv);
	return (0);
}

/*
 * curl asks for a socket to be watched for what, or no longer. The list
 * is under the lock for smtp_free; curl says CURL_POLL_REMOVE before it
 * closes a socket, so every one listed is still open.
 */
static int
smtp_on_socket(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockp)
{
	struct smtp		*s = arg;
	struct smtp_sock	*ss = sockp;
	short			 events = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (ss != NULL) {
			event_del(&ss->ev);
			pthread_mutex_lock(&s->lock);
			LIST_REMOVE(ss, entry);
			pthread_mutex_unlock(&s->lock);
			free(ss);
		}
		return (0);
	}
	if (ss == NULL) {
		ss = xcalloc(1, sizeof *ss);
		ss->fd = fd;
		pthread_mutex_lock(&s->lock);
		LIST_INSERT_HEAD(&s->socks, ss, entry);
		if (s->stopping)
			shutdown(fd, SHUT_RDWR);
		pthread_mutex_unlock(&s->lock);
		curl_multi_assign(s->multi, fd, ss);
	} else
		event_del(&ss->ev);
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	event_assign(&ss->ev, s->tbase, fd, events, smtp_on_io, s);
	event_add(&ss->ev, NULL);
	return (0);
}

/* A one-line reason for a failed transfer, to free. */
static char *
smtp_reason(struct smtp_job *job, CURLcode result, long code)
{
	const char	*what;
	char		*reason, *p;

	what = job->error[0] != '\0' ? job->error :
	    curl_easy_strerror(result);
	if (code != 0)
		xasprintf(&reason, "%s (server answered %ld)", what, code);
	else
		reason = xstrdup(what);
	/* The error buffer may quote the server's words. */
	for (p = reason; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	return (reason);
}

/* On the thread: report a job that is out of curl to the loop, and free it. */
static void
smtp_end(struct smtp *s, struct smtp_job *job, CURLcode result, long code)
{
	struct smtp_note	*n;

	n = xcalloc(1, sizeof *n);
	n->to = job->to;
	job->to = NULL;
	n->cb = job->cb;
	n->arg = job->arg;
	if (result != CURLE_OK) {
		n->error = smtp_reason(job, result, code);
		n->permanent = code >= 500 && code < 600;
	}
	smtp_job_free(job);
	smtp_note_add(s, n);
}

/* On the thread: hand a job to curl; -1 if curl will not take it. */
static int
smtp_start(struct smtp *s, struct smtp_job *job)
{
	CURLMcode	rc;

	if ((rc = curl_multi_add_handle(s->multi, job->easy)) != CURLM_OK) {
		smtp_log(s, LOG_LEVEL_WARNING, "smtp: to %s: %s", job->to,
		    curl_multi_strerror(rc));
		return (-1);
	}
	TAILQ_INSERT_TAIL(&s->active, job, entry);
	s->nactive++;
	smtp_log(s, LOG_LEVEL_DEBUG, "smtp: sending to %s (%zu bytes)",
	    job->to, job->len);
	return (0);
}

/* On the thread: the oldest queued job, if one may start now. */
static struct smtp_job *
smtp_next(struct smtp *s)
{
	struct smtp_job	*job = NULL;

	if (s->nactive >= SMTP_ACTIVE_MAX)
		return (NULL);
	pthread_mutex_lock(&s->lock);
	if (!s->stopping && (job = TAILQ_FIRST(&s->queue)) != NULL)
		TAILQ_REMOVE(&s->queue, job, entry);
	pthread_mutex_unlock(&s->lock);
	return (job);
}

/* On the thread: report the finished transfers, start queued ones. */
static void
smtp_check(struct smtp *s)
{
	struct smtp_job	*job;
	CURLMsg		*msg;
	CURLcode	 result;
	long		 code;
	int		 left;

	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &job);
		result = msg->data.result;
		code = 0;
		curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &code);
		curl_multi_remove_handle(s->multi, job->easy);
		TAILQ_REMOVE(&s->active, job, entry);
		s->nactive--;
		smtp_end(s, job, result, code);
	}
	while ((job = smtp_next(s)) != NULL) {
		if (smtp_start(s, job) != 0)
			smtp_end(s, job, CURLE_FAILED_INIT, 0);
	}
}

/* On the thread: the loop queued jobs, or wants the thread to stop. */
static void
smtp_on_wake(evutil_socket_t fd, short events, void *arg)
{
	struct smtp	*s = arg;
	int		 stopping;

	smtp_drain(fd);
	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	if (stopping)
		event_base_loopbreak(s->tbase);
	else
		smtp_check(s);
}

/*
 * On the thread, once stopped: drop every transfer. Removing one makes
 * curl end it as if it were complete: it would send the end of the
 * message (delivering it cut short) and wait for the answer. smtp_free
 * has shut its sockets down, so that write fails at once.
 */
static void
smtp_abort(struct smtp *s)
{
	struct smtp_job		*job;
	struct smtp_sock	*ss;

	pthread_mutex_lock(&s->lock);
	LIST_FOREACH(ss, &s->socks, entry)
		shutdown(ss->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	while ((job = TAILQ_FIRST(&s->active)) != NULL) {
		TAILQ_REMOVE(&s->active, job, entry);
		curl_multi_remove_handle(s->multi, job->easy);
		smtp_job_free(job);
	}
	s->nactive = 0;
	curl_multi_cleanup(s->multi);
	s->multi = NULL;
	pthread_mutex_lock(&s->lock);
	while ((ss = LIST_FIRST(&s->socks)) != NULL) {
		event_del(&ss->ev);
		LIST_REMOVE(ss, entry);
		free(ss);
	}
	pthread_mutex_unlock(&s->lock);
	evtimer_del(&s->ev_timer);
	event_del(&s->ev_wake);
}

/* The sending thread: its own loop until smtp_free. */
static void *
smtp_thread(void *arg)
{
	struct smtp	*s = arg;

	event_base_dispatch(s->tbase);
	smtp_abort(s);
	return (NULL);
}

/* On the loop: log a note's line or call its send's callback. */
static void
smtp_report(struct smtp *s, struct smtp_note *n)
{
	if (n->line != NULL) {
		if (n->level == LOG_LEVEL_WARNING)
			log_warnx("%s", n->line);
		else
			log_debug("%s", n->line);
		return;
	}
	if (--s->busy == 0)
		event_del(&s->ev_done);
	if (n->error == NULL)
		log_debug("smtp: sent to %s", n->to);
	else
		log_debug("smtp: to %s: %s", n->to, n->error);
	if (n->cb != NULL)
		n->cb(n->error, n->permanent, n->arg);
}

/* On the loop: the thread left notes. A callback may free the client. */
static void
smtp_on_done(evutil_socket_t fd, short events, void *arg)
{
	struct smtp		*s = arg;
	struct smtp_notes	 notes = TAILQ_HEAD_INITIALIZER(notes);
	struct smtp_note	*n;

	smtp_drain(fd);
	pthread_mutex_lock(&s->lock);
	TAILQ_CONCAT(&notes, &s->notes, entry);
	pthread_mutex_unlock(&s->lock);

	s->reporting++;
	while ((n = TAILQ_FIRST(&notes)) != NULL) {
		TAILQ_REMOVE(&notes, n, entry);
		if (!s->dead)
			smtp_report(s, n);
		smtp_note_free(n);
	}
	if (--s->reporting == 0 && s->dead)
		free(s);
}

/* Drop the [smtp] settings held, the password wiped. */
static void
smtp_drop_conf(struct smtp *s)
{
	free(s->url);
	free(s->username);
	if (s->password != NULL)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->from);
	s->url = s->username = s->password = s->from = NULL;
}

/* Copy the [smtp] settings, dropping the old ones. */
static void
smtp_take_conf(struct smtp *s, const struct conf *conf)
{
	smtp_drop_conf(s);
	s->url = xstrdup(conf->smtp_url);
	s->tls_required = conf->smtp_tls_required;
	s->username = conf->smtp_username != NULL ?
	    xstrdup(conf->smtp_username) : NULL;
	s->password = conf->smtp_password != NULL ?
	    xstrdup(conf->smtp_password) : NULL;
	s->from = xstrdup(conf->smtp_from);
}

/* Start the sending thread, with every signal left to the main thread. */
static void
smtp_thread_start(struct smtp *s)
{
	sigset_t	all, old;
	int		error;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	error = pthread_create(&s->thread, NULL, smtp_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0)
		fatalx("smtp: pthread_create: %s", strerror(error));
}

struct smtp *
smtp_new(struct event_base *base, const struct conf *conf)
{
	struct smtp	*s;

	if (!smtp_global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			fatalx("curl_global_init failed");
		smtp_global_done = 1;
	}

	s = xcalloc(1, sizeof *s);
	s->base = base;
	pthread_mutex_init(&s->lock, NULL);
	TAILQ_INIT(&s->queue);
	TAILQ_INIT(&s->notes);
	TAILQ_INIT(&s->active);
	LIST_INIT(&s->socks);
	if (pipe2(s->done_pipe, O_NONBLOCK | O_CLOEXEC) == -1 ||
	    pipe2(s->wake_pipe, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("smtp: pipe2");
	event_assign(&s->ev_done, base, s->done_pipe[0], EV_READ | EV_PERSIST,
	    smtp_on_done, s);

	if ((s->tbase = event_base_new()) == NULL)
		fatalx("smtp: event_base_new failed");
	event_assign(&s->ev_wake, s->tbase, s->wake_pipe[0],
	    EV_READ | EV_PERSIST, smtp_on_wake, s);
	event_add(&s->ev_wake, NULL);
	evtimer_assign(&s->ev_timer, s->tbase, smtp_on_timer, s);
	if ((s->multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init failed");
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, smtp_on_socket);
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, smtp_set_timer);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);

	smtp_take_conf(s, conf);
	smtp_thread_start(s);
	log_debug("smtp: %s", curl_version());
	return (s);
}

void
smtp_reconfigure(struct smtp *s, const struct conf *conf)
{
	smtp_take_conf(s, conf);
}

/* Set up the easy handle of a job: 0, or -1 if curl refuses an option. */
static int
smtp_setup(struct smtp *s, struct smtp_job *job, const char *from)
{
	CURL	*e = job->easy;
	long	 ssl;
	int	 bad = 0;

	if (s->tls_required && strncmp(s->url, "smtp://", 7) == 0)
		ssl = CURLUSESSL_ALL;
	else
		ssl = CURLUSESSL_NONE;

#define SET(o, v) bad |= curl_easy_setopt(e, o, v) != CURLE_OK
	SET(CURLOPT_URL, s->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#endif
	SET(CURLOPT_USE_SSL, ssl);
	SET(CURLOPT_MAIL_FROM, from);
	SET(CURLOPT_MAIL_RCPT, job->rcpt);
	SET(CURLOPT_UPLOAD, 1L);
	SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)job->len);
	SET(CURLOPT_READFUNCTION, smtp_on_read);
	SET(CURLOPT_READDATA, job);
	SET(CURLOPT_SEEKFUNCTION, smtp_on_seek);
	SET(CURLOPT_SEEKDATA, job);
	SET(CURLOPT_CONNECTTIMEOUT, (long)SMTP_CONNECT_TIMEOUT_S);
	SET(CURLOPT_TIMEOUT, (long)SMTP_TIMEOUT_S);
	SET(CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)SMTP_RESPONSE_TIMEOUT_S);
	SET(CURLOPT_FORBID_REUSE, 1L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, job->error);
	SET(CURLOPT_PRIVATE, job);
	if (s->username != NULL) {
		SET(CURLOPT_USERNAME, s->username);
		if (s->password != NULL)
			SET(CURLOPT_PASSWORD, s->password);
	}
#undef SET
	return (bad ? -1 : 0);
}

/* Log a bad address, its control characters shown as '?'. */
static void
smtp_warn_address(const char *what, const char *value)
{
	char	buf[101], *p;

	snprintf(buf, sizeof buf, "%s", value != NULL ? value : "");
	for (p = buf; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	log_warnx("smtp: %s is not an address: \"%s\"", what, buf);
}

/* A job for m with the settings of now, ready for curl; NULL if not. */
static struct smtp_job *
smtp_job_new(struct smtp *s, const struct mail *m, smtp_cb cb, void *arg)
{
	struct smtp_job	*job;
	struct mail	 copy = *m;
	char		*from;

	if ((from = mail_address(s->from)) == NULL) {
		smtp_warn_address("from", s->from);
		return (NULL);
	}
	job = xcalloc(1, sizeof *job);
	job->cb = cb;
	job->arg = arg;
	if ((job->to = mail_address(m->to)) == NULL) {
		smtp_warn_address("to", m->to);
		goto fail;
	}
	job->rcpt = curl_slist_append(NULL, job->to);
	if (copy.from == NULL)
		copy.from = s->from;
	job->data = mail_format(&copy, clock_now_us());
	job->len = strlen(job->data);
	if (job->rcpt == NULL || (job->easy = curl_easy_init()) == NULL ||
	    smtp_setup(s, job, from) != 0) {
		log_warnx("smtp: to %s: cannot set up the transfer", job->to);
		goto fail;
	}
	free(from);
	return (job);

fail:
	free(from);
	smtp_job_free(job);
	return (NULL);
}

int
smtp_send(struct smtp *s, const struct mail *m, smtp_cb cb, void *arg)
{
	struct smtp_job	*job;

	if ((job = smtp_job_new(s, m, cb, arg)) == NULL)
		return (-1);
	log_debug("smtp: to %s queued (%d under way)", job->to, s->busy);
	pthread_mutex_lock(&s->lock);
	TAILQ_INSERT_TAIL(&s->queue, job, entry);
	pthread_mutex_unlock(&s->lock);
	smtp_wake(s->wake_pipe[1]);
	if (s->busy++ == 0)
		event_add(&s->ev_done, NULL);
	return (0);
}

/*
 * Stop the thread and free. The sockets are shut down first, under the
 * lock: a wait curl is blocked in on the thread ends at once, and no
 * transfer can end by sending the rest of its message. So the join is
 * quick; only a name lookup under way can hold it, curl waiting for its
 * resolver thread (at most the resolver's timeout, and only at exit).
 */
void
smtp_free(struct smtp *s)
{
	struct smtp_job		*job;
	struct smtp_note	*n;
	struct smtp_sock	*ss;

	if (s == NULL || s->dead)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	LIST_FOREACH(ss, &s->socks, entry)
		shutdown(ss->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	smtp_wake(s->wake_pipe[1]);
	pthread_join(s->thread, NULL);

	while ((job = TAILQ_FIRST(&s->queue)) != NULL) {
		TAILQ_REMOVE(&s->queue, job, entry);
		smtp_job_free(job);
	}
	while ((n = TAILQ_FIRST(&s->notes)) != NULL) {
		TAILQ_REMOVE(&s->notes, n, entry);
		smtp_note_free(n);
	}
	s->busy = 0;
	event_del(&s->ev_done);
	event_base_free(s->tbase);
	close(s->done_pipe[0]);
	close(s->done_pipe[1]);
	close(s->wake_pipe[0]);
	close(s->wake_pipe[1]);
	pthread_mutex_destroy(&s->lock);
	smtp_drop_conf(s);

	/* Inside a callback, smtp_on_done frees it when the callbacks end. */
	if (s->reporting)
		s->dead = 1;
	else
		free(s);
}
