/*
 * topic.c: from a sensor key back to the topics it comes from, so that
 * a daemon sharded by topic filters (docs/SCALING.md) judges only the
 * sensors it can hear. The inverse of the key rules of payload.c.
 */
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>

#include "payload.h"
#include "topic.h"

#define TOPIC_CANDIDATES	2

/* Whether the filter matches topic (a candidate that does not fit: no). */
static int
topic_matches(const char *filter, const char *topic)
{
	bool	result = false;

	if (topic[0] == '\0' ||
	    mosquitto_topic_matches_sub(filter, topic, &result) !=
	    MOSQ_ERR_SUCCESS)
		return (0);
	return (result);
}

/*
 * ttn keys drop the tenant: v3/<app>/devices/<dev> comes from
 * v3/<app>[@tenant]/devices/<dev>/up. A filter that names the tenant
 * (v3/app@tenant/...) gives it back.
 */
static void
topic_ttn(const char *filter, const char *key, char *t0, char *t1,
    size_t size)
{
	const char	*app, *slash, *at, *flevel, *fend;
	size_t		 applen;

	snprintf(t0, size, "%s/up", key);
	if (strncmp(key, "v3/", 3) != 0 || strncmp(filter, "v3/", 3) != 0)
		return;
	app = key + 3;
	if ((slash = strchr(app, '/')) == NULL)
		return;
	applen = slash - app;
	flevel = filter + 3;
	if ((fend = strchr(flevel, '/')) == NULL)
		fend = flevel + strlen(flevel);
	at = memchr(flevel, '@', fend - flevel);
	if (at == NULL || (size_t)(at - flevel) != applen ||
	    memcmp(flevel, app, applen) != 0)
		return;
	snprintf(t1, size, "v3/%.*s%s/up", (int)(fend - flevel), flevel,
	    slash);
}

/* The topics of the source's format that give key; "" when none. */
static void
topic_candidates(const struct source *src, const char *key,
    char t[TOPIC_CANDIDATES][PAYLOAD_KEY_MAX + 32])
{
	const size_t	 size = PAYLOAD_KEY_MAX + 32;
	const char	*last;

	t[0][0] = t[1][0] = '\0';
	last = strrchr(key, '/');
	switch (src->format) {
	case FORMAT_ZIGBEE2MQTT:
		snprintf(t[0], size, "%s", key);
		snprintf(t[1], size, "%s/availability", key);
		break;
	case FORMAT_TASMOTA:		/* <topic>/<object name> */
		if (last != NULL && last != key)
			snprintf(t[0], size, "%.*s", (int)(last - key), key);
		break;
	case FORMAT_SHELLY:
		snprintf(t[0], size, "%s/sensor/temperature", key);
		snprintf(t[1], size, "%s/sensor/battery", key);
		break;
	case FORMAT_SHELLY_GEN2:	/* <prefix>/temperature:<n> */
		if (last == NULL || last == key ||
		    strncmp(last + 1, "temperature:", 12) != 0)
			break;
		snprintf(t[0], size, "%.*s/status/%s", (int)(last - key), key,
		    last + 1);
		snprintf(t[1], size, "%.*s/events/rpc", (int)(last - key), key);
		break;
	case FORMAT_ESPHOME:
	case FORMAT_HOMEASSISTANT:
	case FORMAT_NUMBER:
		snprintf(t[0], size, "%s/state", key);
		snprintf(t[1], size, "%s", key);
		break;
	case FORMAT_TTN:
		topic_ttn(src->filter, key, t[0], t[1], size);
		break;
	case FORMAT_JSON:
		snprintf(t[0], size, "%s", key);
		break;
	}
}

int
topic_source_reaches(const struct source *src, const char *key)
{
	char	t[TOPIC_CANDIDATES][PAYLOAD_KEY_MAX + 32];
	int	i;

	topic_candidates(src, key, t);
	for (i = 0; i < TOPIC_CANDIDATES; i++) {
		if (topic_matches(src->filter, t[i]))
			return (1);
	}
	return (0);
}

int
topic_conf_reaches(const struct conf *c, const char *key)
{
	int	i;

	for (i = 0; i < c->nsources; i++) {
		if (topic_source_reaches(&c->sources[i], key))
			return (1);
	}
	return (0);
}
