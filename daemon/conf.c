/*
 * Configuration: INI read with libinih, every key checked against a table,
 * every error reported as "FILE:LINE: message".
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <ini.h>
#include <json-c/json.h>
#include <mosquitto.h>

#include "conf.h"
#include "log.h"
#include "template.h"
#include "xmalloc.h"

/* Set by vialwatchctl, which sends no email: no templates to load. */
int	conf_no_templates;

#define CONF_SECRET_MAX	4096

enum conf_type {
	CONF_STRING,		/* char *, empty means unset */
	CONF_INT,		/* int within [min, max] */
	CONF_DURATION,		/* int64_t ms within [min, max] ms */
	CONF_SIZE,		/* int64_t bytes within [min, max] */
	CONF_LOG_LEVEL,		/* int */
	CONF_SECRET,		/* char *: the contents of the named file */
	CONF_READABLE,		/* char *: a path that must be readable */
	CONF_BOOL,		/* int: yes (1) or no (0) */
	CONF_SPECIAL,		/* handled by a function of its own */
};

enum conf_section_kind {
	SECTION_DAEMON,
	SECTION_MQTT,
	SECTION_DATABASE,
	SECTION_SOURCE,
	SECTION_SMTP,
	SECTION_HTTP,
	SECTION_ALERTS,
	SECTION_REMINDERS,
	SECTION_CHECKS,
	SECTION_HOOK,
	SECTION_UNKNOWN,
};

static const struct {
	const char	*name;
	int		 named;		/* [source NAME] takes a name */
} conf_sections[] = {
	[SECTION_DAEMON] = { "daemon", 0 },
	[SECTION_MQTT] = { "mqtt", 0 },
	[SECTION_DATABASE] = { "database", 0 },
	[SECTION_SOURCE] = { "source", 1 },
	[SECTION_SMTP] = { "smtp", 0 },
	[SECTION_HTTP] = { "http", 0 },
	[SECTION_ALERTS] = { "alerts", 0 },
	[SECTION_REMINDERS] = { "reminders", 0 },
	[SECTION_CHECKS] = { "checks", 0 },
	[SECTION_HOOK] = { "hook", 1 },
};

struct conf_key {
	enum conf_section_kind	 section;
	const char		*name;
	enum conf_type		 type;
	size_t			 offset;	/* in conf, source or hook */
	long long		 min;
	long long		 max;
};

