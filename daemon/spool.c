/*
 * The spool: every accepted message is appended here before it goes to
 * PostgreSQL, so that a crash or a database outage loses nothing the
 * broker has already handed over.
 *
 * state_dir/spool/ holds segment files named by a hex number that only
 * grows, a "committed" file with the place up to which the database has
 * everything, and a lock file. A record is a 12-byte header (magic,
 * length, CRC-32 of length and body) and a body: one type byte and one
 * COPY text line. Batches commit in the order their records were
 * appended, so the committed place is a single watermark; segments wholly
 * before it are deleted. The watermark is written without fsync: if it is
 * stale after a power cut, more is replayed, and replayed rows that are
 * already stored are skipped by the database.
 *
 * Disk space is allocated ahead of the current segment (SPOOL_RESERVE
 * bytes, past its end, the file's size unchanged), so that what the
 * broker hands over always has a place on disk: when no more can be had,
 * spool_room() says so before the room left is used up, and the broker's
 * messages wait at the broker rather than in memory.
 *
 * fdatasync and fsync run in a thread (syncer.c): a slow disk delays the
 * moment records are durable, never the loop.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "spool.h"
#include "syncer.h"
#include "xmalloc.h"

#define SPOOL_MAGIC		0x31535756u	/* "VWS1" */
#define SPOOL_HDR		12
#define SPOOL_RECORD_MAX	(1024 * 1024)
#define SPOOL_SEGMENT_MAX	(8 * 1024 * 1024)
/* After a failed write, records are only kept in memory this long. */
#define SPOOL_RETRY_MS		1000
/* Disk space allocated ahead, and the least left to take messages. */
#define SPOOL_RESERVE		(4 * 1024 * 1024)
#define SPOOL_ROOM_MIN		(1024 * 1024)

#define MINIMUM(a, b)		((a) < (b) ? (a) : (b))

struct spool {
	char			*dir;		/* state_dir/spool */
	int			 dirfd;
	int			 lockfd;
	int			 markfd;	/* "committed" */
	int			 fd;		/* current segment, or -1 */
	uint64_t		 seg;		/* current segment */
	uint64_t		 off;		/* its size, buffer included */
	uint64_t		 written;	/* of off, in the file */
	uint64_t		 reserved;	/* allocated on disk up to */
	int			 can_reserve;	/* the file system can */
	uint64_t		 first_seg;	/* oldest segment on disk */
	uint64_t		 disk_bytes;	/* in segment files */
	struct spool_pos	 committed;
	int			 dirty;		/* written, not synced */
	struct syncer		*syncer;

	char			*buf;
	size_t			 len;
	size_t			 cap;
	size_t			 nbuf;		/* records in buf */

	char			*error;		/* why we cannot write */
	int64_t			 retry_ms;
	struct ratelimit	 rl;
};

static void	spool_reserve(struct spool *);
static void	spool_unreserve(struct spool *);
static void	spool_sync_close(struct spool *);

static int
spool_pos_cmp(const struct spool_pos *a, const struct spool_pos *b)
{
	if (a->seg != b->seg)
		return (a->seg < b->seg ? -1 : 1);
	if (a->off != b->off)
		return (a->off < b->off ? -1 : 1);
	return (0);
}

static void
spool_seg_name(uint64_t seg, char *buf, size_t len)
{
	snprintf(buf, len, "%016" PRIx64 ".seg", seg);
}

/* The CRC of a record: its length field and its body. */
static uint32_t
spool_crc(const unsigned char *hdr, const char *body, size_t len)
{
	uLong	crc = crc32(0, Z_NULL, 0);

	crc = crc32(crc, hdr + 4, 4);
	return ((uint32_t)crc32(crc, (const Bytef *)body, len));
}

static void
spool_put32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t
spool_get32(const unsigned char *p)
{
	return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24);
}

