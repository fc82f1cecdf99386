/*
 * PostgreSQL on the loop: libpq in non-blocking mode on PQsocket. Readings
 * are encoded once as COPY text lines, appended to the spool, and queued
 * in chunks; a chunk goes as one batch, one round trip: COPY into
 * temporary tables, then set-based inserts that register new sensors and
 * skip readings already stored. Batches are group commits: one is sent as
 * soon as the previous one is committed (and its first row has waited
 * DB_GATHER_MS), with whatever arrived meanwhile, so a slow database gets
 * big batches and a quiet one low latency.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/queue.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "spool.h"
#include "vialwatchd.h"
#include "xmalloc.h"

/* A connect or a batch that takes longer means the server is gone. */
#define DB_TIMEOUT_S		30
/*
 * With the connection free, the first row waiting is sent after this
 * long, with whatever came meanwhile: a trickle of readings makes a few
 * dozen commits a second, not one per reading.
 */
#define DB_GATHER_MS		20

enum db_op {
	OP_NONE,
	OP_CONNECT,
	OP_SETUP,
	OP_BATCH,
};

/* Rows for one batch: at most batch_max_rows of them. */
struct db_chunk {
	struct evbuffer		*readings;	/* COPY text for reading_in */
	struct evbuffer		*rejected;	/* COPY text for rejected_in */
	size_t			 nreadings;
	size_t			 ntemps;	/* of nreadings, temperatures */
	size_t			 nrejected;
	size_t			 bytes;
	struct spool_pos	 end;		/* spool place after its rows */
	int			 failed;	/* takes no more rows */
	int			 safe;		/* holds rows already stored */
	TAILQ_ENTRY(db_chunk)	 entry;
};
TAILQ_HEAD(db_chunks, db_chunk);

struct db {
	struct vialwatchd	*vw;
	PGconn			*conn;
	enum db_state		 state;
	enum db_op		 op;
	int			 fd;
	struct event		 ev_read;
	struct event		 ev_write;
	struct event		 ev_flush;
	struct event		 ev_burst;
	struct event		 ev_gather;
	struct event		 ev_sync;
	struct event		 ev_retry;
	struct event		 ev_timeout;
	int64_t			 backoff_ms;
	int64_t			 fail_backoff_ms;
	int			 holding;	/* a batch failed: wait */
	int			 burst_armed;
	int			 gather_armed;
	int64_t			 first_ms;	/* when pend stopped being empty */
	int			 draining;

	struct db_chunks	 pend;		/* waiting, oldest first */
	size_t			 npend;		/* rows in pend */
	size_t			 pend_bytes;	/* their COPY text */
	char			*line;		/* the row being encoded */
	size_t			 line_len;
	size_t			 line_cap;
	struct db_chunk		*fly;		/* the batch in flight */
	unsigned char		*copy_data;	/* fly, contiguous */
	size_t			 copy_len;
	size_t			 copy_off;
	int			 copy_index;	/* 0 readings, 1 rejected */
	int			 copy_ending;
	int			 batch_failed;
	int			 batch_stored_twice;	/* unique_violation */
	long long		 batch_stored;
	int64_t			 batch_started_ms;
	struct ratelimit	 rl_error;
};

static const char *db_state_names[] = {
	[DB_DISCONNECTED] = "disconnected",
	[DB_CONNECTING] = "connecting",
	[DB_IDLE] = "connected",
	[DB_BATCH] = "connected",
};

static const char db_setup_sql[] =
    "set application_name = 'vialwatchd';"
    "create temporary table if not exists reading_in ("
    " key text, source text, kind text, ts bigint, temp_c float8,"
    " humidity float8, battery float8, received_at bigint)"
    " on commit delete rows;"
    "create temporary table if not exists rejected_in ("
    " received_at bigint, topic text, payload bytea, reason text, code text)"
    " on commit delete rows;"
    "select vialwatch.reading_partition_create((date_trunc('month', now())"
    " + m * interval '1 month')::date) from generate_series(0, 3) m";

