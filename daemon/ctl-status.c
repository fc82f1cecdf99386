/*
 * vialwatchctl status: what an operator reads at a glance.  Per fridge
 * the temperature, its age and the state; the open excursions; the outbox
 * and reminders; and the daemons, as PostgreSQL sees their connections and
 * as their /healthz says.  With --json the same as one JSON object.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "conf.h"
#include "ctl.h"
#include "xmalloc.h"

#define STATUS_HTTP_TIMEOUT_MS	2000
#define STATUS_HTTP_MAX		65536

/* The time since x, a timestamptz, as "45s ago", "3h 12m ago", "2d 4h ago". */
#define STATUS_AGE(x)							\
    "(select case when a.s is null then null"				\
    " when a.s < 0 then 'in the future'"				\
    " when a.s < 60 then a.s || 's ago'"				\
    " when a.s < 3600 then a.s / 60 || 'm ago'"				\
    " when a.s < 86400 then a.s / 3600 || 'h ' || a.s % 3600 / 60"	\
    "  || 'm ago'"							\
    " else a.s / 86400 || 'd ' || a.s % 86400 / 3600 || 'h ago' end"	\
    " from (select extract(epoch from now() - " x ")::bigint as s) a)"

/* A timestamptz for JSON: RFC 3339 in UTC. */
#define STATUS_ISO(x)							\
    "to_char(" x " at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* A clinic-local time for the terminal. */
#define STATUS_LOCAL(x)							\
    "to_char(" x " at time zone c.timezone, 'YYYY-MM-DD HH24:MI')"

/* Maintenance (until when) or defrost: alarms page nobody now. */
#define STATUS_HOLD							\
    " cross join lateral (select case vialwatch.fridge_hold(f.id, now())"	\
    "  when 'maintenance' then 'maintenance until ' || (select "	\
    STATUS_LOCAL("max(m.ends_at)") " from vialwatch.maintenance_report m" \
    "  where m.fridge_id = f.id and m.active) else"			\
    "  vialwatch.fridge_hold(f.id, now()) end as what) hold"

/*
 * Per fridge: the shown columns (0-5), then those for JSON.  A fridge
 * whose newest reading is older than offline_after is offline even when
 * no daemon runs to open the excursion.
 */
static const char status_fridges_sql[] =
    "select fs.clinic, fs.fridge,"
    " coalesce(round(fs.last_temp_c::numeric, 1)::text, '-'),"
    " coalesce(" STATUS_AGE("fs.last_reading_at") ", '-'),"
    " st.state || coalesce(', ' || hold.what, ''),"
    " case when x.open = 0 then '-' else x.open || ' open' ||"
    "  case when x.unacked > 0 then ', ' || x.unacked"
    "  || ' NOT ACKNOWLEDGED' when x.alarmed > 0 then ', acknowledged'"
    "  else ', not alarmed' end end,"
    " fs.clinic_id, fs.fridge_id, fs.kind, fs.low_c, fs.high_c,"
    " fs.last_temp_c, " STATUS_ISO("fs.last_reading_at") ","
    " extract(epoch from now() - fs.last_reading_at)::bigint,"
    " fs.last_sensor_key, x.open, x.unacked, fs.excursion_id,"
    " fs.calibration, hold.what"
    " from vialwatch.fridge_status fs"
    " join vialwatch.fridge f on f.id = fs.fridge_id"
    " join vialwatch.clinic c on c.id = fs.clinic_id"
    STATUS_HOLD
    " cross join lateral (select case"
    "  when fs.state = 'alarm' and fs.excursion_kind = 'offline'"
    "  then 'offline'"
    "  when fs.excursion_kind = 'warning' then 'warning'"
    "  when fs.state = 'ok' and fs.last_reading_at < now() - f.offline_after"
    "  then 'offline' else fs.state end as state) st"
    " cross join lateral (select count(*) as open,"
    "  count(*) filter (where e.alarmed_at is not null and e.acked_at is null"
    "  and e.kind not in ('battery', 'warning')) as unacked,"
    "  count(*) filter (where e.alarmed_at is not null) as alarmed"
    "  from vialwatch.excursion e"
    "  where e.fridge_id = fs.fridge_id and e.ended_at is null) x"
    " order by fs.clinic, fs.fridge, fs.fridge_id";

