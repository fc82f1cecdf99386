/*
 * vialwatchctl offset: a probe that reads a known amount off is corrected
 * from now (or a later --from) on, by a person with a reason.  Readings
 * already stored keep the value they were stored with; the daemons load
 * the new offset at once (NOTIFY vialwatch_reference).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ctl.h"

/* $1 sensor, $2 offset, $3 from (null: now), $4 reason, $5 by. */
static const char offset_set_sql[] =
    "select s.key, o.offset_c, to_char(o.effective_from,"
    " 'YYYY-MM-DD HH24:MI:SSOF'), coalesce((select p.offset_c"
    "  from vialwatch.sensor_offset p where p.sensor_id = o.sensor_id"
    "  and p.effective_from < o.effective_from"
    "  order by p.effective_from desc limit 1), 0)"
    " from vialwatch.sensor_offset_set($1, $2::double precision,"
    " $3::timestamptz, $4, $5::bigint) o"
    " join vialwatch.sensor s on s.id = o.sensor_id";

#define OFFSET_ROWS							\
    "select s.key, coalesce(c.name || ' / ' || f.name, '-') as fridge,"	\
    " o.offset_c, o.effective_from, o.effective_from = (select"	\
    "  max(p.effective_from) from vialwatch.sensor_offset p"		\
    "  where p.sensor_id = o.sensor_id and p.effective_from <= now())"	\
    "  as current, ct.email as set_by, o.set_at, o.reason"		\
    " from vialwatch.sensor_offset o"					\
    " join vialwatch.sensor s on s.id = o.sensor_id"			\
    " join vialwatch.contact ct on ct.id = o.set_by"			\
    " left join vialwatch.fridge f on f.id = s.fridge_id"		\
    " left join vialwatch.clinic c on c.id = f.clinic_id"

static const char offset_list_sql[] =
    "select key, fridge, to_char(offset_c, 'SG990.99'),"
    " to_char(effective_from, 'YYYY-MM-DD HH24:MI:SSOF'),"
    " case when current then 'current' when effective_from > now()"
    "  then 'to come' else 'past' end, set_by,"
    " regexp_replace(reason, '\\s+', ' ', 'g')"
    " from (" OFFSET_ROWS ") r order by key, effective_from";

static const char offset_json_sql[] =
    "select coalesce(json_agg(json_build_object('sensor', key, 'fridge',"
    " fridge, 'offset_c', offset_c, 'effective_from', effective_from,"
    " 'current', current, 'set_by', set_by, 'set_at', set_at, 'reason',"
    " reason) order by key, effective_from), '[]')"
    " from (" OFFSET_ROWS ") r";

/* vialwatchctl offset list [--json] */
static int
offset_list(struct ctl *ctl, int argc, char **argv)
{
	static const char *const	 head[] = { "SENSOR", "FRIDGE",
					    "OFFSET_C", "FROM", "", "SET_BY",
					    "REASON" };
	PGresult			*res;
	int				 json = ctl_json, n;

	if (argc == 3 && strcmp(argv[2], "--json") == 0)
		json = 1;
	else if (argc != 2)
		return (CTL_USAGE);
	res = ctl_query(ctl, json ? offset_json_sql : offset_list_sql, 0, NULL);
	if (res == NULL)
		return (1);
	if (json)
		printf("%s\n", PQgetvalue(res, 0, 0));
	else if ((n = PQntuples(res)) == 0)
		printf("no offsets\n");
	else {
		ctl_table(res, head, 7);
		printf("%d offset%s\n", n, n == 1 ? "" : "s");
	}
	PQclear(res);
	return (0);
}

/* The offset argument: a finite number of °C; 0 or -1 (reported). */
static int
offset_number(const char *s)
{
	char	*end;
	double	 v;

	v = strtod(s, &end);
	if (end == s || *end != '\0' || !isfinite(v)) {
		ctl_warnx("offset: \"%s\" is not a number of °C (e.g. -1.5)", s);
		return (-1);
	}
	return (0);
}

/* vialwatchctl offset SENSOR OFFSET_C [--from TIME] --by WHO --reason TEXT */
static int
offset_set(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "by", required_argument, NULL, 'b' },
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*p[5] = { NULL }, *by = NULL;
	char				 who[24];
	long long			 id;
	PGresult			*res;
	int				 ch;

	if (argc < 3 || offset_number(argv[2]) != 0)
		return (CTL_USAGE);
	optind = 0;
	/* Options after the offset, which may be negative. */
	while ((ch = getopt_long(argc - 2, argv + 2, "+", longopts,
	    NULL)) != -1) {
		if (ch == 'f')
			p[2] = optarg;
		else if (ch == 'b')
			by = optarg;
		else if (ch == 'r')
			p[3] = optarg;
		else
			return (CTL_USAGE);
	}
	if (optind != argc - 2) {
		ctl_warnx("offset: unexpected argument: %s", argv[optind + 2]);
		return (CTL_USAGE);
	}
	if (p[3] == NULL || strspn(p[3], " \t") == strlen(p[3])) {
		ctl_warnx("offset: --reason is required: why the probe is "
		    "corrected (e.g. the reference thermometer's reading)");
		return (CTL_USAGE);
	}
	if (ctl_exec(ctl, "begin") != 0 || (id = ctl_actor(ctl, by, p[3])) < 0)
		return (1);
	snprintf(who, sizeof who, "%lld", id);
	p[0] = argv[1];
	p[1] = argv[2];
	p[4] = who;
	if ((res = ctl_query(ctl, offset_set_sql, 5, p)) == NULL)
		return (1);
	printf("sensor %s: offset %+g °C from %s (before: %+g °C); readings "
	    "stored before keep their values\n", PQgetvalue(res, 0, 0),
	    strtod(PQgetvalue(res, 0, 1), NULL), PQgetvalue(res, 0, 2),
	    strtod(PQgetvalue(res, 0, 3), NULL));
	PQclear(res);
	return (ctl_exec(ctl, "commit") == 0 ? 0 : 1);
}

/* vialwatchctl offset SENSOR OFFSET_C ... | offset list [--json] */
int
ctl_offset(struct ctl *ctl, int argc, char **argv)
{
	int	rc;

	ctl->context = "offset";
	if (strcmp(argv[1], "list") == 0)
		rc = offset_list(ctl, argc, argv);
	else
		rc = offset_set(ctl, argc, argv);
	ctl->context = NULL;
	return (rc);
}