#define DB_TS(x) "(timestamptz 'epoch' + " x " * interval '1 microsecond')"
/*
 * Door and power readings (types d, p, q: the value column holds the door
 * state 1/0, watts, or on/off 1/0): their sensor's kind, and the rows of
 * vialwatch.input_reading (sql/016_inputs.sql). A batch without any costs
 * two scans of the staging table.
 */
#define DB_INPUT_SQL \
    "update vialwatch.sensor s set kind = i.kind" \
    " from (select distinct on (key) key, case kind when 'd' then 'door'" \
    " else 'power' end as kind from pg_temp.reading_in" \
    " where kind in ('d', 'p', 'q') order by key, ts desc) i" \
    " where s.key = i.key and s.kind <> i.kind;" \
    "insert into vialwatch.input_reading (sensor_id, ts, door_open, power_w," \
    " power_on, received_at) select s.id, " DB_TS("r.ts") "," \
    " case when r.kind = 'd' then r.temp_c <> 0 end," \
    " case when r.kind = 'p' then r.temp_c end," \
    " case when r.kind = 'q' then r.temp_c <> 0 end, " \
    DB_TS("r.received_at") " from pg_temp.reading_in r" \
    " join vialwatch.sensor s on s.key = r.key" \
    " where r.kind in ('d', 'p', 'q') on conflict do nothing;"
#define DB_SEEN_STEP "'10 seconds'"
/*
 * One batch: COPY, register new sensors, refresh the others (a busy
 * sensor would have its row rewritten by every batch: last_seen moves in
 * steps of DB_SEEN_STEP, the battery when it changes or hourly), store the
 * rejected messages and the readings.
 */
#define DB_BATCH_SQL \
    "copy pg_temp.reading_in from stdin;" \
    "copy pg_temp.rejected_in from stdin;" \
    "insert into vialwatch.sensor (key, source, first_seen, last_seen)" \
    " select key, min(source), " DB_TS("min(received_at)") ", " \
    DB_TS("max(received_at)") " from pg_temp.reading_in r" \
    " where not exists (select from vialwatch.sensor s where s.key = r.key)" \
    " group by key order by key on conflict (key) do nothing;" \
    "update vialwatch.sensor s set last_seen = b.at" \
    " from (select key, " DB_TS("max(received_at)") " as at" \
    " from pg_temp.reading_in group by key) b" \
    " where s.key = b.key and s.last_seen < b.at - interval " DB_SEEN_STEP ";" \
    "update vialwatch.sensor s set battery = b.battery, battery_at = b.at" \
    " from (select distinct on (key) key, battery, " DB_TS("ts") " as at" \
    " from pg_temp.reading_in where battery is not null" \
    " order by key, ts desc) b" \
    " where s.key = b.key and (s.battery_at is null or" \
    " (s.battery_at < b.at and (s.battery is distinct from b.battery or" \
    " s.battery_at < b.at - interval '1 hour')));" \
    "update vialwatch.sensor s set offline_since = case when a.kind = 'o'" \
    " then coalesce(s.offline_since, a.at) end" \
    " from (select distinct on (key) key, kind, " DB_TS("ts") " as at" \
    " from pg_temp.reading_in where kind in ('o', 'n')" \
    " order by key, ts desc) a where s.key = a.key;" \
    DB_INPUT_SQL \
    "insert into vialwatch.rejected_message (received_at, topic, payload," \
    " reason, code) select " DB_TS("received_at") ", topic, payload, reason," \
    " code" \
    " from pg_temp.rejected_in on conflict do nothing;" \
    "insert into vialwatch.reading (sensor_id, ts, temp_c, humidity, battery," \
    " received_at) select s.id, " DB_TS("r.ts") ", r.temp_c, r.humidity," \
    " r.battery, " DB_TS("r.received_at") " from pg_temp.reading_in r" \
    " join vialwatch.sensor s on s.key = r.key where r.kind = 'r'"
static const char db_batch_sql[] = DB_BATCH_SQL;

