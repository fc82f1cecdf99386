/*
 * vialwatchctl fridges, fridge set, assign, unassign and lots: the
 * cold-chain reference data an admin looks at and changes most, and the
 * decision on lots that an excursion put in quarantine.  The changes name
 * the person (--by) and, for limits, delays and assignments, the reason
 * that the audit trail records.
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
#include "xmalloc.h"

/* An interval as 0, 90s, 15m, 2h or 7d, as vialwatch.conf writes them. */
#define FRIDGE_DURATION(x)						\
    "(select case when d.s = 0 then '0'"				\
    " when d.s % 86400 = 0 then (d.s / 86400) || 'd'"			\
    " when d.s % 3600 = 0 then (d.s / 3600) || 'h'"			\
    " when d.s % 60 = 0 then (d.s / 60) || 'm'"				\
    " else d.s || 's' end"						\
    " from (select extract(epoch from " x ")::bigint as s) d)"

static const char fridges_sql[] =
    "select f.id, c.name, f.name, f.kind,"
    " f.low_c || ' to ' || f.high_c,"
    " f.critical_low_c || ' / ' || f.critical_high_c,"
    " " FRIDGE_DURATION("f.low_delay") " || ' / ' || "
    FRIDGE_DURATION("f.high_delay") ","
    " " FRIDGE_DURATION("f.offline_after") ","
    " coalesce((select string_agg(s.key, ' ' order by s.key)"
    "  from vialwatch.sensor s where s.fridge_id = f.id), '-'),"
    " st.state || coalesce(': ' || st.excursion_kind || ' since '"
    "  || to_char(st.excursion_started_at at time zone c.timezone,"
    "  'YYYY-MM-DD HH24:MI') || ', excursion ' || st.excursion_id, '')"
    " from vialwatch.fridge f"
    " join vialwatch.clinic c on c.id = f.clinic_id"
    " join vialwatch.fridge_status st on st.fridge_id = f.id"
    " order by c.name, f.name, f.id";

static const char lots_sql[] =
    "select l.id, c.name || ' / ' || f.name, l.product, l.lot_number,"
    " coalesce(l.expires_on::text, '-'), coalesce(l.quantity::text, '-'),"
    " l.status,"
    " coalesce((select string_agg(el.excursion_id::text, ' '"
    "  order by el.excursion_id) from vialwatch.excursion_lot el"
    "  where el.lot_id = l.id), '-'),"
    " coalesce(l.decided_by || ', ' || to_char(l.decided_at at time zone"
    "  c.timezone, 'YYYY-MM-DD HH24:MI') || ': '"
    "  || regexp_replace(coalesce(l.decision_note, ''), '\\s+', ' ', 'g'),"
    "  '-')"
    " from vialwatch.lot l"
    " join vialwatch.fridge f on f.id = l.fridge_id"
    " join vialwatch.clinic c on c.id = f.clinic_id"
    " where $1::bigint is null or l.fridge_id = $1::bigint"
    " order by c.name, f.name, l.product, l.lot_number, l.id";

/* vialwatchctl fridges: every fridge, its limits, sensors and state. */
int
ctl_fridges(struct ctl *ctl, int argc, char **argv)
{
	static const char *const	 head[] = { "ID", "CLINIC", "FRIDGE",
					    "KIND", "RANGE_C", "CRITICAL_C",
					    "DELAY_LOW/HIGH", "OFFLINE_AFTER",
					    "SENSORS", "STATE" };
	PGresult			*res;
	int				 n;

	if ((res = ctl_query(ctl, fridges_sql, 0, NULL)) == NULL)
		return (1);
	if ((n = ctl_list(res, head, 10, "no fridges")) > 0)
		printf("%d fridge%s\n", n, n == 1 ? "" : "s");
	PQclear(res);
	return (0);
}

/*
 * The sensor named by a key or an id: its row (id, key, fridge_id and
 * "clinic / fridge"), or NULL (reported).
 */