#define C(f) offsetof(struct conf, f)
#define S(f) offsetof(struct source, f)
#define H(f) offsetof(struct hook, f)
#define SEC 1000LL
static const struct conf_key conf_keys[] = {
	{ SECTION_DAEMON, "state_dir", CONF_STRING, C(state_dir), 0, 0 },
	{ SECTION_DAEMON, "log_level", CONF_LOG_LEVEL, C(log_level), 0, 0 },

	{ SECTION_MQTT, "host", CONF_STRING, C(mqtt_host), 0, 0 },
	{ SECTION_MQTT, "port", CONF_INT, C(mqtt_port), 1, 65535 },
	{ SECTION_MQTT, "client_id", CONF_STRING, C(mqtt_client_id), 0, 0 },
	{ SECTION_MQTT, "username", CONF_STRING, C(mqtt_username), 0, 0 },
	{ SECTION_MQTT, "password_file", CONF_SECRET, C(mqtt_password), 0, 0 },
	{ SECTION_MQTT, "tls_ca_file", CONF_READABLE, C(mqtt_tls_ca_file), 0, 0 },
	{ SECTION_MQTT, "tls_cert_file", CONF_READABLE, C(mqtt_tls_cert_file),
	    0, 0 },
	{ SECTION_MQTT, "tls_key_file", CONF_READABLE, C(mqtt_tls_key_file),
	    0, 0 },
	{ SECTION_MQTT, "qos", CONF_INT, C(mqtt_qos), 0, 2 },
	{ SECTION_MQTT, "keepalive", CONF_DURATION, C(mqtt_keepalive_ms),
	    5 * SEC, 65535 * SEC },
	{ SECTION_MQTT, "session_expiry", CONF_DURATION,
	    C(mqtt_session_expiry_ms), 0, 4294967295LL * SEC },
	{ SECTION_MQTT, "status_topic", CONF_SPECIAL, C(mqtt_status_topic),
	    0, 0 },
	{ SECTION_MQTT, "publish_state", CONF_BOOL, C(mqtt_publish_state), 0,
	    0 },
	{ SECTION_MQTT, "homeassistant_discovery", CONF_BOOL,
	    C(mqtt_ha_discovery), 0, 0 },

	{ SECTION_DATABASE, "conninfo", CONF_STRING, C(db_conninfo), 0, 0 },
	{ SECTION_DATABASE, "batch_max_rows", CONF_INT, C(db_batch_max_rows),
	    1, 1000000 },
	{ SECTION_DATABASE, "batch_max_delay", CONF_DURATION,
	    C(db_batch_max_delay_ms), 1, 60 * SEC },
	{ SECTION_DATABASE, "max_pending", CONF_SIZE, C(db_max_pending),
	    64 * 1024, 1LL << 40 },
	{ SECTION_DATABASE, "retention", CONF_DURATION, C(db_retention_ms),
	    86400 * SEC, 0 },
	{ SECTION_DATABASE, "retention_below_cdc_minimum", CONF_SPECIAL,
	    C(db_retention_below_cdc), 0, 0 },
	{ SECTION_DATABASE, "seal_every", CONF_DURATION, C(db_seal_every_ms),
	    1 * SEC, 86400 * SEC },

	{ SECTION_SOURCE, "topic", CONF_SPECIAL, S(topic), 0, 0 },
	{ SECTION_SOURCE, "format", CONF_SPECIAL, S(format), 0, 0 },
	{ SECTION_SOURCE, "unit", CONF_SPECIAL, S(unit), 0, 0 },
	{ SECTION_SOURCE, "temperature", CONF_STRING, S(temperature), 0, 0 },
	{ SECTION_SOURCE, "timestamp", CONF_STRING, S(timestamp), 0, 0 },
	{ SECTION_SOURCE, "door", CONF_STRING, S(door), 0, 0 },
	{ SECTION_SOURCE, "door_open_value", CONF_STRING, S(door_open_value),
	    0, 0 },
	{ SECTION_SOURCE, "power", CONF_STRING, S(power), 0, 0 },

	{ SECTION_SMTP, "url", CONF_SPECIAL, C(smtp_url), 0, 0 },
	{ SECTION_SMTP, "tls", CONF_SPECIAL, C(smtp_tls_required), 0, 0 },
	{ SECTION_SMTP, "username", CONF_STRING, C(smtp_username), 0, 0 },
	{ SECTION_SMTP, "password_file", CONF_SECRET, C(smtp_password), 0, 0 },
	{ SECTION_SMTP, "from", CONF_SPECIAL, C(smtp_from), 0, 0 },

	{ SECTION_HTTP, "listen", CONF_SPECIAL, C(http_host), 0, 0 },
	{ SECTION_HTTP, "public_url", CONF_SPECIAL, C(http_public_url), 0, 0 },
	{ SECTION_HTTP, "secret_file", CONF_SPECIAL, C(http_secret), 0, 0 },
	{ SECTION_HTTP, "max_connections", CONF_INT, C(http_max_connections),
	    1, 65536 },
	{ SECTION_HTTP, "idle_timeout", CONF_DURATION, C(http_idle_timeout_ms),
	    SEC, 3600 * SEC },
	{ SECTION_HTTP, "conninfo", CONF_STRING, C(http_conninfo), 0, 0 },

	{ SECTION_ALERTS, "escalate_after", CONF_DURATION,
	    C(alerts_escalate_after_ms), SEC, 0 },
	{ SECTION_ALERTS, "repeat_every", CONF_DURATION,
	    C(alerts_repeat_every_ms), SEC, 0 },
	{ SECTION_ALERTS, "watch", CONF_SPECIAL, C(alerts_watch_own), 0, 0 },
	{ SECTION_ALERTS, "keep_notifications", CONF_DURATION,
	    C(alerts_keep_notifications_ms), 86400 * SEC, 0 },
	{ SECTION_ALERTS, "daemon_silent_after", CONF_DURATION,
	    C(alerts_daemon_silent_after_ms), 5 * SEC, 0 },
	{ SECTION_ALERTS, "maintenance_max", CONF_DURATION,
	    C(alerts_maintenance_max_ms), SEC, 7 * 24 * 3600 * SEC },

	{ SECTION_REMINDERS, "scan_interval", CONF_DURATION,
	    C(reminders_scan_interval_ms), SEC, 0 },
	{ SECTION_REMINDERS, "send_window", CONF_SPECIAL,
	    C(reminders_window_start), 0, 0 },
	{ SECTION_REMINDERS, "template_dir", CONF_SPECIAL,
	    C(reminders_template_dir), 0, 0 },

	{ SECTION_CHECKS, "grace", CONF_DURATION, C(checks_grace_ms), SEC,
	    86400 * SEC },
	{ SECTION_CHECKS, "scan_interval", CONF_DURATION,
	    C(checks_scan_interval_ms), SEC, 0 },

	{ SECTION_HOOK, "command", CONF_SPECIAL, H(argv), 0, 0 },
	{ SECTION_HOOK, "events", CONF_SPECIAL, H(events), 0, 0 },
	{ SECTION_HOOK, "timeout", CONF_DURATION, H(timeout_ms), 1, 3600 * SEC },
};
#undef C
#undef S
#undef H

/* Events a hook may subscribe to. */
static const char *conf_events[] = {
	"excursion.open", "excursion.alarm", "excursion.escalate",
	"excursion.close", "excursion.ack", "sensor.offline", "sensor.online",
	"battery.low", "excursion.warning", NULL
};

static const char *conf_format_names[FORMAT_COUNT] = {
	[FORMAT_ZIGBEE2MQTT] = "zigbee2mqtt",
	[FORMAT_TASMOTA] = "tasmota",
	[FORMAT_SHELLY] = "shelly",
	[FORMAT_SHELLY_GEN2] = "shelly-gen2",
	[FORMAT_ESPHOME] = "esphome",
	[FORMAT_HOMEASSISTANT] = "homeassistant",
	[FORMAT_NUMBER] = "number",
	[FORMAT_TTN] = "ttn",
	[FORMAT_JSON] = "json",
};

/* A section header as read from the file. */
struct conf_header {
	enum conf_section_kind	 kind;
	char			*raw;		/* text between the brackets */
	char			*name;		/* NAME of [source NAME] */
	int			 line;
	int			 index;		/* into sources or hooks */
	uint64_t		 seen;		/* keys given, by table index */
};

struct conf_parse {
	struct conf		*conf;
	FILE			*f;
	int			 lineno;
	struct conf_header	*headers;
	int			 nheaders;
	int			 current;	/* header of the current line */
	char			*error;
	int			 error_line;
};

