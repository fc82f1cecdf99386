/* heartbeat.c: this daemon's heartbeat row, and the others' watched. */
#ifndef HEARTBEAT_H
#define HEARTBEAT_H

struct conf;
struct vialwatchd;
struct heartbeat;

struct heartbeat *heartbeat_new(struct vialwatchd *);
void		  heartbeat_start(struct heartbeat *);
void		  heartbeat_reconfigure(struct heartbeat *, const struct conf *);
void		  heartbeat_free(struct heartbeat *);

#endif