/* Does a whole, intact record start at p? Its length in *len if so. */
static int
spool_record_at(const unsigned char *p, size_t avail, size_t *len)
{
	uint32_t	n;

	if (avail < SPOOL_HDR || spool_get32(p) != SPOOL_MAGIC)
		return (0);
	n = spool_get32(p + 4);
	if (n == 0 || n > SPOOL_RECORD_MAX || n > avail - SPOOL_HDR)
		return (0);
	if (spool_crc(p, (const char *)p + SPOOL_HDR, n) !=
	    spool_get32(p + 8))
		return (0);
	*len = n;
	return (1);
}

/* Read a whole segment file; NULL and a log line if it cannot be read. */
static unsigned char *
spool_slurp(struct spool *s, const char *name, size_t *size)
{
	struct stat	 st;
	unsigned char	*data;
	size_t		 got = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		log_warn("spool: cannot read %s/%s", s->dir, name);
		if (fd != -1)
			close(fd);
		return (NULL);
	}
	data = xmalloc(st.st_size + 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, data + got, st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	*size = got;
	return (data);
}

/* Hand every intact record of one segment from off on to cb. */
static void
spool_replay_seg(struct spool *s, uint64_t seg, uint64_t off,
    spool_replay_cb cb, void *arg, size_t *nrec)
{
	struct spool_pos	 pos = { seg, 0 };
	unsigned char		*data;
	char			 name[32];
	size_t			 size, len, bad;

	spool_seg_name(seg, name, sizeof name);
	if ((data = spool_slurp(s, name, &size)) == NULL)
		return;
	s->disk_bytes += size;
	while (off < size) {
		if (spool_record_at(data + off, size - off, &len)) {
			off += SPOOL_HDR + len;
			pos.off = off;
			cb(arg, data[pos.off - len], (char *)data + off - len + 1,
			    len - 1, &pos);
			(*nrec)++;
			continue;
		}
		for (bad = off + 1; bad < size; bad++) {
			if (spool_record_at(data + bad, size - bad, &len))
				break;
		}
		if (bad == size) {
			log_warnx("spool: %s/%s: %zu bytes at offset %" PRIu64
			    " are an incomplete record (a write cut short); "
			    "ignored", s->dir, name, size - (size_t)off, off);
			break;
		}
		metrics.spool_corrupt++;
		log_warnx("spool: %s/%s: corrupt record at offset %" PRIu64
		    " (%zu bytes skipped); replaying the records after it",
		    s->dir, name, off, bad - (size_t)off);
		off = bad;
	}
	free(data);
}

/* Read the watermark; all of the spool is replayed if it is unreadable. */
static void
spool_read_mark(struct spool *s)
{
	char		buf[64];
	ssize_t		n;
	uint64_t	seg, off;

	if ((n = pread(s->markfd, buf, sizeof buf - 1, 0)) <= 0)
		return;
	buf[n] = '\0';
	if (sscanf(buf, "%" SCNx64 " %" SCNx64, &seg, &off) != 2) {
		log_warnx("spool: %s/committed is unreadable; replaying "
		    "everything (the database skips what it has)", s->dir);
		return;
	}
	s->committed.seg = seg;
	s->committed.off = off;
}

static int
spool_seg_cmp(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

/* The segment numbers on disk, sorted. */
static uint64_t *
spool_list(struct spool *s, size_t *count)
{
	DIR		*d;
	struct dirent	*de;
	uint64_t	*segs = NULL, seg;
	size_t		 n = 0, cap = 0;
	char		 end[8];
	int		 fd;

	if ((fd = dup(s->dirfd)) == -1 || (d = fdopendir(fd)) == NULL)
		fatal("spool: %s", s->dir);
	while ((de = readdir(d)) != NULL) {
		if (sscanf(de->d_name, "%16" SCNx64 "%7s", &seg, end) != 2 ||
		    strcmp(end, ".seg") != 0 || strlen(de->d_name) != 20)
			continue;
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			segs = xreallocarray(segs, cap, sizeof *segs);
		}
		segs[n++] = seg;
	}
	closedir(d);
	if (n > 0)
		qsort(segs, n, sizeof *segs, spool_seg_cmp);
	*count = n;
	return (segs);
}

