/*
 * Fridge state back to MQTT ([mqtt] publish_state): every STATE_EVERY_S
 * this reads vialwatch.fridge_mqtt_state() (sql/017_mqtt_state.sql) on a
 * connection of its own and publishes, retained, what changed to
 * vialwatch/<clinic>/<fridge>/state; with homeassistant_discovery, the
 * Home Assistant discovery configs of each fridge too (a temperature
 * sensor and a "problem" binary sensor, available while the daemon's
 * status topic says "online"). A fridge that went, or a topic that moved,
 * is cleared with an empty retained message. Nothing here touches the
 * ingest path: the readings are stored before they are seen here, and
 * mqtt_publish only queues.
 *
 * The same rows give /metrics the fridges in each state and those whose
 * alarm nobody acknowledged; without publish_state they are counted every
 * STATE_COUNT_EVERY_MS.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <json-c/json.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "mqtt.h"
#include "pgconn.h"
#include "state.h"
#include "vialwatchd.h"
#include "xmalloc.h"

#define STATE_EVERY_S		5
#define STATE_COUNT_EVERY_MS	15000
#define STATE_PREFIX		"vialwatch/"
#define STATE_HA_PREFIX		"homeassistant/"

/* What was last published for one fridge. */
struct state_fridge {
	long long	 id;
	char		*topic;		/* the state topic */
	char		*payload;	/* NULL: not published (yet) */
	char		*sensor;	/* discovery configs, NULL: none */
	char		*problem;
};

struct state {
	struct vialwatchd	*vw;
	struct pgconn		*pc;
	struct event		 ev_poll;
	int			 busy;		/* a query under way */
	unsigned int		 session;	/* mqtt_session() published to */
	struct state_fridge	*fridges;	/* sorted by id */
	size_t			 nfridges;
	int64_t			 counted_at;	/* clock_mono_ms(), 0: never */
	int64_t			 counts[STATE_KINDS];
	int64_t			 unacknowledged;
};

static const char *state_kind_names[STATE_KINDS] = {
	[STATE_OK] = "ok",
	[STATE_PENDING] = "pending",
	[STATE_ALARM] = "alarm",
	[STATE_OFFLINE] = "offline",
	[STATE_MAINTENANCE] = "maintenance",
};

static const char *state_sql =
    "select fridge_id, clinic, fridge, path, state, unacknowledged, payload "
    "from vialwatch.fridge_mqtt_state()";

const char *
state_kind_name(enum state_kind k)
{
	return (state_kind_names[k]);
}

int64_t
state_count(struct state *st, enum state_kind k)
{
	return (st->counted_at == 0 ? -1 : st->counts[k]);
}

int64_t
state_unacknowledged(struct state *st)
{
	return (st->counted_at == 0 ? -1 : st->unacknowledged);
}

/* Count the fridges of each state in the rows. */
static void
state_count_rows(struct state *st, const PGresult *res)
{
	int	i, k, n = PQntuples(res);

	memset(st->counts, 0, sizeof st->counts);
	st->unacknowledged = 0;
	for (i = 0; i < n; i++) {
		for (k = 0; k < STATE_KINDS; k++) {
			if (strcmp(PQgetvalue(res, i, 4),
			    state_kind_names[k]) == 0)
				st->counts[k]++;
		}
		st->unacknowledged += *PQgetvalue(res, i, 5) == 't';
	}
	st->counted_at = clock_mono_ms();
}

/* Publish retained, and remember it; an empty payload clears the topic. */
static void
state_put(struct state *st, char **have, const char *topic, char *payload)
{
	if (*have != NULL && payload != NULL && strcmp(*have, payload) == 0) {
		free(payload);
		return;
	}
	if (payload == NULL && *have == NULL)
		return;
	if (mqtt_publish(st->vw->mqtt, topic, payload != NULL ? payload : "",
	    1) == -1) {
		free(payload);
		return;		/* tried again at the next poll */
	}
	free(*have);
	*have = payload;
}

/* The discovery topic of one of a fridge's two entities. */
static void
state_ha_topic(char *buf, size_t len, long long id, int problem)
{
	snprintf(buf, len, STATE_HA_PREFIX "%s/vialwatch_fridge_%lld/%s/config",
	    problem ? "binary_sensor" : "sensor", id,
	    problem ? "problem" : "temperature");
}

