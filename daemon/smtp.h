/* smtp.c: mail through libcurl's multi interface, on a thread of its own. */
#ifndef SMTP_H
#define SMTP_H

struct event_base;
struct conf;
struct mail;
struct smtp;

/*
 * The end of one send, called from the event loop (never from inside
 * smtp_send): error is NULL when the server accepted the message, else a
 * one-line reason; permanent is set for a 5xx answer.
 */
typedef void	(*smtp_cb)(const char *error, int permanent, void *arg);

struct smtp	*smtp_new(struct event_base *, const struct conf *);
/* Take [smtp] settings for the sends that start from now on. */
void		 smtp_reconfigure(struct smtp *, const struct conf *);
/* Start sending; the message is copied.  0, or -1 if it cannot start. */
int		 smtp_send(struct smtp *, const struct mail *, smtp_cb, void *);
/* Abort every send (their callbacks are not called) and free. */
void		 smtp_free(struct smtp *);

#endif
