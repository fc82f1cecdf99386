/*
 * topic.c: from a sensor key back to the topics it comes from, so that
 * a daemon sharded by topic filters ([alerts] watch = own,
 * docs/SCALING.md) judges only the sensors it can hear. The inverse of
 * the key rules of payload.c; when in doubt, a key is reached.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "topic.h"
#include "xmalloc.h"

/* Whether the filter matches topic, the len bytes at t then suffix. */
static int
topic_matches(const char *filter, const char *t, size_t len,
    const char *suffix)
{
	char	*topic;
	bool	 result = false;

	if (len == 0)
		return (0);
	xasprintf(&topic, "%.*s%s", (int)len, t, suffix);
	if (mosquitto_topic_matches_sub(filter, topic, &result) !=
	    MOSQ_ERR_SUCCESS)
		result = false;
	free(topic);
	return (result);
}

/* tasmota: <topic>/<object name>, the name may itself hold slashes. */
static int
topic_tasmota(const char *filter, const char *key)
{
	const char	*p;

	for (p = strchr(key, '/'); p != NULL; p = strchr(p + 1, '/')) {
		if (topic_matches(filter, key, p - key, ""))
			return (1);
	}
	return (0);
}

/*
 * shelly gen2: <prefix>/temperature:<n> (window:<n>, switch:<n>) from
 * .../status/... or events.
 */
static int
topic_shelly_gen2(const char *filter, const char *key)
{
	const char	*last = strrchr(key, '/');
	char		*status;
	int		 rc;

	if (last == NULL || (strncmp(last + 1, "temperature:", 12) != 0 &&
	    strncmp(last + 1, "window:", 7) != 0 &&
	    strncmp(last + 1, "switch:", 7) != 0))
		return (0);
	xasprintf(&status, "/status/%s", last + 1);
	rc = topic_matches(filter, key, last - key, status) ||
	    topic_matches(filter, key, last - key, "/events/rpc");
	free(status);
	return (rc);
}

/*
 * ttn keys drop the tenant: v3/<app>/devices/<dev> comes from
 * v3/<app>[@tenant]/devices/<dev>/up. A filter whose second level names
 * the tenant (v3/app@tenant/...) gives it back.
 */
static int
topic_ttn(const char *filter, const char *key)
{
	const char	*app, *rest, *level, *end, *at;
	char		*prefix;
	int		 rc;

	if (topic_matches(filter, key, strlen(key), "/up"))
		return (1);
	if (strncmp(key, "v3/", 3) != 0 ||
	    (rest = strchr(app = key + 3, '/')) == NULL ||
	    (level = strchr(filter, '/')) == NULL)
		return (0);
	level++;
	if ((end = strchr(level, '/')) == NULL)
		end = level + strlen(level);
	if ((at = memchr(level, '@', end - level)) == NULL ||
	    at - level != rest - app || memcmp(level, app, at - level) != 0)
		return (0);
	xasprintf(&prefix, "v3/%.*s%s", (int)(end - level), level, rest);
	rc = topic_matches(filter, prefix, strlen(prefix), "/up");
	free(prefix);
	return (rc);
}

int
topic_source_reaches(const struct source *src, const char *key)
{
	const char	*f = src->filter;
	size_t		 len = strlen(key);

	switch (src->format) {
	case FORMAT_ZIGBEE2MQTT:
		return (topic_matches(f, key, len, "") ||
		    topic_matches(f, key, len, "/availability"));
	case FORMAT_TASMOTA:
		return (topic_tasmota(f, key));
	case FORMAT_SHELLY:
		if (len > 5 && strcmp(key + len - 5, "/door") == 0 &&
		    topic_matches(f, key, len - 5, "/sensor/state"))
			return (1);
		return (topic_matches(f, key, len, "/sensor/temperature") ||
		    topic_matches(f, key, len, "/sensor/battery"));
	case FORMAT_SHELLY_GEN2:
		return (topic_shelly_gen2(f, key));
	case FORMAT_ESPHOME:
	case FORMAT_HOMEASSISTANT:
	case FORMAT_NUMBER:
		return (topic_matches(f, key, len, "/state") ||
		    topic_matches(f, key, len, ""));
	case FORMAT_TTN:
		return (topic_ttn(f, key));
	case FORMAT_JSON:
		return (topic_matches(f, key, len, ""));
	}
	return (1);
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
