/* excursion.c: the excursion rules on the loop, written to PostgreSQL. */
#ifndef EXCURSION_H
#define EXCURSION_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct conf;
struct reading;
struct event_base;
struct excursion;

#define EXCURSION_KINDS	RULES_KIND_COUNT

/*
 * The rules, reading the configuration in force (*conf). pause is their
 * backpressure: called with why the broker's messages must wait (a
 * sentence for the log), and with NULL once they may come again.
 */
struct excursion *excursion_new(struct event_base *, struct conf **,
		     void (*)(const char *, void *), void *);
void		 excursion_start(struct excursion *);
void		 excursion_reconfigure(struct excursion *, const struct conf *);
/* Load the sensors, fridges and limits again (SIGHUP). */
void		 excursion_reload(struct excursion *);
/* Stopping: write the queued events; the function given is called when
 * done. */
void		 excursion_drain(struct excursion *, void (*)(void *), void *);
void		 excursion_free(struct excursion *);
/* Stopped with events not written: keep them in a file (path). */
void		 excursion_save(struct excursion *, const char *);
/* Starting: queue the events kept in the file first, and remove it. */
void		 excursion_restore(struct excursion *, const char *);
/* One decoded reading as it arrives, at wall time now: the hot path. */
void		 excursion_feed(struct excursion *, const struct reading *,
		     int64_t);
/* Correct a reading by its probe's offset: 0, or -1 with why (refused). */
int		 excursion_correct(struct excursion *, struct reading *, char *,
		     size_t);
/* Events waiting for the database, the one in flight included. */
size_t		 excursion_pending(struct excursion *);
size_t		 excursion_sensors(struct excursion *);
/* Open excursions held in memory, by enum rules_kind. */
void		 excursion_open_counts(struct excursion *,
		     size_t[EXCURSION_KINDS]);

#endif