static void	conf_error(struct conf_parse *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Keep the error of the earliest line. */
static void
conf_error(struct conf_parse *p, int line, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (p->error != NULL && p->error_line <= line)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	free(p->error);
	xasprintf(&p->error, "%s:%d: %s", p->conf->path, line, msg);
	p->error_line = line;
	free(msg);
}

/* "source x" -> kind and name. */
static void
conf_header_parse(struct conf_header *h, const char *raw)
{
	char		*copy, *word, *rest;
	size_t		 i;

	h->raw = xstrdup(raw);
	h->kind = SECTION_UNKNOWN;
	copy = xstrdup(raw);
	word = copy + strspn(copy, " \t");
	rest = word + strcspn(word, " \t");
	if (*rest != '\0')
		*rest++ = '\0';
	rest += strspn(rest, " \t");
	for (i = 0; i < SECTION_UNKNOWN; i++) {
		if (strcmp(word, conf_sections[i].name) == 0)
			h->kind = i;
	}
	if (*rest != '\0')
		h->name = xstrdup(rest);
	free(copy);
}

/* Line reader for inih that counts lines and notes section headers. */
static char *
conf_reader(char *buf, int size, void *arg)
{
	struct conf_parse	*p = arg;
	struct conf_header	*h;
	char			*s, *end;
	size_t			 len;

	if (fgets(buf, size, p->f) == NULL)
		return (NULL);
	p->lineno++;
	len = strlen(buf);
	if (len == (size_t)size - 1 && buf[len - 1] != '\n' && !feof(p->f)) {
		conf_error(p, p->lineno, "line longer than %d characters",
		    size - 2);
		while (fgets(buf, size, p->f) != NULL &&
		    (len = strlen(buf)) > 0 && buf[len - 1] != '\n')
			;
		buf[0] = '\0';
		return (buf);
	}
	s = buf;
	if (p->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;		/* a UTF-8 BOM, as inih skips it */
	s += strspn(s, " \t\r\n");
	if (*s != '[' || (end = strchr(s, ']')) == NULL)
		return (buf);

	p->headers = xreallocarray(p->headers, p->nheaders + 1,
	    sizeof *p->headers);
	h = &p->headers[p->nheaders];
	memset(h, 0, sizeof *h);
	*end = '\0';
	conf_header_parse(h, s + 1);
	*end = ']';
	h->line = p->lineno;
	h->index = -1;
	p->current = p->nheaders++;
	return (buf);
}

struct conf_unit {
	const char	*suffix;
	int64_t		 mult;
};

/* A whole number followed by one of units' suffixes. */
static int
conf_parse_units(const char *s, const struct conf_unit *units, size_t n,
    int64_t *out)
{
	char		*end;
	long long	 v;
	size_t		 i;

	if (!isdigit((unsigned char)*s))
		return (-1);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (v > INT64_MAX / units[i].mult)
			return (-1);
		*out = v * units[i].mult;
		return (0);
	}
	return (-1);
}

/* Parse "90s", "15m", "200ms", "2h", "7d", "3y" (365 d) into ms. */
int
conf_parse_duration(const char *s, int64_t *ms)
{
	static const struct conf_unit	units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 }, { "y", 365 * 86400000LL },
	};

	return (conf_parse_units(s, units, sizeof units / sizeof units[0],
	    ms));
}

/* A size: bytes, or k/M/G (KiB/MiB/GiB), powers of 1024. */
static int
conf_parse_size(const char *s, int64_t *bytes)
{
	static const struct conf_unit	units[] = {
		{ "", 1 }, { "k", 1LL << 10 }, { "K", 1LL << 10 },
		{ "KiB", 1LL << 10 }, { "M", 1LL << 20 }, { "MiB", 1LL << 20 },
		{ "G", 1LL << 30 }, { "GiB", 1LL << 30 },
	};

	return (conf_parse_units(s, units, sizeof units / sizeof units[0],
	    bytes));
}

/* "HH:MM" -> minutes after midnight, -1 if bad. */
static int
conf_parse_hhmm(const char *s, size_t len)
{
	if (len != 5 || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return (-1);
	if ((s[0] - '0') * 10 + (s[1] - '0') > 23 ||
	    (s[3] - '0') * 10 + (s[4] - '0') > 59)
		return (-1);
	return (((s[0] - '0') * 10 + (s[1] - '0')) * 60 +
	    (s[3] - '0') * 10 + (s[4] - '0'));
}

/*
 * "09:00-18:00" -> start and end minutes; the end must be after the start
 * and may be 24:00.
 */
int
conf_parse_window(const char *s, int *start, int *end)
{
	const char	*dash;

	if ((dash = strchr(s, '-')) == NULL)
		return (-1);
	*start = conf_parse_hhmm(s, dash - s);
	if (strcmp(dash + 1, "24:00") == 0)
		*end = 24 * 60;		/* up to midnight */
	else
		*end = conf_parse_hhmm(dash + 1, strlen(dash + 1));
	if (*start == -1 || *end == -1 || *end <= *start)
		return (-1);
	return (0);
}

int
conf_format_parse(const char *s, enum payload_format *f)
{
	int	i;

	for (i = 0; i < FORMAT_COUNT; i++) {
		if (strcmp(s, conf_format_names[i]) == 0) {
			*f = i;
			return (0);
		}
	}
	return (-1);
}

/* Read a secret file: its contents without trailing newlines. */
static char *
conf_read_secret(const char *path, size_t *lenp, char **cause)
{
	FILE	*f;
	char	*buf;
	size_t	 len;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "cannot read %s: %s", path, strerror(errno));
		return (NULL);
	}
	buf = xmalloc(CONF_SECRET_MAX + 1);
	len = fread(buf, 1, CONF_SECRET_MAX + 1, f);
	if (ferror(f) || len > CONF_SECRET_MAX) {
		xasprintf(cause, "cannot read %s: %s", path, ferror(f) ?
		    strerror(errno) : "larger than 4096 bytes");
		fclose(f);
		free(buf);
		return (NULL);
	}
	fclose(f);
	buf[len] = '\0';
	len = strcspn(buf, "\r\n");	/* the first line is the secret */
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return (buf);
}

