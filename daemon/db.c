/*
 * The readings' way to PostgreSQL, on a connection of pgconn.c. Readings
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

#include "clock.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "pgconn.h"
#include "spool.h"
#include "xmalloc.h"

/*
 * With the connection free, the first row waiting is sent after this
 * long, with whatever came meanwhile: a trickle of readings makes a few
 * dozen commits a second, not one per reading.
 */
#define DB_GATHER_MS		20
/* While the spool has no room, it is tried again this often. */
#define DB_ROOM_RETRY_MS	1000
/*
 * A reading's COPY row: key, source, kind, ts, temp_c, humidity, battery,
 * received_at, temp_raw_c (db_push_reading, db_copy_reading); a row
 * spooled by an older daemon lacks temp_raw_c.
 */
#define DB_READING_FIELDS	9

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
	struct event_base	*base;
	struct conf		**conf;
	struct spool		*spool;
	struct pgconn		*pc;
	db_pause_cb		 pause;
	void			*pause_arg;
	const char		*paused;	/* why, or NULL */
	void			(*drained)(void *);
	void			*drained_arg;
	enum db_state		 state;
	struct event		 ev_flush;
	struct event		 ev_burst;
	struct event		 ev_gather;
	struct event		 ev_sync;
	struct event		 ev_room;	/* the spool's disk was full */
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
	int64_t			 batch_started_ms;
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
    " humidity float8, battery float8, received_at bigint, temp_raw_c float8)"
    " on commit delete rows;"
    "create temporary table if not exists rejected_in ("
    " received_at bigint, topic text, payload bytea, reason text, code text)"
    " on commit delete rows;"
    "select vialwatch.reading_partition_create((date_trunc('month', now())"
    " + m * interval '1 month')::date) from generate_series(0, 3) m";

/* The columns of reading_in. */
#define DB_READING_COLUMNS	9
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
    " received_at, temp_raw_c) select s.id, " DB_TS("r.ts") "," \
    " coalesce(r.temp_c, r.temp_raw_c + vialwatch.sensor_offset_at(s.id, " \
    DB_TS("r.ts") ")), r.humidity, r.battery, " DB_TS("r.received_at") "," \
    " r.temp_raw_c from pg_temp.reading_in r" \
    " join vialwatch.sensor s on s.key = r.key where r.kind = 'r'"
static const char db_batch_sql[] = DB_BATCH_SQL;

/*
 * A plain insert costs the database less than one that looks for each
 * row first; a batch that holds a reading already stored (a redelivery, a
 * replay of the spool) fails with unique_violation and is sent again at
 * once, as this, which skips such rows.
 */
static const char db_batch_safe_sql[] = DB_BATCH_SQL " on conflict do nothing";

static void	db_maybe_flush(struct db *);

const char *
db_state_name(enum db_state s)
{
	return (db_state_names[s]);
}

enum db_state
db_state(struct db *db)
{
	if (db->state == DB_DISCONNECTED && pgconn_connecting(db->pc))
		return (DB_CONNECTING);
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
	    (size_t)(*db->conf)->db_batch_max_rows) {
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

/*
 * Stop reading MQTT while the spool has no room on disk (and look again
 * each second), or past max_pending bytes; resume under half of it.
 */
static void
db_pressure(struct db *db)
{
	static const char	 full[] = "the spool cannot be written; not "
				    "reading from the broker until it can";
	static const char	 behind[] = "too many readings wait for the "
				    "database; not reading from the broker "
				    "until they are stored";
	struct timeval		 tv = { DB_ROOM_RETRY_MS / 1000,
				    DB_ROOM_RETRY_MS % 1000 * 1000 };
	size_t			 n = db_pending_bytes(db);
	size_t			 max = (size_t)(*db->conf)->db_max_pending;
	const char		*why = db->paused;

	if (db->spool != NULL && !spool_room(db->spool)) {
		why = full;
		if (!evtimer_pending(&db->ev_room, NULL))
			evtimer_add(&db->ev_room, &tv);
	} else if (n >= max)
		why = behind;
	else if (n < max / 2 || why == full)
		why = NULL;
	if (why == db->paused)
		return;
	db->paused = why;
	db->pause(why, db->pause_arg);
}

/* A batch failed: wait with backoff before the next try. */
static void
db_hold(struct db *db)
{
	struct timeval	tv;

	clock_backoff(&db->fail_backoff_ms, &tv);
	db->holding = 1;
	evtimer_add(&db->ev_flush, &tv);
}

/* The staging tables are made: batches may go. */
static void
db_on_setup(const PGresult *res, void *arg)
{
	struct db	*db = arg;

	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_failed(db->pc, res, "set-up");
		pgconn_drop(db->pc, "set-up failed (is the schema migrated?)");
		return;
	}
	db->state = DB_IDLE;
	metrics.db_connects++;
	db_maybe_flush(db);
}

/* Connected: make the staging tables first. */
static void
db_up(void *arg)
{
	struct db	*db = arg;

	pgconn_script(db->pc, db_setup_sql, NULL, 0, db_on_setup, db);
}

