/*
 * MQTT: libmosquitto driven by the libevent loop (no library thread).
 * MQTT v5 with a persistent session; reconnects with capped exponential
 * backoff and jitter; every message is decoded and queued for the database.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "clock.h"
#include "conf.h"
#include "db.h"
#include "excursion.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "payload.h"
#include "resolve.h"
#include "xmalloc.h"

#define MQTT_READS_PER_EVENT	256
#define MQTT_PROBE_TIMEOUT_S	10

struct mqtt {
	struct event_base	*base;
	struct conf		**conf;
	struct db		*db;		/* where readings go */
	struct excursion	*excursion;	/* and the rules */
	struct mosquitto	*mosq;
	enum mqtt_state		 state;
	int			 fd;
	int			 paused;
	int			 stopping;
	unsigned int		 session;	/* counts connections */
	int64_t			 backoff_ms;
	struct event		 ev_read;
	struct event		 ev_write;
	struct event		 ev_misc;
	struct event		 ev_retry;
	struct ratelimit	 rl_unmatched;
	struct ratelimit	*rl_sources;	/* one per [source] */
	int			*sub_mids;	/* SUBSCRIBE message ids */
	struct bufferevent	*probe;		/* TCP probe before connect */
	struct evdns_base	*dns;
};

static const char *mqtt_state_names[] = {
	[MQTT_DISCONNECTED] = "disconnected",
	[MQTT_CONNECTING] = "connecting",
	[MQTT_CONNECTED] = "connected",
};

static void	mqtt_connect(struct mqtt *);
static void	mqtt_lost(struct mqtt *, const char *);

const char *
mqtt_state_name(enum mqtt_state s)
{
	return (mqtt_state_names[s]);
}

enum mqtt_state
mqtt_state(struct mqtt *m)
{
	return (m->state);
}

/* One transition, logged. */
static void
mqtt_set_state(struct mqtt *m, enum mqtt_state s)
{
	if (m->state == s)
		return;
	log_debug("mqtt: %s -> %s", mqtt_state_names[m->state],
	    mqtt_state_names[s]);
	m->state = s;
}

/* Write interest only while libmosquitto has something to send. */
static void
mqtt_update_write(struct mqtt *m)
{
	if (m->fd == -1)
		return;
	if (mosquitto_want_write(m->mosq))
		event_add(&m->ev_write, NULL);
	else
		event_del(&m->ev_write);
}

/* Find the [source] for a topic, or NULL. */
static const struct source *
mqtt_match(const struct conf *c, const char *topic)
{
	bool	match;
	int	i;

	for (i = 0; i < c->nsources; i++) {
		if (mosquitto_topic_matches_sub(c->sources[i].filter, topic,
		    &match) == MOSQ_ERR_SUCCESS && match)
			return (&c->sources[i]);
	}
	return (NULL);
}

/* Keep a refused message, count it, and log it at most a few times. */
static void
mqtt_reject(struct mqtt *m, struct ratelimit *rl, const char *topic,
    const void *payload, size_t len, enum payload_reason reason,
    const char *detail, int64_t now_us)
{
	metrics.rejected[reason]++;
	db_push_rejected(m->db, topic, payload, len, detail,
	    payload_reason_label(reason), now_us);
	if (log_ratelimit(rl, 5, clock_mono_ms()))
		slog_warnx(topic, "mqtt: rejected message on \"%.200s\": %s",
		    topic, detail);
}