/* Remember a file of secrets, for conf_check_modes. */
static void
conf_add_secret_file(struct conf *c, const char *path)
{
	size_t	n = 0;

	while (c->secret_files != NULL && c->secret_files[n] != NULL)
		n++;
	c->secret_files = xreallocarray(c->secret_files, n + 2,
	    sizeof *c->secret_files);
	c->secret_files[n] = xstrdup(path);
	c->secret_files[n + 1] = NULL;
}

/*
 * Warn when path may be read by others or changed by anyone but its owner;
 * a file of secrets (secret) may be read by its group only if that is gid,
 * the daemon's.  Returns 1 when it warned.
 */
static int
conf_check_mode(const char *path, int secret, gid_t gid)
{
	struct stat	 sb;
	mode_t		 bad = S_IRWXO | S_IWGRP;
	const char	*why;

	if (stat(path, &sb) == -1)
		return (0);
	if (secret && sb.st_gid != gid)
		bad |= S_IRWXG;
	if ((sb.st_mode & bad) == 0)
		return (0);
	if (sb.st_mode & S_IROTH)
		why = "readable by others";
	else if (sb.st_mode & (S_IWOTH | S_IWGRP))
		why = "writable by others than its owner";
	else if (sb.st_mode & S_IRGRP)
		why = "readable by a group that is not vialwatchd's";
	else
		why = "open to others";
	log_warnx("%s %s is %s (mode %04o); fix: chmod %04o %s",
	    secret ? "secret file" : "configuration file", path, why,
	    (unsigned)(sb.st_mode & 07777),
	    (unsigned)(sb.st_mode & 07777 & ~bad), path);
	return (1);
}

/*
 * Warn about the configuration file and the files of secrets it names
 * (passwords, link key, TLS key) that others could read or change; gid is
 * the daemon's group.  Returns the number of warnings.
 */
int
conf_check_modes(const struct conf *c, gid_t gid)
{
	int	n, i;

	n = conf_check_mode(c->path, 0, gid);
	for (i = 0; c->secret_files != NULL && c->secret_files[i] != NULL; i++)
		n += conf_check_mode(c->secret_files[i], 1, gid);
	if (c->mqtt_tls_key_file != NULL)
		n += conf_check_mode(c->mqtt_tls_key_file, 1, gid);
	return (n);
}

/* Split a command line into argv on blanks, honouring "..." and '...'. */
static char **
conf_split_argv(const char *s, const char **cause)
{
	char	**argv = NULL, *word;
	size_t	  n = 0, len;
	char	  quote;

	word = xmalloc(strlen(s) + 1);
	for (;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			break;
		len = 0;
		quote = 0;
		for (; *s != '\0' && (quote || (*s != ' ' && *s != '\t')); s++) {
			if (quote && *s == quote)
				quote = 0;
			else if (!quote && (*s == '"' || *s == '\''))
				quote = *s;
			else
				word[len++] = *s;
		}
		if (quote) {
			*cause = "unterminated quote";
			break;
		}
		word[len] = '\0';
		argv = xreallocarray(argv, n + 2, sizeof *argv);
		argv[n++] = xstrdup(word);
		argv[n] = NULL;
	}
	free(word);
	if (argv == NULL && *cause == NULL)
		*cause = "empty command";
	return (argv);
}

