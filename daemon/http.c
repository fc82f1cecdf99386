/*
 * HTTP on libevent's evhttp: /healthz, /metrics and the link pages.
 *
 * The listener is public, so it defends the daemon's descriptors: at most
 * [http] max_connections connections at once, each closed after
 * [http] idle_timeout without traffic.  At the cap the oldest connection
 * with no request under way makes room for the new one; when every
 * connection has a request under way, or accept() fails (no descriptor
 * left), the listener stops accepting until a connection closes, instead
 * of being woken again and again.  The pages talk to the database on a
 * connection of their own, as role vialwatch_web.
 *
 * A reload that moves the listener and can bind neither the new address
 * nor the old one again keeps trying both, with a backoff, and says so in
 * the log and in the status systemd shows.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/queue.h>
#include <sys/resource.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "clock.h"
#include "conf.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "pages.h"
#include "pgconn.h"
#include "spool.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define HTTP_ROLE		"vialwatch_web"
#define HTTP_RESUME_MS		1000	/* after accept() failed */
#define HTTP_RESUME_SOON_MS	100	/* the same, idle ones closed */
#define HTTP_CLOSE_ON_ERROR	8	/* idle ones closed then */
#define HTTP_FD_RESERVE		64	/* for all but HTTP */

/* One accepted connection. */
struct http_conn {
	struct http		*http;
	struct bufferevent	*bev;		/* held until evcon is known */
	struct evhttp_connection *evcon;	/* NULL until then */
	int			 busy;		/* requests under way */
	void			(*closecb)(struct evhttp_connection *, void *);
	void			*closearg;
	TAILQ_ENTRY(http_conn)	 entry;
};
TAILQ_HEAD(http_conns, http_conn);

struct http {
	struct vialwatchd	*vw;
	struct evhttp		*evh;		/* NULL: not listening */
	struct evconnlistener	*lev;
	char			*host;		/* bound, or last bound */
	int			 port;
	struct pgconn		*pc;		/* the pages' connection */

	struct http_conns	 conns;		/* oldest first */
	struct http_conns	 pending;	/* just accepted */
	int			 nconns;
	int			 paused;	/* the listener is disabled */
	int			 resting;	/* after accept() failed */
	struct event		 ev_pending;
	struct event		 ev_resume;
	struct ratelimit	 rl_full;

	char			*unbound;	/* why not listening, or NULL */
	struct event		 ev_rebind;
	int64_t			 rebind_ms;
	struct ratelimit	 rl_rebind;
};

/* The listener's error callback has no argument of its own. */
static struct http	*http_the;

static void	http_healthz(struct evhttp_request *, void *);
static void	http_metrics(struct evhttp_request *, void *);
static void	http_notfound(struct evhttp_request *, void *);
static int	http_make_room(struct http *);
static int	http_close_idle(struct http *, int, struct http_conn *);
static int	http_try_bind(struct http *);

/* The pages' conninfo: [http] conninfo, else [database] conninfo. */
static const char *
http_conninfo(const struct conf *c)
{
	return (c->http_conninfo != NULL ? c->http_conninfo : c->db_conninfo);
}

static struct http_conn *
http_conn_find(struct http *http, struct evhttp_connection *evcon)
{
	struct http_conn	*hc;

	if (evcon == NULL)
		return (NULL);
	TAILQ_FOREACH_REVERSE(hc, &http->conns, http_conns, entry) {
		if (hc->evcon == evcon)
			return (hc);
	}
	return (NULL);
}

/* Accept again: below the cap, or a while after accept() failed. */
static void
http_resume(struct http *http)
{
	if (!http->paused || http->resting || http->lev == NULL ||
	    http->nconns > http->vw->conf->http_max_connections)
		return;
	http->paused = 0;
	evtimer_del(&http->ev_resume);
	evconnlistener_enable(http->lev);
}

static void
http_pause(struct http *http)
{
	if (http->paused || http->lev == NULL)
		return;
	http->paused = 1;
	evconnlistener_disable(http->lev);
}

static void
http_conn_gone(struct http *http, struct http_conn *hc)
{
	http->nconns--;
	free(hc);
	http_resume(http);
}