/* A message from the broker: decode it and queue what it carries. */
static void
mqtt_on_message(struct mosquitto *mosq, void *arg,
    const struct mosquitto_message *msg, const mosquitto_property *props)
{
	struct mqtt		*m = arg;
	struct payload_result	 res;
	const struct source	*src;
	char			 why[256];
	int64_t			 now_us = clock_now_us();
	int			 i, n;

	if ((src = mqtt_match((*m->conf), msg->topic)) == NULL) {
		metrics.received_unmatched++;
		mqtt_reject(m, &m->rl_unmatched, msg->topic, msg->payload,
		    msg->payloadlen, REASON_NO_SOURCE,
		    "no [source] section matches this topic", now_us);
		return;
	}
	metrics.sources[src->metric].received++;
	n = payload_decode(src, msg->topic, msg->payload, msg->payloadlen,
	    now_us, &res);
	if (n == -1) {
		mqtt_reject(m, &m->rl_sources[src - (*m->conf)->sources],
		    msg->topic, msg->payload, msg->payloadlen, res.reason,
		    res.detail, now_us);
		return;
	}
	for (i = 0; i < n; i++) {
		/*
		 * A retained message is the broker replaying an old value on
		 * subscribe: its reading was stored when it was new. Only a
		 * retained availability state says something now.
		 */
		if (msg->retain && res.r[i].kind != READING_OFFLINE &&
		    res.r[i].kind != READING_ONLINE)
			continue;
		if (excursion_correct(m->excursion, &res.r[i], why,
		    sizeof why) == -1) {
			mqtt_reject(m, &m->rl_sources[src - (*m->conf)->sources],
			    msg->topic, msg->payload, msg->payloadlen,
			    REASON_OUT_OF_RANGE, why, now_us);
			continue;
		}
		db_push_reading(m->db, src->name, &res.r[i], now_us);
		excursion_feed(m->excursion, &res.r[i], now_us);
	}
}

/* CONNACK: subscribe every [source] filter (again) on each connect. */
static void
mqtt_on_connect(struct mosquitto *mosq, void *arg, int rc, int flags,
    const mosquitto_property *props)
{
	struct mqtt		*m = arg;
	const struct conf	*c = (*m->conf);
	int			 i, r;

	if (rc != 0) {
		log_warnx("mqtt: broker refused the connection: %s",
		    mosquitto_reason_string(rc));
		return;
	}
	mqtt_set_state(m, MQTT_CONNECTED);
	m->backoff_ms = 0;
	m->session++;
	metrics.mqtt_connects++;
	log_info("mqtt: connected to %s:%d%s", c->mqtt_host, c->mqtt_port,
	    (flags & 1) ? " (session resumed)" : "");
	if (c->mqtt_status_topic != NULL)
		mqtt_publish(m, c->mqtt_status_topic, "online", 1);
	for (i = 0; i < c->nsources; i++) {
		r = mosquitto_subscribe_v5(m->mosq, &m->sub_mids[i],
		    c->sources[i].topic, c->mqtt_qos, 0, NULL);
		if (r != MOSQ_ERR_SUCCESS)
			log_warnx("mqtt: subscribe %s: %s", c->sources[i].topic,
			    mosquitto_strerror(r));
		else
			log_debug("mqtt: subscribed %s", c->sources[i].topic);
	}
}

/* SUBACK: say loudly when the broker refused a filter. */
static void
mqtt_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int count,
    const int *granted, const mosquitto_property *props)
{
	struct mqtt		*m = arg;
	const struct conf	*c = (*m->conf);
	int			 i;

	for (i = 0; i < c->nsources; i++) {
		if (m->sub_mids[i] != mid)
			continue;
		if (count < 1 || granted[0] >= 0x80)
			log_warnx("mqtt: the broker refused the subscription to "
			    "%s [source %s]: %s", c->sources[i].topic,
			    c->sources[i].name, count < 1 ? "no answer" :
			    mosquitto_reason_string(granted[0]));
		return;
	}
}

static void
mqtt_on_disconnect(struct mosquitto *mosq, void *arg, int rc,
    const mosquitto_property *props)
{
	struct mqtt	*m = arg;

	if (!m->stopping)
		log_warnx("mqtt: disconnected: %s", rc == 0 ? "by request" :
		    mosquitto_strerror(rc));
}

/* Map libmosquitto's log to ours (debug only: it is chatty). */
static void
mqtt_on_log(struct mosquitto *mosq, void *arg, int level, const char *str)
{
	log_debug("mqtt: %s", str);
}

/* Drop the socket's events, or a probe under way. */
static void
mqtt_unregister(struct mqtt *m)
{
	if (m->probe != NULL) {
		bufferevent_free(m->probe);
		m->probe = NULL;
	}
	if (m->fd == -1)
		return;
	event_del(&m->ev_read);
	event_del(&m->ev_write);
	event_del(&m->ev_misc);
	m->fd = -1;
}