static void
conf_free_argv(char **argv)
{
	size_t	i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* The [source] or [hook] a header stands for, made on first use. */
static void *
conf_instance(struct conf_parse *p, struct conf_header *h)
{
	struct conf	*c = p->conf;

	if (h->kind == SECTION_SOURCE) {
		if (h->index == -1) {
			c->sources = xreallocarray(c->sources, c->nsources + 1,
			    sizeof *c->sources);
			memset(&c->sources[c->nsources], 0, sizeof *c->sources);
			c->sources[c->nsources].name = xstrdup(h->name);
			c->sources[c->nsources].unit = 'C';
			c->sources[c->nsources].line = h->line;
			h->index = c->nsources++;
		}
		return (&c->sources[h->index]);
	}
	if (h->kind == SECTION_HOOK) {
		if (h->index == -1) {
			c->hooks = xreallocarray(c->hooks, c->nhooks + 1,
			    sizeof *c->hooks);
			memset(&c->hooks[c->nhooks], 0, sizeof *c->hooks);
			c->hooks[c->nhooks].name = xstrdup(h->name);
			c->hooks[c->nhooks].timeout_ms = 10 * SEC;
			c->hooks[c->nhooks].line = h->line;
			h->index = c->nhooks++;
		}
		return (&c->hooks[h->index]);
	}
	return (c);
}

/* Keys whose syntax is their own; returns an error text or NULL. */
static const char *
conf_special(struct conf_parse *p, const struct conf_key *k, void *base,
    const char *value, char **owned)
{
	struct conf	*c = p->conf;
	struct source	*src = base;
	struct hook	*hk = base;
	const char	*cause = NULL, *topic;
	char		*colon, *end, **list;
	struct stat	 sb;
	long		 port;
	size_t		 i, j;

	if (k->section == SECTION_SOURCE && strcmp(k->name, "topic") == 0) {
		topic = value;
		if (strncmp(topic, "$share/", 7) == 0) {
			if ((topic = strchr(topic + 7, '/')) == NULL ||
			    topic == value + 7)
				return ("$share/GROUP/FILTER expected");
			topic++;
		}
		if (*topic == '\0' ||
		    mosquitto_sub_topic_check(topic) != MOSQ_ERR_SUCCESS)
			return ("not a valid MQTT topic filter");
		free(src->topic);
		src->topic = xstrdup(value);
		src->filter = src->topic + (topic - value);
	} else if (k->section == SECTION_SOURCE &&
	    strcmp(k->name, "format") == 0) {
		if (conf_format_parse(value, &src->format) == -1) {
			xasprintf(owned, "unknown format \"%s\" (zigbee2mqtt, "
			    "tasmota, shelly, shelly-gen2, esphome, "
			    "homeassistant, number, ttn, json)", value);
			return (*owned);
		}
	} else if (k->section == SECTION_SOURCE) {
		if (strcmp(value, "C") != 0 && strcmp(value, "F") != 0)
			return ("must be C or F");
		src->unit = value[0];
	} else if (strcmp(k->name, "url") == 0) {
		if (strncmp(value, "smtp://", 7) != 0 &&
		    strncmp(value, "smtps://", 8) != 0)
			return ("must start with smtp:// or smtps://");
		free(c->smtp_url);
		c->smtp_url = xstrdup(value);
	} else if (strcmp(k->name, "tls") == 0) {
		if (strcmp(value, "required") == 0)
			c->smtp_tls_required = 1;
		else if (strcmp(value, "none") == 0)
			c->smtp_tls_required = 0;
		else
			return ("must be required or none");
	} else if (strcmp(k->name, "status_topic") == 0) {
		if (*value != '\0' && mosquitto_pub_topic_check(value) !=
		    MOSQ_ERR_SUCCESS)
			return ("not a valid MQTT topic (no wildcards)");
		free(c->mqtt_status_topic);
		c->mqtt_status_topic = *value == '\0' ? NULL : xstrdup(value);
	} else if (strcmp(k->name, "watch") == 0) {
		if (strcmp(value, "own") == 0)
			c->alerts_watch_own = 1;
		else if (strcmp(value, "all") == 0)
			c->alerts_watch_own = 0;
		else
			return ("must be all or own");
	} else if (strcmp(k->name, "retention_below_cdc_minimum") == 0) {
		if (strcmp(value, "yes") == 0)
			c->db_retention_below_cdc = 1;
		else if (strcmp(value, "no") == 0)
			c->db_retention_below_cdc = 0;
		else
			return ("must be yes or no");
	} else if (strcmp(k->name, "from") == 0) {
		if (strpbrk(value, "\r\n") != NULL || strchr(value, '@') == NULL)
			return ("must be an address such as "
			    "\"vialwatch <alerts@clinic.example>\"");
		free(c->smtp_from);
		c->smtp_from = xstrdup(value);
	} else if (strcmp(k->name, "listen") == 0) {
		if ((colon = strrchr(value, ':')) == NULL)
			return ("HOST:PORT expected");
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
			return ("bad port");
		free(c->http_host);
		if (value[0] == '[' && colon > value && colon[-1] == ']')
			c->http_host = xstrndup(value + 1, colon - value - 2);
		else
			c->http_host = xstrndup(value, colon - value);
		c->http_port = port;
	} else if (strcmp(k->name, "public_url") == 0) {
		if (strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0)
			return ("must start with http:// or https://");
		free(c->http_public_url);
		c->http_public_url = xstrdup(value);
		i = strlen(c->http_public_url);
		while (i > 0 && c->http_public_url[i - 1] == '/')
			c->http_public_url[--i] = '\0';
	} else if (strcmp(k->name, "secret_file") == 0) {
		free(c->http_secret);
		c->http_secret = (unsigned char *)conf_read_secret(value,
		    &c->http_secret_len, owned);
		if (c->http_secret == NULL)
			return (*owned);
		if (c->http_secret_len < 16)
			return ("the key must be at least 16 bytes");
		conf_add_secret_file(c, value);
	} else if (strcmp(k->name, "send_window") == 0) {
		if (conf_parse_window(value, &c->reminders_window_start,
		    &c->reminders_window_end) == -1)
			return ("HH:MM-HH:MM expected, end after start");
	} else if (strcmp(k->name, "template_dir") == 0) {
		if (*value == '\0')
			value = TEMPLATEDIR;	/* unset: the default */
		if (stat(value, &sb) == -1) {
			xasprintf(owned, "cannot read %s: %s", value,
			    strerror(errno));
			return (*owned);
		}
		if (!S_ISDIR(sb.st_mode)) {
			xasprintf(owned, "%s is not a directory", value);
			return (*owned);
		}
		free(c->reminders_template_dir);
		c->reminders_template_dir = xstrdup(value);
	} else if (strcmp(k->name, "command") == 0) {
		list = conf_split_argv(value, &cause);
		if (cause != NULL) {
			conf_free_argv(list);
			return (cause);
		}
		if (list[0][0] != '/') {
			conf_free_argv(list);
			return ("the program must be an absolute path");
		}
		conf_free_argv(hk->argv);
		hk->argv = list;
	} else if (strcmp(k->name, "events") == 0) {
		conf_free_argv(hk->events);
		hk->events = NULL;
		if (*value == '\0')
			return (NULL);	/* unset: every event */
		list = conf_split_argv(value, &cause);
		for (i = 0; list != NULL && list[i] != NULL; i++) {
			for (j = 0; conf_events[j] != NULL; j++) {
				if (strcmp(list[i], conf_events[j]) == 0)
					break;
			}
			if (conf_events[j] == NULL) {
				xasprintf(owned, "unknown event \"%s\"",
				    list[i]);
				conf_free_argv(list);
				return (*owned);
			}
		}
		if (cause != NULL) {
			conf_free_argv(list);
			return (cause);
		}
		hk->events = list;
	}
	return (NULL);
}

/* Store one value of a typed key; returns an error text or NULL. */
static const char *
conf_store(struct conf_parse *p, const struct conf_key *k, void *base,
    const char *value, char **owned)
{
	char		**sp = (char **)((char *)base + k->offset);
	long long	  n;
	int64_t		  ms;
	char		 *end;
	int		  level;

	switch (k->type) {
	case CONF_STRING:
	case CONF_READABLE:
		if (k->type == CONF_READABLE && *value != '\0' &&
		    access(value, R_OK) == -1) {
			xasprintf(owned, "cannot read %s: %s", value,
			    strerror(errno));
			return (*owned);
		}
		free(*sp);
		*sp = *value == '\0' ? NULL : xstrdup(value);
		return (NULL);
	case CONF_SECRET:
		free(*sp);
		*sp = NULL;
		if (*value == '\0')
			return (NULL);
		if ((*sp = conf_read_secret(value, NULL, owned)) == NULL)
			return (*owned);
		conf_add_secret_file(p->conf, value);
		return (NULL);
	case CONF_INT:
		errno = 0;
		n = strtoll(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || n < k->min ||
		    n > k->max) {
			xasprintf(owned, "bad number \"%s\" (%lld to %lld)",
			    value, k->min, k->max);
			return (*owned);
		}
		*(int *)((char *)base + k->offset) = n;
		return (NULL);
	case CONF_DURATION:
		if (conf_parse_duration(value, &ms) == -1) {
			xasprintf(owned, "bad duration \"%s\" (use e.g. 200ms, "
			    "90s, 15m, 2h, 7d, 3y)", value);
			return (*owned);
		}
		if (ms < k->min || (k->max != 0 && ms > k->max)) {
			xasprintf(owned, "duration \"%s\" out of range", value);
			return (*owned);
		}
		*(int64_t *)((char *)base + k->offset) = ms;
		return (NULL);
	case CONF_SIZE:
		if (conf_parse_size(value, &ms) == -1 || ms < k->min ||
		    ms > k->max) {
			xasprintf(owned, "bad size \"%s\" (64k to 1024G, e.g. "
			    "16M)", value);
			return (*owned);
		}
		*(int64_t *)((char *)base + k->offset) = ms;
		return (NULL);
	case CONF_LOG_LEVEL:
		if ((level = log_level_parse(value)) == -1)
			return ("must be error, warning, info or debug");
		*(int *)((char *)base + k->offset) = level;
		return (NULL);
	case CONF_BOOL:
		if (strcmp(value, "yes") == 0)
			*(int *)((char *)base + k->offset) = 1;
		else if (strcmp(value, "no") == 0)
			*(int *)((char *)base + k->offset) = 0;
		else
			return ("must be yes or no");
		return (NULL);
	case CONF_SPECIAL:
		return (conf_special(p, k, base, value, owned));
	}
	return (NULL);
}

/* Index of a key in conf_keys, or the table size when there is none. */
static size_t
conf_key_find(enum conf_section_kind section, const char *name)
{
	size_t	i;

	for (i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++) {
		if (conf_keys[i].section == section &&
		    strcmp(conf_keys[i].name, name) == 0)
			break;
	}
	return (i);
}

/* inih callback: one key = value in the current section. */
static int
conf_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct conf_parse	*p = arg;
	struct conf_header	*h;
	const char		*err;
	char			*owned = NULL;
	size_t			 i;

	if (p->nheaders == 0) {
		conf_error(p, p->lineno, "\"%s\" outside of any section", name);
		return (1);
	}
	h = &p->headers[p->current];
	if (h->kind == SECTION_UNKNOWN ||
	    conf_sections[h->kind].named != (h->name != NULL))
		return (1);	/* reported once, at the header */
	i = conf_key_find(h->kind, name);
	if (i == sizeof conf_keys / sizeof conf_keys[0]) {
		conf_error(p, p->lineno, "unknown key \"%s\" in [%s]", name,
		    section);
		return (1);
	}
	if (h->seen & (1ULL << i)) {
		conf_error(p, p->lineno, "%s: given twice in [%s]", name,
		    section);
		return (1);
	}
	h->seen |= 1ULL << i;
	err = conf_store(p, &conf_keys[i], conf_instance(p, h), value, &owned);
	if (err != NULL)
		conf_error(p, p->lineno, "%s: %s", name, err);
	free(owned);
	return (1);
}

