/* http.c: health, metrics and (later) link pages on libevent's evhttp. */
#ifndef HTTP_H
#define HTTP_H

struct conf;
struct evhttp_connection;
struct evhttp_request;
struct http;
struct pgconn;
struct vialwatchd;

/* Returns NULL with *cause set when the listen address cannot be bound. */
struct http	*http_new(struct vialwatchd *, char **);
/* A reload; the configuration before it. */
void		 http_reconfigure(struct http *, const struct conf *);
void		 http_free(struct http *);
/* Why nothing is listening (a reload could bind no address), or NULL. */
const char	*http_unbound(struct http *);

/*
 * The pages' database connection, as role vialwatch_web: every query of a
 * page goes there, never to the outbox's or the ingest's.
 */
struct pgconn	*http_pgconn(struct http *);
/*
 * A page waiting for something before it answers req: cb is called if the
 * client goes away meanwhile (NULL: no more).  Use this, never
 * evhttp_connection_set_closecb, which http.c needs to count connections.
 */
void		 http_watch_close(struct http *, struct evhttp_request *,
		     void (*)(struct evhttp_connection *, void *), void *);

#endif
