/*
 * One asynchronous PostgreSQL connection on the event loop, for the parts
 * of the daemon that talk to the database a statement at a time (the
 * outbox, the acknowledge pages) or a batch at a time (the readings).  It
 * connects in the background with PQconnectPoll (a host name resolved
 * first with resolve.c, then given to libpq as hostaddr, so that its own
 * blocking lookup never stalls the loop), names itself in
 * application_name, then runs queued statements and scripts one after the
 * other, each with its own deadline, feeding their COPY ... FROM STDIN
 * from buffers; a lost connection gives every queued statement a NULL
 * result and is made again after a backoff.  NOTIFYs are passed on as
 * they come.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/queue.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "pgconn.h"
#include "resolve.h"
#include "xmalloc.h"

#define PGCONN_TIMEOUT_S	30

enum pgconn_state {
	PGCONN_DOWN,
	PGCONN_CONNECTING,
	PGCONN_SETUP,
	PGCONN_UP,
};

struct pgconn_query {
	char			*sql;
	char			**params;
	int			 nparams;
	int			 script;	/* simple query protocol */
	struct evbuffer		**copy;		/* for its COPY FROM STDIN */
	int			 ncopy;
	pgconn_cb		 cb;
	void			*arg;
	TAILQ_ENTRY(pgconn_query) entry;
};
TAILQ_HEAD(pgconn_queries, pgconn_query);

struct pgconn {
	struct event_base	*base;
	struct conf		**conf;
	char			*name;
	struct pgconn_events	 events;
	void			*arg;
	const char		*(*conninfo)(const struct conf *);
	char			*role;		/* set once connected, or NULL */

	PGconn			*conn;
	enum pgconn_state	 state;
	char			*host;		/* the name resolved, or NULL */
	struct evdns_getaddrinfo_request *resolving;
	int			 fd;
	int			 inflight;	/* the queue's head is sent */
	PGresult		*last;		/* of the query in flight */
	int			 copy_next;	/* its next COPY buffer */
	const char		*copy_data;	/* the COPY being sent */
	size_t			 copy_len;
	size_t			 copy_off;
	int64_t			 backoff_ms;
	struct ratelimit	 rl_error;
	struct pgconn_queries	 queue;
	int			 nqueued;

	struct event		 ev_read;
	struct event		 ev_write;
	struct event		 ev_retry;
	struct event		 ev_timeout;
	struct event		 ev_kick;
};

static void	pgconn_on_io(evutil_socket_t, short, void *);
static void	pgconn_next(struct pgconn *);
static void	pgconn_unresolve(struct pgconn *);

static const char *
pgconn_conninfo(const struct pgconn *pc, const struct conf *c)
{
	return (pc->conninfo != NULL ? pc->conninfo(c) : c->db_conninfo);
}

static void
pgconn_query_free(struct pgconn_query *q)
{
	int	i;

	for (i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->copy);
	free(q->sql);
	free(q);
}

/* The first line of libpq's last error. */
static const char *
pgconn_error(struct pgconn *pc, char *buf, size_t len)
{
	snprintf(buf, len, "%s", pc->conn != NULL ?
	    PQerrorMessage(pc->conn) : "no connection");
	buf[strcspn(buf, "\n")] = '\0';
	return (buf);
}

static void
pgconn_unwatch(struct pgconn *pc)
{
	if (pc->fd == -1)
		return;
	event_del(&pc->ev_read);
	event_del(&pc->ev_write);
	pc->fd = -1;
}

static void
pgconn_watch(struct pgconn *pc, int want_write)
{
	if (PQsocket(pc->conn) != pc->fd) {
		pgconn_unwatch(pc);
		pc->fd = PQsocket(pc->conn);
		event_assign(&pc->ev_read, pc->base, pc->fd,
		    EV_READ | EV_PERSIST, pgconn_on_io, pc);
		event_assign(&pc->ev_write, pc->base, pc->fd, EV_WRITE,
		    pgconn_on_io, pc);
	}
	if (!event_pending(&pc->ev_read, EV_READ, NULL))
		event_add(&pc->ev_read, NULL);
	if (want_write)
		event_add(&pc->ev_write, NULL);
	else
		event_del(&pc->ev_write);
}