/* A connection closes: forget it, then tell the page waiting on it. */
static void
http_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn	*hc = arg;
	struct http		*http = hc->http;
	void			(*cb)(struct evhttp_connection *, void *);
	void			*cbarg;

	cb = hc->closecb;
	cbarg = hc->closearg;
	TAILQ_REMOVE(&http->conns, hc, entry);
	http_conn_gone(http, hc);
	if (cb != NULL)
		cb(evcon, cbarg);
}

/*
 * The connections accepted on this turn of the loop now have their
 * evhttp_connection: watch them close.  One evhttp freed already (it
 * could not start) is forgotten.
 */
static void
http_on_pending(evutil_socket_t fd, short events, void *arg)
{
	struct http		*http = arg;
	struct http_conn	*hc, *fresh = NULL;
	struct timeval		 tv;
	bufferevent_event_cb	 eventcb;
	void			*cbarg;

	while ((hc = TAILQ_FIRST(&http->pending)) != NULL) {
		TAILQ_REMOVE(&http->pending, hc, entry);
		bufferevent_getcb(hc->bev, NULL, NULL, &eventcb, &cbarg);
		bufferevent_decref(hc->bev);
		hc->bev = NULL;
		if (eventcb == NULL) {
			http_conn_gone(http, hc);
			continue;
		}
		hc->evcon = cbarg;
		evhttp_connection_set_closecb(hc->evcon, http_on_close, hc);
		TAILQ_INSERT_TAIL(&http->conns, hc, entry);
		if (fresh == NULL)
			fresh = hc;
	}
	/*
	 * Paused at the cap while these were not known yet: room is made
	 * among the older ones; these have not had a turn to send anything.
	 * When that is not enough, they get a moment for it, then whichever
	 * of them are still idle are closed too (http_on_resume): a flood of
	 * silent connections in one turn must not keep the listener shut.
	 */
	if (http->paused && !http->resting) {
		if (http_close_idle(http, http->vw->conf->http_max_connections,
		    fresh) == 0)
			http_resume(http);
		else {
			tv.tv_sec = 0;
			tv.tv_usec = HTTP_RESUME_SOON_MS * 1000;
			evtimer_add(&http->ev_resume, &tv);
		}
	}
}

/*
 * Close the oldest connections that have no request under way, up to
 * stop (NULL: all of them), until at most limit are open; 0 when they
 * are, -1 when the others all have a request under way.
 */
static int
http_close_idle(struct http *http, int limit, struct http_conn *stop)
{
	struct http_conn	*hc, *next;

	for (hc = TAILQ_FIRST(&http->conns); hc != NULL && hc != stop &&
	    http->nconns > limit; hc = next) {
		next = TAILQ_NEXT(hc, entry);
		if (hc->busy == 0)
			evhttp_connection_free(hc->evcon);	/* http_on_close */
	}
	return (http->nconns <= limit ? 0 : -1);
}

/* At the cap: make room for the next connection. */
static int
http_make_room(struct http *http)
{
	return (http_close_idle(http, http->vw->conf->http_max_connections,
	    NULL));
}

/* A connection was accepted (evhttp is making its connection). */
static struct bufferevent *
http_on_accept(struct event_base *base, void *arg)
{
	struct http		*http = arg;
	struct http_conn	*hc;

	hc = xcalloc(1, sizeof *hc);
	hc->http = http;
	if ((hc->bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		free(hc);
		return (NULL);
	}
	bufferevent_incref(hc->bev);
	TAILQ_INSERT_TAIL(&http->pending, hc, entry);
	http->nconns++;
	event_active(&http->ev_pending, EV_TIMEOUT, 1);
	if (http->nconns > http->vw->conf->http_max_connections) {
		if (log_ratelimit(&http->rl_full, 1, clock_mono_ms()))
			log_warnx("http: more than %d connections "
			    "([http] max_connections): closing idle ones",
			    http->vw->conf->http_max_connections);
		if (http_make_room(http) != 0)
			http_pause(http);
	}
	return (hc->bev);
}

/* accept() failed, most likely for want of a descriptor. */
static void
http_on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct http	*http = http_the;
	struct timeval	 tv = { 0, HTTP_RESUME_MS * 1000 };
	int		 error = EVUTIL_SOCKET_ERROR(), n;

	if (http == NULL || http->lev != lev)
		return;
	if (log_ratelimit(&http->rl_full, 1, clock_mono_ms()))
		log_warnx("http: cannot accept a connection: %s; %d "
		    "connections open, closing idle ones",
		    evutil_socket_error_to_string(error), http->nconns);
	http_pause(http);
	http->resting = 1;
	/* The descriptors of idle connections are better used elsewhere. */
	n = http->nconns;
	http_close_idle(http, n - HTTP_CLOSE_ON_ERROR, NULL);
	if (http->nconns < n)
		tv.tv_usec = HTTP_RESUME_SOON_MS * 1000;
	evtimer_add(&http->ev_resume, &tv);
}