/* One discovery config as Home Assistant's MQTT integration reads it. */
static char *
state_ha_config(const struct conf *c, long long id, const char *clinic,
    const char *fridge, const char *topic, int problem)
{
	json_object	*o, *dev, *ids;
	char		 buf[128], *s;

	o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(problem ?
	    "Problem" : "Temperature"));
	snprintf(buf, sizeof buf, "vialwatch_fridge_%lld_%s", id, problem ?
	    "problem" : "temperature");
	json_object_object_add(o, "unique_id", json_object_new_string(buf));
	json_object_object_add(o, "state_topic", json_object_new_string(topic));
	json_object_object_add(o, "json_attributes_topic",
	    json_object_new_string(topic));
	if (problem) {
		json_object_object_add(o, "device_class",
		    json_object_new_string("problem"));
		json_object_object_add(o, "value_template",
		    json_object_new_string("{{ 'ON' if value_json.state in "
		    "['pending', 'alarm', 'offline'] else 'OFF' }}"));
	} else {
		json_object_object_add(o, "device_class",
		    json_object_new_string("temperature"));
		json_object_object_add(o, "state_class",
		    json_object_new_string("measurement"));
		json_object_object_add(o, "unit_of_measurement",
		    json_object_new_string("\xc2\xb0" "C"));
		json_object_object_add(o, "value_template",
		    json_object_new_string("{{ value_json.temperature }}"));
	}
	if (c->mqtt_status_topic != NULL) {
		json_object_object_add(o, "availability_topic",
		    json_object_new_string(c->mqtt_status_topic));
		json_object_object_add(o, "payload_available",
		    json_object_new_string("online"));
		json_object_object_add(o, "payload_not_available",
		    json_object_new_string("offline"));
	}
	dev = json_object_new_object();
	ids = json_object_new_array();
	snprintf(buf, sizeof buf, "vialwatch_fridge_%lld", id);
	json_object_array_add(ids, json_object_new_string(buf));
	json_object_object_add(dev, "identifiers", ids);
	xasprintf(&s, "%s %s", clinic, fridge);
	json_object_object_add(dev, "name", json_object_new_string(s));
	free(s);
	json_object_object_add(dev, "manufacturer",
	    json_object_new_string("vialwatch"));
	json_object_object_add(dev, "model", json_object_new_string("fridge"));
	json_object_object_add(dev, "suggested_area",
	    json_object_new_string(clinic));
	json_object_object_add(o, "device", dev);
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return (s);
}

/* Publish, or clear (want 0), a fridge's two discovery configs. */
static void
state_ha(struct state *st, struct state_fridge *f, int want,
    const char *clinic, const char *fridge)
{
	const struct conf	*c = st->vw->conf;
	char			 topic[128];

	state_ha_topic(topic, sizeof topic, f->id, 0);
	state_put(st, &f->sensor, topic, want ? state_ha_config(c, f->id,
	    clinic, fridge, f->topic, 0) : NULL);
	state_ha_topic(topic, sizeof topic, f->id, 1);
	state_put(st, &f->problem, topic, want ? state_ha_config(c, f->id,
	    clinic, fridge, f->topic, 1) : NULL);
}

/* Clear all a fridge had published; 0 when all of it is gone. */
static int
state_clear(struct state *st, struct state_fridge *f)
{
	state_ha(st, f, 0, NULL, NULL);
	state_put(st, &f->payload, f->topic, NULL);
	return (f->payload != NULL || f->sensor != NULL || f->problem != NULL);
}

/* Forget what was published: it is published again. */
static void
state_forget(struct state_fridge *f)
{
	free(f->payload);
	free(f->sensor);
	free(f->problem);
	f->payload = f->sensor = f->problem = NULL;
}

static void
state_fridge_free(struct state_fridge *f)
{
	state_forget(f);
	free(f->topic);
}