/* Replay what is not committed; delete what is. */
static void
spool_recover(struct spool *s, spool_replay_cb cb, void *arg)
{
	uint64_t	*segs, last;
	size_t		 i, n, nrec = 0;
	char		 name[32];

	segs = spool_list(s, &n);
	last = s->committed.seg;
	s->first_seg = UINT64_MAX;
	for (i = 0; i < n; i++) {
		spool_seg_name(segs[i], name, sizeof name);
		if (segs[i] < s->committed.seg) {
			if (unlinkat(s->dirfd, name, 0) == -1)
				log_warn("spool: cannot remove %s", name);
			continue;
		}
		if (s->first_seg == UINT64_MAX)
			s->first_seg = segs[i];
		spool_replay_seg(s, segs[i], segs[i] == s->committed.seg ?
		    s->committed.off : 0, cb, arg, &nrec);
		if (segs[i] > last)
			last = segs[i];
	}
	free(segs);
	s->seg = last + 1;
	if (s->first_seg == UINT64_MAX)
		s->first_seg = s->seg;
	metrics.spool_replayed += nrec;
	if (nrec > 0)
		log_info("spool: %zu records not yet in the database are "
		    "queued again", nrec);
}

/* Open (creating) the spool in state_dir and replay it through cb. */
struct spool *
spool_open(const char *state_dir, spool_replay_cb cb, void *arg,
    char **cause)
{
	struct spool	*s;

	s = xcalloc(1, sizeof *s);
	s->fd = s->lockfd = s->markfd = -1;
	s->syncer = syncer_new();
	xasprintf(&s->dir, "%s/spool", state_dir);
	if (mkdir(s->dir, 0700) == -1 && errno != EEXIST)
		goto fail;
	if ((s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		goto fail;
	if ((s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT |
	    O_CLOEXEC, 0600)) == -1)
		goto fail;
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) == -1) {
		xasprintf(cause, "spool %s is in use by another vialwatchd "
		    "(each daemon needs its own state_dir)", s->dir);
		spool_free(s);
		return (NULL);
	}
	if ((s->markfd = openat(s->dirfd, "committed", O_RDWR | O_CREAT |
	    O_CLOEXEC, 0600)) == -1)
		goto fail;
	spool_read_mark(s);
	spool_recover(s, cb, arg);
	s->can_reserve = 1;
	spool_reserve(s);
	return (s);

fail:
	xasprintf(cause, "spool %s: %s", s->dir, strerror(errno));
	spool_free(s);
	return (NULL);
}

void
spool_free(struct spool *s)
{
	if (s == NULL)
		return;
	if (s->fd != -1) {
		spool_write(s);
		spool_unreserve(s);
		spool_sync_close(s);
	}
	syncer_free(s->syncer);	/* waits for every sync */
	if (s->markfd != -1)
		close(s->markfd);
	if (s->lockfd != -1)
		close(s->lockfd);
	if (s->dirfd > 0)
		close(s->dirfd);
	free(s->error);
	free(s->buf);
	free(s->dir);
	free(s);
}

/* Buffer one record; written at the end of the current burst. */
void
spool_append(struct spool *s, char type, const char *data, size_t len,
    struct spool_pos *end)
{
	unsigned char	*h;
	size_t		 n = SPOOL_HDR + 1 + len;

	if (s->error != NULL && clock_mono_ms() < s->retry_ms) {
		metrics.spool_unwritten++;	/* in memory only */
		end->seg = s->seg;
		end->off = s->off;
		return;
	}
	if (s->len + n > s->cap) {
		s->cap = s->len + n > s->cap * 2 ? s->len + n : s->cap * 2;
		s->buf = xreallocarray(s->buf, s->cap, 1);
	}
	h = (unsigned char *)s->buf + s->len;
	spool_put32(h, SPOOL_MAGIC);
	spool_put32(h + 4, 1 + len);
	h[SPOOL_HDR] = type;
	memcpy(h + SPOOL_HDR + 1, data, len);
	spool_put32(h + 8, spool_crc(h, (char *)h + SPOOL_HDR, 1 + len));
	s->len += n;
	s->nbuf++;
	s->off += n;
	end->seg = s->seg;
	end->off = s->off;
}