static void
http_on_resume(evutil_socket_t fd, short events, void *arg)
{
	struct http	*http = arg;

	http->resting = 0;
	if (http_make_room(http) == 0)
		http_resume(http);
}

/* A request is under way on its connection until its reply is sent. */
static void
http_on_complete(struct evhttp_request *req, void *arg)
{
	struct http		*http = arg;
	struct http_conn	*hc;

	hc = http_conn_find(http, evhttp_request_get_connection(req));
	if (hc != NULL && hc->busy > 0)
		hc->busy--;
}

static void
http_begin(struct http *http, struct evhttp_request *req)
{
	struct http_conn	*hc;

	hc = http_conn_find(http, evhttp_request_get_connection(req));
	if (hc == NULL)
		return;
	hc->busy++;
	evhttp_request_set_on_complete_cb(req, http_on_complete, http);
}

void
http_watch_close(struct http *http, struct evhttp_request *req,
    void (*cb)(struct evhttp_connection *, void *), void *arg)
{
	struct http_conn	*hc;

	hc = http_conn_find(http, evhttp_request_get_connection(req));
	if (hc == NULL)
		return;
	hc->closecb = cb;
	hc->closearg = arg;
}

struct pgconn *
http_pgconn(struct http *http)
{
	return (http->pc);
}

const char *
http_unbound(struct http *http)
{
	return (http->unbound);
}

/* Send a reply with a content type. */
static void
http_reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, struct evbuffer *body)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

/*
 * GET /healthz: 200 when MQTT and the database are connected and the spool
 * can be written, else 503.
 */
static void
http_healthz(struct evhttp_request *req, void *arg)
{
	struct http		*http = arg;
	struct vialwatchd	*vw = http->vw;
	struct evbuffer		*b;
	enum mqtt_state		 ms = mqtt_state(vw->mqtt);
	const char		*spool;
	int			 ok;

	http_begin(http, req);
	spool = spool_error(vw->spool);
	ok = ms == MQTT_CONNECTED && db_connected(vw->db) && spool == NULL;
	b = evbuffer_new();
	evbuffer_add_printf(b, "{\"status\":\"%s\",\"mqtt\":\"%s\","
	    "\"database\":\"%s\",\"spool\":\"%s\",\"spool_bytes\":%llu,"
	    "\"readings_pending\":%zu,\"readings_stored\":%llu,"
	    "\"http_connections\":%d,\"pages_database\":\"%s\"}\n",
	    ok ? "ok" : "unavailable", mqtt_state_name(ms),
	    db_state_name(db_state(vw->db)), spool == NULL ? "ok" : spool,
	    (unsigned long long)spool_bytes(vw->spool), db_pending(vw->db),
	    (unsigned long long)metrics.readings_stored, http->nconns,
	    pgconn_up(http->pc) ? "connected" : "disconnected");
	http_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
	    "application/json", b);
	evbuffer_free(b);
}

/* GET /metrics in Prometheus text format. */
static void
http_metrics(struct evhttp_request *req, void *arg)
{
	struct http	*http = arg;
	struct evbuffer	*b;

	http_begin(http, req);
	b = evbuffer_new();
	metrics_render(http->vw, b);
	http_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
	    b);
	evbuffer_free(b);
}