/* Close, fail what is queued, and connect again after a backoff. */
static void
pgconn_lost(struct pgconn *pc, const char *why)
{
	struct pgconn_query	*q;
	struct timeval		 tv;
	int64_t			 delay;
	int			 was_up = pc->state == PGCONN_UP;

	pgconn_unresolve(pc);
	evtimer_del(&pc->ev_timeout);
	pgconn_unwatch(pc);
	if (pc->conn != NULL)
		PQfinish(pc->conn);
	pc->conn = NULL;
	PQclear(pc->last);
	pc->last = NULL;
	pc->copy_data = NULL;
	pc->state = PGCONN_DOWN;
	pc->inflight = 0;
	delay = clock_backoff(&pc->backoff_ms, &tv);
	log_warnx("%s: database: %s; retrying in %lld ms", pc->name, why,
	    (long long)delay);
	evtimer_add(&pc->ev_retry, &tv);
	while ((q = TAILQ_FIRST(&pc->queue)) != NULL) {
		TAILQ_REMOVE(&pc->queue, q, entry);
		pc->nqueued--;
		if (q->cb != NULL)
			q->cb(NULL, q->arg);
		pgconn_query_free(q);
	}
	if (was_up && pc->events.down != NULL)
		pc->events.down(pc->arg);
}

static void
pgconn_on_timeout(evutil_socket_t fd, short events, void *arg)
{
	struct pgconn	*pc = arg;
	char		 buf[64];

	snprintf(buf, sizeof buf, "no answer in %d s", PGCONN_TIMEOUT_S);
	pgconn_lost(pc, buf);
}

static void
pgconn_deadline(struct pgconn *pc)
{
	struct timeval	tv = { PGCONN_TIMEOUT_S, 0 };

	evtimer_add(&pc->ev_timeout, &tv);
}

static void
pgconn_notice(void *arg, const char *msg)
{
	struct pgconn	*pc = arg;

	log_info("%s: database: %.*s", pc->name, (int)strcspn(msg, "\n"), msg);
}

/* Send the queue's head. */
static void
pgconn_send(struct pgconn *pc)
{
	struct pgconn_query	*q = TAILQ_FIRST(&pc->queue);

	pc->inflight = 1;
	pc->copy_next = 0;
	pgconn_deadline(pc);
	if (q->script ? !PQsendQuery(pc->conn, q->sql) :
	    !PQsendQueryParams(pc->conn, q->sql, q->nparams, NULL,
	    (const char *const *)q->params, NULL, NULL, 0)) {
		pgconn_lost(pc, "cannot send a query");
		return;
	}
	pgconn_watch(pc, PQflush(pc->conn) != 0);
}

static void
pgconn_next(struct pgconn *pc)
{
	if ((pc->state == PGCONN_UP || pc->state == PGCONN_SETUP) &&
	    !pc->inflight && !TAILQ_EMPTY(&pc->queue))
		pgconn_send(pc);
}

static struct pgconn_query *
pgconn_enqueue(struct pgconn *pc, const char *sql, int nparams,
    const char *const *params, pgconn_cb cb, void *arg)
{
	struct pgconn_query	*q;
	int			 i;

	q = xcalloc(1, sizeof *q);
	q->sql = xstrdup(sql);
	q->nparams = nparams;
	q->params = xcalloc(nparams > 0 ? nparams : 1, sizeof *q->params);
	for (i = 0; i < nparams; i++)
		q->params[i] = params[i] != NULL ? xstrdup(params[i]) : NULL;
	q->cb = cb;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&pc->queue, q, entry);
	pc->nqueued++;
	/* Sent from the loop: never a callback inside pgconn_query. */
	event_active(&pc->ev_kick, EV_TIMEOUT, 1);
	return (q);
}

/* The set-up statement is over: the connection is up. */
static void
pgconn_on_setup(const PGresult *res, void *arg)
{
	struct pgconn	*pc = arg;

	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_lost(pc, "set-up failed");
		return;
	}
	pc->state = PGCONN_UP;
	pc->backoff_ms = 0;
	log_info("%s: connected to the database", pc->name);
	if (pc->events.up != NULL)
		pc->events.up(pc->arg);
}