/*
 * A plain insert costs the database less than one that looks for each
 * row first; a batch that holds a reading already stored (a redelivery, a
 * replay of the spool) fails with unique_violation and is sent again at
 * once, as this, which skips such rows.
 */
static const char db_batch_safe_sql[] = DB_BATCH_SQL " on conflict do nothing";

static void	db_connect(struct db *);
static void	db_io(struct db *);
static void	db_on_io(evutil_socket_t, short, void *);
static void	db_maybe_flush(struct db *);

const char *
db_state_name(enum db_state s)
{
	return (db_state_names[s]);
}

enum db_state
db_state(struct db *db)
{
	return (db->state);
}

int
db_connected(struct db *db)
{
	return (db->state == DB_IDLE || db->state == DB_BATCH);
}

size_t
db_pending(struct db *db)
{
	return (db->npend + (db->fly != NULL ?
	    db->fly->nreadings + db->fly->nrejected : 0));
}

/* Bytes of COPY text held for the database. */
size_t
db_pending_bytes(struct db *db)
{
	return (db->pend_bytes + (db->fly != NULL ? db->fly->bytes : 0));
}

static struct db_chunk *
db_chunk_new(void)
{
	struct db_chunk	*ch;

	ch = xcalloc(1, sizeof *ch);
	ch->readings = evbuffer_new();
	ch->rejected = evbuffer_new();
	return (ch);
}

static void
db_chunk_free(struct db_chunk *ch)
{
	evbuffer_free(ch->readings);
	evbuffer_free(ch->rejected);
	free(ch);
}

/* The chunk new rows go to: a fresh one when the last is full. */
static struct db_chunk *
db_chunk_tail(struct db *db)
{
	struct db_chunk	*ch = TAILQ_LAST(&db->pend, db_chunks);

	if (ch == NULL || ch->failed || ch->nreadings + ch->nrejected >=
	    (size_t)db->vw->conf->db_batch_max_rows) {
		ch = db_chunk_new();
		TAILQ_INSERT_TAIL(&db->pend, ch, entry);
	}
	return (ch);
}

/* Put the batch in flight back at the front of the queue. */
static void
db_requeue(struct db *db)
{
	if (db->fly == NULL)
		return;
	TAILQ_INSERT_HEAD(&db->pend, db->fly, entry);
	db->npend += db->fly->nreadings + db->fly->nrejected;
	db->pend_bytes += db->fly->bytes;
	db->fly = NULL;
	db->first_ms = 0;	/* these rows have waited enough */
}

/* Past max_pending bytes, stop reading MQTT; resume under half. */
static void
db_pressure(struct db *db)
{
	size_t	n = db_pending_bytes(db);
	size_t	max = (size_t)db->vw->conf->db_max_pending;

	if (n >= max)
		mqtt_pause(db->vw->mqtt, 1);
	else if (n < max / 2)
		mqtt_pause(db->vw->mqtt, 0);
}

/* Drop the connection and try again after a backoff. */
static void
db_lost(struct db *db, const char *why)
{
	struct timeval	tv;
	int64_t		delay;

	evtimer_del(&db->ev_timeout);
	if (db->fd != -1) {
		event_del(&db->ev_read);
		event_del(&db->ev_write);
	}
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
	db->fd = -1;
	db->op = OP_NONE;
	db_requeue(db);
	free(db->copy_data);
	db->copy_data = NULL;
	db->state = DB_DISCONNECTED;
	delay = vw_backoff(&db->backoff_ms, &tv);
	log_warnx("database: %s; retrying in %lld ms", why, (long long)delay);
	evtimer_add(&db->ev_retry, &tv);
}

/* Arm (or with 0, clear) the deadline of a connect or a batch. */
static void
db_deadline(struct db *db, int secs)
{
	struct timeval	tv = { secs, 0 };

	if (secs == 0)
		evtimer_del(&db->ev_timeout);
	else
		evtimer_add(&db->ev_timeout, &tv);
}

static void
db_on_timeout(evutil_socket_t fd, short events, void *arg)
{
	struct db	*db = arg;

	db_lost(db, db->op == OP_BATCH ? "no answer to a batch in 30 s" :
	    "no answer while connecting in 30 s");
}

