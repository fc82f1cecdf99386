/* payload.c: topic + payload -> readings, one function per format. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <json-c/json.h>
#include <json-c/json_pointer.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "payload.h"
#include "payload-int.h"

#define PAYLOAD_JSON_DEPTH	64	/* deeper JSON is refused */
#define PAYLOAD_TOPIC_MAX	65535	/* the MQTT limit */
#define PAYLOAD_MIN_TS_US	(946684800LL * 1000000)	/* 2000-01-01 */
#define PAYLOAD_MAX_TS_US	(253402300800LL * 1000000) /* year 10000 */

#define PAYLOAD_DIGIT(c)	((c) >= '0' && (c) <= '9')
#define PAYLOAD_SPACE(c)	\
	((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')

/* One level of a topic, not NUL-terminated. */
struct payload_level {
	const char	*s;
	size_t		 len;
};

static void	 payload_utf8_trim(char *);
static int	 payload_utf8(const char *, size_t);
static int	 payload_split(const char *, size_t, struct payload_level *,
		     int);
static int	 payload_size(struct payload_msg *);
static int	 payload_parse(struct payload_msg *, struct json_object **);
static int	 payload_numeric(const char *, size_t);
static int	 payload_strtod(const char *, size_t, double *);
static char	 payload_unit(struct payload_msg *);
static int	 payload_celsius(struct payload_msg *, double, const char *,
		     char, double *);
static int	 payload_temp(struct payload_msg *, struct json_object *,
		     const char *, char, double *);
static int	 payload_digits(const char *, size_t, size_t *, int, int *);
static int	 payload_expect(const char *, size_t, size_t *, const char *);
static int	 payload_mdays(int, int);
static int64_t	 payload_days(int, int, int);
static int	 payload_fraction(const char *, size_t, size_t *, int64_t *);
static int	 payload_zone(const char *, size_t, size_t *, int *, int *);
static int	 payload_rfc3339(const char *, size_t, int64_t *, int *);
static int	 payload_epoch(double, int64_t *);
static int	 payload_check_time(struct payload_msg *, const char *,
		     int64_t);
static size_t	 payload_z2m_base(struct payload_msg *);
static int	 payload_zigbee2mqtt_state(struct payload_msg *,
		     struct json_object *);
static int	 payload_zigbee2mqtt_online(struct payload_msg *,
		     struct json_object *);
static int	 payload_zigbee2mqtt_availability(struct payload_msg *,
		     size_t);
static int	 payload_zigbee2mqtt(struct payload_msg *);
static int	 payload_tasmota_probe(struct payload_msg *, const char *,
		     struct json_object *, char, int64_t);
static int	 payload_tasmota_sensors(struct payload_msg *,
		     struct json_object *);
static int	 payload_tasmota(struct payload_msg *);
static int	 payload_battery(struct payload_msg *, double, double *);
static int	 payload_shelly(struct payload_msg *);
static int	 payload_component(const char *, size_t);
static int	 payload_shelly_gen2_status(struct payload_msg *,
		     struct json_object *);
static int	 payload_shelly_gen2_component(struct payload_msg *,
		     struct json_object *, const char *, struct json_object *,
		     int64_t);
static int	 payload_shelly_gen2_rpc(struct payload_msg *,
		     struct json_object *);
static int	 payload_shelly_gen2(struct payload_msg *);
static int	 payload_number(struct payload_msg *);
static int	 payload_ttn_uplink(struct payload_msg *,
		     struct json_object *);
static int	 payload_ttn(struct payload_msg *);
static int	 payload_json_value(struct payload_msg *,
		     struct json_object *);
static int	 payload_json(struct payload_msg *);

static const char *payload_reason_labels[REASON_COUNT] = {
	[REASON_NONE] = "none",
	[REASON_TOO_LARGE] = "too_large",
	[REASON_EMPTY] = "empty",
	[REASON_NOT_JSON] = "not_json",
	[REASON_NOT_NUMBER] = "not_number",
	[REASON_NO_TEMPERATURE] = "no_temperature",
	[REASON_NOT_FINITE] = "not_finite",
	[REASON_OUT_OF_RANGE] = "out_of_range",
	[REASON_FUTURE] = "future_timestamp",
	[REASON_BAD_TIMESTAMP] = "bad_timestamp",
	[REASON_BAD_KEY] = "bad_key",
	[REASON_BAD_TOPIC] = "bad_topic",
	[REASON_NO_SOURCE] = "no_source",
};

/* Record why the message is refused (the first reason wins); returns -1. */
int
payload_fail(struct payload_msg *m, enum payload_reason reason,
    const char *fmt, ...)
{
	struct payload_result	*out = m->out;
	va_list			 ap;
	int			 n;

	if (out->reason != REASON_NONE)
		return (-1);
	out->reason = reason;
	va_start(ap, fmt);
	n = vsnprintf(out->detail, sizeof out->detail, fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(out->detail, sizeof out->detail, "%s",
		    payload_reason_label(reason));
	else if ((size_t)n >= sizeof out->detail)
		payload_utf8_trim(out->detail);
	return (-1);
}

/* Name a place in the payload for a detail line, cut at a character. */
void
payload_what(char *buf, size_t size, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0)
		buf[0] = '\0';
	else if ((size_t)n >= size)
		payload_utf8_trim(buf);
}

/* Print a sensor key into dst and check it: 0, or -1 (REASON_BAD_KEY). */
int
payload_key(struct payload_msg *m, char *dst, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(dst, PAYLOAD_KEY_MAX, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return (payload_fail(m, REASON_BAD_KEY, "sensor key is empty"));
	if (n >= PAYLOAD_KEY_MAX) {
		return (payload_fail(m, REASON_BAD_KEY,
		    "sensor key is %d bytes, longer than %d", n,
		    PAYLOAD_KEY_MAX - 1));
	}
	switch (payload_utf8(dst, n)) {
	case 1:
		return (payload_fail(m, REASON_BAD_KEY,
		    "sensor key is not valid UTF-8"));
	case 2:
		return (payload_fail(m, REASON_BAD_KEY,
		    "sensor key contains a control character"));
	}
	return (0);
}

/* Drop a multibyte character cut in half at the end of s. */
static void
payload_utf8_trim(char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = strlen(s), cont = 0, need;
	unsigned char		 lead;

	while (i > 0 && cont < 4 && (p[i - 1] & 0xc0) == 0x80) {
		i--;
		cont++;
	}
	if (i == 0)
		return;
	lead = p[i - 1];
	if (lead >= 0xf0)
		need = 3;
	else if (lead >= 0xe0)
		need = 2;
	else if (lead >= 0xc0)
		need = 1;
	else
		need = 0;
	if (need != cont)
		s[need == 0 ? i : i - 1] = '\0';
}

/*
 * Length of the UTF-8 character at p (at most avail bytes), or 0 if it is
 * not valid: overlong forms, UTF-16 surrogates and code points beyond
 * U+10FFFF are refused, as PostgreSQL does.
 */
size_t
payload_utf8_char(const unsigned char *p, size_t avail)
{
	uint32_t	c = p[0];
	size_t		n, k;

	if (c < 0x80)
		return (1);
	if (c >= 0xc2 && c <= 0xdf)
		n = 1;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3;
	else
		return (0);
	if (avail <= n)
		return (0);
	c &= 0x3f >> n;
	for (k = 1; k <= n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return (0);
		c = (c << 6) | (p[k] & 0x3f);
	}
	if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return (0);
	return (n + 1);
}

/* 0 if s is valid UTF-8, 1 if not, 2 if it has a control character. */
static int
payload_utf8(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	while (i < len) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return (2);
		if ((n = payload_utf8_char(p + i, len - i)) == 0)
			return (1);
		i += n;
	}
	return (0);
}

/* Whether the len bytes at s are the string lit. */
int
payload_eq(const char *s, size_t len, const char *lit)
{
	return (strlen(lit) == len && memcmp(s, lit, len) == 0);
}

/* Length of s without suffix if s is something followed by it, else 0. */
size_t
payload_strip(const char *s, size_t len, const char *suffix)
{
	size_t	n = strlen(suffix);

	if (len <= n || memcmp(s + len - n, suffix, n) != 0)
		return (0);
	return (len - n);
}

/* Offset of the last level of a topic: after its last slash, 0 if none. */
size_t
payload_last(const char *s, size_t len)
{
	while (len > 0 && s[len - 1] != '/')
		len--;
	return (len);
}

/* Split a topic into levels, keeping at most max; returns how many. */
static int
payload_split(const char *t, size_t len, struct payload_level *lv, int max)
{
	size_t	start = 0, i;
	int	n = 0;

	for (i = 0; i <= len; i++) {
		if (i < len && t[i] != '/')
			continue;
		if (n < max) {
			lv[n].s = t + start;
			lv[n].len = i - start;
		}
		n++;
		start = i + 1;
	}
	return (n);
}

/* Refuse a payload that is too large or empty: 0, or -1. */
static int
payload_size(struct payload_msg *m)
{
	size_t	i;

	if (m->len > PAYLOAD_MAX_BYTES) {
		return (payload_fail(m, REASON_TOO_LARGE,
		    "payload is %zu bytes, over the limit of %d", m->len,
		    PAYLOAD_MAX_BYTES));
	}
	for (i = 0; i < m->len && PAYLOAD_SPACE(m->data[i]); i++)
		/* nothing */;
	if (i == m->len)
		return (payload_fail(m, REASON_EMPTY, "payload is empty"));
	return (0);
}

/* Parse the whole payload as JSON into *obj, which the caller puts. */
static int
payload_parse(struct payload_msg *m, struct json_object **obj)
{
	static struct json_tokener	*tok;	/* reused: one per process */
	enum json_tokener_error		 e;
	const char			*nul;
	size_t				 end;

	*obj = NULL;
	if (payload_size(m) == -1)
		return (-1);
	if (tok == NULL && (tok = json_tokener_new_ex(PAYLOAD_JSON_DEPTH)) ==
	    NULL)
		return (payload_fail(m, REASON_NOT_JSON, "out of memory"));
	json_tokener_reset(tok);
	*obj = json_tokener_parse_ex(tok, m->data, (int)m->len);
	e = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (e == json_tokener_continue) {
		/* A value at the very end (a number) ends at a NUL. */
		*obj = json_tokener_parse_ex(tok, "", 1);
		e = json_tokener_get_error(tok);
		end = m->len;
	}
	if (e != json_tokener_success) {
		/* json-c takes a NUL for the end of the text. */
		if ((nul = memchr(m->data, '\0', end)) != NULL) {
			return (payload_fail(m, REASON_NOT_JSON,
			    "payload is not JSON: NUL byte at byte %zu",
			    (size_t)(nul - m->data)));
		}
		return (payload_fail(m, REASON_NOT_JSON,
		    "payload is not JSON: %s at byte %zu",
		    json_tokener_error_desc(e), end));
	}
	while (end < m->len && PAYLOAD_SPACE(m->data[end]))
		end++;
	if (end == m->len)
		return (0);
	json_object_put(*obj);
	*obj = NULL;
	return (payload_fail(m, REASON_NOT_JSON,
	    "payload is not JSON: unexpected data after the value at byte %zu",
	    end));
}

/* Parse the payload and hand the value to fn; it is freed after. */
int
payload_with_json(struct payload_msg *m,
    int (*fn)(struct payload_msg *, struct json_object *))
{
	struct json_object	*obj;
	int			 rc;

	if (payload_parse(m, &obj) == -1)
		return (-1);
	rc = fn(m, obj);
	json_object_put(obj);
	return (rc);
}

/* Whether s is a decimal number (JSON-like, sign allowed), nan or inf. */
static int
payload_numeric(const char *s, size_t len)
{
	size_t	i = 0, digits = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	if ((len - i == 3 && (strncasecmp(s + i, "nan", 3) == 0 ||
	    strncasecmp(s + i, "inf", 3) == 0)) ||
	    (len - i == 8 && strncasecmp(s + i, "infinity", 8) == 0))
		return (1);
	for (; i < len && PAYLOAD_DIGIT(s[i]); i++)
		digits++;
	if (i < len && s[i] == '.') {
		for (i++; i < len && PAYLOAD_DIGIT(s[i]); i++)
			digits++;
	}
	if (digits == 0)
		return (0);
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		if (i == len || !PAYLOAD_DIGIT(s[i]))
			return (0);
		while (i < len && PAYLOAD_DIGIT(s[i]))
			i++;
	}
	return (i == len);
}

/* A whole buffer as a number, maybe in quotes: 0, or -1. */
static int
payload_strtod(const char *s, size_t len, double *d)
{
	char	 buf[64], *end;
	int	 pass;

	for (pass = 0; pass < 2; pass++) {
		while (len > 0 && PAYLOAD_SPACE(*s)) {
			s++;
			len--;
		}
		while (len > 0 && PAYLOAD_SPACE(s[len - 1]))
			len--;
		if (pass == 0 && len >= 2 && s[0] == '"' && s[len - 1] == '"') {
			s++;
			len -= 2;
		}
	}
	if (len == 0 || len >= sizeof buf || !payload_numeric(s, len))
		return (-1);
	memcpy(buf, s, len);
	buf[len] = '\0';
	*d = strtod(buf, &end);
	return (end == buf + len ? 0 : -1);
}

/* The payload as a plain or JSON-quoted number: 0, or -1. */
int
payload_plain(struct payload_msg *m, double *d)
{
	if (payload_size(m) == -1)
		return (-1);
	if (payload_strtod(m->data, m->len, d) == -1)
		return (payload_fail(m, REASON_NOT_NUMBER,
		    "payload is not a number"));
	return (0);
}

/* Member key of object o; NULL when absent, null, or o is no object. */
struct json_object *
payload_member(struct json_object *o, const char *key)
{
	struct json_object	*v;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v))
		return (NULL);
	return (v);
}

