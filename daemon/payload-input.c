/*
 * payload-input.c: door contacts and mains power, the readings that are
 * not temperatures. Called by the format decoders of payload.c when a
 * message carries such a value:
 *
 *   zigbee2mqtt  {"contact":false} (false: open), {"power":0.4} watts;
 *                keyed by the topic, like a thermometer
 *   tasmota      tele/<dev>/SENSOR {"ENERGY":{"Power":12}}, keyed
 *                tele/<dev>/SENSOR/ENERGY
 *   shelly       shellies/<id>/sensor/state "open" or "close", keyed
 *                shellies/<id>/door
 *   shelly-gen2  <prefix>/status/window:<n> {"open":true},
 *                <prefix>/status/switch:<n> {"apower":12.5}, the same in
 *                NotifyStatus; keyed <prefix>/window:<n>, <prefix>/switch:<n>
 *   json         door = /pointer (door_open_value = what means open;
 *                without it true, 1, "open" and "on"), power = /pointer
 *                (watts, or a boolean)
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <json-c/json.h>
#include <json-c/json_pointer.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "payload.h"
#include "payload-int.h"

#define PAYLOAD_MAX_W	1e6	/* more is not a fridge's plug */

/* A door reading keyed key: 0, or -1. */
static int
payload_input_door(struct payload_msg *m, const char *key, int open,
    int64_t ts, double battery)
{
	struct reading	*r;

	if ((r = payload_next(m)) == NULL)
		return (0);
	if (key != NULL && payload_key(m, r->key, "%s", key) == -1)
		return (-1);
	r->kind = READING_DOOR;
	r->door_open = open;
	r->ts_us = ts;
	r->battery = battery;
	m->out->n++;
	return (0);
}

/* Watts in v, named what: a power reading keyed key; 0, or -1. */
static int
payload_input_watts(struct payload_msg *m, const char *key,
    struct json_object *v, const char *what, int64_t ts)
{
	struct reading	*r;
	double		 w;

	if (payload_double(v, &w) == -1) {
		return (payload_fail(m, REASON_NOT_NUMBER,
		    "%s is not a number of watts", what));
	}
	if (!isfinite(w)) {
		return (payload_fail(m, REASON_NOT_FINITE,
		    "%s is %g, not a finite number", what, w));
	}
	if (w < 0 || w > PAYLOAD_MAX_W) {
		return (payload_fail(m, REASON_OUT_OF_RANGE,
		    "%s %g W is outside 0..%g W", what, w, PAYLOAD_MAX_W));
	}
	if ((r = payload_next(m)) == NULL)
		return (0);
	if (key != NULL && payload_key(m, r->key, "%s", key) == -1)
		return (-1);
	r->kind = READING_POWER;
	r->power_w = w;
	r->ts_us = ts;
	m->out->n++;
	return (0);
}

/* zigbee2mqtt state without a temperature: a contact or a plug. */
int
payload_input_zigbee2mqtt(struct payload_msg *m, struct json_object *obj)
{
	struct json_object	*contact = payload_member(obj, "contact");
	struct json_object	*power = payload_member(obj, "power");
	int64_t			 ts;

	if (contact == NULL && power == NULL)
		return (0);
	if (payload_time(m, payload_member(obj, "last_seen"), "\"last_seen\"",
	    &ts) == -1)
		return (-1);
	if (contact != NULL) {
		if (!json_object_is_type(contact, json_type_boolean)) {
			return (payload_fail(m, REASON_NOT_NUMBER,
			    "\"contact\" is not true or false"));
		}
		/* true: the magnet is against the reed, the door is shut. */
		if (payload_input_door(m, NULL, !json_object_get_boolean(
		    contact), ts, payload_percent(payload_member(obj,
		    "battery"))) == -1)
			return (-1);
	} else if (payload_input_watts(m, NULL, power, "\"power\"",
	    ts) == -1)
		return (-1);
	return (payload_finish(m));
}

/* tasmota SENSOR without a thermometer: "ENERGY":{"Power":W or [W...]}. */
int
payload_input_tasmota(struct payload_msg *m, struct json_object *obj,
    int64_t ts)
{
	struct json_object	*power, *v;
	char			 key[PAYLOAD_KEY_MAX];
	double			 sum = 0, w;
	size_t			 i;

	power = payload_member(payload_member(obj, "ENERGY"), "Power");
	if (power == NULL)
		return (0);
	if (payload_key(m, key, "%s/ENERGY", m->key) == -1)
		return (-1);
	if (!json_object_is_type(power, json_type_array))
		return (payload_input_watts(m, key, power,
		    "\"ENERGY\".\"Power\"", ts) == -1 ? -1 : payload_finish(m));
	/* Several channels: the fridge's plug draws their sum. */
	for (i = 0; i < json_object_array_length(power); i++) {
		v = json_object_array_get_idx(power, i);
		if (payload_double(v, &w) == -1 || !isfinite(w)) {
			return (payload_fail(m, REASON_NOT_NUMBER,
			    "\"ENERGY\".\"Power\"[%zu] is not a number", i));
		}
		sum += w;
	}
	v = json_object_new_double(sum);
	i = payload_input_watts(m, key, v, "\"ENERGY\".\"Power\"", ts) == -1;
	json_object_put(v);
	return (i ? -1 : payload_finish(m));
}