/* A batch failed: wait with backoff before the next try. */
static void
db_hold(struct db *db)
{
	struct timeval	tv;

	vw_backoff(&db->fail_backoff_ms, &tv);
	db->holding = 1;
	evtimer_add(&db->ev_flush, &tv);
}

/* The first line of libpq's last error. */
static const char *
db_error(struct db *db, char *buf, size_t len)
{
	char	*nl;

	snprintf(buf, len, "%s", db->conn != NULL ?
	    PQerrorMessage(db->conn) : "no connection");
	if ((nl = strchr(buf, '\n')) != NULL)
		*nl = '\0';
	return (buf);
}

/* Watch the socket for reading and, when asked, writing. */
static void
db_watch(struct db *db, int want_write)
{
	if (PQsocket(db->conn) != db->fd) {
		if (db->fd != -1) {
			event_del(&db->ev_read);
			event_del(&db->ev_write);
		}
		db->fd = PQsocket(db->conn);
		event_assign(&db->ev_read, db->vw->base, db->fd,
		    EV_READ | EV_PERSIST, db_on_io, db);
		event_assign(&db->ev_write, db->vw->base, db->fd, EV_WRITE,
		    db_on_io, db);
	}
	if (!event_pending(&db->ev_read, EV_READ, NULL))
		event_add(&db->ev_read, NULL);
	if (want_write)
		event_add(&db->ev_write, NULL);
	else
		event_del(&db->ev_write);
}

/* Connection set up: make the staging tables. */
static void
db_connected_cb(struct db *db)
{
	db->state = DB_CONNECTING;
	db->op = OP_SETUP;
	if (PQsetnonblocking(db->conn, 1) != 0 ||
	    !PQsendQuery(db->conn, db_setup_sql)) {
		db_lost(db, "cannot send the set-up query");
		return;
	}
	db_watch(db, PQflush(db->conn) == 1);
}

/* Drive PQconnectPoll. */
static void
db_connect_step(struct db *db)
{
	char	buf[256];

	switch (PQconnectPoll(db->conn)) {
	case PGRES_POLLING_READING:
		db_watch(db, 0);
		event_del(&db->ev_read);
		event_add(&db->ev_read, NULL);
		break;
	case PGRES_POLLING_WRITING:
		db_watch(db, 1);
		event_del(&db->ev_read);
		break;
	case PGRES_POLLING_OK:
		db_connected_cb(db);
		break;
	default:
		db_lost(db, db_error(db, buf, sizeof buf));
		break;
	}
}

/* Start connecting in the background. */
static void
db_connect(struct db *db)
{
	char	buf[256];

	db->state = DB_CONNECTING;
	db->op = OP_CONNECT;
	db->fd = -1;
	db_deadline(db, DB_TIMEOUT_S);
	db->conn = PQconnectStart(db->vw->conf->db_conninfo);
	if (db->conn == NULL)
		fatalx("PQconnectStart: out of memory");
	if (PQstatus(db->conn) == CONNECTION_BAD) {
		db_lost(db, db_error(db, buf, sizeof buf));
		return;
	}
	db_connect_step(db);
}

/* Send as much COPY data as the socket takes. */
static int
db_copy_feed(struct db *db)
{
	size_t	chunk;
	int	rc;

	while (db->copy_off < db->copy_len) {
		chunk = db->copy_len - db->copy_off;
		if (chunk > 65536)
			chunk = 65536;
		rc = PQputCopyData(db->conn,
		    (char *)db->copy_data + db->copy_off, chunk);
		if (rc == -1)
			return (-1);
		if (rc == 0)
			return (1);	/* wait until writable */
		db->copy_off += chunk;
	}
	if ((rc = PQputCopyEnd(db->conn, NULL)) == -1)
		return (-1);
	if (rc == 0)
		return (1);
	free(db->copy_data);
	db->copy_data = NULL;
	return (0);
}

