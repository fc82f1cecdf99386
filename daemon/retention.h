/* retention.c: partitions of vialwatch.reading made ahead, old ones noted. */
#ifndef RETENTION_H
#define RETENTION_H

struct conf;
struct vialwatchd;
struct retention;

/* Months of partitions made ahead of the current one. */
#define RETENTION_AHEAD_MONTHS	3

struct retention *retention_new(struct vialwatchd *);
void		  retention_start(struct retention *);
/* A reload: a new retention or conninfo; a new retention is noted at once. */
void		  retention_reconfigure(struct retention *, const struct conf *);
void		  retention_free(struct retention *);

#endif