static PGresult *
fridge_find_sensor(struct ctl *ctl, const char *name)
{
	const char	*params[2];
	PGresult	*res;

	params[0] = name;
	params[1] = ctl_check_id(name) == 0 ? name : NULL;
	res = ctl_query(ctl, "select s.id, s.key, s.fridge_id,"
	    " c.name || ' / ' || f.name from vialwatch.sensor s"
	    " left join vialwatch.fridge f on f.id = s.fridge_id"
	    " left join vialwatch.clinic c on c.id = f.clinic_id"
	    " where s.key = $1 or s.id = $2::bigint order by s.id", 2, params);
	if (res == NULL)
		return (NULL);
	if (PQntuples(res) == 1)
		return (res);
	if (PQntuples(res) == 0)
		ctl_warnx("no sensor with key or id \"%s\" (see \"vialwatchctl "
		    "sensors\")", name);
	else
		ctl_warnx("\"%s\" is the key of one sensor and the id of "
		    "another: name it by the other's key, or this one by its "
		    "id", name);
	PQclear(res);
	return (NULL);
}

/* The fridge with this id: "clinic / fridge", or NULL (reported). */
static char *
fridge_find(struct ctl *ctl, const char *id)
{
	const char	*params[1] = { id };
	PGresult	*res;
	char		*name = NULL;

	if (ctl_check_id(id) != 0) {
		ctl_warnx("bad fridge id \"%s\": expected a number "
		    "(see \"vialwatchctl fridges\")", id);
		return (NULL);
	}
	res = ctl_query(ctl, "select c.name || ' / ' || f.name"
	    " from vialwatch.fridge f join vialwatch.clinic c"
	    " on c.id = f.clinic_id where f.id = $1::bigint", 1, params);
	if (res == NULL)
		return (NULL);
	if (PQntuples(res) == 0)
		ctl_warnx("no fridge with id %s", id);
	else
		name = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return (name);
}

/* Say what assigning sensor s to fridge (NULL: none) did. */
static void
fridge_said(const PGresult *s, const char *fridge, const char *name)
{
	const char	*old = PQgetisnull(s, 0, 2) ? NULL : PQgetvalue(s, 0, 2);

	printf("sensor %s (%s) ", PQgetvalue(s, 0, 0), PQgetvalue(s, 0, 1));
	if (fridge == NULL && old == NULL)
		printf("has no fridge\n");
	else if (fridge == NULL)
		printf("taken off fridge %s (%s)\n", old, PQgetvalue(s, 0, 3));
	else if (old == NULL)
		printf("assigned to fridge %s (%s)\n", fridge, name);
	else if (strcmp(old, fridge) == 0)
		printf("is on fridge %s (%s) already\n", fridge, name);
	else
		printf("moved from fridge %s (%s) to fridge %s (%s)\n", old,
		    PQgetvalue(s, 0, 3), fridge, name);
}

/* Set the sensor's fridge (NULL: none) and say what changed. */
static int
fridge_set(struct ctl *ctl, const char *sensor, const char *fridge)
{
	const char	*params[2];
	PGresult	*s, *res = NULL;
	char		*name = NULL;
	int		 rc = 0;

	if (fridge != NULL && (name = fridge_find(ctl, fridge)) == NULL)
		return (1);
	if ((s = fridge_find_sensor(ctl, sensor)) == NULL) {
		free(name);
		return (1);
	}
	params[0] = PQgetvalue(s, 0, 0);
	params[1] = fridge;
	/* An unchanged row would make the daemons reload for nothing. */
	if (fridge == NULL ? !PQgetisnull(s, 0, 2) : (PQgetisnull(s, 0, 2) ||
	    strcmp(PQgetvalue(s, 0, 2), fridge) != 0)) {
		res = ctl_query(ctl, "update vialwatch.sensor set fridge_id ="
		    " $2::bigint where id = $1::bigint", 2, params);
		rc = res == NULL;
		PQclear(res);
	}
	if (rc == 0)
		fridge_said(s, fridge, name);
	PQclear(s);
	free(name);
	return (rc);
}

