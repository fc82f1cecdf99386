/*
 * vialwatchctl partitions: the month partitions of vialwatch.reading, how
 * many rows each holds (the planner's estimate) and until when [database]
 * retention keeps it; with --apply, first the maintenance
 * (sql/010_staying_loud.sql): partitions made ahead, and old ones dropped
 * once a day has passed since they were first found past the retention
 * (by the daemon, or by an earlier --apply); until then they are listed
 * as expiring.  Only an admin's role may drop.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "conf.h"
#include "ctl.h"
#include "retention.h"

#define PARTITIONS_RETENTION	"($1::bigint * interval '1 millisecond')"

static const char partitions_sql[] =
    "select name,"
    " coalesce(to_char(lower_bound at time zone 'UTC', 'YYYY-MM'), 'other'),"
    " coalesce(rows_estimate::text, '-'),"
    " case when is_default then 'always (default partition)'"
    " when upper_bound is null then 'always (not a month)'"
    " else to_char((upper_bound + " PARTITIONS_RETENTION ")"
    "  at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' end"
    " from vialwatch.reading_partition"
    " order by is_default, lower_bound, name";

static const char maintain_sql[] =
    "select action, partition, month,"
    " to_char(drop_after at time zone 'UTC', 'YYYY-MM-DD HH24:MI')"
    " from vialwatch.reading_partitions_maintain(" PARTITIONS_RETENTION
    ", $2::integer, true)";

/* Run the maintenance and print what it did; 0 or -1 (reported). */
static int
partitions_apply(struct ctl *ctl, const char *const *params)
{
	FILE		*out = ctl_json ? stderr : stdout;	/* JSON lists */
	PGresult	*res;
	int		 i, n;

	ctl->context = "partitions --apply";
	res = ctl_query(ctl, maintain_sql, 2, params);
	ctl->context = NULL;
	if (res == NULL)
		return (-1);
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		if (strcmp(PQgetvalue(res, i, 0), "expiring") == 0)
			fprintf(out, "expiring partition %s (%s): past the "
			    "retention, dropped by --apply from %s UTC\n",
			    PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
			    PQgetvalue(res, i, 3));
		else
			fprintf(out, "%s partition %s (%s)\n", PQgetvalue(res, i, 0),
			    PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
	}
	if (n == 0)
		fprintf(out, "partitions up to date: nothing created or dropped\n");
	PQclear(res);
	return (0);
}

/* vialwatchctl partitions [--apply] */
int
ctl_partitions(struct ctl *ctl, int argc, char **argv)
{
	static const char *const	 head[] = { "PARTITION", "MONTH",
					    "ROWS_ESTIMATE", "KEPT_UNTIL" };
	const char			*params[2];
	char				 ms[32], ahead[16];
	long long			 days;
	PGresult			*res;
	int				 apply = 0;

	if (argc == 2 && strcmp(argv[1], "--apply") == 0)
		apply = 1;
	else if (argc != 1) {
		ctl_warnx("partitions: unexpected argument: %s", argv[1]);
		return (CTL_USAGE);
	}
	snprintf(ms, sizeof ms, "%lld", (long long)ctl->conf->db_retention_ms);
	snprintf(ahead, sizeof ahead, "%d", RETENTION_AHEAD_MONTHS);
	params[0] = ms;
	params[1] = ahead;
	if (apply && partitions_apply(ctl, params) != 0)
		return (1);

	if ((res = ctl_query(ctl, partitions_sql, 1, params)) == NULL)
		return (1);
	ctl_table(res, head, 4);
	days = ctl->conf->db_retention_ms / 86400000;
	if (!ctl_json)
		printf("%d partition%s; [database] retention %lld days%s\n",
	    PQntuples(res), PQntuples(res) == 1 ? "" : "s", days,
	    days < 3 * 365 ? ", below the CDC's minimum of 3 years" : "");
	PQclear(res);
	return (0);
}
