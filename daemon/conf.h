/* conf.c: the INI configuration, validated with FILE:LINE messages. */
#ifndef CONF_H
#define CONF_H

#include <sys/types.h>

#include <stdint.h>

struct templates;

enum payload_format {
	FORMAT_ZIGBEE2MQTT,
	FORMAT_TASMOTA,
	FORMAT_SHELLY,
	FORMAT_SHELLY_GEN2,
	FORMAT_ESPHOME,
	FORMAT_HOMEASSISTANT,
	FORMAT_NUMBER,
	FORMAT_TTN,
	FORMAT_JSON,
};
#define FORMAT_COUNT (FORMAT_JSON + 1)

/* The CDC's minimum for temperature logs: 3 years. */
#define CONF_CDC_RETENTION_MS	(3 * 365 * 86400 * 1000LL)

/* A [source NAME] section: one MQTT feed. */
struct source {
	char			*name;
	char			*topic;		/* MQTT filter, may be $share/... */
	const char		*filter;	/* topic without $share/group/ */
	enum payload_format	 format;
	char			 unit;		/* 'C' or 'F' */
	char			*temperature;	/* json: pointer; ttn: field */
	char			*timestamp;	/* json: pointer or NULL */
	char			*door;		/* json: pointer or NULL */
	char			*door_open_value; /* json: what means open */
	char			*power;		/* json: pointer or NULL */
	int			 line;
	int			 metric;	/* index in metrics, set by main */
};

/* A [hook NAME] section: a program run for some events. */
struct hook {
	char		*name;
	char		**argv;		/* NULL-terminated */
	char		**events;	/* NULL-terminated */
	int64_t		 timeout_ms;
	int		 line;
};

struct conf {
	char		*path;

	/* [daemon] */
	char		*state_dir;
	int		 log_level;

	/* [mqtt] */
	char		*mqtt_host;
	int		 mqtt_port;
	char		*mqtt_client_id;
	char		*mqtt_username;
	char		*mqtt_password;		/* from password_file */
	char		*mqtt_tls_ca_file;
	char		*mqtt_tls_cert_file;
	char		*mqtt_tls_key_file;
	int		 mqtt_qos;
	int64_t		 mqtt_keepalive_ms;
	int64_t		 mqtt_session_expiry_ms;
	char		*mqtt_status_topic;	/* NULL: none */
	int		 mqtt_publish_state;
	int		 mqtt_ha_discovery;

	/* [database] */
	char		*db_conninfo;
	int		 db_batch_max_rows;
	int64_t		 db_batch_max_delay_ms;
	int64_t		 db_max_pending;	/* bytes held in memory */
	int64_t		 db_retention_ms;	/* readings kept; retention.c */
	int		 db_retention_below_cdc;	/* < 3 years allowed */
	int64_t		 db_seal_every_ms;	/* seal.c */

	/* [source NAME] */
	struct source	*sources;
	int		 nsources;

	/* [smtp] */
	char		*smtp_url;
	int		 smtp_tls_required;
	char		*smtp_username;
	char		*smtp_password;		/* from password_file */
	char		*smtp_from;

	/* [http] */
	char		*http_host;
	int		 http_port;
	char		*http_public_url;
	unsigned char	*http_secret;		/* from secret_file, or NULL */
	size_t		 http_secret_len;
	int		 http_max_connections;
	int64_t		 http_idle_timeout_ms;
	char		*http_conninfo;		/* NULL: [database] conninfo */

	/* [alerts] */
	int64_t		 alerts_escalate_after_ms;
	int64_t		 alerts_repeat_every_ms;
	int		 alerts_watch_own;	/* only what [source]s deliver */
	int64_t		 alerts_keep_notifications_ms;	/* archive.c */
	int64_t		 alerts_daemon_silent_after_ms;	/* heartbeat.c */
	int64_t		 alerts_maintenance_max_ms; /* longest window */

	/* [reminders] */
	int64_t		 reminders_scan_interval_ms;
	int		 reminders_window_start;	/* minutes after midnight */
	int		 reminders_window_end;
	char		*reminders_template_dir;
	struct templates *templates;		/* loaded from template_dir */

	/* [checks] */
	int64_t		 checks_grace_ms;
	int64_t		 checks_scan_interval_ms;

	/* [hook NAME] */
	struct hook	*hooks;
	int		 nhooks;
	/*
	 * The same for the database's vialwatch.hooks setting: a JSON object
	 * of each hook's name and its events (null for all).
	 */
	char		*hooks_json;

	/* The files of password_file and secret_file, NULL-terminated. */
	char		**secret_files;
};

/* Returns a new conf, or NULL with *cause set to "FILE:LINE: message". */
struct conf	*conf_load(const char *, char **);
void		 conf_free(struct conf *);
int		 conf_check_modes(const struct conf *, gid_t);
int		 conf_format_parse(const char *, enum payload_format *);

/* Parsers, exposed for the unit tests: 0 on success, -1 on error. */
int		 conf_parse_duration(const char *, int64_t *);
int		 conf_parse_window(const char *, int *, int *);

/* Skip loading the reminder templates (vialwatchctl). */
extern int	conf_no_templates;

#endif
