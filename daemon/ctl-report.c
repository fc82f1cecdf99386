/*
 * vialwatchctl report: a fridge's temperature log for one month as CSV
 * (RFC 4180), one row per clinic-local day, from vialwatch.daily_summary
 * and vialwatch.excursion_report, with what was wrong that day with the
 * calibration of the fridge's probes (vialwatch.calibration_note).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "checkcal.h"
#include "ctl.h"

/* What the command was asked for. */
struct report_args {
	const char	*fridge;	/* digits */
	char		 month[11];	/* YYYY-MM-01 */
	const char	*output;	/* NULL or "-": standard output */
};

/*
 * Door openings and the longest, minutes without power, maintenance windows
 * (sql/016_inputs.sql: daily_inputs, maintenance_report), after the others.
 */
#define REPORT_INPUT_COLUMNS \
    "di.door_openings, round(di.door_longest_min::numeric, 1)," \
    " di.power_cuts, round(di.power_off_min::numeric, 1)," \
    " round(di.maintenance_min::numeric, 1), mw.windows "
#define REPORT_INPUT_JOINS \
    "left join vialwatch.daily_inputs di on di.fridge_id = f.id" \
    "    and di.day = d.day " \
    "left join lateral (" \
    "  select string_agg(format('%s-%s %s (%s)', to_char(m.starts_at" \
    "      at time zone f.timezone, 'HH24:MI'), to_char(m.ends_at" \
    "      at time zone f.timezone, 'HH24:MI'), regexp_replace(m.reason," \
    "      '\\s+', ' ', 'g'), m.started_by), e'\\n' order by m.starts_at)" \
    "      as windows" \
    "  from vialwatch.maintenance_report m" \
    "  where m.fridge_id = f.id and m.starts_at < d.day_end" \
    "      and m.ends_at > d.day_start" \
    ") mw on true "

/*
 * One row per day of the month ($2, its first day) for fridge $1, or none
 * when there is no such fridge.  An excursion is listed on every day it
 * overlaps, one per line in each of its columns, in clinic-local time.
 */
