/* HTTP on libevent's evhttp: /healthz, /metrics and the link pages. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "conf.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "pages.h"
#include "spool.h"
#include "vialwatchd.h"
#include "xmalloc.h"

struct http {
	struct vialwatchd	*vw;
	struct evhttp		*evh;
	char			*host;
	int			 port;
};

static void	http_healthz(struct evhttp_request *, void *);
static void	http_metrics(struct evhttp_request *, void *);
static void	http_notfound(struct evhttp_request *, void *);

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

	spool = spool_error(vw->spool);
	ok = ms == MQTT_CONNECTED && db_connected(vw->db) && spool == NULL;
	b = evbuffer_new();
	evbuffer_add_printf(b, "{\"status\":\"%s\",\"mqtt\":\"%s\","
	    "\"database\":\"%s\",\"spool\":\"%s\",\"spool_bytes\":%llu,"
	    "\"readings_pending\":%zu,\"readings_stored\":%llu}\n",
	    ok ? "ok" : "unavailable", mqtt_state_name(ms),
	    db_state_name(db_state(vw->db)), spool == NULL ? "ok" : spool,
	    (unsigned long long)spool_bytes(vw->spool), db_pending(vw->db),
	    (unsigned long long)metrics.readings_stored);
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

/* Make an evhttp bound to host:port. */
static struct evhttp *
http_bind(struct http *http, const char *host, int port, char **cause)
{
	struct evhttp	*evh;

	if ((evh = evhttp_new(http->vw->base)) == NULL)
		fatalx("evhttp_new");
	if (evhttp_bind_socket(evh, host, port) != 0) {
		xasprintf(cause, "cannot listen on %s:%d", host, port);
		evhttp_free(evh);
		return (NULL);
	}
	evhttp_set_allowed_methods(evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(evh, 64 * 1024);
	evhttp_set_max_headers_size(evh, 16 * 1024);
	evhttp_set_timeout(evh, 30);
	evhttp_set_cb(evh, "/healthz", http_healthz, http);
	evhttp_set_cb(evh, "/metrics", http_metrics, http);
	evhttp_set_gencb(evh, http_notfound, http);
	return (evh);
}

/* Start listening on [http] listen. */
struct http *
http_new(struct vialwatchd *vw, char **cause)
{
	struct http	*http;

	http = xcalloc(1, sizeof *http);
	http->vw = vw;
	http->evh = http_bind(http, vw->conf->http_host, vw->conf->http_port,
	    cause);
	if (http->evh == NULL) {
		free(http);
		return (NULL);
	}
	http->host = xstrdup(vw->conf->http_host);
	http->port = vw->conf->http_port;
	log_info("http: listening on %s:%d", http->host, http->port);
	return (http);
}

/* Rebind when the listen address changed; keep the old one on failure. */
int
http_reconfigure(struct http *http, char **cause)
{
	const struct conf	*c = http->vw->conf;
	struct evhttp		*evh;
	char			*again = NULL;

	if (strcmp(c->http_host, http->host) == 0 && c->http_port == http->port)
		return (0);
	/* Same port on another address may clash: free the old one first. */
	pages_abort_all();
	if (http->evh != NULL)
		evhttp_free(http->evh);
	http->evh = NULL;
	if ((evh = http_bind(http, c->http_host, c->http_port, cause)) ==
	    NULL) {
		http->evh = http_bind(http, http->host, http->port, &again);
		free(again);
		return (-1);
	}
	http->evh = evh;
	free(http->host);
	http->host = xstrdup(c->http_host);
	http->port = c->http_port;
	log_info("http: listening on %s:%d", http->host, http->port);
	return (0);
}

void
http_free(struct http *http)
{
	if (http == NULL)
		return;
	if (http->evh != NULL)
		evhttp_free(http->evh);
	free(http->host);
	free(http);
}
