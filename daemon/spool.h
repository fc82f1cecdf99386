/* spool.c: the append-only store-and-forward file in state_dir. */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* A place in the spool: everything before it is one stream of records. */
struct spool_pos {
	uint64_t	seg;
	uint64_t	off;
};

/* Called for each record found on open that is not yet committed. */
typedef void	(*spool_replay_cb)(void *, char, const char *, size_t,
		    const struct spool_pos *);

struct spool	*spool_open(const char *, spool_replay_cb, void *, char **);
void		 spool_free(struct spool *);
/* Buffer one record; *end is the place just after it. */
void		 spool_append(struct spool *, char, const char *, size_t,
		    struct spool_pos *);
/* Write what is buffered to the file (not yet synced). */
void		 spool_write(struct spool *);
/* Write and fdatasync. */
void		 spool_sync(struct spool *);
/* Everything before pos is in the database: trim. */
void		 spool_commit(struct spool *, const struct spool_pos *);
/* Bytes held that the database does not have yet. */
uint64_t	 spool_bytes(struct spool *);
/*
 * Room for the records of one more message: 0 when the disk is full or
 * the spool cannot be written, and messages must wait at the broker.
 */
int		 spool_room(const struct spool *);
/* Try again to write and make room; spool_room() after it. */
int		 spool_retry(struct spool *);
/* Why records are not being written, or NULL when all is well. */
const char	*spool_error(struct spool *);

#endif