/* The role is set, or the connection is of no use. */
static void
pgconn_on_role(const PGresult *res, void *arg)
{
	struct pgconn	*pc = arg;
	const char	*msg;
	char		*why;

	if (res == NULL || PQresultStatus(res) == PGRES_TUPLES_OK)
		return;
	msg = PQresultErrorMessage(res);
	xasprintf(&why, "cannot work as role %s: %.*s", pc->role,
	    (int)strcspn(msg, "\n"), msg);
	pgconn_lost(pc, why);
	free(why);
}

static void
pgconn_connected(struct pgconn *pc)
{
	const char	*params[2];
	char		*app;

	PQsetNoticeProcessor(pc->conn, pgconn_notice, pc);
	if (PQsetnonblocking(pc->conn, 1) != 0) {
		pgconn_lost(pc, "cannot make the connection non-blocking");
		return;
	}
	evtimer_del(&pc->ev_timeout);
	pc->state = PGCONN_SETUP;
	xasprintf(&app, "vialwatchd %s", pc->name);
	params[0] = app;
	params[1] = (*pc->conf)->hooks_json;
	if (pc->role != NULL)
		pgconn_enqueue(pc, "select set_config('role', $1, false)", 1,
		    (const char *const *)&pc->role, pgconn_on_role, pc);
	/* Who we are, and the hooks vialwatch.hook_notify() queues rows for. */
	pgconn_enqueue(pc, "select set_config('application_name', $1, false), "
	    "set_config('vialwatch.hooks', $2, false)", 2, params,
	    pgconn_on_setup, pc);
	free(app);
}

static void
pgconn_connect_step(struct pgconn *pc)
{
	char	buf[256];

	switch (PQconnectPoll(pc->conn)) {
	case PGRES_POLLING_READING:
		pgconn_watch(pc, 0);
		break;
	case PGRES_POLLING_WRITING:
		pgconn_watch(pc, 1);
		event_del(&pc->ev_read);
		break;
	case PGRES_POLLING_OK:
		pgconn_connected(pc);
		break;
	default:
		pgconn_lost(pc, pgconn_error(pc, buf, sizeof buf));
		break;
	}
}

/* The conninfo's host, when it is one name to resolve (no hostaddr). */
static char *
pgconn_host(const char *conninfo)
{
	PQconninfoOption	*opts, *o;
	const char		*host = NULL;
	char			*err = NULL, *name = NULL;
	int			 addr = 0;

	if ((opts = PQconninfoParse(conninfo, &err)) == NULL) {
		PQfreemem(err);
		return (NULL);		/* libpq says what is wrong */
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0 && o->val != NULL &&
		    *o->val != '\0')
			addr = 1;
	}
	if (!addr && host != NULL && strchr(host, ',') == NULL &&
	    resolve_needed(host))
		name = xstrdup(host);
	PQconninfoFree(opts);
	return (name);
}

/* Start libpq with the conninfo in force, at hostaddr if not NULL. */
static void
pgconn_connect_at(struct pgconn *pc, const char *hostaddr)
{
	PQconninfoOption	*opts = NULL, *o;
	const char		**keys, **vals;
	char			 buf[256];
	int			 n = 0;

	if (hostaddr == NULL)
		pc->conn = PQconnectStart(pgconn_conninfo(pc, *pc->conf));
	else {
		opts = PQconninfoParse(pgconn_conninfo(pc, *pc->conf), NULL);
		for (o = opts; o != NULL && o->keyword != NULL; o++)
			n++;
		keys = xcalloc(n + 2, sizeof *keys);
		vals = xcalloc(n + 2, sizeof *vals);
		n = 0;
		for (o = opts; o != NULL && o->keyword != NULL; o++) {
			if (o->val != NULL) {
				keys[n] = o->keyword;
				vals[n++] = o->val;
			}
		}
		keys[n] = "hostaddr";
		vals[n] = hostaddr;
		pc->conn = PQconnectStartParams(keys, vals, 0);
		free(keys);
		free(vals);
		PQconninfoFree(opts);
	}
	if (pc->conn == NULL)
		fatalx("PQconnectStart: out of memory");
	if (PQstatus(pc->conn) == CONNECTION_BAD) {
		pgconn_lost(pc, pgconn_error(pc, buf, sizeof buf));
		return;
	}
	pgconn_connect_step(pc);
}