/* The connection is gone: schedule a reconnect with backoff and jitter. */
static void
mqtt_lost(struct mqtt *m, const char *why)
{
	struct timeval	tv;
	int64_t		delay;

	mqtt_unregister(m);
	mosquitto_disconnect(m->mosq);
	mqtt_set_state(m, MQTT_DISCONNECTED);
	if (m->stopping || m->paused)
		return;
	delay = clock_backoff(&m->backoff_ms, &tv);
	log_warnx("mqtt: %s; retrying in %lld ms", why, (long long)delay);
	evtimer_add(&m->ev_retry, &tv);
}

/* Check a libmosquitto loop call; a failure means the connection is gone. */
static int
mqtt_check(struct mqtt *m, int rc, const char *what)
{
	char	buf[128];

	if (rc == MOSQ_ERR_SUCCESS)
		return (0);
	if (rc == MOSQ_ERR_ERRNO && errno == 0)
		snprintf(buf, sizeof buf, "%s: connection closed by the broker",
		    what);
	else
		snprintf(buf, sizeof buf, "%s: %s", what, rc == MOSQ_ERR_ERRNO ?
		    strerror(errno) : mosquitto_strerror(rc));
	mqtt_lost(m, buf);
	return (-1);
}

static void
mqtt_readable(evutil_socket_t fd, short events, void *arg)
{
	struct mqtt	*m = arg;
	int		 i, avail;

	for (i = 0; i < MQTT_READS_PER_EVENT && !m->paused; i++) {
		if (mqtt_check(m, mosquitto_loop_read(m->mosq, 1), "read") != 0)
			return;
		if (m->fd == -1 || ioctl(fd, FIONREAD, &avail) == -1 ||
		    avail == 0)
			break;
	}
	mqtt_update_write(m);
}

static void
mqtt_writable(evutil_socket_t fd, short events, void *arg)
{
	struct mqtt	*m = arg;

	if (mqtt_check(m, mosquitto_loop_write(m->mosq, 1), "write") != 0)
		return;
	mqtt_update_write(m);
}

/* Once a second: keepalive pings and QoS retries. */
static void
mqtt_misc(evutil_socket_t fd, short events, void *arg)
{
	struct mqtt	*m = arg;

	if (mqtt_check(m, mosquitto_loop_misc(m->mosq), "keepalive") != 0)
		return;
	if (mosquitto_socket(m->mosq) == -1) {
		mqtt_lost(m, "connection closed");
		return;
	}
	mqtt_update_write(m);
}

static void
mqtt_retry(evutil_socket_t fd, short events, void *arg)
{
	mqtt_connect(arg);
}

/* Set credentials and TLS from the config on the mosquitto handle. */
static int
mqtt_setup(struct mqtt *m, const struct conf *c)
{
	int	rc;

	rc = mosquitto_username_pw_set(m->mosq, c->mqtt_username,
	    c->mqtt_password);
	if (rc == MOSQ_ERR_SUCCESS && c->mqtt_tls_ca_file != NULL)
		rc = mosquitto_tls_set(m->mosq, c->mqtt_tls_ca_file, NULL,
		    c->mqtt_tls_cert_file, c->mqtt_tls_key_file, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_warnx("mqtt: settings: %s", mosquitto_strerror(rc));
		return (-1);
	}
	return (0);
}

/* Per-source state follows the config's [source] sections. */
static void
mqtt_sources_reset(struct mqtt *m)
{
	const struct conf	*c = (*m->conf);

	free(m->rl_sources);
	free(m->sub_mids);
	m->rl_sources = xcalloc(c->nsources + 1, sizeof *m->rl_sources);
	m->sub_mids = xcalloc(c->nsources + 1, sizeof *m->sub_mids);
}

