/* ctl.c: vialwatchctl, the admin tool: options, connection, commands. */
#ifndef CTL_H
#define CTL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "log.h"

struct conf;

/* What every command is given. */
struct ctl {
	const char	*conf_path;
	const char	*sql_dir;	/* -s, $VIALWATCH_SQLDIR or SQLDIR */
	struct conf	*conf;
	PGconn		*conn;
	const char	*context;	/* prefix of notices and errors */
};

/*
 * A command returns its exit status, or CTL_USAGE for bad arguments:
 * vialwatchctl then prints the command's usage and exits CTL_EXIT_USAGE.
 */
#define CTL_USAGE	(-2)	/* not -1, which is "failed, reported" */
#define CTL_EXIT_USAGE	2

/* ctl.c */
void		 ctl_warnx(const char *, ...) PRINTFLIKE(1, 2);
int		 ctl_check_id(const char *);
void		 ctl_pg_error(struct ctl *, const PGresult *, const char *,
		     int);
PGresult	*ctl_query(struct ctl *, const char *, int,
		     const char *const *);
int		 ctl_exec(struct ctl *, const char *);
int		 ctl_parse_decision(const char *, const char *, int, char **,
		     const char **, const char **);

/* ctl-actor.c */
char		*ctl_actor_os_user(void);
long long	 ctl_actor(struct ctl *, const char *, const char *);
int		 ctl_actor_args(const char *, int *, char **, const char **,
		     const char **);

/* ctl-migrate.c */
int		 ctl_migrate(struct ctl *, int, char **);

/* ctl-partitions.c */
int		 ctl_partitions(struct ctl *, int, char **);

/* ctl-table.c */
extern int	 ctl_json;	/* --json: listings as JSON */
void		 ctl_table(const PGresult *, const char *const *, int);
int		 ctl_list(const PGresult *, const char *const *, int,
		     const char *);

/* ctl-fridge.c */
int		 ctl_fridges(struct ctl *, int, char **);
int		 ctl_assign(struct ctl *, int, char **);
int		 ctl_unassign(struct ctl *, int, char **);
int		 ctl_lots(struct ctl *, int, char **);
int		 ctl_fridge(struct ctl *, int, char **);

/* ctl-ack.c */
int		 ctl_ack(struct ctl *, int, char **);
int		 ctl_excursions(struct ctl *, int, char **);

/* ctl-check.c */
int		 ctl_check(struct ctl *, int, char **);
int		 ctl_holiday(struct ctl *, int, char **);

/* ctl-excursion.c */
int		 ctl_excursion(struct ctl *, int, char **);

/* ctl-audit.c */
int		 ctl_audit(struct ctl *, int, char **);

/* ctl-calibration.c */
int		 ctl_calibration(struct ctl *, int, char **);

/* ctl-offset.c */
int		 ctl_offset(struct ctl *, int, char **);

/* ctl-import.c: imports from CSV, a table of kinds. */
#define IMPORT_MAXCOLUMNS	12
#define IMPORT_ROW		(-1)	/* an error about a row, not a cell */

enum import_type {
	IMPORT_TEXT,
	IMPORT_EMAIL,
	IMPORT_YESNO,
	IMPORT_DATE,
	IMPORT_TIME,		/* or a date: 12:00 that day */
	IMPORT_NUMBER,		/* decimal, >= 0 */
	IMPORT_COUNT,		/* whole number, >= 0 */
	IMPORT_STATUS,		/* of an appointment */
	IMPORT_FUNDING,		/* of a lot */
};

struct import_column {
	const char		*name;
	enum import_type	 type;
	int			 required;
	const char		*empty;		/* an empty cell; NULL: null */
};

/* A kind of import: its columns, in the order of its table's. */
struct import_kind {
	const char			*name;
	const struct import_column	*columns;
	size_t				 ncolumns;
	const char			*table_sql;
	const char			*check_sql;
	const char			*upsert_sql;
};

/*
 * The temporary table holds every row, a cell that is bad as null.  The
 * check query returns (line, column, what, value, clinic) for each value
 * that refers to nothing, and for each row whose key an earlier row of the
 * file has ("same", the earlier line).  The upsert query, given $1 the
 * columns of the file, returns the rows inserted and those written: a
 * column the file does not have is kept as it is in a row that exists.
 */

#define IMPORT_TABLE(cols)						\
    "create temporary table import_row (line integer not null, " cols	\
    ") on commit drop"

#define IMPORT_GIVEN(col)	"'" col "' = any($1::text[])"

#define CHECK_SAME(col, key)						\
    " union all select line, '" col "', 'same', first::text, null"	\
    " from (select line, min(line) over (partition by " key ") first"	\
    "  from pg_temp.import_row where (" key ") is not null) d"		\
    " where line <> first"

#define UPSERT_COUNT							\
    " select (select count(*) from src where fresh),"			\
    " (select count(*) from up)"

/* ctl-import-calibration.c: the calibration certificates. */
extern const struct import_kind import_calibrations;
int		 ctl_import(struct ctl *, int, char **);

/* ctl-status.c */
int		 ctl_status(struct ctl *, int, char **);

/* ctl-watchdog.c */
int		 ctl_watchdog(struct ctl *, int, char **);
/* ctl-maintenance.c */
int		 ctl_maintenance(struct ctl *, int, char **);

/* ctl-report.c */
int		 ctl_report(struct ctl *, int, char **);

#endif
