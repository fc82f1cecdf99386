/* ctl.c: vialwatchctl, the admin tool: options, connection, commands. */
#ifndef CTL_H
#define CTL_H

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

/* ctl-ack.c */
int		 ctl_ack(struct ctl *, int, char **);
int		 ctl_excursions(struct ctl *, int, char **);

/* ctl-import.c */
int		 ctl_import(struct ctl *, int, char **);

/* ctl-status.c */
int		 ctl_status(struct ctl *, int, char **);

/* ctl-report.c */
int		 ctl_report(struct ctl *, int, char **);

#endif