static const char report_sql[] =
    "with f as ("
    "  select f.id, f.name, f.low_c, f.high_c, c.name as clinic,"
    "      c.timezone, c.workdays, c.check_by, c.id as clinic_id,"
    "      (f.created_at at time zone c.timezone)::date as since"
    "  from vialwatch.fridge f"
    "  join vialwatch.clinic c on c.id = f.clinic_id"
    "  where f.id = $1::bigint"
    "), d as ("
    "  select g::date as day, g at time zone f.timezone as day_start,"
    "      (g + interval '1 day') at time zone f.timezone as day_end"
    "  from f, generate_series($2::date::timestamp,"
    "      $2::date + interval '1 month' - interval '1 day',"
    "      interval '1 day') g"
    "), ds as ("
    "  select * from vialwatch.daily_summary"
    "  where fridge_id = $1::bigint and day >= $2::date"
    "      and day < ($2::date + interval '1 month')::date"
    ") "
    "select f.clinic, f.name, f.timezone, f.low_c, f.high_c,"
    "    to_char(d.day, 'YYYY-MM-DD'),"
    "    round(ds.min_c::numeric, 2), round(ds.max_c::numeric, 2),"
    "    round(ds.mean_c::numeric, 2), round(ds.mkt_c::numeric, 2),"
    "    round(ds.minutes_out::numeric, 1), ds.readings,"
    "    round((extract(epoch from ds.longest_gap) / 60)::numeric, 1),"
    "    case when ds.day is not null or x.n > 0 then x.n end,"
    "    x.kind, x.started, x.ended, x.peak, x.lots, x.acked_by,"
    "    x.acked_at, x.action, x.closed_out,"
    "    k.checked_by, k.checked_at, k.current_c, k.min_c, k.max_c, k.note,"
    "    f.workdays::text, k.n > 0, exists (select from vialwatch.holiday h"
    "      where h.clinic_id = f.clinic_id and h.day = d.day),"
    "    sign(d.day - (now() at time zone f.timezone)::date),"
    "    now() >= vialwatch.check_instant(f.timezone, d.day, f.check_by),"
    "    d.day < f.since,"
    "    coalesce(vialwatch.calibration_note(f.id, d.day), 'ok'), "
    REPORT_INPUT_COLUMNS
    "from f cross join d "
    "left join ds on ds.day = d.day "
    REPORT_INPUT_JOINS
    "cross join lateral ("
    "  select count(*) as n,"
    "    string_agg(regexp_replace(ct.name, '\\s+', ' ', 'g'), e'\\n'"
    "        order by dc.checked_at) as checked_by,"
    "    string_agg(to_char(dc.checked_at at time zone f.timezone,"
    "        'YYYY-MM-DD HH24:MI'), e'\\n' order by dc.checked_at)"
    "        as checked_at,"
    "    string_agg(coalesce(round(dc.current_c::numeric, 2)::text, ''),"
    "        e'\\n' order by dc.checked_at) as current_c,"
    "    string_agg(coalesce(round(dc.min_c::numeric, 2)::text, ''),"
    "        e'\\n' order by dc.checked_at) as min_c,"
    "    string_agg(coalesce(round(dc.max_c::numeric, 2)::text, ''),"
    "        e'\\n' order by dc.checked_at) as max_c,"
    "    string_agg(coalesce(regexp_replace(dc.note, '\\s+', ' ', 'g'),"
    "        ''), e'\\n' order by dc.checked_at) as note"
    "  from vialwatch.daily_check dc"
    "  join vialwatch.contact ct on ct.id = dc.contact_id"
    "  where dc.fridge_id = f.id and dc.day = d.day"
    ") k "
    "left join lateral ("
    "  select count(*) as n,"
    "    string_agg(e.kind, e'\\n' order by e.started_at, e.excursion_id)"
    "        as kind,"
    "    string_agg(to_char(e.started_at at time zone f.timezone,"
    "        'YYYY-MM-DD HH24:MI'), e'\\n'"
    "        order by e.started_at, e.excursion_id) as started,"
    "    string_agg(coalesce(to_char(e.ended_at at time zone f.timezone,"
    "        'YYYY-MM-DD HH24:MI'), ''), e'\\n'"
    "        order by e.started_at, e.excursion_id) as ended,"
    "    string_agg(coalesce(round(e.peak_c::numeric, 2)::text, ''), e'\\n'"
    "        order by e.started_at, e.excursion_id) as peak,"
    "    string_agg(array_to_string(e.lots, ', '), e'\\n'"
    "        order by e.started_at, e.excursion_id) as lots,"
    "    string_agg(coalesce(regexp_replace(e.acked_by, '\\s+', ' ', 'g'),"
    "        ''), e'\\n' order by e.started_at, e.excursion_id) as acked_by,"
    "    string_agg(coalesce(to_char(e.acked_at at time zone f.timezone,"
    "        'YYYY-MM-DD HH24:MI'), ''), e'\\n'"
    "        order by e.started_at, e.excursion_id) as acked_at,"
    "    string_agg(coalesce(regexp_replace(e.action_note, '\\s+', ' ',"
    "        'g'), ''), e'\\n' order by e.started_at, e.excursion_id)"
    "        as action,"
    "    string_agg(case when xo.closed_out_at is not null then"
    "        'closed out by ' || regexp_replace(co.name, '\\s+', ' ', 'g')"
    "        || ' at ' || to_char(xo.closed_out_at at time zone f.timezone,"
    "        'YYYY-MM-DD HH24:MI')"
    "      when vialwatch.excursion_needs_closeout(xo) then 'NOT CLOSED OUT'"
    "      else '' end, e'\\n' order by e.started_at, e.excursion_id)"
    "        as closed_out"
    "  from vialwatch.excursion_report e"
    "  join vialwatch.excursion xo on xo.id = e.excursion_id"
    "  left join vialwatch.contact co on co.id = xo.closed_out_by"
    "  where e.fridge_id = f.id and e.started_at < d.day_end"
    "      and (e.ended_at is null or e.ended_at > d.day_start"
    "      or e.started_at >= d.day_start)"
    ") x on true "
    "order by d.day";

/*
 * The columns of report_sql after the CSV's: the check calendar of the
 * day (checkcal.c): the clinic's workdays, checked, holiday, the day
 * against the clinic's today (-1, 0, 1), check_by passed, before the
 * fridge.
 */
enum {
	REPORT_SQL_WORKDAYS = 29, REPORT_SQL_CHECKED, REPORT_SQL_HOLIDAY,
	REPORT_SQL_TODAY, REPORT_SQL_LATE, REPORT_SQL_BEFORE,
	REPORT_SQL_CALIBRATION,
	REPORT_SQL_INPUTS,	/* the six of REPORT_INPUT_COLUMNS */
	REPORT_SQL_NONE = -1
};
/*
 * The header row; a column marked text holds free text (see csv_field);
 * each is the column sql of report_sql, but for "check", which checkcal.c
 * works out.
 */
