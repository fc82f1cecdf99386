/*
 * payload.c: topic + payload bytes + source config -> readings, or a reason.
 * Pure code: no I/O, no global state, no allocation that outlives a call.
 */
#ifndef PAYLOAD_H
#define PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define PAYLOAD_MAX_BYTES	65536		/* larger payloads are rejected */
#define PAYLOAD_KEY_MAX		256		/* sensor key incl. NUL */
#define PAYLOAD_MAX_READINGS	16		/* readings one message may carry */
#define PAYLOAD_MAX_FUTURE_US	(300LL * 1000000)	/* 5 minutes */
#define PAYLOAD_MIN_C		(-100.0)
#define PAYLOAD_MAX_C		(100.0)

enum reading_kind {
	READING_TEMP,		/* a temperature, maybe with humidity/battery */
	READING_BATTERY,	/* battery only (shelly gen1 .../sensor/battery) */
	READING_OFFLINE,	/* availability: the sensor says it is gone */
	READING_ONLINE,		/* availability: back */
	READING_DOOR,		/* a door contact: door_open */
	READING_POWER,		/* mains power: power_w, or power_on >= 0 */
};

struct reading {
	enum reading_kind	 kind;
	char			 key[PAYLOAD_KEY_MAX];
	int64_t			 ts_us;		/* epoch microseconds, UTC */
	double			 temp_c;	/* NAN unless READING_TEMP */
	double			 temp_raw_c;	/* before the offset (offset.c) */
	double			 humidity;	/* NAN when absent */
	double			 battery;	/* percent, NAN when absent */
	int			 door_open;	/* READING_DOOR: 1 open, 0 shut */
	double			 power_w;	/* READING_POWER: watts or NAN */
	int			 power_on;	/* 1 on, 0 off, -1: see power_w */
};

/* Why a message was refused; each has a label for /metrics. */
enum payload_reason {
	REASON_NONE,
	REASON_TOO_LARGE,
	REASON_EMPTY,
	REASON_NOT_JSON,
	REASON_NOT_NUMBER,
	REASON_NO_TEMPERATURE,
	REASON_NOT_FINITE,
	REASON_OUT_OF_RANGE,
	REASON_FUTURE,
	REASON_BAD_TIMESTAMP,
	REASON_BAD_KEY,		/* invalid UTF-8 or too long */
	REASON_BAD_TOPIC,	/* topic does not have the format's shape */
	REASON_NO_SOURCE,	/* used by mqtt.c: no [source] matches */
};
#define REASON_COUNT (REASON_NO_SOURCE + 1)

struct payload_result {
	int			 n;
	struct reading		 r[PAYLOAD_MAX_READINGS];
	enum payload_reason	 reason;
	char			 detail[256];	/* a sentence a person understands */
};

/*
 * Decode one message. now_us is the arrival time (used when the payload has
 * no time, or a time without a zone). Returns the number of readings (0: a
 * message of the feed that carries none and is ignored, e.g. another
 * subtopic), or -1 with out->reason and out->detail set.
 */
int		 payload_decode(const struct source *, const char *,
		     const void *, size_t, int64_t, struct payload_result *);
const char	*payload_reason_label(enum payload_reason);
/* Length of one valid UTF-8 character at p, or 0. */
size_t		 payload_utf8_char(const unsigned char *, size_t);

#endif
