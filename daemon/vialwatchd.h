/* main.c: the daemon's shared state, owned by main. */
#ifndef VIALWATCHD_H
#define VIALWATCHD_H

#include <stdint.h>

#include "clock.h"

struct event_base;
struct conf;
struct mqtt;
struct db;
struct http;
struct spool;
struct excursion;
struct outbox;
struct reminder;
struct checks;
struct retention;
struct seal;
struct calibration;
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
	struct checks		*checks;
	struct retention	*retention;
	struct archive		*archive;
	struct heartbeat	*heartbeat;
	struct seal		*seal;
	struct calibration	*calibration;
	struct state		*state;
	int			 stopping;
};

/* clock.h's helpers under the names they had here. */
#define vw_now_us	clock_now_us
#define vw_mono_ms	clock_mono_ms
#define vw_backoff	clock_backoff

#endif
