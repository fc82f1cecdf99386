/*
 * vialwatchctl migrate: apply, in order, the NNN_name.sql files of the SQL
 * directory that vialwatch.schema_migration does not list yet, each in its
 * own transaction.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "ctl.h"
#include "xmalloc.h"

/* pg_advisory_lock key that serialises migrates: "vialwatc" in ASCII. */
#define MIGRATE_LOCK_KEY	"8532487565567456355"

/* One file of the SQL directory. */
struct migration {
	int	 version;
	char	*name;		/* e.g. "001_init.sql" */
	char	*path;
};

/* All of them, sorted by version. */
struct migrations {
	struct migration	*list;
	int			 n;
};

/* If name is NNN_something.sql, its version NNN; else -1. */
static int
migrate_version(const char *name)
{
	size_t	len = strlen(name);
	int	i;

	if (len <= 8 || strcmp(name + len - 4, ".sql") != 0 || name[3] != '_')
		return (-1);
	for (i = 0; i < 3; i++) {
		if (name[i] < '0' || name[i] > '9')
			return (-1);
	}
	return ((name[0] - '0') * 100 + (name[1] - '0') * 10 + name[2] - '0');
}

/* qsort order: by version. */
static int
migrate_cmp(const void *a, const void *b)
{
	const struct migration	*ma = a, *mb = b;

	return (ma->version - mb->version);
}

/* Free the list. */
static void
migrate_free(struct migrations *ms)
{
	int	i;

	for (i = 0; i < ms->n; i++) {
		free(ms->list[i].name);
		free(ms->list[i].path);
	}
	free(ms->list);
}

/* Add dir/name to the list. */
static void
migrate_add(struct migrations *ms, const char *dir, const char *name,
    int version)
{
	struct migration	*m;

	ms->list = xreallocarray(ms->list, ms->n + 1, sizeof *ms->list);
	m = &ms->list[ms->n++];
	m->version = version;
	m->name = xstrdup(name);
	xasprintf(&m->path, "%s/%s", dir, name);
}

/* Read the migrations of dir in order; 0, or -1 (reported). */
static int
migrate_list(const char *dir, struct migrations *ms)
{
	DIR		*d;
	struct dirent	*de;
	int		 version, i;

	memset(ms, 0, sizeof *ms);
	if ((d = opendir(dir)) == NULL) {
		ctl_warnx("%s: %s", dir, strerror(errno));
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if ((version = migrate_version(de->d_name)) != -1)
			migrate_add(ms, dir, de->d_name, version);
	}
	closedir(d);
	if (ms->n == 0) {
		ctl_warnx("%s: no migration files (NNN_name.sql)", dir);
		return (-1);
	}
	qsort(ms->list, ms->n, sizeof *ms->list, migrate_cmp);
	for (i = 1; i < ms->n; i++) {
		if (ms->list[i].version == ms->list[i - 1].version) {
			ctl_warnx("%s: %s and %s have the same number", dir,
			    ms->list[i - 1].name, ms->list[i].name);
			return (-1);
		}
	}
	return (0);
}

/* Read a whole file as a string; NULL (reported) on error or NUL bytes. */
static char *
migrate_read(const struct migration *m, size_t *lenp)
{
	FILE	*f;
	char	*buf = NULL;
	size_t	 len = 0, size = 0, got;

	if ((f = fopen(m->path, "r")) == NULL) {
		ctl_warnx("%s: %s", m->path, strerror(errno));
		return (NULL);
	}
	do {
		if (size - len < 8192) {
			size = size == 0 ? 65536 : size * 2;
			buf = xreallocarray(buf, size, 1);
		}
		got = fread(buf + len, 1, size - len - 1, f);
		len += got;
	} while (got != 0);
	if (ferror(f) || memchr(buf, '\0', len) != NULL) {
		ctl_warnx("%s: %s", m->path, ferror(f) ? strerror(errno) :
		    "contains a NUL byte");
		fclose(f);
		free(buf);
		return (NULL);
	}
	fclose(f);
	buf[len] = '\0';
	*lenp = len;
	return (buf);
}

