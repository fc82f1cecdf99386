/* Unit tests for conf.c: durations, windows, and FILE:LINE errors. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "tap.h"

/* The shipped templates; every test config names them. */
#define TEMPLATES	TOP_SRCDIR "/conf/templates"

static const struct {
	const char	*text;
	int		 ok;
	int64_t		 ms;
} durations[] = {
	{ "200ms", 1, 200 },
	{ "90s", 1, 90000 },
	{ "15m", 1, 900000 },
	{ "2h", 1, 7200000 },
	{ "7d", 1, 604800000 },
	{ "3y", 1, 94608000000LL },
	{ "0s", 1, 0 },
	{ "90", 0, 0 },
	{ "s", 0, 0 },
	{ "-5s", 0, 0 },
	{ "5 s", 0, 0 },
	{ "1.5h", 0, 0 },
	{ "5w", 0, 0 },
	{ "99999999999999999999d", 0, 0 },
};

static const struct {
	const char	*text;
	int		 ok;
	int		 start, end;
} windows[] = {
	{ "09:00-18:00", 1, 540, 1080 },
	{ "00:00-23:59", 1, 0, 1439 },
	{ "18:00-09:00", 0, 0, 0 },
	{ "9:00-18:00", 0, 0, 0 },
	{ "09:00-24:00", 1, 540, 1440 },
	{ "00:00-24:00", 1, 0, 1440 },
	{ "24:00-24:00", 0, 0, 0 },
	{ "09:00-24:01", 0, 0, 0 },
	{ "09:00-25:00", 0, 0, 0 },
	{ "09:60-18:00", 0, 0, 0 },
	{ "09:00", 0, 0, 0 },
};