/* The server wants COPY data: the readings first, then rejected. */
static int
db_copy_start(struct db *db)
{
	struct evbuffer	*b;
	size_t		 len;

	b = db->copy_index++ == 0 ? db->fly->readings : db->fly->rejected;
	len = evbuffer_get_length(b);
	free(db->copy_data);
	db->copy_data = xmalloc(len + 1);
	evbuffer_copyout(b, db->copy_data, len);
	db->copy_len = len;
	db->copy_off = 0;
	return (db_copy_feed(db));
}

/* A batch ended: account for it or put it back. */
static void
db_batch_done(struct db *db)
{
	double	secs = (vw_mono_ms() - db->batch_started_ms) / 1000.0;
	size_t	rows = db->fly->nreadings + db->fly->nrejected;

	db->state = DB_IDLE;
	db->op = OP_NONE;
	if (db->batch_failed && db->batch_stored_twice && !db->fly->safe) {
		log_debug("database: a batch holds readings already stored; "
		    "sending it again, skipping those");
		db->fly->failed = db->fly->safe = 1;
		db_requeue(db);
		return;
	}
	if (db->batch_failed) {
		metrics.batch_errors++;
		db->fly->failed = 1;
		db_requeue(db);
		db_hold(db);
		return;
	}
	db->fail_backoff_ms = 0;
	spool_commit(db->vw->spool, &db->fly->end);
	metrics_batch(rows, secs);
	metrics.readings_stored += db->batch_stored;
	metrics.readings_duplicate += db->fly->ntemps - db->batch_stored;
	db_chunk_free(db->fly);
	db->fly = NULL;
	log_debug("database: batch of %zu rows committed in %.3f s", rows,
	    secs);
	db_pressure(db);
}

/* One result of the query in flight. */
static int
db_result(struct db *db, PGresult *res)
{
	const char	*msg;
	int		 rc = 0;

	switch (PQresultStatus(res)) {
	case PGRES_COPY_IN:
		rc = db_copy_start(db);
		break;
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		if (db->op == OP_BATCH &&
		    strncmp(PQcmdStatus(res), "INSERT", 6) == 0)
			db->batch_stored = strtoll(PQcmdTuples(res), NULL, 10);
		break;
	default:
		msg = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		db->batch_failed = 1;
		if (db->op == OP_BATCH && !db->fly->safe && msg != NULL &&
		    strcmp(msg, "23505") == 0) {
			db->batch_stored_twice = 1;	/* not an error */
			break;
		}
		msg = PQresultErrorMessage(res);
		if (log_ratelimit(&db->rl_error, 5, vw_mono_ms()))
			log_warnx("database: %s failed: %.*s", db->op ==
			    OP_SETUP ? "set-up" : "batch",
			    (int)strcspn(msg, "\n"), msg);
		break;
	}
	PQclear(res);
	return (rc);
}

/* The query in flight finished. */
static void
db_query_done(struct db *db)
{
	if (db->op != OP_NONE)
		db_deadline(db, 0);
	if (db->op == OP_SETUP) {
		if (db->batch_failed) {
			db->batch_failed = 0;
			db_lost(db, "set-up failed (is the schema migrated?)");
			return;
		}
		db->state = DB_IDLE;
		db->op = OP_NONE;
		db->backoff_ms = 0;
		metrics.db_connects++;
		log_info("database: connected");
	} else if (db->op == OP_BATCH)
		db_batch_done(db);
	db_maybe_flush(db);
}

/* Socket events: read results, send what is queued. */
static void
db_io(struct db *db)
{
	PGresult	*res;
	char		 buf[256];
	int		 want_write = 0, rc;

	if (db->op == OP_CONNECT) {
		db_connect_step(db);
		return;
	}
	if (db->copy_data != NULL) {
		if ((rc = db_copy_feed(db)) == -1) {
			db_lost(db, db_error(db, buf, sizeof buf));
			return;
		}
		want_write = rc;
	}
	if (!PQconsumeInput(db->conn)) {
		db_lost(db, db_error(db, buf, sizeof buf));
		return;
	}
	while (!want_write && !PQisBusy(db->conn)) {
		if ((res = PQgetResult(db->conn)) == NULL) {
			db_query_done(db);
			return;
		}
		if ((rc = db_result(db, res)) == -1) {
			db_lost(db, db_error(db, buf, sizeof buf));
			return;
		}
		want_write = rc;
	}
	if ((rc = PQflush(db->conn)) == -1) {
		db_lost(db, db_error(db, buf, sizeof buf));
		return;
	}
	db_watch(db, want_write || rc == 1);
}