/* SHA-256 of buf as 64 hex digits; 0, or -1 (reported). */
static int
migrate_sha256(const char *buf, size_t len, char hex[65])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen, i;

	if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL)) {
		ctl_warnx("cannot compute SHA-256");
		return (-1);
	}
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * i] = '\0';
	return (0);
}

/* The line of sql holding character pos (1-based, as PostgreSQL counts). */
static int
migrate_line(const char *sql, const char *pos)
{
	long		 want, chars = 0;
	int		 line = 1;
	const char	*p;

	if (pos == NULL || (want = strtol(pos, NULL, 10)) <= 0)
		return (0);
	/* Positions count characters: skip UTF-8 continuation bytes. */
	for (p = sql; *p != '\0'; p++) {
		if (((unsigned char)*p & 0xc0) != 0x80 && ++chars == want)
			break;
		if (*p == '\n')
			line++;
	}
	return (line);
}

/*
 * Take the migrate lock (waiting for another migrate if need be) and make
 * sure the bookkeeping table exists; 0, or -1 (reported).
 */
static int
migrate_prepare(struct ctl *ctl)
{
	const char *const	 key[] = { MIGRATE_LOCK_KEY };
	PGresult		*res;
	int			 got;

	/* "already exists, skipping" notices are noise here. */
	if (ctl_exec(ctl, "set client_min_messages to warning") != 0)
		return (-1);
	res = ctl_query(ctl, "select pg_try_advisory_lock($1::bigint)", 1, key);
	if (res == NULL)
		return (-1);
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!got) {
		ctl_warnx("waiting for another migrate to finish");
		res = ctl_query(ctl, "select pg_advisory_lock($1::bigint)", 1,
		    key);
		if (res == NULL)
			return (-1);
		PQclear(res);
	}
	if (ctl_exec(ctl, "create schema if not exists vialwatch") != 0)
		return (-1);
	return (ctl_exec(ctl, "create table if not exists "
	    "vialwatch.schema_migration ("
	    "version integer primary key, "
	    "name text not null, "
	    "checksum text not null, "
	    "applied_at timestamptz not null default now())"));
}

/* The row of the applied migrations for version, or -1. */
static int
migrate_find(PGresult *applied, int version)
{
	int	i;

	for (i = 0; i < PQntuples(applied); i++) {
		if (atoi(PQgetvalue(applied, i, 0)) == version)
			return (i);
	}
	return (-1);
}

/* Warn about applied files that changed, were renamed or are gone. */
static void
migrate_check_applied(const struct migrations *ms, PGresult *applied)
{
	const struct migration	*m;
	char			*buf, hex[65];
	size_t			 len;
	int			 i, row;

	for (i = 0; i < ms->n; i++) {
		m = &ms->list[i];
		if ((row = migrate_find(applied, m->version)) == -1)
			continue;
		if (strcmp(PQgetvalue(applied, row, 1), m->name) != 0)
			ctl_warnx("warning: %s was applied as %s", m->name,
			    PQgetvalue(applied, row, 1));
		if ((buf = migrate_read(m, &len)) == NULL)
			continue;
		if (migrate_sha256(buf, len, hex) == 0 &&
		    strcmp(PQgetvalue(applied, row, 2), hex) != 0)
			ctl_warnx("warning: %s has changed since it was "
			    "applied (checksum differs)", m->name);
		free(buf);
	}
	for (row = 0; row < PQntuples(applied); row++) {
		for (i = 0; i < ms->n; i++) {
			if (ms->list[i].version ==
			    atoi(PQgetvalue(applied, row, 0)))
				break;
		}
		if (i == ms->n)
			ctl_warnx("warning: %s is applied but not in the SQL "
			    "directory", PQgetvalue(applied, row, 1));
	}
}