/* (Re)create the client: the client id is fixed by the config. */
static void
mqtt_create(struct mqtt *m)
{
	const struct conf	*c = (*m->conf);

	if (m->mosq != NULL)
		mosquitto_destroy(m->mosq);
	if ((m->mosq = mosquitto_new(c->mqtt_client_id, false, m)) == NULL)
		fatal("mosquitto_new");
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	    MQTT_PROTOCOL_V5);
	mosquitto_connect_v5_callback_set(m->mosq, mqtt_on_connect);
	mosquitto_disconnect_v5_callback_set(m->mosq, mqtt_on_disconnect);
	mosquitto_message_v5_callback_set(m->mosq, mqtt_on_message);
	mosquitto_subscribe_v5_callback_set(m->mosq, mqtt_on_subscribe);
	/* libmosquitto formats a line per packet when a callback is set. */
	mosquitto_log_callback_set(m->mosq, log_debugging() ? mqtt_on_log :
	    NULL);
	/*
	 * Packets (PUBACKs too) are queued and written by mqtt_writable, after
	 * the messages of the read are in the spool, not from inside a read.
	 */
	mosquitto_threaded_set(m->mosq, true);
	/* The broker says "offline" for us when the connection breaks. */
	if (c->mqtt_status_topic != NULL && mosquitto_will_set_v5(m->mosq,
	    c->mqtt_status_topic, 7, "offline", 1, true, NULL) !=
	    MOSQ_ERR_SUCCESS)
		log_warnx("mqtt: cannot set the last will on %s",
		    c->mqtt_status_topic);
	mqtt_sources_reset(m);
}

/*
 * Disconnect; with the will, the broker publishes our "offline" status
 * (MQTT v5 reason code 0x04).
 */
static void
mqtt_disconnect(struct mqtt *m, int with_will)
{
	mosquitto_disconnect_v5(m->mosq, with_will ?
	    MQTT_RC_DISCONNECT_WITH_WILL_MSG : 0, NULL);
}

/*
 * Queue a message for the broker, QoS 1; -1 when not connected. It is
 * written from the loop, never here, so a caller is never held up.
 */
int
mqtt_publish(struct mqtt *m, const char *topic, const char *payload,
    int retain)
{
	int	rc;

	if (m->state != MQTT_CONNECTED || m->fd == -1)
		return (-1);
	rc = mosquitto_publish_v5(m->mosq, NULL, topic, (int)strlen(payload),
	    payload, 1, retain, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_warnx("mqtt: publish %s: %s", topic, mosquitto_strerror(rc));
		return (-1);
	}
	mqtt_update_write(m);
	return (0);
}

/* Changes at each new connection: what was published before may be gone. */
unsigned int
mqtt_session(struct mqtt *m)
{
	return (m->state == MQTT_CONNECTED ? m->session : 0);
}

/*
 * The blocking part of the connect: libmosquitto's connect is the only call
 * that takes the v5 CONNECT properties (the session expiry). It runs only
 * after a probe found the broker listening, at the address the probe
 * reached (addr), so that neither a lookup nor a connect stalls the loop;
 * with TLS the certificate is checked against the name, which libmosquitto
 * then resolves itself.
 */
static void
mqtt_connect_now(struct mqtt *m, const char *addr)
{
	const struct conf	*c = (*m->conf);
	mosquitto_property	*props = NULL;
	struct timeval		 tv = { 1, 0 };
	const char		*host = c->mqtt_host;
	int			 rc;

	if (addr != NULL && c->mqtt_tls_ca_file == NULL)
		host = addr;
	mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
	    (uint32_t)(c->mqtt_session_expiry_ms / 1000));
	rc = mosquitto_connect_bind_v5(m->mosq, host, c->mqtt_port,
	    (int)(c->mqtt_keepalive_ms / 1000), NULL, props);
	mosquitto_property_free_all(&props);
	if (mqtt_check(m, rc, "connect") != 0)
		return;

	m->fd = mosquitto_socket(m->mosq);
	event_assign(&m->ev_read, m->base, m->fd, EV_READ | EV_PERSIST,
	    mqtt_readable, m);
	event_assign(&m->ev_write, m->base, m->fd, EV_WRITE, mqtt_writable,
	    m);
	event_assign(&m->ev_misc, m->base, -1, EV_PERSIST, mqtt_misc, m);
	event_add(&m->ev_read, NULL);
	event_add(&m->ev_misc, &tv);
	mqtt_update_write(m);
}