/* The space allocated past the segment's end is given back. */
static void
spool_unreserve(struct spool *s)
{
	if (s->reserved > s->written && fallocate(s->fd, FALLOC_FL_PUNCH_HOLE |
	    FALLOC_FL_KEEP_SIZE, s->written, s->reserved - s->written) == -1)
		log_warn("spool: cannot give back the space held for %s",
		    s->dir);
	s->reserved = s->written;
}

/* Hand a copy of fd to the syncer; sync it here if there can be none. */
static void
spool_sync_fd(struct spool *s, int fd, int full)
{
	int	copy;

	if ((copy = dup(fd)) != -1) {
		syncer_push(s->syncer, copy, full);
		return;
	}
	if ((full ? fsync(fd) : fdatasync(fd)) == -1)
		log_warn("spool: %s %s", full ? "fsync" : "fdatasync", s->dir);
}

/* Done with the current segment: synced, if need be, then closed. */
static void
spool_sync_close(struct spool *s)
{
	if (s->dirty)
		syncer_push(s->syncer, s->fd, 0);
	else
		close(s->fd);
	s->fd = -1;
	s->dirty = 0;
}

/* Start a new segment for the next write. */
static void
spool_rotate(struct spool *s)
{
	if (s->fd != -1) {
		spool_unreserve(s);
		spool_sync_close(s);
	}
	s->fd = -1;
	s->dirty = 0;
	s->seg++;
	s->off = s->written = s->reserved = 0;
}

/* A write failed: the buffered records live on in memory only. */
static void
spool_failed(struct spool *s, int error)
{
	metrics.spool_write_errors++;
	metrics.spool_unwritten += s->nbuf;
	if (s->error == NULL || log_ratelimit(&s->rl, 1, clock_mono_ms()))
		log_warnx("spool: cannot write to %s: %s; readings are kept "
		    "in memory only until the database has them",
		    s->dir, strerror(error));
	free(s->error);
	s->error = xstrdup(strerror(error));
	s->retry_ms = clock_mono_ms() + SPOOL_RETRY_MS;
	if (s->fd != -1 && ftruncate(s->fd, s->written) == -1)
		log_warn("spool: cannot cut back a short write");
	s->len = s->nbuf = 0;
	/* Later records go to a new file, after whatever this one holds. */
	spool_rotate(s);
}

/* Create the current segment file. */
static int
spool_create(struct spool *s)
{
	char	name[32];

	spool_seg_name(s->seg, name, sizeof name);
	s->fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC, 0600);
	if (s->fd == -1)
		return (-1);
	/* The new name must outlive a power cut too. */
	spool_sync_fd(s, s->dirfd, 1);
	return (0);
}

/* Written, or room made: the error is over. */
static void
spool_ok(struct spool *s)
{
	if (s->error == NULL)
		return;
	log_info("spool: writing to %s again", s->dir);
	free(s->error);
	s->error = NULL;
}

/* No room for what the broker hands over: say so, and try again later. */
static void
spool_full(struct spool *s, int error)
{
	metrics.spool_write_errors++;
	if (s->error == NULL || log_ratelimit(&s->rl, 1, clock_mono_ms()))
		log_warnx("spool: cannot write to %s: %s; not taking messages "
		    "from the broker until there is room", s->dir,
		    strerror(error));
	free(s->error);
	s->error = xstrdup(strerror(error));
	s->retry_ms = clock_mono_ms() + SPOOL_RETRY_MS;
}

/* Allocate the segment's disk space up to end: -1 and errno if it cannot. */
static int
spool_allocate(struct spool *s, uint64_t end)
{
	if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, s->written,
	    end - s->written) == -1)
		return (-1);
	s->reserved = end;
	return (0);
}

/*
 * Keep SPOOL_RESERVE bytes allocated past the end of what is appended;
 * with less room on disk, what one burst may take will do.
 */