/* Checks that need the whole file: headers, names, required keys. */
static void
conf_check_headers(struct conf_parse *p)
{
	struct conf_header	*h, *o;
	struct source		*src;
	int			 i, j;

	for (i = 0; i < p->nheaders; i++) {
		h = &p->headers[i];
		if (h->kind == SECTION_UNKNOWN) {
			conf_error(p, h->line, "unknown section [%s]", h->raw);
			continue;
		}
		if (conf_sections[h->kind].named != (h->name != NULL)) {
			conf_error(p, h->line, h->name == NULL ?
			    "[%s] needs a name, e.g. [%s main]" :
			    "[%s] takes no name", conf_sections[h->kind].name,
			    conf_sections[h->kind].name);
			continue;
		}
		for (j = 0; j < i; j++) {
			o = &p->headers[j];
			if (o->kind == h->kind && (o->name == NULL ||
			    h->name == NULL || strcmp(o->name, h->name) == 0))
				conf_error(p, h->line, "duplicate section [%s]",
				    h->raw);
		}
		if (h->kind == SECTION_SOURCE) {
			src = conf_instance(p, h);
			if (!(h->seen &
			    (1ULL << conf_key_find(SECTION_SOURCE, "topic"))))
				conf_error(p, h->line,
				    "[source %s] has no \"topic\"", h->name);
			else if (!(h->seen &
			    (1ULL << conf_key_find(SECTION_SOURCE, "format"))))
				conf_error(p, h->line,
				    "[source %s] has no \"format\"", h->name);
			else if ((src->temperature != NULL &&
			    src->format != FORMAT_JSON &&
			    src->format != FORMAT_TTN) ||
			    ((src->timestamp != NULL || src->door != NULL ||
			    src->door_open_value != NULL ||
			    src->power != NULL) &&
			    src->format != FORMAT_JSON))
				conf_error(p, h->line, "[source %s]: "
				    "temperature and timestamp (and door, "
				    "door_open_value, power) are for format "
				    "json (and temperature for ttn)", h->name);
		}
		if (h->kind == SECTION_HOOK && !(h->seen &
		    (1ULL << conf_key_find(SECTION_HOOK, "command"))))
			conf_error(p, h->line, "[hook %s] has no \"command\"",
			    h->name);
	}
}