/* The open excursions: shown columns (0-7), then those for JSON. */
static const char status_excursions_sql[] =
    "select e.id::text, c.name, f.name, e.kind, " STATUS_LOCAL("e.started_at")
    ", coalesce(" STATUS_LOCAL("e.alarmed_at") ", 'not yet'),"
    " coalesce(round(e.peak_c::numeric, 1)::text, '-'),"
    " case when e.acked_at is not null then e.acked_by || ', ' || "
    STATUS_LOCAL("e.acked_at") " when e.alarmed_at is not null and"
    "  e.kind not in ('battery', 'warning') then 'NOT ACKNOWLEDGED'"
    "  else '-' end,"
    " e.id, c.id, f.id, " STATUS_ISO("e.started_at") ","
    " " STATUS_ISO("e.alarmed_at") ", e.peak_c, e.acked_at is not null,"
    " e.acked_by, " STATUS_ISO("e.acked_at")
    " from vialwatch.excursion e"
    " join vialwatch.fridge f on f.id = e.fridge_id"
    " join vialwatch.clinic c on c.id = f.clinic_id"
    " where e.ended_at is null order by e.started_at, e.id";

/*
 * The outbox backlog (3: the oldest unsent, 11: its age), the reminders
 * by status, the sensors.
 */
static const char status_counts_sql[] =
    "select"
    " (select count(*) from vialwatch.notification where status = 'pending'),"
    " (select count(*) from vialwatch.notification where status = 'failed'),"
    " (select count(*) from vialwatch.notification where status = 'dead'),"
    " (select " STATUS_ISO("min(created_at)") " from vialwatch.notification"
    "  where status in ('pending', 'failed')),"
    " r.pending, r.sent, r.cancelled, r.skipped,"
    " (select count(*) from vialwatch.sensor),"
    " (select count(*) from vialwatch.sensor where fridge_id is null),"
    " (select count(*) from vialwatch.reading"
    "  where ts > now() - interval '1 hour'"
    "  and ts <= now() + interval '5 minutes'),"
    " (select " STATUS_AGE("min(created_at)") " from vialwatch.notification"
    "  where status in ('pending', 'failed'))"
    " from (select count(*) filter (where status = 'pending') as pending,"
    "  count(*) filter (where status = 'sent') as sent,"
    "  count(*) filter (where status = 'cancelled') as cancelled,"
    "  count(*) filter (where status = 'skipped') as skipped"
    "  from vialwatch.reminder) r";

/*
 * The daemons' connections to this database.  Without pg_read_all_stats
 * (or being their role) only the name is visible, not client and since.
 */
static const char status_daemons_sql[] =
    "select a.application_name,"
    " coalesce(host(a.client_addr), case when a.backend_start is null"
    "  then '-' else 'local' end),"
    " coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SSOF') || ' ('"
    "  || " STATUS_AGE("a.backend_start") " || ')', '-'),"
    " coalesce(a.state, '-'),"
    " a.pid, host(a.client_addr), " STATUS_ISO("a.backend_start") ","
    " a.state"
    " from pg_stat_activity a"
    " where a.application_name like 'vialwatchd%'"
    " and a.datname = current_database()"
    " order by a.client_addr, a.backend_start, a.pid";

/* A column of a query for JSON: key, index, type (s, i, n, b). */
struct status_col {
	const char	*key;
	int		 col;
	char		 type;
};

