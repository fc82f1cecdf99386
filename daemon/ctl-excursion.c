/*
 * vialwatchctl excursion show|close-out: an excursion's Troubleshooting
 * Record (the CDC's), and closing it out from the shell as the close-out
 * form of the acknowledge page does.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "ctl.h"
#include "xmalloc.h"

/* The options of close-out, in the order of their SQL parameters. */
enum {
	CLOSEOUT_ROOM, CLOSEOUT_CAUSE, CLOSEOUT_PREVENTIVE, CLOSEOUT_MFR_BY,
	CLOSEOUT_MFR_AT, CLOSEOUT_MFR_CASE, CLOSEOUT_MFR_GUIDANCE,
	CLOSEOUT_NFIELDS
};

static const char closeout_sql[] =
    "select to_char(e.closed_out_at at time zone c.timezone,"
    "  'YYYY-MM-DD HH24:MI'), coalesce(round(e.out_minutes_est::numeric,"
    "  1)::text, '-')"
    " from vialwatch.excursion x"
    " join vialwatch.fridge f on f.id = x.fridge_id"
    " join vialwatch.clinic c on c.id = f.clinic_id"
    " cross join lateral vialwatch.excursion_closeout(x.id, $2::bigint,"
    "  now(), $3::float8, $4, $5, $6, $7::timestamp at time zone c.timezone,"
    "  $8, $9, $10::jsonb) e"
    " where x.id = $1::bigint";

/* --lot ID=DISPOSITION[:NOTE] into the array a; 0, or -1 (reported). */
static int
closeout_lot(json_object *a, const char *arg)
{
	json_object	*o;
	const char	*eq, *colon;
	char		*id;

	if ((eq = strchr(arg, '=')) == NULL || eq == arg) {
		ctl_warnx("excursion: bad --lot \"%s\": expected "
		    "ID=DISPOSITION[:NOTE]", arg);
		return (-1);
	}
	id = xstrndup(arg, eq - arg);
	if (ctl_check_id(id) != 0) {
		ctl_warnx("excursion: bad lot id \"%s\"", id);
		free(id);
		return (-1);
	}
	o = json_object_new_object();
	json_object_object_add(o, "lot", json_object_new_string(id));
	free(id);
	if ((colon = strchr(eq + 1, ':')) != NULL) {
		json_object_object_add(o, "disposition",
		    json_object_new_string_len(eq + 1, (int)(colon - eq - 1)));
		json_object_object_add(o, "note",
		    json_object_new_string(colon + 1));
	} else
		json_object_object_add(o, "disposition",
		    json_object_new_string(eq + 1));
	json_object_array_add(a, o);
	return (0);
}

/* excursion close-out ID --by WHO --cause T --preventive T ... */
static int
excursion_closeout(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "room-c", required_argument, NULL, CLOSEOUT_ROOM },
		{ "cause", required_argument, NULL, CLOSEOUT_CAUSE },
		{ "preventive", required_argument, NULL, CLOSEOUT_PREVENTIVE },
		{ "manufacturer-by", required_argument, NULL, CLOSEOUT_MFR_BY },
		{ "manufacturer-at", required_argument, NULL, CLOSEOUT_MFR_AT },
		{ "case", required_argument, NULL, CLOSEOUT_MFR_CASE },
		{ "guidance", required_argument, NULL, CLOSEOUT_MFR_GUIDANCE },
		{ "by", required_argument, NULL, 'b' },
		{ "lot", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*by = NULL, *params[10];
	char				 contact[24];
	json_object			*lots;
	long long			 who;
	PGresult			*res;
	int				 ch, rc = 1;

	if (argc < 2)
		return (CTL_USAGE);
	memset(params, 0, sizeof params);
	lots = json_object_new_array();
	optind = 0;
	while ((ch = getopt_long(argc - 1, argv + 1, "+b:", longopts,
	    NULL)) != -1) {
		if (ch == 'b')
			by = optarg;
		else if (ch == 'l') {
			if (closeout_lot(lots, optarg) != 0)
				goto out;
		} else if (ch >= 0 && ch < CLOSEOUT_NFIELDS)
			params[2 + ch] = optarg;
		else {
			rc = CTL_USAGE;
			goto out;
		}
	}
	if (optind != argc - 1) {
		rc = CTL_USAGE;
		goto out;
	}
	if (ctl_check_id(argv[1]) != 0) {
		ctl_warnx("excursion: bad excursion id \"%s\"", argv[1]);
		goto out;
	}
	if ((who = ctl_actor(ctl, by, NULL)) < 0)
		goto out;
	snprintf(contact, sizeof contact, "%lld", who);
	params[0] = argv[1];
	params[1] = contact;
	params[9] = json_object_to_json_string(lots);
	if ((res = ctl_query(ctl, closeout_sql, 10, params)) == NULL)
		goto out;
	if (PQntuples(res) == 0)
		ctl_warnx("excursion: no excursion %s", argv[1]);
	else {
		printf("excursion %s closed out by %s at %s (about %s minutes "
		    "out of range)\n", argv[1], by, PQgetvalue(res, 0, 0),
		    PQgetvalue(res, 0, 1));
		rc = 0;
	}
	PQclear(res);
out:
	json_object_put(lots);
	return (rc);
}

/* excursion show ID [--json] */
static int
excursion_show(struct ctl *ctl, int argc, char **argv)
{
	const char	*params[1];
	PGresult	*res;
	int		 i, json, width = 0, len;

	json = ctl_json || (argc == 3 && strcmp(argv[2], "--json") == 0);
	if (argc != 2 && !json)
		return (CTL_USAGE);
	if (ctl_check_id(argv[1]) != 0) {
		ctl_warnx("excursion: bad excursion id \"%s\"", argv[1]);
		return (1);
	}
	params[0] = argv[1];
	if (json)
		res = ctl_query(ctl, "select json_object_agg(field, value)"
		    " from vialwatch.excursion_record($1::bigint, now())"
		    " having count(*) > 0", 1, params);
	else
		res = ctl_query(ctl, "select field, value from"
		    " vialwatch.excursion_record($1::bigint, now())", 1,
		    params);
	if (res == NULL)
		return (1);
	if (PQntuples(res) == 0) {
		ctl_warnx("excursion: no excursion %s", argv[1]);
		PQclear(res);
		return (1);
	}
	if (json)
		printf("%s\n", PQgetvalue(res, 0, 0));
	for (i = 0; !json && i < PQntuples(res); i++) {
		if ((len = PQgetlength(res, i, 0)) > width)
			width = len;
	}
	for (i = 0; !json && i < PQntuples(res); i++)
		printf("%s:%*s %s\n", PQgetvalue(res, i, 0),
		    width - PQgetlength(res, i, 0), "", PQgetvalue(res, i, 1));
	PQclear(res);
	return (0);
}

/* vialwatchctl excursion show|close-out ID ... */
int
ctl_excursion(struct ctl *ctl, int argc, char **argv)
{
	ctl->context = "excursion";
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return (excursion_show(ctl, argc - 1, argv + 1));
	if (argc >= 2 && strcmp(argv[1], "close-out") == 0)
		return (excursion_closeout(ctl, argc - 1, argv + 1));
	return (CTL_USAGE);
}