/* Name the person and reason of an assignment; 0, 1 or CTL_USAGE. */
static int
fridge_actor(struct ctl *ctl, int *argc, char **argv, int nargs)
{
	const char	*by, *reason;

	if (ctl_actor_args(ctl->context, argc, argv, &by, &reason) != 0)
		return (CTL_USAGE);
	if (*argc != nargs + 1) {
		ctl_warnx("%s: wrong number of arguments", ctl->context);
		return (CTL_USAGE);
	}
	return (ctl_actor(ctl, by, reason) < 0 ? 1 : 0);
}

/* vialwatchctl assign SENSOR FRIDGE|--none --by WHO --reason TEXT */
int
ctl_assign(struct ctl *ctl, int argc, char **argv)
{
	int	rc;

	ctl->context = "assign";
	if ((rc = fridge_actor(ctl, &argc, argv, 2)) != 0)
		return (rc);
	if (strcmp(argv[2], "--none") == 0)
		return (fridge_set(ctl, argv[1], NULL));
	return (fridge_set(ctl, argv[1], argv[2]));
}

/* vialwatchctl unassign SENSOR --by WHO --reason TEXT */
int
ctl_unassign(struct ctl *ctl, int argc, char **argv)
{
	int	rc;

	ctl->context = "unassign";
	if ((rc = fridge_actor(ctl, &argc, argv, 1)) != 0)
		return (rc);
	return (fridge_set(ctl, argv[1], NULL));
}

/* vialwatchctl lots [--fridge ID]: list the lots. */
static int
lots_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "fridge", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const	 head[] = { "ID", "FRIDGE", "PRODUCT",
					    "LOT", "EXPIRES", "QUANTITY",
					    "STATUS", "EXCURSIONS",
					    "DECISION" };
	const char			*params[1] = { NULL };
	PGresult			*res;
	char				*name;
	int				 ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "+f:", longopts, NULL)) != -1) {
		if (ch != 'f')
			return (CTL_USAGE);
		params[0] = optarg;
	}
	if (optind != argc) {
		ctl_warnx("lots: unexpected argument: %s", argv[optind]);
		return (CTL_USAGE);
	}
	if (params[0] != NULL) {
		if ((name = fridge_find(ctl, params[0])) == NULL)
			return (1);
		free(name);
	}
	if ((res = ctl_query(ctl, lots_sql, 1, params)) == NULL)
		return (1);
	ctl_list(res, head, 9, "no lots");
	PQclear(res);
	return (0);
}

/* Why lot id cannot be decided on: it is missing or not quarantined. */
static void
lots_refused(struct ctl *ctl, const char *id, const char *verb)
{
	const char	*params[1] = { id };
	PGresult	*res;

	res = ctl_query(ctl, "select product || ' ' || lot_number, status,"
	    " coalesce(' (by ' || decided_by || ')', '')"
	    " from vialwatch.lot where id = $1::bigint", 1, params);
	if (res == NULL)
		return;
	if (PQntuples(res) == 0)
		ctl_warnx("lots: no lot with id %s", id);
	else
		ctl_warnx("lots: lot %s (%s) is %s%s, not quarantined: only a "
		    "quarantined lot can be %s", id, PQgetvalue(res, 0, 0),
		    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), verb);
	PQclear(res);
}

/* lots release|discard ID --by WHO --note TEXT */
static int
lots_decide(struct ctl *ctl, int argc, char **argv)
{
	const char	*status, *disposition, *params[3], *by;
	PGresult	*res;
	int		 rc;

	if (argc < 2) {
		ctl_warnx("lots: %s: which lot?", argv[0]);
		return (CTL_USAGE);
	}
	status = strcmp(argv[0], "release") == 0 ? "released" : "discarded";
	disposition = strcmp(argv[0], "release") == 0 ? "usable" : "discard";
	if ((rc = ctl_parse_decision("lots", "lot", argc - 1, argv + 1,
	    &by, &params[2])) != 0)
		return (rc == CTL_USAGE ? CTL_USAGE : 1);
	params[0] = argv[1];
	params[1] = disposition;
	/*
	 * --by names a contact, whose name is decided_by; the note is why.
	 * Out of quarantine only through a disposition (sql/014).
	 */
	if (ctl_actor(ctl, by, params[2]) < 0)
		return (1);
	res = ctl_query(ctl, "select l.product || ' ' || l.lot_number,"
	    " vialwatch.lot_dispose(l.id, null, $2, $3, c.name), c.name"
	    " from vialwatch.lot l"
	    " join vialwatch.contact c on c.id = vialwatch.actor_contact_id()"
	    " where l.id = $1::bigint and l.status = 'quarantined'", 3, params);
	if (res == NULL)
		return (1);
	if ((rc = PQntuples(res) == 1 ? 0 : 1) == 0)
		printf("lot %s (%s) %s by %s\n", argv[1], PQgetvalue(res, 0, 0),
		    status, PQgetvalue(res, 0, 2));
	else
		lots_refused(ctl, argv[1], status);
	PQclear(res);
	return (rc);
}