static const struct status_col status_fridge_cols[] = {
	{ "clinic_id", 6, 'i' }, { "clinic", 0, 's' }, { "fridge_id", 7, 'i' },
	{ "fridge", 1, 's' }, { "kind", 8, 's' }, { "low_c", 9, 'n' },
	{ "high_c", 10, 'n' }, { "temp_c", 11, 'n' },
	{ "last_reading_at", 12, 's' }, { "last_reading_age_s", 13, 'i' },
	{ "sensor", 14, 's' }, { "state", 4, 's' },
	{ "open_excursions", 15, 'i' }, { "unacknowledged", 16, 'i' },
	{ "excursion_id", 17, 'i' }, { "calibration", 18, 's' },
	{ "hold", 19, 's' },
};

static const struct status_col status_excursion_cols[] = {
	{ "id", 8, 'i' }, { "clinic_id", 9, 'i' }, { "clinic", 1, 's' },
	{ "fridge_id", 10, 'i' }, { "fridge", 2, 's' }, { "kind", 3, 's' },
	{ "started_at", 11, 's' }, { "alarmed_at", 12, 's' },
	{ "peak_c", 13, 'n' }, { "acknowledged", 14, 'b' },
	{ "acked_by", 15, 's' }, { "acked_at", 16, 's' },
};

static const struct status_col status_daemon_cols[] = {
	{ "application_name", 0, 's' }, { "pid", 4, 'i' },
	{ "client_addr", 5, 's' }, { "connected_since", 6, 's' },
	{ "state", 7, 's' },
};

#define NCOLS(a) (sizeof (a) / sizeof (a)[0])

/* What /healthz of the daemon of this config said. */
struct status_http {
	char		 url[300];
	int		 code;		/* 0: no answer */
	char		*error;		/* why there is no answer */
	json_object	*health;	/* the parsed body, or NULL */
};

/* One value of res as JSON (NULL for SQL null). */
static json_object *
status_value(const PGresult *res, int i, int col, char type)
{
	const char	*v;
	double		 d;

	if (PQgetisnull(res, i, col))
		return (NULL);
	v = PQgetvalue(res, i, col);
	switch (type) {
	case 'i':
		return (json_object_new_int64(strtoll(v, NULL, 10)));
	case 'n':
		d = strtod(v, NULL);
		return (isfinite(d) ? json_object_new_double_s(d, v) : NULL);
	case 'b':
		return (json_object_new_boolean(*v == 't'));
	}
	return (json_object_new_string(v));
}

/* The rows of res as an array of objects of cols. */
static json_object *
status_rows(const PGresult *res, const struct status_col *cols, size_t n)
{
	json_object	*a, *o;
	int		 i;
	size_t		 j;

	a = json_object_new_array();
	for (i = 0; i < PQntuples(res); i++) {
		o = json_object_new_object();
		for (j = 0; j < n; j++)
			json_object_object_add(o, cols[j].key,
			    status_value(res, i, cols[j].col, cols[j].type));
		json_object_array_add(a, o);
	}
	return (a);
}

/* Connect to host:port within the timeout; the socket or -1 (*cause). */
static int
status_connect(const char *host, int port, int timeout_ms, char **cause)
{
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	char		 serv[8];
	socklen_t	 len;
	int		 fd = -1, rc, err = ECONNREFUSED;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(serv, sizeof serv, "%d", port);
	if ((rc = getaddrinfo(host, serv, &hints, &res)) != 0) {
		xasprintf(cause, "%s", gai_strerror(rc));
		return (-1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK,
		    ai->ai_protocol)) == -1) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			err = ETIMEDOUT;
			len = sizeof err;
			if (poll(&pfd, 1, timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
			    && err == 0)
				break;
		} else
			err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		xasprintf(cause, "%s", strerror(err));
	return (fd);
}