/* The probe's answer: the broker listens, or it cannot be reached. */
static void
mqtt_probe_event(struct bufferevent *bev, short what, void *arg)
{
	struct mqtt		*m = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof ss;
	char			 buf[160], addr[64];
	const char		*peer = NULL;
	int			 dnserr = bufferevent_socket_get_dns_error(bev);

	if ((what & BEV_EVENT_CONNECTED) && getpeername(bufferevent_getfd(bev),
	    (struct sockaddr *)&ss, &len) == 0)
		peer = resolve_numeric((struct sockaddr *)&ss, addr,
		    sizeof addr);
	bufferevent_free(bev);
	m->probe = NULL;
	if (what & BEV_EVENT_CONNECTED) {
		mqtt_connect_now(m, peer);
		return;
	}
	if (dnserr != 0)
		snprintf(buf, sizeof buf, "cannot resolve %s: %s",
		    (*m->conf)->mqtt_host, evutil_gai_strerror(dnserr));
	else if (what & BEV_EVENT_TIMEOUT)
		snprintf(buf, sizeof buf, "no answer from %s:%d",
		    (*m->conf)->mqtt_host, (*m->conf)->mqtt_port);
	else
		snprintf(buf, sizeof buf, "cannot reach %s:%d: %s",
		    (*m->conf)->mqtt_host, (*m->conf)->mqtt_port,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	mqtt_lost(m, buf);
}

/* Connect: first a non-blocking probe (DNS and TCP) with a timeout. */
static void
mqtt_connect(struct mqtt *m)
{
	const struct conf	*c = (*m->conf);
	struct timeval		 tv = { MQTT_PROBE_TIMEOUT_S, 0 };

	if (m->paused || m->stopping || m->probe != NULL)
		return;		/* mqtt_pause(m, NULL) connects again */
	if (mqtt_setup(m, c) != 0) {
		mqtt_lost(m, "bad settings");
		return;
	}
	mqtt_set_state(m, MQTT_CONNECTING);
	m->probe = bufferevent_socket_new(m->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (m->probe == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(m->probe, NULL, NULL, mqtt_probe_event, m);
	bufferevent_set_timeouts(m->probe, &tv, &tv);
	bufferevent_enable(m->probe, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect_hostname(m->probe, m->dns, AF_UNSPEC,
	    c->mqtt_host, c->mqtt_port) != 0 && m->probe != NULL) {
		bufferevent_free(m->probe);
		m->probe = NULL;
		mqtt_lost(m, "cannot start connecting");
	}
}

struct mqtt *
mqtt_new(struct event_base *base, struct conf **conf, struct db *db,
    struct excursion *excursion)
{
	struct mqtt	*m;

	mosquitto_lib_init();
	m = xcalloc(1, sizeof *m);
	m->base = base;
	m->conf = conf;
	m->db = db;
	m->excursion = excursion;
	m->fd = -1;
	evtimer_assign(&m->ev_retry, base, mqtt_retry, m);
	m->dns = resolve_dns(base);
	mqtt_create(m);
	return (m);
}

/* Connect in the background (from the loop). */
void
mqtt_start(struct mqtt *m)
{
	struct timeval	tv = { 0, 0 };

	if (m->paused)
		return;		/* mqtt_pause() starts it again */
	evtimer_add(&m->ev_retry, &tv);
}

/* True if the config subscribes this exact filter. */
static int
mqtt_has_topic(const struct conf *c, const char *topic)
{
	int	i;

	for (i = 0; i < c->nsources; i++) {
		if (strcmp(c->sources[i].topic, topic) == 0)
			return (1);
	}
	return (0);
}

static int
mqtt_str_differ(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a != b);
	return (strcmp(a, b) != 0);
}

/* True when a reload changed how we connect or what we subscribe. */
static int
mqtt_conf_changed(const struct conf *a, const struct conf *b)
{
	int	i;

	if (mqtt_str_differ(a->mqtt_host, b->mqtt_host) ||
	    a->mqtt_port != b->mqtt_port ||
	    mqtt_str_differ(a->mqtt_client_id, b->mqtt_client_id) ||
	    mqtt_str_differ(a->mqtt_username, b->mqtt_username) ||
	    mqtt_str_differ(a->mqtt_password, b->mqtt_password) ||
	    mqtt_str_differ(a->mqtt_tls_ca_file, b->mqtt_tls_ca_file) ||
	    mqtt_str_differ(a->mqtt_tls_cert_file, b->mqtt_tls_cert_file) ||
	    mqtt_str_differ(a->mqtt_tls_key_file, b->mqtt_tls_key_file) ||
	    a->mqtt_qos != b->mqtt_qos ||
	    a->mqtt_keepalive_ms != b->mqtt_keepalive_ms ||
	    a->mqtt_session_expiry_ms != b->mqtt_session_expiry_ms ||
	    mqtt_str_differ(a->mqtt_status_topic, b->mqtt_status_topic) ||
	    a->nsources != b->nsources)
		return (1);
	for (i = 0; i < a->nsources; i++) {
		if (strcmp(a->sources[i].topic, b->sources[i].topic) != 0)
			return (1);
	}
	return (0);
}

/* A reload: unsubscribe the filters that went, then reconnect. */
void
mqtt_reconfigure(struct mqtt *m, const struct conf *old)
{
	const struct conf	*c = (*m->conf);
	int			 i;

	mosquitto_log_callback_set(m->mosq, log_debugging() ? mqtt_on_log :
	    NULL);
	if (!mqtt_conf_changed(old, c)) {
		/* Same connection: only the decoders' settings may differ. */
		mqtt_sources_reset(m);
		return;
	}

	for (i = 0; m->state == MQTT_CONNECTED && i < old->nsources; i++) {
		if (!mqtt_has_topic(c, old->sources[i].topic))
			mosquitto_unsubscribe(m->mosq, NULL,
			    old->sources[i].topic);
	}
	mosquitto_loop_write(m->mosq, 1);
	log_info("mqtt: reconnecting with the new configuration");
	m->stopping = 1;
	/* A status topic that moves is left saying "offline". */
	mqtt_disconnect(m, mqtt_str_differ(old->mqtt_status_topic,
	    c->mqtt_status_topic));
	mosquitto_loop_write(m->mosq, 1);
	mqtt_unregister(m);
	mqtt_set_state(m, MQTT_DISCONNECTED);
	m->stopping = 0;
	mqtt_create(m);
	m->backoff_ms = 0;
	mqtt_start(m);
}

/*
 * Backpressure: while the database is behind or the spool cannot be
 * written, stop reading (why says so; NULL reads again). The broker holds
 * on to what it has for us (QoS 1 and 2 in our session, QoS 0 in its queue
 * for the connection) and TCP slows the publishers' flow to us. Keepalive
 * pings still go out; should the pause outlast the keepalive, the
 * connection drops and the persistent session queues instead, until
 * mqtt_pause(m, NULL). Called from the message callback: nothing here may
 * call into libmosquitto, which holds its locks there.
 */
void
mqtt_pause(struct mqtt *m, const char *why)
{
	if (m->paused == (why != NULL))
		return;
	m->paused = why != NULL;
	if (why != NULL) {
		log_warnx("mqtt: %s", why);
		if (m->fd != -1)
			event_del(&m->ev_read);
		return;
	}
	log_info("mqtt: reading from the broker again");
	if (m->fd != -1) {
		event_add(&m->ev_read, NULL);
		event_active(&m->ev_read, EV_READ, 1);
		return;
	}
	if (m->state == MQTT_DISCONNECTED && !m->stopping) {
		m->backoff_ms = 0;
		mqtt_start(m);
	}
}

/* Disconnect cleanly: the broker keeps our session and queues for us. */
void
mqtt_stop(struct mqtt *m)
{
	m->stopping = 1;
	event_del(&m->ev_retry);
	if (m->state == MQTT_CONNECTED) {
		mqtt_disconnect(m, 1);
		mosquitto_loop_write(m->mosq, 1);
	}
	mqtt_unregister(m);
	mqtt_set_state(m, MQTT_DISCONNECTED);
}

void
mqtt_free(struct mqtt *m)
{
	if (m == NULL)
		return;
	mqtt_stop(m);
	mosquitto_destroy(m->mosq);
	free(m->rl_sources);
	free(m->sub_mids);
	free(m);
	mosquitto_lib_cleanup();
}
