/* heartbeat.c: this daemon's heartbeat row, and the others' watched. */
#ifndef HEARTBEAT_H
#define HEARTBEAT_H

#include <stdint.h>

struct conf;
struct vialwatchd;
struct heartbeat;

/* Beats at a fifth of [alerts] daemon_silent_after, within these. */
#define HEARTBEAT_MIN_MS	1000
#define HEARTBEAT_MAX_MS	60000

struct heartbeat *heartbeat_new(struct vialwatchd *);
void		  heartbeat_start(struct heartbeat *);
void		  heartbeat_reconfigure(struct heartbeat *, const struct conf *);
void		  heartbeat_free(struct heartbeat *);
/* The wait between beats for a silence limit (pure). */
int64_t		  heartbeat_every_ms(int64_t);

#endif