/* Checks across keys of [mqtt]; reported at the line of the section. */
static void
conf_check_mqtt(struct conf_parse *p)
{
	struct conf	*c = p->conf;
	int		 i, line = 0;

	for (i = 0; i < p->nheaders; i++) {
		if (p->headers[i].kind == SECTION_MQTT)
			line = p->headers[i].line;
	}
	if (line == 0)
		return;
	if (c->mqtt_client_id != NULL && mosquitto_validate_utf8(
	    c->mqtt_client_id, strlen(c->mqtt_client_id)) != MOSQ_ERR_SUCCESS)
		conf_error(p, line, "[mqtt] client_id must be valid UTF-8");
	if ((c->mqtt_tls_cert_file != NULL) != (c->mqtt_tls_key_file != NULL))
		conf_error(p, line, "[mqtt] tls_cert_file and tls_key_file "
		    "go together");
	if (c->mqtt_tls_cert_file != NULL && c->mqtt_tls_ca_file == NULL)
		conf_error(p, line, "[mqtt] a client certificate needs "
		    "tls_ca_file (TLS)");
	if (c->mqtt_ha_discovery && !c->mqtt_publish_state)
		conf_error(p, line, "[mqtt] homeassistant_discovery = yes "
		    "needs publish_state = yes");
}

/*
 * A retention under the CDC's 3 years for temperature logs must be asked
 * for twice; reported at the line of [database].
 */
static void
conf_check_retention(struct conf_parse *p)
{
	struct conf	*c = p->conf;
	int		 i, line = 0;

	for (i = 0; i < p->nheaders; i++) {
		if (p->headers[i].kind == SECTION_DATABASE)
			line = p->headers[i].line;
	}
	if (line == 0 || c->db_retention_ms >= CONF_CDC_RETENTION_MS ||
	    c->db_retention_below_cdc)
		return;
	conf_error(p, line, "[database] retention of %lld days is below the "
	    "CDC's minimum of 3 years for temperature logs: set "
	    "retention_below_cdc_minimum = yes as well if that is meant",
	    (long long)(c->db_retention_ms / (86400 * SEC)));
}

/* Defaults from the SPEC, applied before the file is read. */
static void
conf_defaults(struct conf *c)
{
	c->state_dir = xstrdup("/var/lib/vialwatch");
	c->log_level = LOG_LEVEL_INFO;
	c->mqtt_host = xstrdup("localhost");
	c->mqtt_port = 1883;
	c->mqtt_client_id = xstrdup("vialwatchd-1");
	c->mqtt_qos = 1;
	c->mqtt_keepalive_ms = 30 * SEC;
	c->mqtt_session_expiry_ms = 86400 * SEC;
	c->mqtt_status_topic = xstrdup("vialwatch/status");
	c->db_conninfo = xstrdup("dbname=vialwatch");
	c->db_batch_max_rows = 5000;
	c->db_batch_max_delay_ms = 200;
	c->db_max_pending = 16 * 1024 * 1024;
	c->db_retention_ms = 3 * 365 * 86400 * SEC;
	c->db_seal_every_ms = 3600 * SEC;
	c->smtp_url = xstrdup("smtp://localhost:25");
	c->smtp_tls_required = 1;
	c->smtp_from = xstrdup("vialwatch <alerts@clinic.example>");
	c->http_host = xstrdup("127.0.0.1");
	c->http_port = 8470;
	c->http_public_url = xstrdup("http://127.0.0.1:8470");
	c->http_max_connections = 256;
	c->http_idle_timeout_ms = 10 * SEC;
	c->alerts_escalate_after_ms = 15 * 60 * SEC;
	c->alerts_repeat_every_ms = 30 * 60 * SEC;
	c->alerts_keep_notifications_ms = 400 * 86400 * SEC;
	c->alerts_daemon_silent_after_ms = 5 * 60 * SEC;
	c->alerts_maintenance_max_ms = 4 * 3600 * SEC;
	c->reminders_scan_interval_ms = 60 * SEC;
	c->reminders_window_start = 9 * 60;
	c->reminders_window_end = 18 * 60;
	c->reminders_template_dir = xstrdup(TEMPLATEDIR);
	c->checks_grace_ms = 3600 * SEC;
	c->checks_scan_interval_ms = 60 * SEC;
}