/* A config file body and the first error it must give (NULL: loads). */
static const struct {
	const char	*name;
	const char	*body;
	const char	*error;		/* after "FILE:" */
} files[] = {
	{ "minimal", "[source z]\ntopic = zigbee2mqtt/#\nformat = zigbee2mqtt\n",
	    NULL },
	{ "unknown section", "[daemon]\nlog_level = info\n\n[mqqt]\nhost = x\n",
	    "4: unknown section [mqqt]" },
	{ "unknown key", "[mqtt]\nhost = x\nprot = 1883\n",
	    "3: unknown key \"prot\" in [mqtt]" },
	{ "bad duration", "[mqtt]\n; comment\nkeepalive = 30 seconds\n",
	    "3: keepalive: bad duration \"30 seconds\"" },
	{ "duration out of range", "[mqtt]\nkeepalive = 1s\n",
	    "2: keepalive: duration \"1s\" out of range" },
	{ "bad number", "[mqtt]\nport = 99999\n",
	    "2: port: bad number \"99999\" (1 to 65535)" },
	{ "bad watch", "[alerts]\nwatch = mine\n",
	    "2: watch: must be all or own" },
	{ "retention under 3 years", "[mqtt]\n[database]\nretention = 1094d\n",
	    "2: [database] retention of 1094 days is below the CDC's minimum "
	    "of 3 years for temperature logs: set retention_below_cdc_minimum "
	    "= yes as well if that is meant" },
	{ "retention under 3 years, asked twice",
	    "[database]\nretention = 30d\nretention_below_cdc_minimum = yes\n",
	    NULL },
	{ "retention of 3 years", "[database]\nretention = 3y\n"
	    "retention_below_cdc_minimum = no\n", NULL },
	{ "bad retention_below_cdc_minimum",
	    "[database]\nretention_below_cdc_minimum = 1\n",
	    "2: retention_below_cdc_minimum: must be yes or no" },
	{ "keep_notifications under a day", "[alerts]\nkeep_notifications = 1h\n",
	    "2: keep_notifications: duration \"1h\" out of range" },
	{ "daemon_silent_after under 5 s", "[alerts]\ndaemon_silent_after = 1s\n",
	    "2: daemon_silent_after: duration \"1s\" out of range" },
	{ "bad level", "[daemon]\nlog_level = loud\n",
	    "2: log_level: must be error, warning, info or debug" },
	{ "missing topic", "[daemon]\n\n[source a]\nformat = json\n",
	    "3: [source a] has no \"topic\"" },
	{ "missing format", "[source a]\ntopic = a/#\n",
	    "1: [source a] has no \"format\"" },
	{ "unknown format", "[source a]\ntopic = a/#\nformat = xml\n",
	    "3: format: unknown format" },
	{ "bad topic", "[source a]\ntopic = a/#/b\nformat = json\n",
	    "2: topic: not a valid MQTT topic filter" },
	{ "shared topic", "[source a]\ntopic = $share/g/a/+\nformat = json\n",
	    NULL },
	{ "unreadable secret", "[mqtt]\npassword_file = /nonexistent/pw\n",
	    "2: password_file: cannot read /nonexistent/pw: No such file or "
	    "directory" },
	{ "duplicate key", "[mqtt]\nport = 1\nport = 2\n",
	    "3: port: given twice in [mqtt]" },
	{ "duplicate source", "[source a]\ntopic = a\nformat = json\n"
	    "[source a]\ntopic = b\nformat = json\n",
	    "4: duplicate section [source a]" },
	{ "unnamed source", "[source]\ntopic = a\n",
	    "1: [source] needs a name" },
	{ "pointer on zigbee", "[source a]\ntopic = a\nformat = zigbee2mqtt\n"
	    "temperature = /t\n", "1: [source a]: temperature and timestamp" },
	{ "door on tasmota", "[source a]\ntopic = a\nformat = tasmota\n"
	    "door = /contact\n", "1: [source a]: temperature and timestamp "
	    "(and door, door_open_value, power) are for format json" },
	{ "power on zigbee", "[source a]\ntopic = a\nformat = zigbee2mqtt\n"
	    "power = /w\n", "1: [source a]: temperature and timestamp" },
	{ "maintenance_max over a week", "[alerts]\nmaintenance_max = 8d\n",
	    "2: maintenance_max" },
	{ "no section", "host = x\n", "1: \"host\" outside of any section" },
	{ "syntax", "[mqtt]\nhost\n", "2: syntax error" },
	{ "window", "[reminders]\nsend_window = 18:00-09:00\n",
	    "2: send_window: HH:MM-HH:MM expected" },
	{ "relative hook", "[hook a]\ncommand = sms --to 1\n",
	    "2: command: the program must be an absolute path" },
	{ "unknown event", "[hook a]\ncommand = /bin/true\nevents = fire\n",
	    "3: events: unknown event \"fire\"" },
	{ "earliest error wins", "[mqtt]\nport = 0\n[nope]\n",
	    "2: port: bad number" },
	{ "unnamed then named source", "[source]\n[source x]\ntopic = a/b\n"
	    "format = json\n", "1: [source] needs a name" },
	{ "byte order mark", "\xef\xbb\xbf[daemon]\nlog_level = debug\n",
	    NULL },
	{ "certificate without key", "[mqtt]\ntls_ca_file = /dev/null\n"
	    "tls_cert_file = /dev/null\n",
	    "1: [mqtt] tls_cert_file and tls_key_file go together" },
	{ "client id not UTF-8", "[mqtt]\nclient_id = vw\xff\n",
	    "1: [mqtt] client_id must be valid UTF-8" },
	{ "empty events", "[hook a]\ncommand = /bin/true\nevents =\n", NULL },
	{ "missing template_dir", "[reminders]\ntemplate_dir = /nonexistent/t\n",
	    "2: template_dir: cannot read /nonexistent/t: No such file or "
	    "directory" },
	{ "template_dir not a directory", "[reminders]\n"
	    "template_dir = /dev/null\n",
	    "2: template_dir: /dev/null is not a directory" },
};

/*
 * Write body to a temp file and load it. Unless body names a template_dir,
 * one naming the shipped templates goes after it, in [reminders] (which,
 * when body has one, is its last section).
 */
static struct conf *
load(const char *body, char *path, size_t len, char **cause)
{
	FILE	*f;
	int	 fd;

	snprintf(path, len, "/tmp/test_conf.XXXXXX");
	if ((fd = mkstemp(path)) == -1 || (f = fdopen(fd, "w")) == NULL)
		return (NULL);
	fputs(body, f);
	if (strstr(body, "template_dir") == NULL)
		fprintf(f, "%stemplate_dir = %s\n", strstr(body, "[reminders]") ?
		    "" : "[reminders]\n", TEMPLATES);
	fclose(f);
	return (conf_load(path, cause));
}