/* Everything else: the pages of signed links, or 404. */
static void
http_notfound(struct evhttp_request *req, void *arg)
{
	struct http	*http = arg;
	struct evbuffer	*b;
	const char	*path;

	http_begin(http, req);
	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path != NULL && strncmp(path, "/ack/", 5) == 0 &&
	    strchr(path + 5, '/') == NULL) {
		pages_ack(http->vw, req, path + 5);
		return;
	}
	if (path != NULL && strncmp(path, "/check/", 7) == 0 &&
	    strchr(path + 7, '/') == NULL) {
		pages_check(http->vw, req, path + 7);
		return;
	}
	if (path != NULL && strncmp(path, "/unsubscribe/", 13) == 0 &&
	    strchr(path + 13, '/') == NULL) {
		pages_unsubscribe(http->vw, req, path + 13);
		return;
	}

	b = evbuffer_new();
	evbuffer_add_printf(b, "not found\n");
	http_reply(req, 404, "Not Found", "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

/* Make an evhttp bound to host:port, or NULL with *cause set. */
static struct evhttp *
http_bind(struct http *http, const char *host, int port, char **cause)
{
	const struct conf		*c = http->vw->conf;
	struct evhttp			*evh;
	struct evhttp_bound_socket	*bound;
	struct timeval			 tv;

	if ((evh = evhttp_new(http->vw->base)) == NULL)
		fatalx("evhttp_new");
	errno = 0;
	if ((bound = evhttp_bind_socket_with_handle(evh, host, port)) ==
	    NULL) {
		if (errno != 0)
			xasprintf(cause, "cannot listen on %s:%d: %s", host,
			    port, strerror(errno));
		else
			xasprintf(cause, "cannot listen on %s:%d", host, port);
		evhttp_free(evh);
		return (NULL);
	}
	http->lev = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(http->lev, http_on_accept_error);
	http->paused = 0;
	evhttp_set_bevcb(evh, http_on_accept, http);
	evhttp_set_allowed_methods(evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(evh, 64 * 1024);
	evhttp_set_max_headers_size(evh, 16 * 1024);
	tv.tv_sec = c->http_idle_timeout_ms / 1000;
	tv.tv_usec = c->http_idle_timeout_ms % 1000 * 1000;
	evhttp_set_timeout_tv(evh, &tv);
	evhttp_set_cb(evh, "/healthz", http_healthz, http);
	evhttp_set_cb(evh, "/metrics", http_metrics, http);
	evhttp_set_gencb(evh, http_notfound, http);
	return (evh);
}

/* Close the listener and every connection (the pages answer first). */
static void
http_unbind(struct http *http)
{
	struct evhttp	*evh = http->evh;

	if (evh == NULL)
		return;
	pages_abort_all();
	/* evhttp_free frees the listener before the connections. */
	http->evh = NULL;
	http->lev = NULL;
	http->paused = 0;
	http->resting = 0;
	evtimer_del(&http->ev_resume);
	evhttp_free(evh);
	/* Those accepted on this turn of the loop, freed with it. */
	http_on_pending(-1, 0, http);
}

static void
http_bound(struct http *http, struct evhttp *evh, const char *host, int port)
{
	http->evh = evh;
	if (host != http->host) {
		free(http->host);
		http->host = xstrdup(host);
	}
	http->port = port;
	free(http->unbound);
	http->unbound = NULL;
	http->rebind_ms = 0;
	evtimer_del(&http->ev_rebind);
	log_info("http: listening on %s:%d", http->host, http->port);
}

/* Neither address could be bound: try again after a backoff. */
static void
http_retry_later(struct http *http)
{
	struct timeval	tv;
	int64_t		delay;

	delay = vw_backoff(&http->rebind_ms, &tv);
	if (log_ratelimit(&http->rl_rebind, 5, clock_mono_ms()))
		log_warnx("http: not listening: %s; retrying in %lld ms",
		    http->unbound, (long long)delay);
	evtimer_add(&http->ev_rebind, &tv);
}

static void
http_on_rebind(evutil_socket_t fd, short events, void *arg)
{
	struct http	*http = arg;

	if (http_try_bind(http) != 0)
		http_retry_later(http);
}

/*
 * Bind the configured address, else the one bound before; 0 when one
 * is, else -1 with http->unbound saying why.
 */
static int
http_try_bind(struct http *http)
{
	const struct conf	*c = http->vw->conf;
	struct evhttp		*evh;
	char			*cause = NULL, *again = NULL;

	if ((evh = http_bind(http, c->http_host, c->http_port, &cause)) !=
	    NULL) {
		http_bound(http, evh, c->http_host, c->http_port);
		return (0);
	}
	if (strcmp(c->http_host, http->host) != 0 ||
	    c->http_port != http->port) {
		evh = http_bind(http, http->host, http->port, &again);
		if (evh != NULL) {
			log_warnx("http: %s; still listening on the old "
			    "address", cause);
			free(cause);
			http_bound(http, evh, http->host, http->port);
			return (0);
		}
		free(http->unbound);
		xasprintf(&http->unbound, "%s, nor on %s:%d again", cause,
		    http->host, http->port);
		free(cause);
		free(again);
	} else {
		free(http->unbound);
		http->unbound = cause;
	}
	return (-1);
}

/* Warn when the cap leaves other parts too few descriptors. */
static void
http_check_nofile(const struct conf *c)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return;
	if ((rlim_t)c->http_max_connections + HTTP_FD_RESERVE > rl.rlim_cur)
		log_warnx("http: max_connections %d leaves fewer than %d of "
		    "the %llu file descriptors allowed (LimitNOFILE) for the "
		    "rest", c->http_max_connections, HTTP_FD_RESERVE,
		    (unsigned long long)rl.rlim_cur);
}

/* Start listening on [http] listen. */
struct http *
http_new(struct vialwatchd *vw, char **cause)
{
	struct http			*http;
	static const struct pgconn_events none;
	struct evhttp			*evh;

	http = xcalloc(1, sizeof *http);
	http->vw = vw;
	TAILQ_INIT(&http->conns);
	TAILQ_INIT(&http->pending);
	event_assign(&http->ev_pending, vw->base, -1, 0, http_on_pending,
	    http);
	evtimer_assign(&http->ev_resume, vw->base, http_on_resume, http);
	evtimer_assign(&http->ev_rebind, vw->base, http_on_rebind, http);
	evh = http_bind(http, vw->conf->http_host, vw->conf->http_port, cause);
	if (evh == NULL) {
		free(http);
		return (NULL);
	}
	http_the = http;
	http_bound(http, evh, vw->conf->http_host, vw->conf->http_port);
	http_check_nofile(vw->conf);
	http->pc = pgconn_new(vw->base, &vw->conf, "pages", &none, http);
	pgconn_set_login(http->pc, http_conninfo, HTTP_ROLE);
	pgconn_start(http->pc);
	return (http);
}

/*
 * A reload: the pages' connection, the limits, and the listener moves
 * when the listen address changed.  The old address is kept when the new
 * one cannot be bound; when neither can, both are tried again and again.
 */
void
http_reconfigure(struct http *http, const struct conf *old)
{
	const struct conf	*c = http->vw->conf;
	struct timeval		 tv;

	pgconn_reconfigure(http->pc, old);
	http_check_nofile(c);
	if (http->evh != NULL) {
		tv.tv_sec = c->http_idle_timeout_ms / 1000;
		tv.tv_usec = c->http_idle_timeout_ms % 1000 * 1000;
		evhttp_set_timeout_tv(http->evh, &tv);
		http_resume(http);
		if (strcmp(c->http_host, http->host) == 0 &&
		    c->http_port == http->port)
			return;
	}
	/* Same port on another address may clash: free the old one first. */
	http_unbind(http);
	evtimer_del(&http->ev_rebind);
	http->rebind_ms = 0;
	if (http_try_bind(http) != 0)
		http_retry_later(http);
}

void
http_free(struct http *http)
{
	if (http == NULL)
		return;
	http_unbind(http);
	event_del(&http->ev_pending);
	evtimer_del(&http->ev_rebind);
	pgconn_free(http->pc);
	free(http->unbound);
	free(http->host);
	free(http);
	http_the = NULL;
}