/* Read the whole answer until EOF or the deadline; NULL (*cause) if none. */
static char *
status_read(int fd, int64_t deadline_ms, size_t *lenp, char **cause)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	struct timespec	 ts;
	char		*buf = xmalloc(STATUS_HTTP_MAX + 1);
	size_t		 len = 0;
	ssize_t		 n;
	int64_t		 left;

	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		left = deadline_ms - ((int64_t)ts.tv_sec * 1000 +
		    ts.tv_nsec / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) != 1) {
			xasprintf(cause, "no answer within %d ms",
			    STATUS_HTTP_TIMEOUT_MS);
			break;
		}
		n = read(fd, buf + len, STATUS_HTTP_MAX - len);
		if (n == 0 || len + n == STATUS_HTTP_MAX) {
			len += n;
			buf[len] = '\0';
			*lenp = len;
			return (buf);
		}
		if (n == -1 && errno != EINTR && errno != EAGAIN) {
			xasprintf(cause, "%s", strerror(errno));
			break;
		}
		if (n > 0)
			len += n;
	}
	free(buf);
	return (NULL);
}

/* GET /healthz of the [http] listen address, with a short timeout. */
static void
status_http_get(const struct conf *conf, struct status_http *h)
{
	struct timespec	 ts;
	const char	*host = conf->http_host, *body;
	char		 req[400], *buf;
	size_t		 len;
	int		 fd;

	/* A daemon listening on every address answers on loopback. */
	if (*host == '\0' || strcmp(host, "0.0.0.0") == 0 ||
	    strcmp(host, "*") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	snprintf(h->url, sizeof h->url, strchr(host, ':') != NULL ?
	    "http://[%s]:%d/healthz" : "http://%s:%d/healthz", host,
	    conf->http_port);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if ((fd = status_connect(host, conf->http_port, STATUS_HTTP_TIMEOUT_MS,
	    &h->error)) == -1)
		return;
	snprintf(req, sizeof req, "GET /healthz HTTP/1.0\r\nHost: %s\r\n"
	    "Connection: close\r\n\r\n", host);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		xasprintf(&h->error, "%s", strerror(errno));
		close(fd);
		return;
	}
	buf = status_read(fd, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000
	    + STATUS_HTTP_TIMEOUT_MS, &len, &h->error);
	close(fd);
	if (buf == NULL)
		return;
	if (sscanf(buf, "HTTP/%*d.%*d %d", &h->code) != 1 ||
	    (body = strstr(buf, "\r\n\r\n")) == NULL)
		xasprintf(&h->error, "not an HTTP answer");
	else if ((h->health = json_tokener_parse(body + 4)) == NULL ||
	    !json_object_is_type(h->health, json_type_object)) {
		json_object_put(h->health);
		h->health = NULL;
		xasprintf(&h->error, "HTTP %d without a JSON object", h->code);
	}
	free(buf);
}

/* A string member of o, or "?". */
static const char *
status_member(json_object *o, const char *key)
{
	json_object	*v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) || v == NULL)
		return ("?");
	return (json_object_get_string(v));
}

/* The schema's version row (version, name, applied), or NULL (reported). */
static PGresult *
status_schema(struct ctl *ctl)
{
	PGresult	*res;

	res = ctl_query(ctl, "select to_regclass('vialwatch.schema_migration')"
	    " is not null", 0, NULL);
	if (res == NULL)
		return (NULL);
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		ctl_warnx("no vialwatch schema in this database; "
		    "run \"vialwatchctl migrate\"");
		PQclear(res);
		return (NULL);
	}
	PQclear(res);
	res = ctl_query(ctl, "select version, name, "
	    "to_char(applied_at, 'YYYY-MM-DD HH24:MI:SSOF') "
	    "from vialwatch.schema_migration order by version desc limit 1",
	    0, NULL);
	if (res != NULL && PQntuples(res) == 0) {
		ctl_warnx("no migration applied; run \"vialwatchctl migrate\"");
		PQclear(res);
		res = NULL;
	}
	return (res);
}

/* The results status is made of. */
struct status {
	PGresult		*schema, *fridges, *excursions, *counts;
	PGresult		*daemons;
	struct status_http	 http;
};

