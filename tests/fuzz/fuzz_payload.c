/*
 * libFuzzer target for payload.c. An input is:
 *
 *	byte 0	    format b % FORMAT_COUNT; unit F if b / FORMAT_COUNT
 *		    is odd; source preset b / (2 * FORMAT_COUNT) % 8
 *	topic '\n'  if a newline comes within TOPIC_MAX bytes; else the
 *		    format's usual topic is used
 *	payload	    the rest, exactly sized, so overreads are caught
 *
 * Every result is checked against the contract in payload.h. The presets
 * are repeated in tests/unit/test_payload.c, which writes the seed corpus.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "payload.h"

#define TOPIC_MAX	1024
#define NOW		1700000100000000LL
#define MIN_TS		(946684800LL * 1000000)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#include "presets.h"

static const char *topics[FORMAT_COUNT] = {
	[FORMAT_ZIGBEE2MQTT] = "zigbee2mqtt/fridge1",
	[FORMAT_TASMOTA] = "tele/fridge1/SENSOR",
	[FORMAT_SHELLY] = "shellies/shellyht-1/sensor/temperature",
	[FORMAT_SHELLY_GEN2] = "shellyplusht/events/rpc",
	[FORMAT_ESPHOME] = "node/sensor/fridge/state",
	[FORMAT_HOMEASSISTANT] = "homeassistant/sensor/fridge/state",
	[FORMAT_NUMBER] = "lab/fridge",
	[FORMAT_TTN] = "v3/fridges@ttn/devices/lht65/up",
	[FORMAT_JSON] = "lab/fridge",
};

/* Stop the run: an invariant of payload_decode does not hold. */
#define CHECK(e)	do { if (!(e)) abort(); } while (0)

/* Whether the NUL-terminated s (within size) is UTF-8 without controls. */
static int
text_ok(const char *s, size_t size, int controls)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len, i = 0, n;

	if ((len = strnlen(s, size)) == size)
		return (0);
	while (i < len) {
		if (p[i] < 0x80) {
			if (!controls && (p[i] < 0x20 || p[i] == 0x7f))
				return (0);
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			n = 1;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			n = 2;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			n = 3;
		else
			return (0);
		for (i++; n > 0; n--, i++) {
			if (i >= len || (p[i] & 0xc0) != 0x80)
				return (0);
		}
	}
	return (1);
}

/* A percentage is NAN or within 0..100. */
static int
percent_ok(double v)
{
	return (isnan(v) || (v >= 0 && v <= 100));
}

/* Check one reading of a successful decode. */
static void
check_reading(const struct reading *r)
{
	CHECK(text_ok(r->key, sizeof r->key, 0) && r->key[0] != '\0');
	CHECK(r->ts_us >= MIN_TS && r->ts_us <= NOW + PAYLOAD_MAX_FUTURE_US);
	CHECK(percent_ok(r->humidity) && percent_ok(r->battery));
	switch (r->kind) {
	case READING_TEMP:
		CHECK(isfinite(r->temp_c));
		CHECK(r->temp_c >= PAYLOAD_MIN_C && r->temp_c <= PAYLOAD_MAX_C);
		break;
	case READING_BATTERY:
		CHECK(isnan(r->temp_c) && !isnan(r->battery));
		break;
	case READING_OFFLINE:
	case READING_ONLINE:
		CHECK(isnan(r->temp_c));
		break;
	default:
		abort();
	}
}

/* Check a whole result against the contract. */
static void
check_result(int rc, const struct payload_result *res)
{
	int	i;

	CHECK(payload_reason_label(res->reason) != NULL);
	if (rc == -1) {
		CHECK(res->n == 0);
		CHECK(res->reason > REASON_NONE && res->reason < REASON_COUNT);
		CHECK(res->detail[0] != '\0');
		CHECK(text_ok(res->detail, sizeof res->detail, 0));
		return;
	}
	CHECK(rc == res->n && rc >= 0 && rc <= PAYLOAD_MAX_READINGS);
	CHECK(res->reason == REASON_NONE && res->detail[0] == '\0');
	for (i = 0; i < res->n; i++)
		check_reading(&res->r[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct payload_result	 res;
	struct source			 src;
	char				 topic[TOPIC_MAX + 1];
	const uint8_t			*nl;
	size_t				 tlen;
	int				 b, preset;

	if (size < 1)
		return (0);
	b = data[0];
	preset = b / (2 * FORMAT_COUNT) % 8;
	memset(&src, 0, sizeof src);
	src.name = "fuzz";
	src.format = b % FORMAT_COUNT;
	src.unit = (b / FORMAT_COUNT) % 2 ? 'F' : 'C';
	src.filter = presets[preset].filter;
	src.temperature = (char *)presets[preset].temperature;
	src.timestamp = (char *)presets[preset].timestamp;
	src.door = (char *)presets[preset].door;
	src.door_open_value = (char *)presets[preset].door_open_value;
	src.power = (char *)presets[preset].power;
	data++;
	size--;

	tlen = size < TOPIC_MAX ? size : TOPIC_MAX;
	if ((nl = memchr(data, '\n', tlen)) != NULL) {
		tlen = nl - data;
		memcpy(topic, data, tlen);
		topic[tlen] = '\0';
		data += tlen + 1;
		size -= tlen + 1;
	} else
		strcpy(topic, topics[src.format]);

	check_result(payload_decode(&src, topic, data, size, NOW, &res), &res);
	return (0);
}
