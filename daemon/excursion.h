/* excursion.c: the excursion rules on the loop, written to PostgreSQL. */
#ifndef EXCURSION_H
#define EXCURSION_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct conf;
struct reading;
struct vialwatchd;
struct excursion;

#define EXCURSION_KINDS	RULES_KIND_COUNT

struct excursion *excursion_new(struct vialwatchd *);
void		 excursion_start(struct excursion *);
void		 excursion_reconfigure(struct excursion *, const struct conf *);
/* Load the sensors, fridges and limits again (SIGHUP). */
void		 excursion_reload(struct excursion *);
/* Stopping: write the queued events; vw_drained() is called when done. */
void		 excursion_drain(struct excursion *);
void		 excursion_free(struct excursion *);
/* One decoded reading as it arrives, at wall time now: the hot path. */
void		 excursion_feed(struct excursion *, const struct reading *,
		     int64_t);
/* Events waiting for the database, the one in flight included. */
size_t		 excursion_pending(struct excursion *);
size_t		 excursion_sensors(struct excursion *);
/* Open excursions held in memory, by enum rules_kind. */
void		 excursion_open_counts(struct excursion *,
		     size_t[EXCURSION_KINDS]);

#endif