/* The name is resolved: connect to its first address. */
static void
pgconn_resolved(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct pgconn	*pc = arg;
	char		 buf[256], addr[64];

	if (result == EVUTIL_EAI_CANCEL)
		return;
	pc->resolving = NULL;
	if (result != 0 || ai == NULL ||
	    resolve_numeric(ai->ai_addr, addr, sizeof addr) == NULL) {
		snprintf(buf, sizeof buf, "cannot resolve %s: %s", pc->host,
		    result != 0 ? evutil_gai_strerror(result) : "no address");
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		pgconn_lost(pc, buf);
		return;
	}
	evutil_freeaddrinfo(ai);
	log_debug("%s: database host %s is %s", pc->name, pc->host, addr);
	pgconn_connect_at(pc, addr);
}

static void
pgconn_unresolve(struct pgconn *pc)
{
	struct evdns_getaddrinfo_request	*req = pc->resolving;

	pc->resolving = NULL;
	if (req != NULL)
		evdns_getaddrinfo_cancel(req);
}

/* Connect: resolve the host name first, off the loop's back. */
static void
pgconn_connect(struct pgconn *pc)
{
	struct evutil_addrinfo			 hints;
	struct evdns_getaddrinfo_request	*req;

	pc->state = PGCONN_CONNECTING;
	pc->fd = -1;
	pgconn_deadline(pc);
	free(pc->host);
	if ((pc->host = pgconn_host(pgconn_conninfo(pc, *pc->conf))) == NULL) {
		pgconn_connect_at(pc, NULL);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	req = evdns_getaddrinfo(resolve_dns(pc->base), pc->host, NULL, &hints,
	    pgconn_resolved, pc);
	if (req != NULL && pc->state == PGCONN_CONNECTING && pc->conn == NULL)
		pc->resolving = req;	/* not answered at once */
}

static void
pgconn_on_kick(evutil_socket_t fd, short events, void *arg)
{
	pgconn_next(arg);
}

static void
pgconn_on_retry(evutil_socket_t fd, short events, void *arg)
{
	pgconn_connect(arg);
}

static void
pgconn_notifies(struct pgconn *pc)
{
	PGnotify	*n;

	while ((n = PQnotifies(pc->conn)) != NULL) {
		if (pc->events.notify != NULL)
			pc->events.notify(n->relname, n->extra, pc->arg);
		PQfreemem(n);
	}
}

/* The query in flight is over: hand its last result over. */
static void
pgconn_done(struct pgconn *pc)
{
	struct pgconn_query	*q = TAILQ_FIRST(&pc->queue);
	PGresult		*res;

	evtimer_del(&pc->ev_timeout);
	TAILQ_REMOVE(&pc->queue, q, entry);
	pc->nqueued--;
	pc->inflight = 0;
	if (pc->last == NULL) {
		/* No result at all: the connection is not to be trusted. */
		if (q->cb != NULL)
			q->cb(NULL, q->arg);
		pgconn_query_free(q);
		if (pc->state != PGCONN_DOWN)
			pgconn_lost(pc, "a query gave no result");
		return;
	}
	/* Ours until the callback is over, whatever it does. */
	res = pc->last;
	pc->last = NULL;
	if (q->cb != NULL)
		q->cb(res, q->arg);
	PQclear(res);
	pgconn_query_free(q);
}

/*
 * Send as much of the COPY data as the connection takes, then its end: 1
 * when it must wait until the socket is writable, -1 on an error.
 */
static int
pgconn_copy_feed(struct pgconn *pc)
{
	size_t	n;
	int	rc;

	while (pc->copy_off < pc->copy_len) {
		n = pc->copy_len - pc->copy_off;
		if (n > 65536)
			n = 65536;
		rc = PQputCopyData(pc->conn, pc->copy_data + pc->copy_off, n);
		if (rc != 1)
			return (rc == 0 ? 1 : -1);
		pc->copy_off += n;
	}
	if ((rc = PQputCopyEnd(pc->conn, NULL)) != 1)
		return (rc == 0 ? 1 : -1);
	pc->copy_data = NULL;
	return (0);
}

/* The server asks for COPY data: the query's next buffer. */
static int
pgconn_copy_start(struct pgconn *pc)
{
	struct pgconn_query	*q = TAILQ_FIRST(&pc->queue);
	struct evbuffer		*b = NULL;

	if (pc->copy_next < q->ncopy)
		b = q->copy[pc->copy_next++];
	pc->copy_len = b != NULL ? evbuffer_get_length(b) : 0;
	pc->copy_data = pc->copy_len > 0 ? (const char *)evbuffer_pullup(b,
	    -1) : "";
	pc->copy_off = 0;
	return (pgconn_copy_feed(pc));
}

/* Read the results of the query in flight: 1 to wait for writing. */
static int
pgconn_results(struct pgconn *pc)
{
	PGresult	*res;
	int		 rc;

	while (pc->inflight && !PQisBusy(pc->conn)) {
		if ((res = PQgetResult(pc->conn)) != NULL) {
			if (PQresultStatus(res) == PGRES_COPY_IN) {
				PQclear(res);
				if ((rc = pgconn_copy_start(pc)) != 0)
					return (rc);
				continue;
			}
			PQclear(pc->last);
			pc->last = res;
			continue;
		}
		pgconn_done(pc);
		/* The callback may have dropped or reset the connection. */
		if (pc->state != PGCONN_UP && pc->state != PGCONN_SETUP)
			return (-2);
		pgconn_next(pc);
		if (pc->state == PGCONN_DOWN)
			return (-2);
	}
	return (0);
}

static void
pgconn_io(struct pgconn *pc)
{
	char	buf[256];
	int	rc, want_write = 0;

	if (pc->state == PGCONN_CONNECTING) {
		pgconn_connect_step(pc);
		return;
	}
	if (pc->copy_data != NULL && (want_write = pgconn_copy_feed(pc)) == -1) {
		pgconn_lost(pc, pgconn_error(pc, buf, sizeof buf));
		return;
	}
	if (!PQconsumeInput(pc->conn)) {
		pgconn_lost(pc, pgconn_error(pc, buf, sizeof buf));
		return;
	}
	pgconn_notifies(pc);
	if (!want_write && (want_write = pgconn_results(pc)) < 0) {
		if (want_write == -1)
			pgconn_lost(pc, pgconn_error(pc, buf, sizeof buf));
		return;
	}
	pgconn_notifies(pc);
	if ((rc = PQflush(pc->conn)) == -1) {
		pgconn_lost(pc, pgconn_error(pc, buf, sizeof buf));
		return;
	}
	pgconn_watch(pc, rc == 1 || want_write);
}

static void
pgconn_on_io(evutil_socket_t fd, short events, void *arg)
{
	pgconn_io(arg);
}

struct pgconn *
pgconn_new(struct event_base *base, struct conf **conf, const char *name,
    const struct pgconn_events *events, void *arg)
{
	struct pgconn	*pc;

	pc = xcalloc(1, sizeof *pc);
	pc->base = base;
	pc->conf = conf;
	pc->name = xstrdup(name);
	pc->events = *events;
	pc->arg = arg;
	pc->fd = -1;
	TAILQ_INIT(&pc->queue);
	evtimer_assign(&pc->ev_retry, base, pgconn_on_retry, pc);
	evtimer_assign(&pc->ev_timeout, base, pgconn_on_timeout, pc);
	evtimer_assign(&pc->ev_kick, base, pgconn_on_kick, pc);
	return (pc);
}

void
pgconn_set_login(struct pgconn *pc, const char *(*conninfo)(const struct conf *),
    const char *role)
{
	pc->conninfo = conninfo;
	free(pc->role);
	pc->role = role != NULL ? xstrdup(role) : NULL;
}

void
pgconn_start(struct pgconn *pc)
{
	struct timeval	now = { 0, 0 };

	evtimer_add(&pc->ev_retry, &now);
}

void
pgconn_reset(struct pgconn *pc, const char *why)
{
	if (pc->state != PGCONN_DOWN)
		pgconn_lost(pc, why);
	pc->backoff_ms = 0;
	event_del(&pc->ev_retry);
	pgconn_connect(pc);
}

void
pgconn_drop(struct pgconn *pc, const char *why)
{
	if (pc->state != PGCONN_DOWN)
		pgconn_lost(pc, why);
}

void
pgconn_reconfigure(struct pgconn *pc, const struct conf *old)
{
	const struct conf	*c = *pc->conf;
	const char		*params[1];

	if (strcmp(pgconn_conninfo(pc, old), pgconn_conninfo(pc, c)) != 0)
		pgconn_reset(pc, "configuration changed");
	else if (strcmp(old->hooks_json, c->hooks_json) != 0 &&
	    pc->state == PGCONN_UP) {
		params[0] = c->hooks_json;
		pgconn_enqueue(pc, "select set_config('vialwatch.hooks', $1, "
		    "false)", 1, params, NULL, NULL);
	}
}

int
pgconn_up(const struct pgconn *pc)
{
	return (pc->state == PGCONN_UP);
}

int
pgconn_connecting(const struct pgconn *pc)
{
	return (pc->state == PGCONN_CONNECTING || pc->state == PGCONN_SETUP);
}

int
pgconn_query(struct pgconn *pc, const char *sql, int nparams,
    const char *const *params, pgconn_cb cb, void *arg)
{
	if (pc->state != PGCONN_UP)
		return (-1);
	pgconn_enqueue(pc, sql, nparams, params, cb, arg);
	return (0);
}

int
pgconn_script(struct pgconn *pc, const char *sql,
    struct evbuffer *const *copy, int ncopy, pgconn_cb cb, void *arg)
{
	struct pgconn_query	*q;

	if (pc->state != PGCONN_UP)
		return (-1);
	q = pgconn_enqueue(pc, sql, 0, NULL, cb, arg);
	q->script = 1;
	q->ncopy = ncopy;
	q->copy = xcalloc(ncopy > 0 ? ncopy : 1, sizeof *q->copy);
	if (ncopy > 0)
		memcpy(q->copy, copy, ncopy * sizeof *q->copy);
	return (0);
}

int
pgconn_failed(struct pgconn *pc, const PGresult *res, const char *what)
{
	const char	*msg = PQresultErrorMessage(res);
	const char	*code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (log_ratelimit(&pc->rl_error, 5, clock_mono_ms()))
		log_warnx("%s: %s failed: %.*s", pc->name, what,
		    (int)strcspn(msg, "\n"), msg);
	return (code == NULL || strncmp(code, "08", 2) == 0 ||
	    strncmp(code, "40", 2) == 0 || strncmp(code, "53", 2) == 0 ||
	    strncmp(code, "57", 2) == 0 || strcmp(code, "25006") == 0);
}

void
pgconn_free(struct pgconn *pc)
{
	struct pgconn_query	*q;

	if (pc == NULL)
		return;
	pgconn_unresolve(pc);
	pgconn_unwatch(pc);
	event_del(&pc->ev_retry);
	event_del(&pc->ev_timeout);
	event_del(&pc->ev_kick);
	if (pc->conn != NULL)
		PQfinish(pc->conn);
	PQclear(pc->last);
	while ((q = TAILQ_FIRST(&pc->queue)) != NULL) {
		TAILQ_REMOVE(&pc->queue, q, entry);
		pgconn_query_free(q);
	}
	free(pc->host);
	free(pc->name);
	free(pc->role);
	free(pc);
}

long long
pgconn_int(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return (0);
	return (strtoll(PQgetvalue(res, row, col), NULL, 10));
}

double
pgconn_double(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return (NAN);
	return (strtod(PQgetvalue(res, row, col), NULL));
}

const char *
pgconn_text(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return (NULL);
	return (PQgetvalue(res, row, col));
}