/* Run the file and record it; on error roll back. 0, or -1 (reported). */
static int
migrate_run(struct ctl *ctl, const struct migration *m, const char *sql,
    const char *hex)
{
	const char	*params[3];
	char		 version[16];
	PGresult	*res;

	snprintf(version, sizeof version, "%d", m->version);
	params[0] = version;
	params[1] = m->name;
	params[2] = hex;

	res = PQexec(ctl->conn, sql);
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK &&
	    PQresultStatus(res) != PGRES_EMPTY_QUERY)) {
		ctl_pg_error(ctl, res, m->name, migrate_line(sql,
		    PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION)));
		PQclear(res);
		return (-1);
	}
	PQclear(res);
	if (PQtransactionStatus(ctl->conn) != PQTRANS_INTRANS) {
		ctl_warnx("%s: the file ended the transaction itself (begin, "
		    "commit or rollback are not allowed in migrations); it may "
		    "be partly applied", m->name);
		return (-1);
	}
	res = ctl_query(ctl, "insert into vialwatch.schema_migration "
	    "(version, name, checksum) values ($1, $2, $3)", 3, params);
	if (res == NULL)
		return (-1);
	PQclear(res);
	return (0);
}

/* Apply one migration in its own transaction; 0, or -1 (reported). */
static int
migrate_apply(struct ctl *ctl, const struct migration *m)
{
	char	*sql, hex[65];
	size_t	 len;
	int	 rc = -1;

	if ((sql = migrate_read(m, &len)) == NULL)
		return (-1);
	if (migrate_sha256(sql, len, hex) != 0 || ctl_exec(ctl, "begin") != 0)
		goto out;
	ctl->context = m->name;
	rc = migrate_run(ctl, m, sql, hex);
	if (rc == 0 && ctl_exec(ctl, "commit") != 0)
		rc = -1;
	ctl->context = NULL;
	if (rc != 0) {
		if (PQtransactionStatus(ctl->conn) != PQTRANS_IDLE)
			ctl_exec(ctl, "rollback");
		goto out;
	}
	printf("applied %s\n", m->name);
	fflush(stdout);
out:
	free(sql);
	return (rc);
}

/* Apply the files not in applied, in order; the number applied, or -1. */
static int
migrate_pending(struct ctl *ctl, const struct migrations *ms,
    PGresult *applied)
{
	const struct migration	*m;
	int			 i, n = 0, newest = 0;

	for (i = 0; i < PQntuples(applied); i++) {
		if (atoi(PQgetvalue(applied, i, 0)) > newest)
			newest = atoi(PQgetvalue(applied, i, 0));
	}
	for (i = 0; i < ms->n; i++) {
		m = &ms->list[i];
		if (migrate_find(applied, m->version) != -1)
			continue;
		if (m->version < newest)
			ctl_warnx("warning: %s is older than applied migration "
			    "%03d; applying it out of order", m->name, newest);
		if (migrate_apply(ctl, m) != 0)
			return (-1);
		n++;
	}
	return (n);
}

/* vialwatchctl migrate: bring the schema up to date. */
int
ctl_migrate(struct ctl *ctl, int argc, char **argv)
{
	struct migrations	 ms;
	PGresult		*applied;
	int			 n, total;

	if (migrate_list(ctl->sql_dir, &ms) != 0) {
		migrate_free(&ms);
		return (1);
	}
	if (migrate_prepare(ctl) != 0 || (applied = ctl_query(ctl,
	    "select version, name, checksum from vialwatch.schema_migration "
	    "order by version", 0, NULL)) == NULL) {
		migrate_free(&ms);
		return (1);
	}
	migrate_check_applied(&ms, applied);
	n = migrate_pending(ctl, &ms, applied);
	total = PQntuples(applied);
	PQclear(applied);
	migrate_free(&ms);
	if (n == -1)
		return (1);
	if (n == 0)
		printf("schema is up to date (%d migration%s)\n", total,
		    total == 1 ? "" : "s");
	return (0);
}
