/*
 * vialwatchctl ack and excursions: acknowledging an alarm from the shell,
 * as the page of the email's link does, and listing excursions.
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
#include "xmalloc.h"

/*
 * The excursions: open ones, and those of the last days.  An unassigned
 * sensor's excursions keep the fridge they happened in.
 */
static const char excursions_sql[] =
    "select e.id, c.name, f.name, e.kind,"
    " to_char(e.started_at at time zone c.timezone, 'YYYY-MM-DD HH24:MI'),"
    " coalesce(to_char(e.ended_at at time zone c.timezone,"
    "  'YYYY-MM-DD HH24:MI'), 'open'),"
    " case when e.alarmed_at is null then 'no' else 'yes' end,"
    " coalesce(round(e.peak_c::numeric, 1)::text, ''),"
    " coalesce(e.acked_by || ' ' || to_char(e.acked_at at time zone"
    "  c.timezone, 'YYYY-MM-DD HH24:MI'), case when e.alarmed_at is not null"
    "  and e.kind not in ('battery', 'warning') then 'NOT ACKNOWLEDGED'"
    "  else '' end),"
    " (select count(*) from vialwatch.excursion_lot el"
    "  where el.excursion_id = e.id)"
    " from vialwatch.excursion e"
    " join vialwatch.fridge f on f.id = e.fridge_id"
    " join vialwatch.clinic c on c.id = f.clinic_id"
    " where e.ended_at is null"
    "  or e.started_at > now() - $1::integer * interval '1 day'"
    " order by e.started_at desc, e.id desc";

/* vialwatchctl excursions [--days N] */
int
ctl_excursions(struct ctl *ctl, int argc, char **argv)
{
	static const char *const	 head[] = { "ID", "CLINIC", "FRIDGE",
					    "KIND", "STARTED", "ENDED",
					    "ALARMED", "PEAK_C",
					    "ACKNOWLEDGED", "LOTS" };
	static const struct option	 longopts[] = {
		{ "days", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*days = "7", *params[1];
	char				 none[80];
	PGresult			*res;
	int				 ch;

	ctl->context = "excursions";
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+d:", longopts, NULL)) != -1) {
		if (ch != 'd')
			return (CTL_USAGE);
		days = optarg;
	}
	if (optind != argc) {
		ctl_warnx("excursions: unexpected argument: %s", argv[optind]);
		return (CTL_USAGE);
	}
	if (ctl_check_id(days) != 0 || strlen(days) > 5) {
		ctl_warnx("excursions: bad --days \"%s\": expected a number of "
		    "days", days);
		return (1);
	}
	params[0] = days;
	if ((res = ctl_query(ctl, excursions_sql, 1, params)) == NULL)
		return (1);
	snprintf(none, sizeof none, "no excursions open or in the last %s "
	    "days", days);
	ctl_list(res, head, 10, none);
	PQclear(res);
	return (0);
}

/* vialwatchctl ack ID --by WHO --note TEXT */
int
ctl_ack(struct ctl *ctl, int argc, char **argv)
{
	const char	*params[4], *hp[1];
	PGresult	*res;
	int		 rc;

	ctl->context = "ack";
	if (argc < 2)
		return (CTL_USAGE);
	if ((rc = ctl_parse_decision("ack", "excursion", argc - 1, argv + 1,
	    &params[1], &params[2])) != 0)
		return (rc == CTL_USAGE ? CTL_USAGE : 1);
	params[0] = argv[1];
	params[3] = NULL;
	/* --by names a contact: acked_by is their name. */
	if (ctl_actor(ctl, params[1], params[2]) < 0)
		return (1);

	/* The hooks of excursion.ack run as they would from the page. */
	hp[0] = ctl->conf->hooks_json;
	res = ctl_query(ctl, "select set_config('vialwatch.hooks', $1, false)",
	    1, hp);
	if (res == NULL)
		return (1);
	PQclear(res);

	res = ctl_query(ctl, "select acked_now, to_char(acked_at,"
	    " 'YYYY-MM-DD HH24:MI:SS TZ'), acked_by, coalesce(action_note, '')"
	    " from vialwatch.excursion_ack($1::bigint, $2, $3, $4)", 4, params);
	if (res == NULL)
		return (1);
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		printf("excursion %s acknowledged by %s at %s\n", argv[1],
		    PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 1));
		rc = 0;
	} else {
		ctl_warnx("ack: excursion %s was already acknowledged by %s at "
		    "%s: %s", argv[1], PQgetvalue(res, 0, 2),
		    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 3));
		rc = 1;
	}
	PQclear(res);
	return (rc);
}