/* The fridge of that id published before, or NULL. */
static struct state_fridge *
state_find(struct state *st, long long id)
{
	size_t	lo = 0, hi = st->nfridges, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (st->fridges[mid].id == id)
			return (&st->fridges[mid]);
		if (st->fridges[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (NULL);
}

/* One row of the query: carry the fridge over, publish what changed. */
static void
state_row(struct state *st, const PGresult *res, int row,
    struct state_fridge *f)
{
	const struct conf	*c = st->vw->conf;
	struct state_fridge	*old;
	const char		*clinic = PQgetvalue(res, row, 1);
	const char		*fridge = PQgetvalue(res, row, 2);

	memset(f, 0, sizeof *f);
	f->id = pgconn_int(res, row, 0);
	xasprintf(&f->topic, STATE_PREFIX "%s/state", PQgetvalue(res, row, 3));
	if ((old = state_find(st, f->id)) != NULL) {
		if (strcmp(old->topic, f->topic) != 0)
			state_put(st, &old->payload, old->topic, NULL);
		else {
			f->payload = old->payload;
			old->payload = NULL;
		}
		f->sensor = old->sensor;
		f->problem = old->problem;
		old->sensor = old->problem = NULL;
		old->id = -1;	/* carried over */
	}
	state_put(st, &f->payload, f->topic,
	    xstrdup(PQgetvalue(res, row, 6)));
	state_ha(st, f, c->mqtt_ha_discovery, clinic, fridge);
}

/* The fridges as they stand now: publish, and clear those that went. */
static void
state_on_rows(const PGresult *res, void *arg)
{
	struct state		*st = arg;
	struct state_fridge	*next;
	size_t			 i, n;

	st->busy = 0;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(st->pc, res, "reading the fridges' state");
		return;
	}
	state_count_rows(st, res);
	if (!st->vw->conf->mqtt_publish_state ||
	    mqtt_session(st->vw->mqtt) == 0)
		return;
	if (mqtt_session(st->vw->mqtt) != st->session) {
		/* A new connection: the broker may have lost it all. */
		for (i = 0; i < st->nfridges; i++)
			state_forget(&st->fridges[i]);
		st->session = mqtt_session(st->vw->mqtt);
	}
	n = (size_t)PQntuples(res);
	next = xcalloc(n + 1, sizeof *next);
	for (i = 0; i < n; i++)
		state_row(st, res, (int)i, &next[i]);
	for (i = 0; i < st->nfridges; i++) {
		if (st->fridges[i].id != -1)
			state_clear(st, &st->fridges[i]);
		state_fridge_free(&st->fridges[i]);
	}
	free(st->fridges);
	st->fridges = next;
	st->nfridges = n;
}

/* publish_state turned off by a reload: clear what we published. */
static void
state_withdraw(struct state *st)
{
	size_t	i, left = 0;

	for (i = 0; i < st->nfridges; i++)
		left += state_clear(st, &st->fridges[i]);
	if (left > 0)
		return;		/* not connected: again at the next poll */
	for (i = 0; i < st->nfridges; i++)
		state_fridge_free(&st->fridges[i]);
	free(st->fridges);
	st->fridges = NULL;
	st->nfridges = 0;
}

static void
state_poll(evutil_socket_t fd, short events, void *arg)
{
	static const struct pgconn_events	 no_events;
	struct state				*st = arg;

	if (st->busy)
		return;
	if (!st->vw->conf->mqtt_publish_state ||
	    mqtt_session(st->vw->mqtt) == 0) {
		if (!st->vw->conf->mqtt_publish_state && st->nfridges > 0 &&
		    mqtt_session(st->vw->mqtt) != 0)
			state_withdraw(st);
		if (st->counted_at != 0 &&
		    clock_mono_ms() - st->counted_at < STATE_COUNT_EVERY_MS)
			return;
	}
	if (st->pc == NULL) {
		st->pc = pgconn_new(st->vw->base, &st->vw->conf, "state", &no_events, st);
		pgconn_start(st->pc);
		return;
	}
	if (pgconn_query(st->pc, state_sql, 0, NULL, state_on_rows, st) == 0)
		st->busy = 1;
}

struct state *
state_new(struct vialwatchd *vw)
{
	struct state	*st;

	st = xcalloc(1, sizeof *st);
	st->vw = vw;
	event_assign(&st->ev_poll, vw->base, -1, EV_PERSIST, state_poll, st);
	return (st);
}

void
state_start(struct state *st)
{
	struct timeval	tv = { STATE_EVERY_S, 0 };

	event_add(&st->ev_poll, &tv);
}

void
state_reconfigure(struct state *st, const struct conf *old)
{
	if (st->pc != NULL)
		pgconn_reconfigure(st->pc, old);
}

void
state_free(struct state *st)
{
	size_t	i;

	if (st == NULL)
		return;
	event_del(&st->ev_poll);
	if (st->pc != NULL)
		pgconn_free(st->pc);
	for (i = 0; i < st->nfridges; i++)
		state_fridge_free(&st->fridges[i]);
	free(st->fridges);
	free(st);
}
