/*
 * vialwatchctl maintenance: a window during which a fridge's high, low and
 * door alarms page nobody (restocking, cleaning, a defrost by hand). It
 * ends by itself, at most [alerts] maintenance_max after it starts; the
 * rules and the emails are in sql/016_inputs.sql.
 *
 *   maintenance FRIDGE --for 45m --by WHO --reason TEXT
 *   maintenance end FRIDGE --by WHO
 *   maintenance list [--json]
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conf.h"
#include "ctl.h"

/* The windows of the last 30 days and those to come, newest first. */
static const char maintenance_list_sql[] =
    "select m.id, m.clinic, m.fridge_id, m.fridge,"
    " to_char(m.starts_at at time zone m.timezone, 'YYYY-MM-DD HH24:MI'),"
    " to_char(m.ends_at at time zone m.timezone, 'YYYY-MM-DD HH24:MI'),"
    " case when m.active then 'active' when m.starts_at > now()"
    "  then 'planned' else 'over' end,"
    " m.started_by, coalesce(m.ended_by, ''), m.reason"
    " from vialwatch.maintenance_report m"
    " where m.ends_at > now() - interval '30 days'"
    " order by m.starts_at desc, m.id desc";

static const char maintenance_json_sql[] =
    "select coalesce(json_agg(json_build_object('id', m.id, 'clinic',"
    " m.clinic, 'fridge_id', m.fridge_id, 'fridge', m.fridge, 'starts_at',"
    " m.starts_at, 'ends_at', m.ends_at, 'planned_end', m.planned_end,"
    " 'active', m.active, 'started_by', m.started_by, 'ended_by',"
    " m.ended_by, 'reason', m.reason) order by m.starts_at desc, m.id desc),"
    " '[]')"
    " from vialwatch.maintenance_report m"
    " where m.ends_at > now() - interval '30 days'";

/* Options of the maintenance commands; 0 or CTL_USAGE. */
static int
maintenance_options(int argc, char **argv, const char **dur, const char **by,
    const char **reason)
{
	static const struct option	 longopts[] = {
		{ "for", required_argument, NULL, 'f' },
		{ "by", required_argument, NULL, 'b' },
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	int				 ch;

	*dur = *by = *reason = NULL;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+f:b:r:", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'f':
			*dur = optarg;
			break;
		case 'b':
			*by = optarg;
			break;
		case 'r':
			*reason = optarg;
			break;
		default:
			return (CTL_USAGE);
		}
	}
	if (optind != argc) {
		ctl_warnx("maintenance: unexpected argument: %s", argv[optind]);
		return (CTL_USAGE);
	}
	return (0);
}

/* maintenance list [--json] */
static int
maintenance_list(struct ctl *ctl, int argc, char **argv)
{
	static const char *const	 head[] = { "ID", "CLINIC", "FRIDGE_ID",
					    "FRIDGE", "STARTS", "ENDS",
					    "STATE", "STARTED_BY", "ENDED_BY",
					    "REASON" };
	PGresult			*res;
	int				 json;

	json = ctl_json || (argc == 2 && strcmp(argv[1], "--json") == 0);
	if (argc != 1 && !json)
		return (CTL_USAGE);
	res = ctl_query(ctl, json ? maintenance_json_sql :
	    maintenance_list_sql, 0, NULL);
	if (res == NULL)
		return (1);
	if (json)
		printf("%s\n", PQgetvalue(res, 0, 0));
	else if (PQntuples(res) == 0)
		printf("no maintenance windows in the last 30 days\n");
	else
		ctl_table(res, head, 10);
	PQclear(res);
	return (0);
}

/* maintenance end FRIDGE --by WHO */
static int
maintenance_end(struct ctl *ctl, int argc, char **argv)
{
	const char	*dur, *by, *reason, *params[1];
	PGresult	*res;
	int		 rc;

	if (argc < 2)
		return (CTL_USAGE);
	if ((rc = maintenance_options(argc - 1, argv + 1, &dur, &by,
	    &reason)) != 0 || dur != NULL)
		return (CTL_USAGE);
	if (ctl_check_id(argv[1]) != 0) {
		ctl_warnx("maintenance: bad fridge id \"%s\"", argv[1]);
		return (1);
	}
	if (ctl_actor(ctl, by, reason) == -1)
		return (1);
	params[0] = argv[1];
	res = ctl_query(ctl, "select vialwatch.maintenance_end($1::bigint)", 1,
	    params);
	if (res == NULL)
		return (1);
	rc = atoi(PQgetvalue(res, 0, 0)) > 0 ? 0 : 1;
	if (rc == 0)
		printf("maintenance of fridge %s ended: its alarms page as "
		    "usual\n", argv[1]);
	else
		ctl_warnx("maintenance: fridge %s has no window open", argv[1]);
	PQclear(res);
	return (rc);
}

/* maintenance FRIDGE --for D --by WHO --reason TEXT */
static int
maintenance_start(struct ctl *ctl, int argc, char **argv)
{
	const char	*dur, *by, *reason, *params[4];
	char		 forbuf[32], maxbuf[32];
	int64_t		 ms;
	PGresult	*res;

	if (maintenance_options(argc, argv, &dur, &by, &reason) != 0)
		return (CTL_USAGE);
	if (ctl_check_id(argv[0]) != 0) {
		ctl_warnx("maintenance: bad fridge id \"%s\"", argv[0]);
		return (1);
	}
	if (dur == NULL || conf_parse_duration(dur, &ms) != 0 || ms <= 0) {
		ctl_warnx("maintenance: --for needs a duration such as 45m or "
		    "2h");
		return (CTL_USAGE);
	}
	if (reason == NULL || strspn(reason, " \t") == strlen(reason)) {
		ctl_warnx("maintenance: --reason is required: what is being "
		    "done to the fridge");
		return (CTL_USAGE);
	}
	if (ctl_actor(ctl, by, reason) == -1)
		return (1);
	snprintf(forbuf, sizeof forbuf, "%lld milliseconds", (long long)ms);
	snprintf(maxbuf, sizeof maxbuf, "%lld milliseconds",
	    (long long)ctl->conf->alerts_maintenance_max_ms);
	params[0] = argv[0];
	params[1] = forbuf;
	params[2] = maxbuf;
	params[3] = reason;
	res = ctl_query(ctl, "select m.id, to_char(m.ends_at at time zone"
	    " c.timezone, 'YYYY-MM-DD HH24:MI'), c.timezone"
	    " from vialwatch.maintenance_start($1::bigint, $2::interval,"
	    " $3::interval, $4) m"
	    " join vialwatch.fridge f on f.id = m.fridge_id"
	    " join vialwatch.clinic c on c.id = f.clinic_id", 4, params);
	if (res == NULL)
		return (1);
	printf("maintenance %s of fridge %s until %s (%s): high, low and door "
	    "alarms page nobody\nuntil then, except beyond a critical bound\n",
	    PQgetvalue(res, 0, 0), argv[0], PQgetvalue(res, 0, 1),
	    PQgetvalue(res, 0, 2));
	PQclear(res);
	return (0);
}

/* vialwatchctl maintenance ... */
int
ctl_maintenance(struct ctl *ctl, int argc, char **argv)
{
	ctl->context = "maintenance";
	if (argc < 2)
		return (CTL_USAGE);
	if (strcmp(argv[1], "list") == 0)
		return (maintenance_list(ctl, argc - 1, argv + 1));
	if (strcmp(argv[1], "end") == 0)
		return (maintenance_end(ctl, argc - 1, argv + 1));
	return (maintenance_start(ctl, argc - 1, argv + 1));
}
