/* outbox.c: delivering vialwatch.notification rows by SMTP and hooks. */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <stdint.h>

struct conf;
struct pgconn;
struct vialwatchd;
struct outbox;

/* Rows waiting in the database, by channel kind and status. */
enum { OUTBOX_EMAIL, OUTBOX_HOOK, OUTBOX_CHANNELS };
enum { OUTBOX_PENDING, OUTBOX_FAILED, OUTBOX_DEAD, OUTBOX_STATES };

struct outbox	*outbox_new(struct vialwatchd *);
void		 outbox_start(struct outbox *);
void		 outbox_reconfigure(struct outbox *, const struct conf *);
/* Stopping: claim nothing more; call the function given once all are
 * recorded. */
void		 outbox_drain(struct outbox *, void (*)(void *), void *);
/* Sends under way and outcomes not yet written. */
int		 outbox_pending(const struct outbox *);
/* The backlog as last counted, or -1 when not known yet. */
int64_t		 outbox_backlog(const struct outbox *, int, int);
/* The connection, shared with the acknowledge pages. */
struct pgconn	*outbox_conn(struct outbox *);
void		 outbox_free(struct outbox *);

#endif