/* The database we are connected to, as JSON. */
static json_object *
status_json_database(struct ctl *ctl, const struct status *st)
{
	json_object	*o = json_object_new_object();
	const char	*host = PQhost(ctl->conn), *version;

	version = PQparameterStatus(ctl->conn, "server_version");
	json_object_object_add(o, "name", json_object_new_string(
	    PQdb(ctl->conn)));
	json_object_object_add(o, "host", json_object_new_string(
	    host != NULL ? host : ""));
	json_object_object_add(o, "port", json_object_new_string(
	    PQport(ctl->conn)));
	json_object_object_add(o, "user", json_object_new_string(
	    PQuser(ctl->conn)));
	json_object_object_add(o, "server_version", version == NULL ? NULL :
	    json_object_new_string(version));
	json_object_object_add(o, "schema_version",
	    status_value(st->schema, 0, 0, 'i'));
	json_object_object_add(o, "schema_name",
	    status_value(st->schema, 0, 1, 's'));
	return (o);
}

/* An object of the columns of counts named by keys, from first on. */
static json_object *
status_json_counts(const PGresult *res, int first, const char *const *keys)
{
	json_object	*o = json_object_new_object();
	int		 i;

	for (i = 0; keys[i] != NULL; i++)
		json_object_object_add(o, keys[i],
		    status_value(res, 0, first + i, keys[i][0] == 'o' ? 's' :
		    'i'));
	return (o);
}

/* Print everything as one JSON object. */
static void
status_print_json(struct ctl *ctl, struct status *st)
{
	static const char *const	 outbox[] = { "pending", "failed",
					    "dead", "oldest_unsent_at", NULL };
	static const char *const	 reminders[] = { "pending", "sent",
					    "cancelled", "skipped", NULL };
	static const char *const	 sensors[] = { "total", "unassigned",
					    "readings_last_hour", NULL };
	json_object			*o, *h;

	o = json_object_new_object();
	json_object_object_add(o, "database", status_json_database(ctl, st));
	json_object_object_add(o, "fridges", status_rows(st->fridges,
	    status_fridge_cols, NCOLS(status_fridge_cols)));
	json_object_object_add(o, "excursions", status_rows(st->excursions,
	    status_excursion_cols, NCOLS(status_excursion_cols)));
	json_object_object_add(o, "outbox", status_json_counts(st->counts, 0,
	    outbox));
	json_object_object_add(o, "reminders", status_json_counts(st->counts,
	    4, reminders));
	json_object_object_add(o, "sensors", status_json_counts(st->counts, 8,
	    sensors));
	json_object_object_add(o, "daemons", status_rows(st->daemons,
	    status_daemon_cols, NCOLS(status_daemon_cols)));

	h = json_object_new_object();
	json_object_object_add(h, "url", json_object_new_string(st->http.url));
	json_object_object_add(h, "reachable",
	    json_object_new_boolean(st->http.code != 0));
	json_object_object_add(h, "status_code", st->http.code == 0 ? NULL :
	    json_object_new_int(st->http.code));
	json_object_object_add(h, "health", json_object_get(st->http.health));
	json_object_object_add(h, "error", st->http.error == NULL ? NULL :
	    json_object_new_string(st->http.error));
	json_object_object_add(o, "http", h);

	printf("%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Print the daemons: their connections and what /healthz says. */
static void
status_print_daemons(const struct status *st)
{
	static const char *const	 head[] = { "DAEMON CONNECTION",
					    "CLIENT", "CONNECTED SINCE",
					    "STATE" };
	json_object			*hl = st->http.health;

	if (PQntuples(st->daemons) == 0)
		printf("no vialwatchd connected to this database\n");
	else
		ctl_table(st->daemons, head, 4);
	if (hl == NULL)
		printf("%s: %s\n", st->http.url, st->http.error != NULL ?
		    st->http.error : "no answer");
	else
		printf("%s: %s (HTTP %d): mqtt %s, database %s, spool %s "
		    "(%s bytes not in the database), %s readings pending\n",
		    st->http.url, status_member(hl, "status"), st->http.code,
		    status_member(hl, "mqtt"), status_member(hl, "database"),
		    status_member(hl, "spool"),
		    status_member(hl, "spool_bytes"),
		    status_member(hl, "readings_pending"));
}

/* The fridges whose probes are not calibrated as they should be. */
static void
status_print_calibration(const PGresult *res, int col)
{
	int	i;

	for (i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, col))
			continue;
		printf("UNCALIBRATED: %s / %s: %s\n", PQgetvalue(res, i, 0),
		    PQgetvalue(res, i, 1), PQgetvalue(res, i, col));
	}
}

