/*
 * vialwatchctl check and holiday: the workday min/max check recorded from
 * the shell, as the page of the check email's link does, and the days a
 * clinic is closed.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ctl.h"

/* check FRIDGE --by WHO [--note TEXT] */
int
ctl_check(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "by", required_argument, NULL, 'b' },
		{ "note", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*by = NULL, *params[3];
	char				 contact[24];
	long long			 id;
	PGresult			*res;
	int				 ch;

	ctl->context = "check";
	params[2] = NULL;
	if (argc < 2)
		return (CTL_USAGE);
	optind = 0;
	while ((ch = getopt_long(argc - 1, argv + 1, "+b:n:", longopts,
	    NULL)) != -1) {
		if (ch == 'b')
			by = optarg;
		else if (ch == 'n')
			params[2] = optarg;
		else
			return (CTL_USAGE);
	}
	if (optind != argc - 1)
		return (CTL_USAGE);
	if (ctl_check_id(argv[1]) != 0) {
		ctl_warnx("check: bad fridge id \"%s\": expected a number",
		    argv[1]);
		return (1);
	}
	if ((id = ctl_actor(ctl, by, NULL)) < 0)
		return (1);
	snprintf(contact, sizeof contact, "%lld", id);
	params[0] = argv[1];
	params[1] = contact;
	res = ctl_query(ctl, "select f.name, ct.name, to_char(d.checked_at at"
	    " time zone c.timezone, 'YYYY-MM-DD HH24:MI'),"
	    " coalesce(round(d.current_c::numeric, 1)::text, 'no reading'),"
	    " coalesce(round(d.min_c::numeric, 1)::text, '-'),"
	    " coalesce(round(d.max_c::numeric, 1)::text, '-'),"
	    " case when d.out_of_range then ' (out of range)' else '' end"
	    " from vialwatch.check_record($1::bigint, $2::bigint, $3, now(),"
	    "  'vialwatchctl') d"
	    " join vialwatch.fridge f on f.id = d.fridge_id"
	    " join vialwatch.clinic c on c.id = f.clinic_id"
	    " join vialwatch.contact ct on ct.id = d.contact_id", 3, params);
	if (res == NULL)
		return (1);
	printf("fridge %s (%s) checked by %s at %s: now %s, min %s, max %s "
	    "\xc2\xb0" "C%s\n", argv[1], PQgetvalue(res, 0, 0),
	    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
	    PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6));
	PQclear(res);
	return (0);
}

/* The clinic's id for an id or a name, or NULL (reported); to free. */
static char *
holiday_clinic(struct ctl *ctl, const char *clinic)
{
	const char	*params[1] = { clinic };
	PGresult	*res;
	char		*id = NULL;

	res = ctl_query(ctl, "select id from vialwatch.clinic"
	    " where name = $1 or id::text = $1 order by name = $1 desc limit 1",
	    1, params);
	if (res == NULL)
		return (NULL);
	if (PQntuples(res) == 1)
		id = strdup(PQgetvalue(res, 0, 0));
	else
		ctl_warnx("holiday: no clinic \"%s\" (an id or a name)",
		    clinic);
	PQclear(res);
	return (id);
}

/* holiday add CLINIC DATE [--name TEXT] [--by WHO] */
static int
holiday_add(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "by", required_argument, NULL, 'b' },
		{ "name", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*by = NULL, *params[4];
	char				*clinic, contact[24];
	long long			 who;
	PGresult			*res;
	int				 ch;

	params[2] = params[3] = NULL;
	if (argc < 3)
		return (CTL_USAGE);
	optind = 0;
	while ((ch = getopt_long(argc - 2, argv + 2, "+b:N:", longopts,
	    NULL)) != -1) {
		if (ch == 'b')
			by = optarg;
		else if (ch == 'N')
			params[2] = optarg;
		else
			return (CTL_USAGE);
	}
	if (optind != argc - 2)
		return (CTL_USAGE);
	if ((clinic = holiday_clinic(ctl, argv[1])) == NULL)
		return (1);
	if (by != NULL) {
		if ((who = ctl_actor(ctl, by, NULL)) < 0) {
			free(clinic);
			return (1);
		}
		snprintf(contact, sizeof contact, "%lld", who);
		params[3] = contact;
	}
	params[0] = clinic;
	params[1] = argv[2];
	res = ctl_query(ctl, "insert into vialwatch.holiday (clinic_id, day,"
	    " name, added_by) values ($1::bigint, $2::date, $3, $4::bigint)"
	    " on conflict (clinic_id, day) do nothing returning day", 4,
	    params);
	free(clinic);
	if (res == NULL)
		return (1);
	if (PQntuples(res) == 1)
		printf("holiday %s added for clinic %s\n", PQgetvalue(res, 0, 0),
		    argv[1]);
	else
		printf("holiday %s of clinic %s was there already\n",
		    argv[2], argv[1]);
	PQclear(res);
	return (0);
}

/* holiday list CLINIC [--json] */
static int
holiday_list(struct ctl *ctl, int argc, char **argv)
{
	static const char *const	 head[] = { "DAY", "WEEKDAY", "NAME" };
	const char			*params[1];
	char				*clinic;
	PGresult			*res;
	int				 json;

	json = ctl_json || (argc == 3 && strcmp(argv[2], "--json") == 0);
	if (argc != 2 && !json)
		return (CTL_USAGE);
	if ((clinic = holiday_clinic(ctl, argv[1])) == NULL)
		return (1);
	params[0] = clinic;
	if (json)
		res = ctl_query(ctl, "select coalesce(json_agg(json_build_object("
		    "'day', day, 'name', name) order by day), '[]')"
		    " from vialwatch.holiday where clinic_id = $1::bigint", 1,
		    params);
	else
		res = ctl_query(ctl, "select day, to_char(day, 'FMDay'),"
		    " coalesce(name, '') from vialwatch.holiday"
		    " where clinic_id = $1::bigint order by day", 1, params);
	free(clinic);
	if (res == NULL)
		return (1);
	if (json)
		printf("%s\n", PQgetvalue(res, 0, 0));
	else if (PQntuples(res) == 0)
		printf("no holidays\n");
	else
		ctl_table(res, head, 3);
	PQclear(res);
	return (0);
}

/* vialwatchctl holiday add|list ... */
int
ctl_holiday(struct ctl *ctl, int argc, char **argv)
{
	ctl->context = "holiday";
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return (holiday_add(ctl, argc - 1, argv + 1));
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return (holiday_list(ctl, argc - 1, argv + 1));
	return (CTL_USAGE);
}
