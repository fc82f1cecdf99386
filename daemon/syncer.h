/* syncer.c: fdatasync and fsync in a thread, off the loop. */
#ifndef SYNCER_H
#define SYNCER_H

struct syncer;

struct syncer	*syncer_new(void);
/* Finish what is queued, then stop the thread. */
void		 syncer_free(struct syncer *);
/*
 * Make fd durable (fsync when full, else fdatasync), then close it: fd is
 * the syncer's from here on.
 */
void		 syncer_push(struct syncer *, int, int);
/* Files queued or being synced. */
int		 syncer_pending(struct syncer *);
/* The errno of a sync that failed since the last call, or 0. */
int		 syncer_error(struct syncer *);

#endif