static void
db_on_io(evutil_socket_t fd, short events, void *arg)
{
	db_io(arg);
}

/* Send the oldest chunk of waiting rows as one batch. */
static void
db_flush(struct db *db)
{
	db->fly = TAILQ_FIRST(&db->pend);
	TAILQ_REMOVE(&db->pend, db->fly, entry);
	db->npend -= db->fly->nreadings + db->fly->nrejected;
	db->pend_bytes -= db->fly->bytes;
	db->first_ms = vw_mono_ms();
	db->batch_failed = db->batch_stored_twice = 0;
	db->batch_stored = 0;
	db->copy_index = 0;
	db->batch_started_ms = vw_mono_ms();
	db->state = DB_BATCH;
	db->op = OP_BATCH;
	db_deadline(db, DB_TIMEOUT_S);
	if (!PQsendQuery(db->conn, db->fly->safe ? db_batch_safe_sql :
	    db_batch_sql)) {
		db_lost(db, "cannot send a batch");
		return;
	}
	db_watch(db, PQflush(db->conn) != 0);
}

/* Send the next batch if the connection is free: a group commit. */
static void
db_maybe_flush(struct db *db)
{
	struct timeval	tv;
	int64_t		wait;

	if (db->npend == 0) {
		if (db->draining && db->fly == NULL)
			vw_drained(db->vw);
		return;
	}
	if (db->holding || db->state != DB_IDLE)
		return;		/* ev_flush or the batch in flight call again */
	wait = DB_GATHER_MS - (vw_mono_ms() - db->first_ms);
	if (wait > 0 && !db->draining &&
	    db->npend < (size_t)db->vw->conf->db_batch_max_rows) {
		if (!db->gather_armed) {
			db->gather_armed = 1;
			tv.tv_sec = 0;
			tv.tv_usec = wait * 1000;
			evtimer_add(&db->ev_gather, &tv);
		}
		return;
	}
	db_flush(db);
}

static void
db_on_gather(evutil_socket_t fd, short events, void *arg)
{
	struct db	*db = arg;

	db->gather_armed = 0;
	db_maybe_flush(db);
}

/* The wait after a failed batch is over. */
static void
db_on_flush(evutil_socket_t fd, short events, void *arg)
{
	struct db	*db = arg;

	db->holding = 0;
	db_maybe_flush(db);
}

/*
 * The messages of one read from the broker are queued: write them to the
 * spool in one go, then to the database.
 */
static void
db_on_burst(evutil_socket_t fd, short events, void *arg)
{
	struct db	*db = arg;

	db->burst_armed = 0;
	spool_write(db->vw->spool);
	db_maybe_flush(db);
}

/* Every batch_max_delay: what the spool was given is made durable. */
static void
db_on_sync(evutil_socket_t fd, short events, void *arg)
{
	struct db	*db = arg;

	spool_sync(db->vw->spool);
}

static void
db_on_retry(evutil_socket_t fd, short events, void *arg)
{
	db_connect(arg);
}

/* Room for n more bytes in the row being encoded. */
static char *
db_line_room(struct db *db, size_t n)
{
	if (db->line_len + n > db->line_cap) {
		db->line_cap = (db->line_len + n) * 2;
		db->line = xreallocarray(db->line, db->line_cap, 1);
	}
	return (db->line + db->line_len);
}

static void
db_line_add(struct db *db, const void *p, size_t n)
{
	memcpy(db_line_room(db, n), p, n);
	db->line_len += n;
}