/* shelly gen1 <prefix>/sensor/state (keylen: the prefix): open|close. */
int
payload_input_shelly(struct payload_msg *m, size_t keylen)
{
	const char	*s = m->data;
	size_t		 len = m->len;
	char		 key[PAYLOAD_KEY_MAX];
	int		 open;

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	if (payload_eq(s, len, "open"))
		open = 1;
	else if (payload_eq(s, len, "close") || payload_eq(s, len, "closed"))
		open = 0;
	else {
		return (payload_fail(m, REASON_NOT_NUMBER,
		    "payload is not \"open\" or \"close\""));
	}
	if (payload_key(m, key, "%.*s/door", (int)keylen, m->topic) == -1 ||
	    payload_input_door(m, key, open, m->now_us, NAN) == -1)
		return (-1);
	return (payload_finish(m));
}

/* Whether s is a shelly component "window:<n>" or "switch:<n>". */
int
payload_input_component(const char *s, size_t len)
{
	size_t	i;

	if (len > 7 && strncmp(s, "window:", 7) == 0)
		i = 7;
	else if (len > 7 && strncmp(s, "switch:", 7) == 0)
		i = 7;
	else
		return (0);
	if (len > i + 5)
		return (0);
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (0);
	}
	return (1);
}

/* One window:<n> or switch:<n> object o, keyed <prefix>/<name>. */
static int
payload_input_gen2_one(struct payload_msg *m, const char *prefix,
    size_t prefixlen, const char *name, struct json_object *o, int64_t ts)
{
	struct json_object	*v;
	char			 key[PAYLOAD_KEY_MAX], what[64];

	if (payload_key(m, key, "%.*s/%s", (int)prefixlen, prefix, name) == -1)
		return (-1);
	if (name[1] == 'i') {		/* window */
		v = payload_member(o, "open");
		if (v == NULL)
			return (0);
		if (!json_object_is_type(v, json_type_boolean)) {
			return (payload_fail(m, REASON_NOT_NUMBER,
			    "\"%s\".\"open\" is not true or false", name));
		}
		return (payload_input_door(m, key, json_object_get_boolean(v),
		    ts, NAN));
	}
	/* A switch's status without apower is a relay change: ignored. */
	if ((v = payload_member(o, "apower")) == NULL)
		return (0);
	payload_what(what, sizeof what, "\"%s\".\"apower\"", name);
	return (payload_input_watts(m, key, v, what, ts));
}

/* Parse and decode <prefix>/status/<name>, keyed <prefix>/<name>. */
static int
payload_input_gen2_status(struct payload_msg *m, struct json_object *obj)
{
	const char	*name = strrchr(m->key, '/') + 1;

	if (payload_input_gen2_one(m, m->key, name - 1 - m->key, name, obj,
	    m->now_us) == -1)
		return (-1);
	return (payload_finish(m));
}

/* shelly gen2 <prefix>/status/<name>; keylen is the prefix's length. */
int
payload_input_shelly_gen2_status(struct payload_msg *m, size_t keylen,
    const char *name)
{
	if (payload_key(m, m->key, "%.*s/%s", (int)keylen, m->topic,
	    name) == -1)
		return (-1);
	return (payload_with_json(m, payload_input_gen2_status));
}

/* The window and switch components of a gen2 NotifyStatus. */
void
payload_input_shelly_gen2_rpc(struct payload_msg *m,
    struct json_object *params, int64_t ts)
{
	struct json_object_iter	it;

	json_object_object_foreachC(params, it) {
		if (m->out->n == PAYLOAD_MAX_READINGS)
			break;
		if (payload_input_component(it.key, strlen(it.key)))
			payload_input_gen2_one(m, m->key, strlen(m->key),
			    it.key, it.val, ts);
	}
}

/* Whether the door value v means open, by door_open_value or default. */
static int
payload_input_open(const struct source *src, struct json_object *v)
{
	const char	*s = json_object_get_string(v);

	if (src->door_open_value != NULL)
		return (strcasecmp(s, src->door_open_value) == 0);
	return (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0 ||
	    strcasecmp(s, "open") == 0 || strcasecmp(s, "on") == 0);
}

/* json: the door and power pointers; the number of readings added. */
int
payload_input_json(struct payload_msg *m, struct json_object *obj,
    int64_t ts)
{
	const struct source	*src = m->src;
	struct json_object	*v;
	struct reading		*r;
	char			 what[PAYLOAD_KEY_MAX];
	int			 n = m->out->n;

	if (src->door != NULL && json_pointer_get(obj, src->door, &v) == 0 &&
	    v != NULL && !json_object_is_type(v, json_type_null)) {
		if (json_object_is_type(v, json_type_object) ||
		    json_object_is_type(v, json_type_array)) {
			return (payload_fail(m, REASON_NOT_NUMBER,
			    "door state at %s is not a value", src->door));
		}
		if (payload_input_door(m, NULL, payload_input_open(src, v), ts,
		    NAN) == -1)
			return (-1);
	}
	if (src->power != NULL && json_pointer_get(obj, src->power, &v) == 0 &&
	    v != NULL && !json_object_is_type(v, json_type_null)) {
		if (json_object_is_type(v, json_type_boolean)) {
			if ((r = payload_next(m)) == NULL)
				return (m->out->n - n);
			r->kind = READING_POWER;
			r->power_on = json_object_get_boolean(v);
			r->ts_us = ts;
			m->out->n++;
		} else {
			payload_what(what, sizeof what, "power at %s",
			    src->power);
			if (payload_input_watts(m, NULL, v, what, ts) == -1)
				return (-1);
		}
	}
	return (m->out->n - n);
}