/* vialwatchctl lots [--fridge ID] | release|discard ID --by W --note T */
int
ctl_lots(struct ctl *ctl, int argc, char **argv)
{
	ctl->context = "lots";
	if (argc > 1 && (strcmp(argv[1], "release") == 0 ||
	    strcmp(argv[1], "discard") == 0))
		return (lots_decide(ctl, argc - 1, argv + 1));
	return (lots_list(ctl, argc, argv));
}

/*
 * Join the KEY=VALUE arguments into keys and values, one a line, for
 * vialwatch.fridge_set(); 0, or -1 (reported).
 */
static int
fridge_pairs(int argc, char **argv, char **keys, char **values)
{
	char	*eq, *k, *v;
	int	 i;

	*keys = xstrdup("");
	*values = xstrdup("");
	for (i = 0; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL || eq == argv[i] ||
		    strpbrk(argv[i], "\n\r") != NULL) {
			ctl_warnx("fridge: set: \"%s\" is not KEY=VALUE",
			    argv[i]);
			return (-1);
		}
		xasprintf(&k, "%s%s%.*s", *keys, i > 0 ? "\n" : "",
		    (int)(eq - argv[i]), argv[i]);
		xasprintf(&v, "%s%s%s", *values, i > 0 ? "\n" : "", eq + 1);
		free(*keys);
		free(*values);
		*keys = k;
		*values = v;
	}
	return (0);
}

/* vialwatchctl fridge set ID KEY=VALUE... --by WHO --reason TEXT */
int
ctl_fridge(struct ctl *ctl, int argc, char **argv)
{
	const char	*by, *reason, *params[3];
	char		*keys = NULL, *values = NULL, *name;
	PGresult	*res;
	int		 i, rc = 1;

	ctl->context = "fridge";
	if (strcmp(argv[1], "set") != 0)
		return (CTL_USAGE);
	argc -= 2;
	argv += 2;
	if (ctl_actor_args("fridge", &argc, argv, &by, &reason) != 0)
		return (CTL_USAGE);
	if (argc < 2) {
		ctl_warnx("fridge: set: give the fridge's id and KEY=VALUE");
		return (CTL_USAGE);
	}
	if ((name = fridge_find(ctl, argv[0])) == NULL)
		return (1);
	if (fridge_pairs(argc - 1, argv + 1, &keys, &values) != 0 ||
	    ctl_actor(ctl, by, reason) < 0)
		goto out;
	params[0] = argv[0];
	params[1] = keys;
	params[2] = values;
	res = ctl_query(ctl, "select setting, coalesce(old_value, 'null'),"
	    " coalesce(new_value, 'null') from vialwatch.fridge_set($1::bigint,"
	    " string_to_array($2, E'\\n'), string_to_array($3, E'\\n'))", 3,
	    params);
	if (res == NULL)
		goto out;
	printf("fridge %s (%s):", argv[0], name);
	for (i = 0; i < PQntuples(res); i++)
		printf("%s %s %s -> %s", i > 0 ? "," : "", PQgetvalue(res, i, 0),
		    PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
	printf("\n");
	PQclear(res);
	rc = 0;
out:
	free(name);
	free(keys);
	free(values);
	return (rc);
}