/* Append s as COPY text: escaped, invalid UTF-8 replaced by U+FFFD. */
static void
db_copy_text(struct db *db, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	const unsigned char	*end = p + strlen(s), *run = p;
	const char		*esc;
	size_t			 n;

	while (p < end) {
		switch (*p) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			if (*p >= 0x20 && *p < 0x80) {
				p++;
				continue;
			}
			if ((n = payload_utf8_char(p, end - p)) != 0) {
				p += n;
				continue;
			}
			esc = "\xef\xbf\xbd";
			break;
		}
		db_line_add(db, run, p - run);
		db_line_add(db, esc, strlen(esc));
		run = ++p;
	}
	db_line_add(db, run, p - run);
}

/* Append a tab and a double, or \N. */
static void
db_copy_double(struct db *db, double v)
{
	int	n;

	if (isnan(v)) {
		db_line_add(db, "\t\\N", 3);
		return;
	}
	n = snprintf(db_line_room(db, 32), 32, "\t%.10g", v);
	db->line_len += n;
}

/* Append an integer. */
static void
db_copy_int(struct db *db, int64_t v)
{
	char	buf[24], *p = buf + sizeof buf;
	int	neg = v < 0;

	do {
		*--p = '0' + (neg ? -(v % 10) : v % 10);
		v /= 10;
	} while (v != 0);
	if (neg)
		*--p = '-';
	db_line_add(db, p, buf + sizeof buf - p);
}

/*
 * Queue one encoded row of a type: r b o n (a reading, battery, offline,
 * online), d p q (a door state, watts, power on/off) or j (a refused
 * message). A new row is appended to the spool;
 * a replayed one comes with its place there.
 */
static void
db_queue(struct db *db, char type, const char *line, size_t len,
    const struct spool_pos *pos)
{
	struct db_chunk	*ch = db_chunk_tail(db);

	if (pos == NULL)
		spool_append(db->vw->spool, type, line, len, &ch->end);
	else
		ch->end = *pos;
	if (type == 'j') {
		evbuffer_add(ch->rejected, line, len);
		ch->nrejected++;
	} else {
		evbuffer_add(ch->readings, line, len);
		ch->nreadings++;
		if (type == 'r')
			ch->ntemps++;
	}
	ch->bytes += len;
	db->pend_bytes += len;
	if (db->npend++ == 0)
		db->first_ms = vw_mono_ms();
	db_pressure(db);
	if (!db->burst_armed) {
		db->burst_armed = 1;
		event_active(&db->ev_burst, EV_TIMEOUT, 1);
	}
}

/* A record read back from the spool at start. */
void
db_spool_replay(void *arg, char type, const char *line, size_t len,
    const struct spool_pos *pos)
{
	struct db	*db = arg;

	if (type == '\0' || strchr("rbonjdpq", type) == NULL || len == 0 ||
	    line[len - 1] != '\n') {
		metrics.spool_corrupt++;
		log_warnx("spool: a record of unknown type 0x%02x; skipped",
		    (unsigned char)type);
		return;
	}
	db_queue(db, type, line, len, pos);
}

/* Queue a reading; the batch registers its sensor if new. */
void
db_push_reading(struct db *db, const char *source, const struct reading *r,
    int64_t received_us)
{
	static const char	 kinds[] = { 'r', 'b', 'o', 'n', 'd', 'p' };
	char			 kind = kinds[r->kind];
	double			 v = r->kind == READING_TEMP ? r->temp_c : NAN;

	if (r->kind == READING_DOOR)
		v = r->door_open;
	else if (r->kind == READING_POWER && r->power_on >= 0) {
		kind = 'q';
		v = r->power_on;
	} else if (r->kind == READING_POWER)
		v = r->power_w;
	db->line_len = 0;
	db_copy_text(db, r->key);
	db_line_add(db, "\t", 1);
	db_copy_text(db, source);
	db_line_add(db, "\t", 1);
	db_line_add(db, &kind, 1);
	db_line_add(db, "\t", 1);
	db_copy_int(db, r->ts_us);
	db_copy_double(db, v);
	db_copy_double(db, r->humidity);
	db_copy_double(db, r->battery);
	db_line_add(db, "\t", 1);
	db_copy_int(db, received_us);
	db_line_add(db, "\n", 1);
	db_queue(db, kind, db->line, db->line_len, NULL);
}

