/* state.c: fridge state and Home Assistant discovery back to MQTT. */
#ifndef STATE_H
#define STATE_H

struct conf;
struct state;
struct vialwatchd;

struct state	*state_new(struct vialwatchd *);
void		 state_start(struct state *);
void		 state_reconfigure(struct state *, const struct conf *);
void		 state_free(struct state *);

#endif
