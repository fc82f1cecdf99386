/* archive.c: old sent and dead notifications moved out of the outbox. */
#ifndef ARCHIVE_H
#define ARCHIVE_H

struct conf;
struct vialwatchd;
struct archive;

struct archive	*archive_new(struct vialwatchd *);
void		 archive_start(struct archive *);
/* A reload: a new conninfo, or a new keep_notifications (runs at once). */
void		 archive_reconfigure(struct archive *, const struct conf *);
void		 archive_free(struct archive *);

#endif