/* Queue a refused message: its bytes are kept as they came. */
void
db_push_rejected(struct db *db, const char *topic, const void *payload,
    size_t len, const char *reason, const char *code, int64_t received_us)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = payload;
	char			*out;
	size_t			 i;

	if (len > PAYLOAD_MAX_BYTES)
		len = PAYLOAD_MAX_BYTES;	/* enough to see what it was */
	db->line_len = 0;
	db_copy_int(db, received_us);
	db_line_add(db, "\t", 1);
	db_copy_text(db, topic);
	db_line_add(db, "\t\\\\x", 4);
	out = db_line_room(db, len * 2);
	for (i = 0; i < len; i++) {
		*out++ = hex[p[i] >> 4];
		*out++ = hex[p[i] & 15];
	}
	db->line_len += len * 2;
	db_line_add(db, "\t", 1);
	db_copy_text(db, reason);
	db_line_add(db, "\t", 1);
	db_copy_text(db, code);
	db_line_add(db, "\n", 1);
	db_queue(db, 'j', db->line, db->line_len, NULL);
}

struct db *
db_new(struct vialwatchd *vw)
{
	struct db	*db;

	db = xcalloc(1, sizeof *db);
	db->vw = vw;
	db->fd = -1;
	TAILQ_INIT(&db->pend);
	evtimer_assign(&db->ev_flush, vw->base, db_on_flush, db);
	evtimer_assign(&db->ev_burst, vw->base, db_on_burst, db);
	evtimer_assign(&db->ev_gather, vw->base, db_on_gather, db);
	event_assign(&db->ev_sync, vw->base, -1, EV_PERSIST, db_on_sync, db);
	evtimer_assign(&db->ev_retry, vw->base, db_on_retry, db);
	evtimer_assign(&db->ev_timeout, vw->base, db_on_timeout, db);
	return (db);
}

/* Sync the spool every batch_max_delay. */
static void
db_sync_every(struct db *db)
{
	int64_t		ms = db->vw->conf->db_batch_max_delay_ms;
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_add(&db->ev_sync, &tv);
}

/* Connect in the background. */
void
db_start(struct db *db)
{
	struct timeval	tv = { 0, 0 };

	db_sync_every(db);
	evtimer_add(&db->ev_retry, &tv);
}

/* A reload: a new conninfo means a new connection. */
void
db_reconfigure(struct db *db, const struct conf *old)
{
	db_sync_every(db);
	if (strcmp(old->db_conninfo, db->vw->conf->db_conninfo) == 0)
		return;
	log_info("database: reconnecting with the new conninfo");
	db_lost(db, "configuration changed");
	db->backoff_ms = 0;
	event_del(&db->ev_retry);
	db_start(db);
}

/* Stopping: flush what is queued; vw_drained() is called when done. */
void
db_drain(struct db *db)
{
	db->draining = 1;
	db_maybe_flush(db);
}

void
db_free(struct db *db)
{
	struct db_chunk	*ch;

	if (db == NULL)
		return;
	if (db->fd != -1) {
		event_del(&db->ev_read);
		event_del(&db->ev_write);
	}
	event_del(&db->ev_flush);
	event_del(&db->ev_burst);
	event_del(&db->ev_gather);
	event_del(&db->ev_sync);
	event_del(&db->ev_retry);
	event_del(&db->ev_timeout);
	if (db->conn != NULL)
		PQfinish(db->conn);
	db_requeue(db);
	while ((ch = TAILQ_FIRST(&db->pend)) != NULL) {
		TAILQ_REMOVE(&db->pend, ch, entry);
		db_chunk_free(ch);
	}
	free(db->copy_data);
	free(db->line);
	free(db);
}
