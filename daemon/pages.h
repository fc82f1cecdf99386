/* pages.c: the HTML pages of the signed links in emails. */
#ifndef PAGES_H
#define PAGES_H

#include <libpq-fe.h>

#include <sys/queue.h>

#include <stdint.h>

struct evbuffer;
struct evhttp_request;
struct evkeyvalq;
struct pgconn;
struct vialwatchd;

/* A request waiting for the database. */
struct pages_wait {
	struct evhttp_request	*req;		/* NULL: answered already */
	struct http		*http;
	int			 closed;	/* the client left */
	TAILQ_ENTRY(pages_wait)	 entry;
	char			*path;
	char			*who;
	int64_t			 id;
	int			 post;
	struct pgconn		*pc;		/* the pages' connection */
	struct evbuffer		*page;		/* a page being put together */
};

/* /ack/TOKEN: GET shows the excursion and a form, POST acknowledges. */
void	pages_ack(struct vialwatchd *, struct evhttp_request *, const char *);
/*
 * /unsubscribe/TOKEN: GET shows a button, POST (the button, or a one-click
 * List-Unsubscribe-Post) unsubscribes the patient from reminders.
 */
void	pages_unsubscribe(struct vialwatchd *, struct evhttp_request *,
	    const char *);
/* Answer every request waiting for the database (the server goes away). */
void	pages_abort_all(void);

/* The parts of a page, for the pages of pages-*.c. */
void	pages_escape(struct evbuffer *, const char *);
void	pages_head(struct evbuffer *, const char *);
void	pages_row(struct evbuffer *, const char *, const char *);
void	pages_reply(struct evhttp_request *, int, const char *,
	    struct evbuffer *);
void	pages_message(struct evhttp_request *, int, const char *, const char *,
	    const char *);
/* Waiting for the database: who (to free) is the token's recipient. */
struct pages_wait *pages_wait_new(struct vialwatchd *, struct evhttp_request *,
	    int64_t, char *, int);
struct evhttp_request *pages_wait_end(struct pages_wait *);
void	pages_wait_free(struct pages_wait *);

/* pages-check.c */
/* /check/TOKEN: GET shows the fridges' figures, POST records the check. */
void	pages_check(struct vialwatchd *, struct evhttp_request *, const char *);
/* Read the urlencoded body of a POST into form; 0, or -1 with a page sent. */
int	pages_form_read(struct evhttp_request *, struct evkeyvalq *);
/* A failed statement of a page: 4xx with its message, or 500/503. */
void	pages_failed(struct pages_wait *, const PGresult *, const char *);

/* pages-closeout.c */
/* Whether a POST to /ack/TOKEN is the close-out form. */
int	pages_closeout_wanted(struct evhttp_request *);
/* The close-out POST of /ack/TOKEN for excursion id; takes who. */
void	pages_closeout_post(struct vialwatchd *, struct pgconn *,
	    struct evhttp_request *, int64_t, char *);
/* Add the close-out part to the acknowledge page b, then reply; takes both. */
void	pages_closeout_more(struct pages_wait *, struct evbuffer *);

#endif
