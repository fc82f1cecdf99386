/* pgconn.c: one asynchronous PostgreSQL connection on the event loop. */
#ifndef PGCONN_H
#define PGCONN_H

#include <libpq-fe.h>

struct conf;
struct event_base;
struct evbuffer;
struct pgconn;

/*
 * The result of one query: the last PGresult of it (to read, not to
 * clear), or NULL when the connection was lost before it was over.
 */
typedef void	(*pgconn_cb)(const PGresult *, void *);

struct pgconn_events {
	/* Connected: queries sent from here run before any other. */
	void	(*up)(void *);
	/* Lost: the queries queued have had their NULL results. */
	void	(*down)(void *);
	/* A NOTIFY on a channel this connection LISTENs to. */
	void	(*notify)(const char *, const char *, void *);
};

/*
 * A connection on a loop, named for logs and application_name ("outbox");
 * it connects in the background with the [database] conninfo of the
 * configuration in force (*conf, which a reload replaces) at each attempt,
 * and again after a backoff whenever it is lost.
 */
struct pgconn	*pgconn_new(struct event_base *, struct conf **, const char *,
		     const struct pgconn_events *, void *);
/*
 * Connect with another conninfo than [database] conninfo (the function
 * picks it from a configuration), and set a role once connected (NULL:
 * none).  Before pgconn_start.
 */
void		 pgconn_set_login(struct pgconn *,
		     const char *(*)(const struct conf *), const char *);
void		 pgconn_start(struct pgconn *);
/* Connect again now. */
void		 pgconn_reset(struct pgconn *, const char *);
/*
 * A reload: a new conninfo means a new connection, new hooks a new
 * vialwatch.hooks setting (each connection sets it when it connects).
 */
void		 pgconn_reconfigure(struct pgconn *, const struct conf *);
/*
 * Close, and connect again after the backoff: what the connection was
 * for failed.  A query callback may call it.
 */
void		 pgconn_drop(struct pgconn *, const char *);
int		 pgconn_up(const struct pgconn *);
/* Connecting or setting up, rather than waiting to try again. */
int		 pgconn_connecting(const struct pgconn *);
/*
 * Queue one statement with text parameters (NULL is SQL null); they are
 * copied.  cb may be NULL.  -1, and no callback, when not connected.
 */
int		 pgconn_query(struct pgconn *, const char *, int,
		     const char *const *, pgconn_cb, void *);
/*
 * Queue a script: statements without parameters, separated by ';' (the
 * simple query protocol). Its COPY ... FROM STDIN statements take the
 * ncopy buffers in turn; they are not copied, nor drained, and must live
 * until cb. cb gets the last statement's result, or the error that ended
 * the script. -1, and no callback, when not connected.
 */
int		 pgconn_script(struct pgconn *, const char *,
		     struct evbuffer *const *, int, pgconn_cb, void *);
/*
 * A statement of what failed (res is its error result): logged, at most
 * 5 lines a minute per connection.  1 when the error is of the connection
 * or the server's state rather than of the statement, so that the same
 * statement may pass later: no SQLSTATE (the connection broke), connection
 * exception, transaction rollback, insufficient resources, operator
 * intervention, read-only transaction (a standby after a failover).
 */
int		 pgconn_failed(struct pgconn *, const PGresult *, const char *);
void		 pgconn_free(struct pgconn *);

/* Field helpers: 0 / NAN for SQL null. */
long long	 pgconn_int(const PGresult *, int, int);
double		 pgconn_double(const PGresult *, int, int);
const char	*pgconn_text(const PGresult *, int, int);	/* NULL if null */

#endif