static const struct {
	const char	*name;
	int		 text;
	int		 sql;		/* its column of report_sql */
} report_columns[] = {
	{ "clinic", 1, 0 },
	{ "fridge", 1, 1 },
	{ "timezone", 1, 2 },
	{ "low_c", 0, 3 },
	{ "high_c", 0, 4 },
	{ "date", 0, 5 },
	{ "min_c", 0, 6 },
	{ "max_c", 0, 7 },
	{ "mean_c", 0, 8 },
	{ "mkt_c", 0, 9 },
	{ "minutes_out", 0, 10 },
	{ "readings", 0, 11 },
	{ "longest_gap_min", 0, 12 },
	{ "excursions", 0, 13 },
	{ "excursion_kind", 0, 14 },
	{ "excursion_started", 0, 15 },
	{ "excursion_ended", 0, 16 },
	{ "excursion_peak_c", 0, 17 },
	{ "affected_lots", 1, 18 },
	{ "acknowledged_by", 1, 19 },
	{ "acknowledged_at", 0, 20 },
	{ "action", 1, 21 },
	{ "excursion_closed_out", 1, 22 },
	{ "check", 0, REPORT_SQL_NONE },
	{ "checked_by", 1, 23 },
	{ "checked_at", 0, 24 },
	{ "check_current_c", 0, 25 },
	{ "check_min_c", 0, 26 },
	{ "check_max_c", 0, 27 },
	{ "check_note", 1, 28 },
	{ "calibration", 1, REPORT_SQL_CALIBRATION },
	{ "door_openings", 0, REPORT_SQL_INPUTS },
	{ "door_longest_min", 0, REPORT_SQL_INPUTS + 1 },
	{ "power_cuts", 0, REPORT_SQL_INPUTS + 2 },
	{ "power_off_min", 0, REPORT_SQL_INPUTS + 3 },
	{ "maintenance_min", 0, REPORT_SQL_INPUTS + 4 },
	{ "maintenance", 1, REPORT_SQL_INPUTS + 5 },
};
#define REPORT_NCOLUMNS (sizeof report_columns / sizeof report_columns[0])

/*
 * Write one CSV field, quoted when it must be (RFC 4180).  A spreadsheet
 * runs a cell starting with = + - @ as a formula: free text (a note typed
 * on the acknowledgement page) gets a leading ' so that it stays text.
 */