/* Lost: the batch in flight, if any, was put back by its callback. */
static void
db_down(void *arg)
{
	struct db	*db = arg;

	db->state = DB_DISCONNECTED;
}

/* A batch ended: account for it or put it back. */
static void
db_on_batch(const PGresult *res, void *arg)
{
	struct db	*db = arg;
	double		 secs = (clock_mono_ms() - db->batch_started_ms) / 1000.0;
	size_t		 rows = db->fly->nreadings + db->fly->nrejected;
	const char	*code;
	long long	 stored;

	db->state = res == NULL ? DB_DISCONNECTED : DB_IDLE;
	if (res == NULL) {
		db_requeue(db);		/* the connection is gone */
		return;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (!db->fly->safe && code != NULL &&
		    strcmp(code, "23505") == 0) {
			log_debug("database: a batch holds readings already "
			    "stored; sending it again, skipping those");
			db->fly->failed = db->fly->safe = 1;
			db_requeue(db);
		} else {
			pgconn_failed(db->pc, res, "batch");
			metrics.batch_errors++;
			db->fly->failed = 1;
			db_requeue(db);
			db_hold(db);
		}
		db_maybe_flush(db);
		return;
	}
	stored = strtoll(PQcmdTuples((PGresult *)res), NULL, 10);
	db->fail_backoff_ms = 0;
	spool_commit(db->spool, &db->fly->end);
	metrics_batch(rows, secs);
	metrics.readings_stored += stored;
	metrics.readings_duplicate += db->fly->ntemps - stored;
	db_chunk_free(db->fly);
	db->fly = NULL;
	log_debug("database: batch of %zu rows committed in %.3f s", rows,
	    secs);
	db_pressure(db);
	db_maybe_flush(db);
}

/* Send the oldest chunk of waiting rows as one batch. */
static void
db_flush(struct db *db)
{
	struct evbuffer	*copy[2];

	db->fly = TAILQ_FIRST(&db->pend);
	TAILQ_REMOVE(&db->pend, db->fly, entry);
	db->npend -= db->fly->nreadings + db->fly->nrejected;
	db->pend_bytes -= db->fly->bytes;
	db->first_ms = clock_mono_ms();
	db->batch_started_ms = clock_mono_ms();
	db->state = DB_BATCH;
	copy[0] = db->fly->readings;
	copy[1] = db->fly->rejected;
	if (pgconn_script(db->pc, db->fly->safe ? db_batch_safe_sql :
	    db_batch_sql, copy, 2, db_on_batch, db) == -1) {
		db->state = DB_DISCONNECTED;
		db_requeue(db);
	}
}