/* Unset string keys that must have a value get their default back. */
static void
conf_finish(struct conf *c)
{
	if (c->state_dir == NULL)
		c->state_dir = xstrdup("/var/lib/vialwatch");
	if (c->mqtt_host == NULL)
		c->mqtt_host = xstrdup("localhost");
	if (c->mqtt_client_id == NULL)
		c->mqtt_client_id = xstrdup("vialwatchd-1");
	if (c->db_conninfo == NULL)
		c->db_conninfo = xstrdup("");
}

/* The hooks as the database's vialwatch.hooks setting wants them. */
static char *
conf_hooks_json(const struct conf *c)
{
	json_object	*o, *a;
	char		*s;
	int		 i, j;

	o = json_object_new_object();
	for (i = 0; i < c->nhooks; i++) {
		a = NULL;
		if (c->hooks[i].events != NULL) {
			a = json_object_new_array();
			for (j = 0; c->hooks[i].events[j] != NULL; j++)
				json_object_array_add(a,
				    json_object_new_string(
				    c->hooks[i].events[j]));
		}
		json_object_object_add(o, c->hooks[i].name, a);
	}
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return (s);
}

/* Load and check a config file. */
struct conf *
conf_load(const char *path, char **cause)
{
	struct conf_parse	 p;
	struct conf		*c;
	int			 rc, i;

	memset(&p, 0, sizeof p);
	c = xcalloc(1, sizeof *c);
	c->path = xstrdup(path);
	conf_defaults(c);
	p.conf = c;
	p.current = -1;
	if ((p.f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: cannot open: %s", path, strerror(errno));
		conf_free(c);
		return (NULL);
	}
	rc = ini_parse_stream(conf_reader, &p, conf_handler, &p);
	if (rc > 0)
		conf_error(&p, rc, "syntax error, \"key = value\" or "
		    "\"[section]\" expected");
	else if (rc < 0 || ferror(p.f))
		conf_error(&p, p.lineno, "read error");
	fclose(p.f);
	conf_check_headers(&p);
	conf_check_mqtt(&p);
	conf_check_retention(&p);
	conf_finish(c);
	c->hooks_json = conf_hooks_json(c);

	for (i = 0; i < p.nheaders; i++) {
		free(p.headers[i].raw);
		free(p.headers[i].name);
	}
	free(p.headers);
	/* The templates' own errors name the template's FILE:LINE. */
	if (p.error == NULL && !conf_no_templates &&
	    (c->templates = template_load(c->reminders_template_dir,
	    &p.error)) != NULL &&
	    !template_shows(c->templates, "unsubscribe_url"))
		/* A patient must always be able to stop them (RFC 8058). */
		xasprintf(&p.error, "%s/%s: the text body must show "
		    "{{unsubscribe_url}}, outside any section",
		    c->reminders_template_dir, TEMPLATE_TEXT_FILE);
	if (p.error != NULL) {
		*cause = p.error;
		conf_free(c);
		return (NULL);
	}
	return (c);
}

/* Free a conf and everything it owns; secrets are wiped first. */
void
conf_free(struct conf *c)
{
	int	i;

	if (c == NULL)
		return;
	free(c->hooks_json);
	template_free(c->templates);
	free(c->reminders_template_dir);
	for (i = 0; i < c->nsources; i++) {
		free(c->sources[i].name);
		free(c->sources[i].topic);
		free(c->sources[i].temperature);
		free(c->sources[i].timestamp);
		free(c->sources[i].door);
		free(c->sources[i].door_open_value);
		free(c->sources[i].power);
	}
	free(c->sources);
	for (i = 0; i < c->nhooks; i++) {
		free(c->hooks[i].name);
		conf_free_argv(c->hooks[i].argv);
		conf_free_argv(c->hooks[i].events);
	}
	free(c->hooks);
	conf_free_argv(c->secret_files);
	if (c->mqtt_password != NULL)
		explicit_bzero(c->mqtt_password, strlen(c->mqtt_password));
	if (c->smtp_password != NULL)
		explicit_bzero(c->smtp_password, strlen(c->smtp_password));
	if (c->http_secret != NULL)
		explicit_bzero(c->http_secret, c->http_secret_len);
	free(c->mqtt_password);
	free(c->smtp_password);
	free(c->http_secret);
	free(c->path);
	free(c->state_dir);
	free(c->mqtt_host);
	free(c->mqtt_client_id);
	free(c->mqtt_username);
	free(c->mqtt_tls_ca_file);
	free(c->mqtt_tls_cert_file);
	free(c->mqtt_tls_key_file);
	free(c->mqtt_status_topic);
	free(c->db_conninfo);
	free(c->smtp_url);
	free(c->smtp_username);
	free(c->smtp_from);
	free(c->http_host);
	free(c->http_public_url);
	free(c->http_conninfo);
	free(c);
}