static void
test_files(void)
{
	struct conf	*c;
	char		 path[64], want[512], *cause;
	size_t		 i;

	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		cause = NULL;
		c = load(files[i].body, path, sizeof path, &cause);
		if (files[i].error == NULL) {
			ok(c != NULL, "%s: loads", files[i].name);
			if (c == NULL)
				printf("#   %s\n", cause);
		} else {
			snprintf(want, sizeof want, "%s:%s", path,
			    files[i].error);
			ok(c == NULL && cause != NULL &&
			    strncmp(cause, want, strlen(want)) == 0,
			    "%s: error", files[i].name);
			if (cause == NULL || strncmp(cause, want,
			    strlen(want)) != 0)
				printf("#   got \"%s\"\n#  want \"%s...\"\n",
				    cause ? cause : "(none)", want);
		}
		conf_free(c);
		free(cause);
		unlink(path);
	}
}

static void
test_values(void)
{
	struct conf	*c;
	char		 path[64], *cause = NULL;

	c = load("[mqtt]\nhost = broker.example ; inline comment\nqos = 0\n"
	    "[database]\nbatch_max_delay = 50ms\n"
	    "[source t]\ntopic = $share/vw/tele/+/SENSOR\nformat = tasmota\n"
	    "unit = F\n"
	    "[http]\nlisten = [::1]:9000\npublic_url = https://x.example/\n"
	    "[hook sms]\ncommand = /usr/bin/sms --to \"+1 555\"\n"
	    "events = excursion.open sensor.offline\ntimeout = 3s\n"
	    "[alerts]\nwatch = own\nmaintenance_max = 90m\n"
	    "[source d]\ntopic = lab/+\nformat = json\ndoor = /door\n"
	    "door_open_value = open\npower = /watts\n",
	    path, sizeof path, &cause);
	if (!ok(c != NULL, "full config loads")) {
		printf("#   %s\n", cause);
		return;
	}
	is_str(c->mqtt_host, "broker.example", "inline comment stripped");
	is_int(c->mqtt_qos, 0, "qos");
	is_int(c->mqtt_port, 1883, "port default");
	is_int(c->db_batch_max_delay_ms, 50, "batch_max_delay");
	is_int(c->db_batch_max_rows, 5000, "batch_max_rows default");
	is_int(c->nsources, 2, "two sources");
	is_str(c->sources[1].door, "/door", "door pointer");
	is_str(c->sources[1].door_open_value, "open", "door_open_value");
	is_str(c->sources[1].power, "/watts", "power pointer");
	is_int(c->alerts_maintenance_max_ms, 90 * 60000, "maintenance_max");
	is_str(c->sources[0].filter, "tele/+/SENSOR", "shared filter");
	is_int(c->sources[0].unit, 'F', "unit");
	is_int(c->sources[0].format, FORMAT_TASMOTA, "format");
	is_str(c->http_host, "::1", "ipv6 listen host");
	is_int(c->http_port, 9000, "listen port");
	is_str(c->http_public_url, "https://x.example", "public_url trimmed");
	is_int(c->nhooks, 1, "one hook");
	is_str(c->hooks[0].argv[2], "+1 555", "quoted argument");
	is_str(c->hooks[0].events[1], "sensor.offline", "events");
	is_int(c->hooks[0].timeout_ms, 3000, "hook timeout");
	is_int(c->alerts_escalate_after_ms, 900000, "escalate_after default");
	is_int(c->alerts_watch_own, 1, "watch = own");
	is_int(c->alerts_keep_notifications_ms, 400 * 86400000LL,
	    "keep_notifications default");
	is_int(c->alerts_daemon_silent_after_ms, 300000,
	    "daemon_silent_after default");
	is_int(c->db_retention_below_cdc, 0,
	    "retention_below_cdc_minimum default");
	is_str(c->reminders_template_dir, TEMPLATES, "template_dir");
	ok(c->templates != NULL, "templates loaded with the config");
	conf_free(c);
	unlink(path);
}