/* Print everything for a terminal. */
static void
status_print_text(struct ctl *ctl, const struct status *st)
{
	static const char *const	 fhead[] = { "CLINIC", "FRIDGE",
					    "TEMP_C", "LAST READING", "STATE",
					    "EXCURSIONS" };
	static const char *const	 ehead[] = { "EXCURSION", "CLINIC",
					    "FRIDGE", "KIND", "SINCE",
					    "ALARMED", "PEAK_C",
					    "ACKNOWLEDGED" };
	const PGresult			*c = st->counts;
	const char			*host = PQhost(ctl->conn), *version;

	version = PQparameterStatus(ctl->conn, "server_version");
	printf("database \"%s\" on %s port %s as %s (PostgreSQL %s), schema "
	    "version %s (%s)\n\n", PQdb(ctl->conn),
	    host != NULL && *host != '\0' && *host != '/' ? host :
	    "local socket", PQport(ctl->conn), PQuser(ctl->conn),
	    version != NULL ? version : "unknown",
	    PQgetvalue(st->schema, 0, 0), PQgetvalue(st->schema, 0, 1));
	if (PQntuples(st->fridges) == 0)
		printf("no fridges\n");
	else
		ctl_table(st->fridges, fhead, 6);
	status_print_calibration(st->fridges, 18);
	putchar('\n');
	if (PQntuples(st->excursions) == 0)
		printf("no open excursions\n");
	else
		ctl_table(st->excursions, ehead, 8);
	printf("\noutbox: %s pending, %s failed, %s dead",
	    PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 1), PQgetvalue(c, 0, 2));
	if (!PQgetisnull(c, 0, 11))
		printf(" (oldest unsent queued %s)", PQgetvalue(c, 0, 11));
	printf("\nreminders: %s pending, %s sent, %s cancelled, %s skipped\n",
	    PQgetvalue(c, 0, 4), PQgetvalue(c, 0, 5), PQgetvalue(c, 0, 6),
	    PQgetvalue(c, 0, 7));
	printf("sensors: %s (%s unassigned), readings in the last hour: %s\n\n",
	    PQgetvalue(c, 0, 8), PQgetvalue(c, 0, 9), PQgetvalue(c, 0, 10));
	status_print_daemons(st);
}

/* Run the queries; 0 or -1 (reported). */
static int
status_collect(struct ctl *ctl, struct status *st)
{
	if ((st->schema = status_schema(ctl)) == NULL)
		return (-1);
	if ((st->fridges = ctl_query(ctl, status_fridges_sql, 0, NULL)) ==
	    NULL ||
	    (st->excursions = ctl_query(ctl, status_excursions_sql, 0,
	    NULL)) == NULL ||
	    (st->counts = ctl_query(ctl, status_counts_sql, 0, NULL)) == NULL ||
	    (st->daemons = ctl_query(ctl, status_daemons_sql, 0, NULL)) ==
	    NULL)
		return (-1);
	status_http_get(ctl->conf, &st->http);
	return (0);
}

/* vialwatchctl status [--json] */
int
ctl_status(struct ctl *ctl, int argc, char **argv)
{
	struct status	st;
	int		rc = 1;

	ctl->context = "status";
	if (argc != 1)
		return (CTL_USAGE);
	memset(&st, 0, sizeof st);
	if (status_collect(ctl, &st) == 0) {
		if (ctl_json)
			status_print_json(ctl, &st);
		else
			status_print_text(ctl, &st);
		rc = 0;
	}
	PQclear(st.schema);
	PQclear(st.fridges);
	PQclear(st.excursions);
	PQclear(st.counts);
	PQclear(st.daemons);
	json_object_put(st.http.health);
	free(st.http.error);
	return (rc);
}