/* Send the next batch if the connection is free: a group commit. */
static void
db_maybe_flush(struct db *db)
{
	struct timeval	tv;
	int64_t		wait;

	if (db->npend == 0) {
		if (db->draining && db->fly == NULL && db->drained != NULL)
			db->drained(db->drained_arg);
		return;
	}
	if (db->holding || db->state != DB_IDLE)
		return;		/* ev_flush or the batch in flight call again */
	wait = DB_GATHER_MS - (clock_mono_ms() - db->first_ms);
	if (wait > 0 && !db->draining &&
	    db->npend < (size_t)(*db->conf)->db_batch_max_rows) {
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
	spool_write(db->spool);
	if (!spool_room(db->spool))
		db_pressure(db);
	db_maybe_flush(db);
}

/* Every batch_max_delay: what the spool was given is made durable. */
static void
db_on_sync(evutil_socket_t fd, short events, void *arg)
{
	struct db	*db = arg;

	spool_sync(db->spool);
}

/* The spool had no room: try again, and read again if it has. */
static void
db_on_room(evutil_socket_t fd, short events, void *arg)
{
	struct db	*db = arg;

	spool_retry(db->spool);
	db_pressure(db);
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
		spool_append(db->spool, type, line, len, &ch->end);
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
		db->first_ms = clock_mono_ms();
	db_pressure(db);
	if (!db->burst_armed) {
		db->burst_armed = 1;
		event_active(&db->ev_burst, EV_TIMEOUT, 1);
	}
}

/*
 * A reading spooled before readings carried temp_raw_c has one column
 * less: it is given a null one (its temp_c is what the probe sent). 0 and
 * the row in db->line, or -1 for a row of today's shape.
 */
static int
db_spool_old_row(struct db *db, const char *line, size_t len)
{
	size_t	i, tabs = 0;

	for (i = 0; i < len; i++)
		tabs += line[i] == '\t';
	if (tabs != DB_READING_COLUMNS - 2)
		return (-1);
	db->line_len = 0;
	db_line_add(db, line, len - 1);
	db_line_add(db, "\t\\N\n", 4);
	return (0);
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
	if (type != 'j' && memchr(line, '\t', len) != NULL &&
	    db_spool_old_row(db, line, len) == 0) {
		db_queue(db, type, db->line, db->line_len, pos);
		return;
	}
	db_queue(db, type, line, len, pos);
}

/* A field of a COPY text row as a double: NAN for \\N. */
static double
db_field_double(const char *f)
{
	return (strncmp(f, "\\N", 2) == 0 ? NAN : strtod(f, NULL));
}

/*
 * The reading a spooled row of type r, b, d, p or q holds, for the rules:
 * its fields as db_push_reading writes them. 0, or -1 for any other row.
 */
int
db_copy_reading(char type, const char *line, size_t len, struct reading *r,
    int64_t *received_us)
{
	const char	*f[DB_READING_FIELDS], *p = line, *end = line + len;
	size_t		 n = 0, k = 0;
	double		 v;

	if (type == '\0' || strchr("rbdpq", type) == NULL)
		return (-1);
	for (f[n++] = p; p < end && n < DB_READING_FIELDS; p++) {
		if (*p == '\t')
			f[n++] = p + 1;
	}
	if (n != DB_READING_FIELDS && n != DB_READING_FIELDS - 1)
		return (-1);
	for (p = f[0]; *p != '\t' && k < sizeof r->key - 1; p++) {
		if (*p == '\\' && p[1] != '\t') {
			p++;
			r->key[k++] = *p == 't' ? '\t' : *p == 'n' ? '\n' :
			    *p == 'r' ? '\r' : *p;
		} else
			r->key[k++] = *p;
	}
	r->key[k] = '\0';
	r->ts_us = strtoll(f[3], NULL, 10);
	v = db_field_double(f[4]);
	r->temp_c = type == 'r' ? v : NAN;
	r->door_open = type == 'd' && v != 0;
	r->power_w = type == 'p' ? v : NAN;
	r->power_on = type == 'q' ? v != 0 : -1;
	r->kind = type == 'r' ? READING_TEMP : type == 'b' ? READING_BATTERY :
	    type == 'd' ? READING_DOOR : READING_POWER;
	r->humidity = db_field_double(f[5]);
	r->battery = db_field_double(f[6]);
	*received_us = strtoll(f[7], NULL, 10);
	r->temp_raw_c = n == DB_READING_FIELDS ? db_field_double(f[8]) :
	    r->temp_c;
	return (0);
}

/*
 * Queue a reading; the batch registers its sensor if new. Its fields are
 * read back by db_copy_reading (DB_READING_FIELDS): keep the two in step.
 */
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
	db_copy_double(db, r->kind == READING_TEMP ? r->temp_raw_c : NAN);
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
db_new(struct event_base *base, struct conf **conf, db_pause_cb pause,
    void *arg)
{
	static const struct pgconn_events	 events = { db_up, db_down, NULL };
	struct db				*db;

	db = xcalloc(1, sizeof *db);
	db->base = base;
	db->conf = conf;
	db->pause = pause;
	db->pause_arg = arg;
	TAILQ_INIT(&db->pend);
	db->pc = pgconn_new(base, conf, "ingest", &events, db);
	evtimer_assign(&db->ev_flush, base, db_on_flush, db);
	evtimer_assign(&db->ev_burst, base, db_on_burst, db);
	evtimer_assign(&db->ev_gather, base, db_on_gather, db);
	event_assign(&db->ev_sync, base, -1, EV_PERSIST, db_on_sync, db);
	evtimer_assign(&db->ev_room, base, db_on_room, db);
	return (db);
}

/* The spool, opened once db can take its records back. */
void
db_set_spool(struct db *db, struct spool *spool)
{
	db->spool = spool;
	db_pressure(db);
}

/* Sync the spool every batch_max_delay. */
static void
db_sync_every(struct db *db)
{
	int64_t		ms = (*db->conf)->db_batch_max_delay_ms;
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_add(&db->ev_sync, &tv);
}

/* Connect in the background. */
void
db_start(struct db *db)
{
	db_sync_every(db);
	pgconn_start(db->pc);
}

/* A reload: a new conninfo means a new connection. */
void
db_reconfigure(struct db *db, const struct conf *old)
{
	db_sync_every(db);
	pgconn_reconfigure(db->pc, old);
}

/* Stopping: flush what is queued; drained(arg) is called when done. */
void
db_drain(struct db *db, void (*drained)(void *), void *arg)
{
	db->drained = drained;
	db->drained_arg = arg;
	db->draining = 1;
	db_maybe_flush(db);
}

void
db_free(struct db *db)
{
	struct db_chunk	*ch;

	if (db == NULL)
		return;
	event_del(&db->ev_flush);
	event_del(&db->ev_burst);
	event_del(&db->ev_gather);
	event_del(&db->ev_sync);
	event_del(&db->ev_room);
	pgconn_free(db->pc);
	db_requeue(db);
	while ((ch = TAILQ_FIRST(&db->pend)) != NULL) {
		TAILQ_REMOVE(&db->pend, ch, entry);
		db_chunk_free(ch);
	}
	free(db->line);
	free(db);
}
