/* checks.c: the workday min/max check: its emails and reminders. */
#ifndef CHECKS_H
#define CHECKS_H

struct conf;
struct vialwatchd;
struct checks;

/* How long the signed link of a check email is valid, in seconds. */
#define CHECKS_LINK_VALID_S	(4 * 24 * 3600)

struct checks	*checks_new(struct vialwatchd *);
void		 checks_start(struct checks *);
/* A reload: a new scan_interval, grace or conninfo; scans at once. */
void		 checks_reconfigure(struct checks *, const struct conf *);
void		 checks_free(struct checks *);

#endif