static void
spool_reserve(struct spool *s)
{
	if (!s->can_reserve || s->reserved >= s->off + SPOOL_RESERVE / 2)
		return;
	if (s->fd == -1 && spool_create(s) == -1) {
		spool_full(s, errno);
		return;
	}
	if (spool_allocate(s, s->off + SPOOL_RESERVE) == 0 ||
	    (errno == ENOSPC &&
	    spool_allocate(s, s->off + 2 * SPOOL_ROOM_MIN) == 0)) {
		spool_ok(s);
		return;
	}
	if (errno == EOPNOTSUPP) {
		log_info("spool: %s cannot allocate space ahead; a full disk "
		    "is seen only when a write fails", s->dir);
		s->can_reserve = 0;
		return;
	}
	spool_full(s, errno);
}

/* Is there room for the records of the next message from the broker? */
int
spool_room(const struct spool *s)
{
	return (s->error == NULL && (!s->can_reserve ||
	    s->reserved >= s->off + SPOOL_ROOM_MIN));
}

/* Try again to write and to make room: spool_room() after it. */
int
spool_retry(struct spool *s)
{
	spool_write(s);
	spool_reserve(s);
	return (spool_room(s));
}

void
spool_write(struct spool *s)
{
	size_t	done = 0;
	ssize_t	n;

	if (s->len == 0)
		return;
	if (s->fd == -1 && spool_create(s) == -1) {
		spool_failed(s, errno);
		return;
	}
	while (done < s->len) {
		if ((n = write(s->fd, s->buf + done, s->len - done)) == -1) {
			if (errno == EINTR)
				continue;
			spool_failed(s, errno);
			return;
		}
		done += n;
	}
	s->written += done;
	s->disk_bytes += done;
	s->len = s->nbuf = 0;
	s->dirty = 1;
	spool_ok(s);
	if (s->written >= SPOOL_SEGMENT_MAX)
		spool_rotate(s);
	spool_reserve(s);
}

/* Written data made durable, later, by the syncer. */
void
spool_sync(struct spool *s)
{
	int	error;

	if ((error = syncer_error(s->syncer)) != 0)
		log_warnx("spool: fdatasync: %s", strerror(error));
	spool_write(s);
	/* One at a time: a slow disk gets fewer, not more, syncs. */
	if (s->fd == -1 || !s->dirty || syncer_pending(s->syncer) > 0)
		return;
	spool_sync_fd(s, s->fd, 0);
	s->dirty = 0;
}

/* Delete segments wholly committed and move the watermark. */
void
spool_commit(struct spool *s, const struct spool_pos *pos)
{
	struct stat	st;
	char		name[32], mark[40];
	int		n;

	if (spool_pos_cmp(pos, &s->committed) <= 0)
		return;
	s->committed = *pos;
	n = snprintf(mark, sizeof mark, "%016" PRIx64 " %016" PRIx64 "\n",
	    pos->seg, pos->off);
	if (pwrite(s->markfd, mark, n, 0) != n &&
	    log_ratelimit(&s->rl, 1, clock_mono_ms()))
		log_warn("spool: cannot write %s/committed", s->dir);
	for (; s->first_seg < pos->seg; s->first_seg++) {
		spool_seg_name(s->first_seg, name, sizeof name);
		if (fstatat(s->dirfd, name, &st, 0) == 0) {
			/* A file read short at start was counted short. */
			s->disk_bytes -= MINIMUM((uint64_t)st.st_size,
			    s->disk_bytes);
			if (unlinkat(s->dirfd, name, 0) == -1)
				log_warn("spool: cannot remove %s", name);
		}
	}
}

uint64_t
spool_bytes(struct spool *s)
{
	uint64_t	held = s->disk_bytes + s->len, done = 0;

	if (s->committed.seg >= s->first_seg)
		done = s->committed.off;
	return (held > done ? held - done : 0);
}

const char *
spool_error(struct spool *s)
{
	return (s->error);
}
