/* main.c: the daemon's shared state, owned by main. */
#ifndef VIALWATCHD_H
#define VIALWATCHD_H

#include <stdint.h>

struct event_base;
struct timeval;
struct conf;
struct mqtt;
struct db;
struct http;
struct spool;
struct excursion;
struct outbox;
struct reminder;
struct retention;
struct state;

struct vialwatchd {
	struct event_base	*base;
	struct conf		*conf;		/* current; replaced on reload */
	struct mqtt		*mqtt;
	struct db		*db;
	struct http		*http;
	struct spool		*spool;
	struct excursion	*excursion;
	struct outbox		*outbox;
	struct reminder		*reminder;
	struct retention	*retention;
	struct state		*state;
	int			 stopping;
};

/* Wall clock in microseconds since the epoch, monotonic clock in ms. */
int64_t		 vw_now_us(void);
int64_t		 vw_mono_ms(void);
/* Next wait of a retry: *ms doubles from 500 ms to 30 s; jittered. */
int64_t		 vw_backoff(int64_t *, struct timeval *);
/*
 * Called by db.c, excursion.c and outbox.c during stop when they have
 * written all they held: exits once all have.
 */
void		 vw_drained(struct vialwatchd *);

#endif