/* The text of a JSON string, or NULL for any other value. */
const char *
payload_string(struct json_object *v)
{
	if (!json_object_is_type(v, json_type_string))
		return (NULL);
	return (json_object_get_string(v));
}

/* A JSON number or numeric string in *d: 0, or -1. */
int
payload_double(struct json_object *v, double *d)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
	case json_type_int:
		*d = json_object_get_double(v);
		return (0);
	case json_type_string:
		return (payload_strtod(json_object_get_string(v),
		    json_object_get_string_len(v), d));
	default:
		return (-1);
	}
}

/* A percentage (humidity, battery), or NAN when absent or absurd. */
double
payload_percent(struct json_object *v)
{
	double	d;

	if (v == NULL || payload_double(v, &d) == -1 || !(d >= 0 && d <= 100))
		return (NAN);
	return (d);
}

/* The unit of the source for formats that carry none. */
static char
payload_unit(struct payload_msg *m)
{
	return (m->src->unit == 'F' || m->src->unit == 'f' ? 'F' : 'C');
}

/* Check v (in unit) and convert it to Celsius in *c: 0, or -1. */
static int
payload_celsius(struct payload_msg *m, double v, const char *what, char unit,
    double *c)
{
	if (!isfinite(v)) {
		return (payload_fail(m, REASON_NOT_FINITE,
		    "%s is %g, not a finite number", what, v));
	}
	*c = unit == 'F' ? (v - 32.0) / 1.8 : v;
	if (*c >= PAYLOAD_MIN_C && *c <= PAYLOAD_MAX_C)
		return (0);
	if (unit == 'F') {
		return (payload_fail(m, REASON_OUT_OF_RANGE,
		    "temperature %g °F (%.2f °C) is outside %g..%g °C", v,
		    *c, PAYLOAD_MIN_C, PAYLOAD_MAX_C));
	}
	return (payload_fail(m, REASON_OUT_OF_RANGE,
	    "temperature %g °C is outside %g..%g °C", v, PAYLOAD_MIN_C,
	    PAYLOAD_MAX_C));
}

