/* db.c: asynchronous libpq on the loop: connect, batch readings with COPY. */
#ifndef DB_H
#define DB_H

#include <stddef.h>
#include <stdint.h>

#include "payload.h"

struct conf;
struct db;
struct event_base;
struct spool;
struct spool_pos;

enum db_state {
	DB_DISCONNECTED,
	DB_CONNECTING,
	DB_IDLE,		/* connected, nothing in flight */
	DB_BATCH,		/* a batch in flight */
};

/*
 * Backpressure: called with why the broker's messages must wait (a
 * sentence for the log), and with NULL once they may come again.
 */
typedef void	(*db_pause_cb)(const char *, void *);

struct db	*db_new(struct event_base *, struct conf **, db_pause_cb,
		     void *);
void		 db_set_spool(struct db *, struct spool *);
void		 db_start(struct db *);
void		 db_reconfigure(struct db *, const struct conf *);
void		 db_free(struct db *);
enum db_state	 db_state(struct db *);
const char	*db_state_name(enum db_state);
int		 db_connected(struct db *);
size_t		 db_pending(struct db *);
size_t		 db_pending_bytes(struct db *);

/* Queue one decoded reading from a source; flushed in batches. */
void		 db_push_reading(struct db *, const char *,
		     const struct reading *, int64_t);
/* Queue a refused message with its reason. */
void		 db_push_rejected(struct db *, const char *, const void *,
		     size_t, const char *, const char *, int64_t);
/*
 * The reading of a spooled row (type r or b) again, for the rules that
 * could not judge it before a crash: 0, or -1 for another row.
 */
int		 db_copy_reading(char, const char *, size_t, struct reading *,
		     int64_t *);
/* spool_open's replay callback: queue a record again. */
void		 db_spool_replay(void *, char, const char *, size_t,
		    const struct spool_pos *);
/* Flush now, and call the function given once nothing is left. */
void		 db_drain(struct db *, void (*)(void *), void *);

#endif
