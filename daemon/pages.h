/* pages.c: the HTML pages of the signed links in emails. */
#ifndef PAGES_H
#define PAGES_H

struct evhttp_request;
struct vialwatchd;

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

#endif