static void
report_field(FILE *f, const char *s, int text)
{
	const char	*p;
	int		 guard;

	guard = text && *s != '\0' && strchr("=+-@\t\r", *s) != NULL;
	if (!guard && strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	if (guard)
		fputc('\'', f);
	for (p = s; *p != '\0'; p++) {
		if (*p == '"')
			fputc('"', f);
		fputc(*p, f);
	}
	fputc('"', f);
}

/* Whether a boolean of report_sql is true. */
static int
report_bool(PGresult *res, int i, int col)
{
	return (strcmp(PQgetvalue(res, i, col), "t") == 0);
}

/* The check column of row i: checked, missed, due, holiday, off or "". */
static const char *
report_check(PGresult *res, int i)
{
	struct checkcal_day	 cd;
	const char		*day = PQgetvalue(res, i, 5);
	int			 workdays;

	memset(&cd, 0, sizeof cd);
	if (sscanf(day, "%d-%d-%d", &cd.year, &cd.month, &cd.day) != 3 ||
	    (workdays = checkcal_workdays(PQgetvalue(res, i,
	    REPORT_SQL_WORKDAYS))) == -1)
		return ("");
	cd.checked = report_bool(res, i, REPORT_SQL_CHECKED);
	cd.holiday = report_bool(res, i, REPORT_SQL_HOLIDAY);
	cd.cmp_today = atoi(PQgetvalue(res, i, REPORT_SQL_TODAY));
	cd.late = report_bool(res, i, REPORT_SQL_LATE);
	cd.before_fridge = report_bool(res, i, REPORT_SQL_BEFORE);
	return (checkcal_state_name(checkcal_state(workdays, &cd)));
}

/* Write the header and the rows of res. */
static void
report_write(FILE *f, PGresult *res)
{
	size_t	j;
	int	i;

	for (j = 0; j < REPORT_NCOLUMNS; j++) {
		if (j > 0)
			fputc(',', f);
		fputs(report_columns[j].name, f);
	}
	fputs("\r\n", f);
	for (i = 0; i < PQntuples(res); i++) {
		for (j = 0; j < REPORT_NCOLUMNS; j++) {
			if (j > 0)
				fputc(',', f);
			if (report_columns[j].sql == REPORT_SQL_NONE)
				fputs(report_check(res, i), f);
			else
				report_field(f, PQgetvalue(res, i,
				    report_columns[j].sql),
				    report_columns[j].text);
		}
		fputs("\r\n", f);
	}
}

/*
 * Write res to path, or to standard output; 0, or -1 (reported).  A file
 * this created is removed if writing fails; an existing one (a device,
 * say) is not.
 */
static int
report_output(const char *path, PGresult *res)
{
	FILE		*f = stdout;
	struct stat	 sb;
	const char	*name = "standard output";
	int		 created = 0, failed;

	if (path != NULL) {
		name = path;
		created = lstat(path, &sb) == -1 && errno == ENOENT;
		if ((f = fopen(path, "w")) == NULL) {
			ctl_warnx("%s: %s", path, strerror(errno));
			return (-1);
		}
	}
	errno = 0;
	report_write(f, res);
	failed = fflush(f) != 0 || ferror(f);
	if (f != stdout && fclose(f) != 0)
		failed = 1;
	if (!failed)
		return (0);
	ctl_warnx("%s: %s", name, errno != 0 ? strerror(errno) :
	    "write error");
	if (created)
		unlink(path);
	return (-1);
}

/* Turn YYYY-MM into the date of its first day; 0, or -1 if malformed. */
static int
report_check_month(const char *s, char out[11])
{
	int	month;

	if (strlen(s) != 7 || strspn(s, "0123456789") != 4 || s[4] != '-' ||
	    strspn(s + 5, "0123456789") != 2)
		return (-1);
	month = (s[5] - '0') * 10 + s[6] - '0';
	if (month < 1 || month > 12 || strncmp(s, "0000", 4) == 0)
		return (-1);
	snprintf(out, 11, "%.7s-01", s);
	return (0);
}

/* Parse the options; 0, -1 for bad values (reported) or CTL_USAGE. */
static int
report_parse(int argc, char **argv, struct report_args *args)
{
	static const struct option	 longopts[] = {
		{ "fridge", required_argument, NULL, 'f' },
		{ "month", required_argument, NULL, 'm' },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*month = NULL;
	int				 ch;

	memset(args, 0, sizeof *args);
	/* 0, not 1: glibc and the BSDs then reset their parsing state. */
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+f:m:o:", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'f':
			args->fridge = optarg;
			break;
		case 'm':
			month = optarg;
			break;
		case 'o':
			args->output = optarg;
			break;
		default:
			return (CTL_USAGE);
		}
	}
	if (optind != argc) {
		ctl_warnx("report: unexpected argument: %s", argv[optind]);
		return (CTL_USAGE);
	}
	if (args->fridge == NULL || month == NULL) {
		ctl_warnx("report: --fridge and --month are required");
		return (CTL_USAGE);
	}
	if (ctl_check_id(args->fridge) != 0) {
		ctl_warnx("report: bad fridge id \"%s\": expected a number",
		    args->fridge);
		return (-1);
	}
	if (report_check_month(month, args->month) != 0) {
		ctl_warnx("report: bad month \"%s\": expected YYYY-MM", month);
		return (-1);
	}
	if (args->output != NULL && strcmp(args->output, "-") == 0)
		args->output = NULL;
	return (0);
}

/* vialwatchctl report --fridge ID --month YYYY-MM [-o FILE] */
int
ctl_report(struct ctl *ctl, int argc, char **argv)
{
	struct report_args	 args;
	const char		*params[2];
	PGresult		*res;
	int			 rc;

	if ((rc = report_parse(argc, argv, &args)) != 0)
		return (rc == CTL_USAGE ? CTL_USAGE : 1);
	params[0] = args.fridge;
	params[1] = args.month;
	ctl->context = "report";
	/*
	 * The planner takes generate_series for 1000 days, not 31: on a big
	 * database it would JIT-compile a query that runs in milliseconds.
	 */
	res = NULL;
	if (ctl_exec(ctl, "set jit = off") == 0)
		res = ctl_query(ctl, report_sql, 2, params);
	ctl->context = NULL;
	if (res == NULL)
		return (1);
	if (PQntuples(res) == 0) {
		ctl_warnx("report: no fridge with id %s", args.fridge);
		PQclear(res);
		return (1);
	}
	rc = report_output(args.output, res) == 0 ? 0 : 1;
	PQclear(res);
	return (rc);
}