/* The temperature in v, named what, as Celsius in *c: 0, or -1. */
static int
payload_temp(struct payload_msg *m, struct json_object *v, const char *what,
    char unit, double *c)
{
	double	d;

	if (v == NULL) {
		return (payload_fail(m, REASON_NO_TEMPERATURE,
		    "payload has no %s", what));
	}
	if (payload_double(v, &d) == -1) {
		return (payload_fail(m, REASON_NOT_NUMBER,
		    "%s is not a number", what));
	}
	return (payload_celsius(m, d, what, unit, c));
}

/* Read n digits at s[*i] into *v: 0, or -1. */
static int
payload_digits(const char *s, size_t len, size_t *i, int n, int *v)
{
	*v = 0;
	if (len - *i < (size_t)n)
		return (-1);
	for (; n > 0; n--, (*i)++) {
		if (!PAYLOAD_DIGIT(s[*i]))
			return (-1);
		*v = *v * 10 + (s[*i] - '0');
	}
	return (0);
}

/* Step over s[*i] if it is one of the characters in set. */
static int
payload_expect(const char *s, size_t len, size_t *i, const char *set)
{
	if (*i == len || strchr(set, s[*i]) == NULL)
		return (0);
	(*i)++;
	return (1);
}

/* Days in a month of the proleptic Gregorian calendar. */
static int
payload_mdays(int y, int mo)
{
	static const int	days[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	if (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return (29);
	return (days[mo - 1]);
}

/* Days from 1970-01-01 to a civil date (H. Hinnant's algorithm). */
static int64_t
payload_days(int y, int mo, int d)
{
	int64_t	era, yoe, doy, doe;

	y -= mo <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468);
}

/* Fractional seconds after the dot, as microseconds (more digits cut). */
static int
payload_fraction(const char *s, size_t len, size_t *i, int64_t *us)
{
	int	n = 0;

	*us = 0;
	for (; *i < len && PAYLOAD_DIGIT(s[*i]); (*i)++, n++) {
		if (n < 6)
			*us = *us * 10 + (s[*i] - '0');
	}
	if (n == 0)
		return (-1);
	for (; n < 6; n++)
		*us *= 10;
	return (0);
}

/* The zone (Z or +hh:mm) in seconds east in *off; none leaves *zoned 0. */
static int
payload_zone(const char *s, size_t len, size_t *i, int *off, int *zoned)
{
	int	sign, hh, mm;

	*off = 0;
	*zoned = *i < len;
	if (*i == len || payload_expect(s, len, i, "Zz"))
		return (0);
	if (!payload_expect(s, len, i, "+-"))
		return (-1);
	sign = s[*i - 1] == '-' ? -1 : 1;
	if (payload_digits(s, len, i, 2, &hh) == -1 ||
	    !payload_expect(s, len, i, ":") ||
	    payload_digits(s, len, i, 2, &mm) == -1 || hh > 23 || mm > 59)
		return (-1);
	*off = sign * (hh * 3600 + mm * 60);
	return (0);
}

/* Parse RFC 3339 date-time into *us; a time without zone has *zoned 0. */
static int
payload_rfc3339(const char *s, size_t len, int64_t *us, int *zoned)
{
	int	y, mo, d, h, mi, sec, off;
	int64_t	frac = 0;
	size_t	i = 0;

	if (payload_digits(s, len, &i, 4, &y) == -1 ||
	    !payload_expect(s, len, &i, "-") ||
	    payload_digits(s, len, &i, 2, &mo) == -1 ||
	    !payload_expect(s, len, &i, "-") ||
	    payload_digits(s, len, &i, 2, &d) == -1 ||
	    !payload_expect(s, len, &i, "Tt ") ||
	    payload_digits(s, len, &i, 2, &h) == -1 ||
	    !payload_expect(s, len, &i, ":") ||
	    payload_digits(s, len, &i, 2, &mi) == -1 ||
	    !payload_expect(s, len, &i, ":") ||
	    payload_digits(s, len, &i, 2, &sec) == -1)
		return (-1);
	if (mo < 1 || mo > 12 || d < 1 || d > payload_mdays(y, mo) ||
	    h > 23 || mi > 59 || sec > 60)
		return (-1);
	if (payload_expect(s, len, &i, ".") &&
	    payload_fraction(s, len, &i, &frac) == -1)
		return (-1);
	if (payload_zone(s, len, &i, &off, zoned) == -1 || i != len)
		return (-1);
	*us = (payload_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	    off) * 1000000 + frac;
	return (0);
}

/* Epoch seconds, or ms, us, ns told apart by size, as microseconds. */
static int
payload_epoch(double v, int64_t *us)
{
	double	x;

	if (!(v >= 0))
		return (-1);
	if (v > 1e17)
		x = v / 1e3;
	else if (v > 1e14)
		x = v;
	else if (v > 1e11)
		x = v * 1e3;
	else
		x = v * 1e6;
	if (x >= (double)PAYLOAD_MAX_TS_US)
		return (-1);
	*us = (int64_t)(x + 0.5);
	return (0);
}

/* Refuse a time before 2000 or more than 5 minutes after arrival. */
static int
payload_check_time(struct payload_msg *m, const char *what, int64_t ts)
{
	if (ts < PAYLOAD_MIN_TS_US) {
		return (payload_fail(m, REASON_BAD_TIMESTAMP,
		    "%s is before the year 2000", what));
	}
	if (m->now_us < ts - PAYLOAD_MAX_FUTURE_US) {
		return (payload_fail(m, REASON_FUTURE,
		    "%s is %.0f s in the future (more than %lld s after "
		    "arrival)", what, ((double)ts - (double)m->now_us) / 1e6,
		    PAYLOAD_MAX_FUTURE_US / 1000000));
	}
	return (0);
}

/* The time in v (epoch number or RFC 3339) in *ts, else the arrival time. */
int
payload_time(struct payload_msg *m, struct json_object *v, const char *what,
    int64_t *ts)
{
	double	d;
	int	zoned;

	*ts = m->now_us;
	switch (json_object_get_type(v)) {
	case json_type_null:
		return (0);
	case json_type_double:
	case json_type_int:
		d = json_object_get_double(v);
		break;
	case json_type_string:
		if (payload_rfc3339(json_object_get_string(v),
		    json_object_get_string_len(v), ts, &zoned) == 0) {
			if (!zoned) {
				*ts = m->now_us;
				return (0);
			}
			return (payload_check_time(m, what, *ts));
		}
		if (payload_strtod(json_object_get_string(v),
		    json_object_get_string_len(v), &d) == 0)
			break;
		/* FALLTHROUGH */
	default:
		return (payload_fail(m, REASON_BAD_TIMESTAMP,
		    "%s is neither an RFC 3339 time nor an epoch number",
		    what));
	}
	if (payload_epoch(d, ts) == -1) {
		return (payload_fail(m, REASON_BAD_TIMESTAMP,
		    "%s %g is not a time", what, d));
	}
	return (payload_check_time(m, what, *ts));
}

/* The next free reading, keyed like the topic, nothing measured; or NULL. */
struct reading *
payload_next(struct payload_msg *m)
{
	struct reading	*r;

	if (m->out->n == PAYLOAD_MAX_READINGS)
		return (NULL);
	r = &m->out->r[m->out->n];
	r->kind = READING_TEMP;
	memcpy(r->key, m->key, strlen(m->key) + 1);
	r->ts_us = m->now_us;
	r->temp_c = r->humidity = r->battery = NAN;
	r->door_open = 0;
	r->power_w = NAN;
	r->power_on = -1;
	return (r);
}

/* End a message of several readings: those, or the first failure, or 0. */
int
payload_finish(struct payload_msg *m)
{
	if (m->out->n > 0) {
		m->out->reason = REASON_NONE;
		m->out->detail[0] = '\0';
		return (m->out->n);
	}
	return (m->out->reason != REASON_NONE ? -1 : 0);
}

/* Bytes of the zigbee2mqtt base topic and slash: the filter's literal part. */
static size_t
payload_z2m_base(struct payload_msg *m)
{
	const char	*f = m->src->filter, *wild;
	int		 levels = 0;
	size_t		 i;

	if (f != NULL && (wild = strpbrk(f, "+#")) != NULL) {
		for (; f < wild; f++)
			levels += *f == '/';
	}
	if (levels < 1)
		levels = 1;
	for (i = 0; i < m->topiclen; i++) {
		if (m->topic[i] == '/' && --levels == 0)
			return (i + 1);
	}
	return (0);
}

/* READING_ONLINE or READING_OFFLINE for the word in s, or -1. */
int
payload_availability_word(const char *s, size_t len)
{
	while (len > 0 && PAYLOAD_SPACE(*s)) {
		s++;
		len--;
	}
	while (len > 0 && PAYLOAD_SPACE(s[len - 1]))
		len--;
	if (payload_eq(s, len, "online"))
		return (READING_ONLINE);
	if (payload_eq(s, len, "offline"))
		return (READING_OFFLINE);
	return (-1);
}

/* zigbee2mqtt state: {"temperature":4.31,"humidity":44.7,"battery":86}. */
static int
payload_zigbee2mqtt_state(struct payload_msg *m, struct json_object *obj)
{
	struct reading	*r;
	int		 n;

	if (!json_object_is_type(obj, json_type_object)) {
		return (payload_fail(m, REASON_NO_TEMPERATURE,
		    "payload is not a JSON object"));
	}
	if (payload_member(obj, "temperature") == NULL &&
	    (n = payload_input_zigbee2mqtt(m, obj)) != 0)
		return (n);
	r = payload_next(m);
	if (payload_temp(m, payload_member(obj, "temperature"),
	    "\"temperature\"", payload_unit(m), &r->temp_c) == -1 ||
	    payload_time(m, payload_member(obj, "last_seen"), "\"last_seen\"",
	    &r->ts_us) == -1)
		return (-1);
	r->humidity = payload_percent(payload_member(obj, "humidity"));
	r->battery = payload_percent(payload_member(obj, "battery"));
	return (++m->out->n);
}

/* zigbee2mqtt availability as JSON: {"state":"online"|"offline"}. */
static int
payload_zigbee2mqtt_online(struct payload_msg *m, struct json_object *obj)
{
	struct reading	*r;
	const char	*s;
	int		 kind;

	if ((s = payload_string(payload_member(obj, "state"))) == NULL ||
	    (kind = payload_availability_word(s, strlen(s))) == -1)
		return (0);
	r = payload_next(m);
	r->kind = kind;
	return (++m->out->n);
}

/* zigbee2mqtt <name>/availability: online or offline, plain or JSON. */
static int
payload_zigbee2mqtt_availability(struct payload_msg *m, size_t keylen)
{
	struct reading	*r;
	int		 kind;

	if (payload_key(m, m->key, "%.*s", (int)keylen, m->topic) == -1 ||
	    payload_size(m) == -1)
		return (-1);
	if ((kind = payload_availability_word(m->data, m->len)) == -1)
		return (payload_with_json(m, payload_zigbee2mqtt_online));
	r = payload_next(m);
	r->kind = kind;
	return (++m->out->n);
}

/* zigbee2mqtt: <base>/<name> state, <name>/availability; bridge ignored. */
static int
payload_zigbee2mqtt(struct payload_msg *m)
{
	const char	*name;
	size_t		 base, len, keylen;

	base = payload_z2m_base(m);
	if (base == 0 || base >= m->topiclen) {
		return (payload_fail(m, REASON_BAD_TOPIC,
		    "topic is not <base>/<device>"));
	}
	name = m->topic + base;
	len = m->topiclen - base;
	if (payload_eq(name, len, "bridge") || strncmp(name, "bridge/", 7) == 0)
		return (0);
	if ((keylen = payload_strip(name, len, "/availability")) != 0)
		return (payload_zigbee2mqtt_availability(m, base + keylen));
	if (payload_strip(name, len, "/set") != 0 ||
	    payload_strip(name, len, "/get") != 0)
		return (0);
	if (payload_key(m, m->key, "%s", m->topic) == -1)
		return (-1);
	return (payload_with_json(m, payload_zigbee2mqtt_state));
}

/* One tasmota sensor object with a "Temperature", keyed <topic>/<name>. */
static int
payload_tasmota_probe(struct payload_msg *m, const char *name,
    struct json_object *o, char unit, int64_t ts)
{
	struct reading	*r;
	char		 what[PAYLOAD_KEY_MAX + 32];

	if ((r = payload_next(m)) == NULL ||
	    payload_key(m, r->key, "%s/%s", m->key, name) == -1)
		return (-1);
	payload_what(what, sizeof what, "\"%s\".\"Temperature\"", name);
	if (payload_temp(m, payload_member(o, "Temperature"), what, unit,
	    &r->temp_c) == -1)
		return (-1);
	r->ts_us = ts;
	r->humidity = payload_percent(payload_member(o, "Humidity"));
	m->out->n++;
	return (0);
}

/* The sensor objects of a tasmota SENSOR message, in TempUnit. */
static int
payload_tasmota_sensors(struct payload_msg *m, struct json_object *obj)
{
	struct json_object_iter	 it;
	const char		*s;
	char			 unit;
	int64_t			 ts;
	int			 seen = 0;

	if (!json_object_is_type(obj, json_type_object)) {
		return (payload_fail(m, REASON_NO_TEMPERATURE,
		    "payload is not a JSON object"));
	}
	unit = payload_unit(m);
	if ((s = payload_string(payload_member(obj, "TempUnit"))) != NULL)
		unit = (s[0] == 'F' || s[0] == 'f') ? 'F' : 'C';
	if (payload_time(m, payload_member(obj, "Time"), "\"Time\"", &ts) == -1)
		return (-1);
	json_object_object_foreachC(obj, it) {
		if (m->out->n == PAYLOAD_MAX_READINGS)
			break;
		if (!json_object_is_type(it.val, json_type_object) ||
		    !json_object_object_get_ex(it.val, "Temperature", NULL))
			continue;
		seen = 1;
		payload_tasmota_probe(m, it.key, it.val, unit, ts);
	}
	if (!seen && (seen = payload_input_tasmota(m, obj, ts)) != 0)
		return (seen);
	if (!seen) {
		return (payload_fail(m, REASON_NO_TEMPERATURE,
		    "payload has no sensor object with a \"Temperature\""));
	}
	return (payload_finish(m));
}

/* tasmota: tele/<dev>/SENSOR; the device's other messages are ignored. */
static int
payload_tasmota(struct payload_msg *m)
{
	size_t	last = payload_last(m->topic, m->topiclen);

	if (last < 2) {
		return (payload_fail(m, REASON_BAD_TOPIC,
		    "topic is not tele/<device>/SENSOR"));
	}
	if (!payload_eq(m->topic + last, m->topiclen - last, "SENSOR"))
		return (0);
	if (payload_key(m, m->key, "%s", m->topic) == -1)
		return (-1);
	return (payload_with_json(m, payload_tasmota_sensors));
}

/* A battery level in percent in *b: 0, or -1. */
static int
payload_battery(struct payload_msg *m, double d, double *b)
{
	if (!isfinite(d)) {
		return (payload_fail(m, REASON_NOT_FINITE,
		    "payload is %g, not a finite number", d));
	}
	if (d < 0 || d > 100) {
		return (payload_fail(m, REASON_OUT_OF_RANGE,
		    "battery %g %% is outside 0..100 %%", d));
	}
	*b = d;
	return (0);
}

/* shelly gen1: <prefix>/sensor/temperature or .../sensor/battery, numbers. */
static int
payload_shelly(struct payload_msg *m)
{
	struct reading	*r;
	int		 kind = READING_TEMP, rc;
	size_t		 keylen;
	double		 d;

	if ((keylen = payload_strip(m->topic, m->topiclen,
	    "/sensor/state")) != 0) {
		if (payload_size(m) == -1)
			return (-1);
		return (payload_input_shelly(m, keylen));
	}
	if ((keylen = payload_strip(m->topic, m->topiclen,
	    "/sensor/temperature")) == 0) {
		kind = READING_BATTERY;
		keylen = payload_strip(m->topic, m->topiclen,
		    "/sensor/battery");
	}
	if (keylen == 0 && (payload_last(m->topic, m->topiclen) < 2 ||
	    strcmp(m->topic, "/sensor/temperature") == 0 ||
	    strcmp(m->topic, "/sensor/battery") == 0)) {
		return (payload_fail(m, REASON_BAD_TOPIC,
		    "topic is not shellies/<id>/sensor/temperature"));
	}
	if (keylen == 0)
		return (0);
	if (payload_key(m, m->key, "%.*s", (int)keylen, m->topic) == -1 ||
	    payload_plain(m, &d) == -1)
		return (-1);
	r = payload_next(m);
	r->kind = kind;
	if (kind == READING_BATTERY)
		rc = payload_battery(m, d, &r->battery);
	else
		rc = payload_celsius(m, d, "payload", payload_unit(m),
		    &r->temp_c);
	return (rc == -1 ? -1 : ++m->out->n);
}

/* Whether s is a shelly component "temperature:<n>". */
static int
payload_component(const char *s, size_t len)
{
	size_t	i = sizeof "temperature:" - 1;

	if (len <= i || len > i + 5 || strncmp(s, "temperature:", i) != 0)
		return (0);
	for (; i < len; i++) {
		if (!PAYLOAD_DIGIT(s[i]))
			return (0);
	}
	return (1);
}

/* shelly gen2 status/temperature:<n>: {"id":0,"tC":4.2,"tF":39.6}. */
static int
payload_shelly_gen2_status(struct payload_msg *m, struct json_object *obj)
{
	struct reading	*r = payload_next(m);

	if (payload_temp(m, payload_member(obj, "tC"), "\"tC\"", 'C',
	    &r->temp_c) == -1)
		return (-1);
	return (++m->out->n);
}

/* One temperature:<n> of a gen2 status, with humidity:<n> and battery. */
static int
payload_shelly_gen2_component(struct payload_msg *m,
    struct json_object *params, const char *name, struct json_object *o,
    int64_t ts)
{
	struct json_object	*power;
	struct reading		*r;
	char			 what[64], hum[32];

	if ((r = payload_next(m)) == NULL ||
	    payload_key(m, r->key, "%s/%s", m->key, name) == -1)
		return (-1);
	payload_what(what, sizeof what, "\"%s\".\"tC\"", name);
	if (payload_temp(m, payload_member(o, "tC"), what, 'C',
	    &r->temp_c) == -1)
		return (-1);
	snprintf(hum, sizeof hum, "humidity:%s", strchr(name, ':') + 1);
	r->humidity = payload_percent(payload_member(payload_member(params,
	    hum), "rh"));
	power = payload_member(payload_member(params, "devicepower:0"),
	    "battery");
	r->battery = payload_percent(payload_member(power, "percent"));
	r->ts_us = ts;
	m->out->n++;
	return (0);
}

/* shelly gen2 events/rpc: NotifyStatus or NotifyFullStatus components. */
static int
payload_shelly_gen2_rpc(struct payload_msg *m, struct json_object *obj)
{
	struct json_object_iter	 it;
	struct json_object	*params;
	const char		*method;
	int64_t			 ts;
	int			 seen = 0;

	method = payload_string(payload_member(obj, "method"));
	if (method == NULL || (strcmp(method, "NotifyStatus") != 0 &&
	    strcmp(method, "NotifyFullStatus") != 0))
		return (0);
	params = payload_member(obj, "params");
	if (!json_object_is_type(params, json_type_object))
		return (0);
	json_object_object_foreachC(params, it)
		seen |= payload_component(it.key, strlen(it.key)) ||
		    payload_input_component(it.key, strlen(it.key));
	if (!seen)
		return (0);
	if (payload_time(m, payload_member(params, "ts"), "\"params.ts\"",
	    &ts) == -1)
		return (-1);
	json_object_object_foreachC(params, it) {
		if (m->out->n == PAYLOAD_MAX_READINGS)
			break;
		if (payload_component(it.key, strlen(it.key)))
			payload_shelly_gen2_component(m, params, it.key,
			    it.val, ts);
	}
	payload_input_shelly_gen2_rpc(m, params, ts);
	return (payload_finish(m));
}

/* shelly gen2: <prefix>/status/temperature:<n> or <prefix>/events/rpc. */
static int
payload_shelly_gen2(struct payload_msg *m)
{
	const char	*name;
	size_t		 keylen, last;

	keylen = payload_strip(m->topic, m->topiclen, "/events/rpc");
	if (keylen != 0) {
		if (payload_key(m, m->key, "%.*s", (int)keylen, m->topic) == -1)
			return (-1);
		return (payload_with_json(m, payload_shelly_gen2_rpc));
	}
	if ((last = payload_last(m->topic, m->topiclen)) < 2) {
		return (payload_fail(m, REASON_BAD_TOPIC, "topic is not "
		    "<prefix>/status/temperature:<n> or <prefix>/events/rpc"));
	}
	name = m->topic + last;
	if (payload_input_component(name, m->topiclen - last) &&
	    (keylen = payload_strip(m->topic, last - 1, "/status")) != 0)
		return (payload_input_shelly_gen2_status(m, keylen, name));
	if (strncmp(name, "temperature:", 12) != 0 ||
	    (keylen = payload_strip(m->topic, last - 1, "/status")) == 0)
		return (0);
	if (!payload_component(name, m->topiclen - last)) {
		return (payload_fail(m, REASON_BAD_TOPIC,
		    "topic does not end in temperature:<number>"));
	}
	if (payload_key(m, m->key, "%.*s/%s", (int)keylen, m->topic,
	    name) == -1)
		return (-1);
	return (payload_with_json(m, payload_shelly_gen2_status));
}

/* esphome, homeassistant, number: a number; key is the topic sans /state. */
static int
payload_number(struct payload_msg *m)
{
	struct reading	*r;
	size_t		 keylen;
	double		 d;

	if ((keylen = payload_strip(m->topic, m->topiclen, "/state")) == 0)
		keylen = m->topiclen;
	if (payload_key(m, m->key, "%.*s", (int)keylen, m->topic) == -1 ||
	    payload_plain(m, &d) == -1)
		return (-1);
	r = payload_next(m);
	if (payload_celsius(m, d, "payload", payload_unit(m),
	    &r->temp_c) == -1)
		return (-1);
	return (++m->out->n);
}

/* ttn uplink: uplink_message.decoded_payload.<field>, time received_at. */
static int
payload_ttn_uplink(struct payload_msg *m, struct json_object *obj)
{
	struct json_object	*up, *dp, *v;
	struct reading		*r = payload_next(m);
	const char		*field = m->src->temperature;
	char			 what[PAYLOAD_KEY_MAX];

	if (field == NULL)
		field = "temperature";
	up = payload_member(obj, "uplink_message");
	dp = payload_member(up, "decoded_payload");
	if (field[0] != '/')
		v = payload_member(dp, field);
	else if (json_pointer_get(dp, field, &v) != 0)
		v = NULL;
	payload_what(what, sizeof what, "uplink_message.decoded_payload%s%s",
	    field[0] == '/' ? "" : ".", field);
	if (payload_temp(m, v, what, payload_unit(m), &r->temp_c) == -1)
		return (-1);
	if ((v = payload_member(obj, "received_at")) == NULL)
		v = payload_member(up, "received_at");
	if (payload_time(m, v, "\"received_at\"", &r->ts_us) == -1)
		return (-1);
	return (++m->out->n);
}

/* ttn: v3/<app>[@tenant]/devices/<dev>/up; other subtopics ignored. */
static int
payload_ttn(struct payload_msg *m)
{
	struct payload_level	 lv[5];
	const char		*at;
	size_t			 applen = 0;
	int			 n;

	n = payload_split(m->topic, m->topiclen, lv, 5);
	if (n >= 4) {
		at = memchr(lv[1].s, '@', lv[1].len);
		applen = at != NULL ? (size_t)(at - lv[1].s) : lv[1].len;
	}
	if (n < 4 || !payload_eq(lv[0].s, lv[0].len, "v3") ||
	    !payload_eq(lv[2].s, lv[2].len, "devices") || applen == 0 ||
	    lv[3].len == 0) {
		return (payload_fail(m, REASON_BAD_TOPIC,
		    "topic is not v3/<application>/devices/<device>/up"));
	}
	if (n != 5 || !payload_eq(lv[4].s, lv[4].len, "up"))
		return (0);
	if (payload_key(m, m->key, "v3/%.*s/devices/%.*s", (int)applen,
	    lv[1].s, (int)lv[3].len, lv[3].s) == -1)
		return (-1);
	return (payload_with_json(m, payload_ttn_uplink));
}

/* json: the value at the temperature pointer, time at the timestamp one. */
static int
payload_json_value(struct payload_msg *m, struct json_object *obj)
{
	struct json_object	*v;
	struct reading		*r;
	const char		*tp = m->src->temperature, *sp;
	char			 what[PAYLOAD_KEY_MAX];
	int64_t			 ts = m->now_us;
	int			 n;

	if (m->src->door != NULL || m->src->power != NULL) {
		if ((sp = m->src->timestamp) != NULL) {
			if (json_pointer_get(obj, sp, &v) != 0)
				v = NULL;
			payload_what(what, sizeof what, "timestamp at %s", sp);
			if (payload_time(m, v, sp[0] == '\0' ? "timestamp" :
			    what, &ts) == -1)
				return (-1);
		}
		if ((n = payload_input_json(m, obj, ts)) != 0 ||
		    m->out->reason != REASON_NONE)
			return (n > 0 ? payload_finish(m) : -1);
		if (tp == NULL) {
			return (payload_fail(m, REASON_NO_TEMPERATURE,
			    "payload has no door state at %s nor power at %s",
			    m->src->door != NULL ? m->src->door : "-",
			    m->src->power != NULL ? m->src->power : "-"));
		}
	}
	r = payload_next(m);
	if (tp == NULL)
		tp = "/temperature";
	if (json_pointer_get(obj, tp, &v) != 0)
		v = NULL;
	payload_what(what, sizeof what, "value at %s", tp);
	if (payload_temp(m, v, tp[0] == '\0' ? "value" : what,
	    payload_unit(m), &r->temp_c) == -1)
		return (-1);
	if ((sp = m->src->timestamp) != NULL) {
		if (json_pointer_get(obj, sp, &v) != 0)
			v = NULL;
		payload_what(what, sizeof what, "timestamp at %s", sp);
		if (payload_time(m, v, sp[0] == '\0' ? "timestamp" : what,
		    &r->ts_us) == -1)
			return (-1);
	}
	return (++m->out->n);
}

/* json: any JSON on any topic, keyed by the topic. */
static int
payload_json(struct payload_msg *m)
{
	if (payload_key(m, m->key, "%s", m->topic) == -1)
		return (-1);
	return (payload_with_json(m, payload_json_value));
}

/* Decode one message into readings, or say why it is refused. */
int
payload_decode(const struct source *src, const char *topic, const void *data,
    size_t len, int64_t now_us, struct payload_result *out)
{
	struct payload_msg	m;

	out->n = 0;
	out->reason = REASON_NONE;
	out->detail[0] = '\0';
	m.src = src;
	m.topic = topic != NULL ? topic : "";
	m.topiclen = strlen(m.topic);
	m.data = data;
	m.len = data != NULL ? len : 0;
	m.now_us = now_us;
	m.out = out;
	m.key[0] = '\0';
	if (src == NULL)
		return (payload_fail(&m, REASON_NO_SOURCE, "no source"));
	if (m.topiclen == 0 || m.topiclen > PAYLOAD_TOPIC_MAX) {
		return (payload_fail(&m, REASON_BAD_TOPIC,
		    "topic is empty or longer than %d bytes",
		    PAYLOAD_TOPIC_MAX));
	}
	switch (src->format) {
	case FORMAT_ZIGBEE2MQTT:
		return (payload_zigbee2mqtt(&m));
	case FORMAT_TASMOTA:
		return (payload_tasmota(&m));
	case FORMAT_SHELLY:
		return (payload_shelly(&m));
	case FORMAT_SHELLY_GEN2:
		return (payload_shelly_gen2(&m));
	case FORMAT_ESPHOME:
	case FORMAT_HOMEASSISTANT:
	case FORMAT_NUMBER:
		return (payload_number(&m));
	case FORMAT_TTN:
		return (payload_ttn(&m));
	case FORMAT_JSON:
		return (payload_json(&m));
	}
	return (payload_fail(&m, REASON_NO_SOURCE, "unknown payload format %d",
	    (int)src->format));
}

/* The /metrics label of a reason. */
const char *
payload_reason_label(enum payload_reason reason)
{
	if ((unsigned)reason >= REASON_COUNT)
		return ("unknown");
	return (payload_reason_labels[reason]);
}
