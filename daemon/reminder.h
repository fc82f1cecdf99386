/* reminder.c: the re-treatment reminder scheduler. */
#ifndef REMINDER_H
#define REMINDER_H

#include <stdint.h>

struct conf;
struct vialwatchd;
struct reminder;

/* vialwatch.reminder.status */
enum {
	REMINDER_PENDING,
	REMINDER_SENT,
	REMINDER_CANCELLED,
	REMINDER_SKIPPED,
	REMINDER_STATES
};

struct reminder	*reminder_new(struct vialwatchd *);
void		 reminder_start(struct reminder *);
/* A reload: a new scan_interval, window or conninfo; scans at once. */
void		 reminder_reconfigure(struct reminder *, const struct conf *);
/* Reminders of all clinics in a status, as last counted; -1 unknown. */
int64_t		 reminder_count_of(const struct reminder *, int);
const char	*reminder_state_name(int);
void		 reminder_free(struct reminder *);

#endif