/* Without [alerts] watch, a daemon judges every assigned sensor. */
static void
test_watch_default(void)
{
	struct conf	*c;
	char		 path[64], *cause = NULL;

	c = load("[source z]\ntopic = zigbee2mqtt/clinic-a/#\n"
	    "format = zigbee2mqtt\n", path, sizeof path, &cause);
	if (ok(c != NULL, "minimal config loads")) {
		is_int(c->alerts_watch_own, 0, "watch default: all");
		is_int(c->alerts_maintenance_max_ms, 4 * 3600000,
		    "maintenance_max default: 4h");
	}
	conf_free(c);
	free(cause);
	unlink(path);
}

/*
 * A template with a mistake refuses the whole config, with the template's
 * FILE:LINE; an empty template_dir is the default one.
 */
static void
test_templates(void)
{
	struct conf	*c;
	char		 dir[64], file[96], conf[64], body[256], want[160];
	char		*cause = NULL;
	FILE		*f;

	snprintf(dir, sizeof dir, "/tmp/test_conf_tpl.XXXXXX");
	if (!ok(mkdtemp(dir) != NULL, "template directory"))
		return;
	snprintf(file, sizeof file, "%s/reminder.txt", dir);
	if ((f = fopen(file, "w")) == NULL)
		return;
	fputs("Subject: Your next visit\n\nHi {{patient.first_name}},\n\n"
	    "see you around {{due_date}}, {{patient.frist_name}}.\n", f);
	fclose(f);
	snprintf(body, sizeof body, "[reminders]\nsend_window = 09:00-18:00\n"
	    "template_dir = %s\n", dir);
	c = load(body, conf, sizeof conf, &cause);
	snprintf(want, sizeof want, "%s:5: unknown variable "
	    "{{patient.frist_name}}", file);
	ok(c == NULL, "bad template: config refused");
	is_str(cause, want, "bad template: the template's FILE:LINE");
	conf_free(c);
	free(cause);
	cause = NULL;
	unlink(conf);

	/* Fixed, it loads, and an unknown key still points at the config. */
	if ((f = fopen(file, "w")) == NULL)
		return;
	fputs("Subject: Your next visit\n\nHi {{patient.first_name}}.\n"
	    "{{unsubscribe_url}}\n", f);
	fclose(f);
	c = load(body, conf, sizeof conf, &cause);
	ok(c != NULL && c->templates != NULL, "fixed template loads");
	conf_free(c);
	unlink(conf);
	free(cause);
	cause = NULL;

	c = load("[reminders]\ntemplate_dir =\n", conf, sizeof conf, &cause);
	snprintf(want, sizeof want, "%s:2: template_dir: cannot read "
	    TEMPLATEDIR ": ", conf);
	if (access(TEMPLATEDIR, F_OK) == 0)
		ok(c != NULL, "empty template_dir: the installed templates");
	else
		ok(c == NULL && cause != NULL &&
		    strncmp(cause, want, strlen(want)) == 0,
		    "empty template_dir: the default, " TEMPLATEDIR);
	conf_free(c);
	free(cause);
	unlink(conf);
	unlink(file);
	rmdir(dir);
}

int
main(void)
{
	struct conf	*c;
	char		*cause = NULL;
	int64_t		 ms;
	int		 s, e;
	size_t		 i;

	for (i = 0; i < sizeof durations / sizeof durations[0]; i++) {
		ms = -1;
		is_int(conf_parse_duration(durations[i].text, &ms) == 0,
		    durations[i].ok, "duration \"%s\"", durations[i].text);
		if (durations[i].ok)
			is_int(ms, durations[i].ms, "duration \"%s\" value",
			    durations[i].text);
	}
	for (i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		s = e = -1;
		is_int(conf_parse_window(windows[i].text, &s, &e) == 0,
		    windows[i].ok, "window \"%s\"", windows[i].text);
		if (windows[i].ok)
			ok(s == windows[i].start && e == windows[i].end,
			    "window \"%s\" value", windows[i].text);
	}
	test_files();
	test_values();
	test_watch_default();
	test_templates();

	c = conf_load("/nonexistent/vialwatch.conf", &cause);
	ok(c == NULL && cause != NULL && strcmp(cause,
	    "/nonexistent/vialwatch.conf: cannot open: No such file or "
	    "directory") == 0, "missing file");
	free(cause);
	return (done_testing());
}
