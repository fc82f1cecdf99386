/* seal.c: the readings of each ended day sealed in the audit trail. */
#ifndef SEAL_H
#define SEAL_H

struct conf;
struct vialwatchd;
struct seal;

/* Seals made by one run at most; a full run is followed by another. */
#define SEAL_BATCH	500

struct seal	*seal_new(struct vialwatchd *);
void		 seal_start(struct seal *);
/* A reload: a new conninfo, or a new [database] seal_every. */
void		 seal_reconfigure(struct seal *, const struct conf *);
void		 seal_free(struct seal *);

#endif
