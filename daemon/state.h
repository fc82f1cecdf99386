/* state.c: fridge state and Home Assistant discovery back to MQTT. */
#ifndef STATE_H
#define STATE_H

#include <stdint.h>

struct conf;
struct state;
struct vialwatchd;

/* A fridge's state, as published and counted in /metrics. */
enum state_kind {
	STATE_OK,
	STATE_PENDING,
	STATE_ALARM,
	STATE_OFFLINE,
	STATE_MAINTENANCE,
};
#define STATE_KINDS	(STATE_MAINTENANCE + 1)

struct state	*state_new(struct vialwatchd *);
void		 state_start(struct state *);
void		 state_reconfigure(struct state *, const struct conf *);
void		 state_free(struct state *);
/*
 * The fridges in each state, and those whose alarm nobody acknowledged,
 * as last counted; -1 before the first count.
 */
int64_t		 state_count(struct state *, enum state_kind);
int64_t		 state_unacknowledged(struct state *);
const char	*state_kind_name(enum state_kind);

#endif
