/*
 * vialwatchctl calibration add|list: the calibration certificates of the
 * probes, recorded by a person (--by) with the SHA-256 of the scanned
 * certificate, and the probes whose certificate is missing, failed,
 * lapsed or about to, or states too large an uncertainty.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "ctl.h"

/* What calibration add was given. */
struct calibration_args {
	const char	*sensor;
	const char	*serial;
	const char	*certificate;
	const char	*calibrated_on;
	const char	*valid_until;
	const char	*model;
	const char	*laboratory;
	const char	*uncertainty;
	const char	*document;
	const char	*by;
	int		 failed;
};

/* $1 sensor (key or id) ... $10 passed, $11 document hash, $12 by. */
static const char calibration_add_sql[] =
    "insert into vialwatch.calibration (sensor_id, serial, model,"
    " certificate_no, laboratory, calibrated_on, valid_until, uncertainty_c,"
    " passed, document_sha256, recorded_by)"
    " select s.id, $2, nullif($3, ''), $4, nullif($5, ''), $6::date,"
    " $7::date, $8::double precision, $9::boolean, $10, $11::bigint"
    " from vialwatch.sensor s"
    " where s.key = $1"
    " or s.id = case when $1 ~ '^[0-9]{1,18}$' then $1::bigint end"
    " order by s.key = $1 desc limit 1"
    " returning id, sensor_id";

/* What the probe's certificates say now, the new one counted. */
static const char calibration_state_sql[] =
    "select s.key, coalesce(vialwatch.calibration_problem(s.id,"
    " (now() at time zone coalesce(c.timezone, 'UTC'))::date), 'ok')"
    " from vialwatch.sensor s"
    " left join vialwatch.fridge f on f.id = s.fridge_id"
    " left join vialwatch.clinic c on c.id = f.clinic_id"
    " where s.id = $1::bigint";

/*
 * Every probe assigned to a fridge, and every probe with a certificate:
 * the current certificate and what is wrong with it.  $1: only those
 * due within that many days, lapsed, failed or uncertain, or without one.
 */
#define CALIBRATION_ROWS						\
    "select s.key, coalesce(c.name || ' / ' || f.name, '-') as fridge,"	\
    " k.certificate_no, k.serial, k.model, k.laboratory,"		\
    " k.calibrated_on, k.valid_until, k.uncertainty_c, k.passed,"	\
    " k.document_sha256, k.valid_until - d.day as days_left,"		\
    " vialwatch.calibration_problem(s.id, d.day) as problem"		\
    " from vialwatch.sensor s"						\
    " left join vialwatch.fridge f on f.id = s.fridge_id"		\
    " left join vialwatch.clinic c on c.id = f.clinic_id"		\
    " left join vialwatch.calibration_current k on k.sensor_id = s.id"	\
    " cross join lateral (select (now() at time zone"			\
    "  coalesce(c.timezone, 'UTC'))::date as day) d"			\
    " where (s.fridge_id is not null or k.id is not null)"		\
    " and ($1::integer is null or k.id is null"			\
    "  or vialwatch.calibration_problem(s.id, d.day) is not null"	\
    "  or k.valid_until - d.day <= $1::integer)"

static const char calibration_list_sql[] =
    "select key, fridge, coalesce(certificate_no, '-'),"
    " coalesce(serial, '-'), coalesce(calibrated_on::text, '-'),"
    " coalesce(valid_until::text, '-'),"
    " coalesce('±' || uncertainty_c, '-'),"
    " coalesce(problem, case when days_left <= 90 then 'lapses in '"
    "  || days_left || ' d' else 'ok' end)"
    " from (" CALIBRATION_ROWS ") r order by fridge, key";

static const char calibration_json_sql[] =
    "select coalesce(json_agg(json_build_object('sensor', key, 'fridge',"
    " fridge, 'certificate_no', certificate_no, 'serial', serial, 'model',"
    " model, 'laboratory', laboratory, 'calibrated_on', calibrated_on,"
    " 'valid_until', valid_until, 'uncertainty_c', uncertainty_c, 'passed',"
    " passed, 'document_sha256', document_sha256, 'days_left', days_left,"
    " 'problem', problem) order by fridge, key), '[]')"
    " from (" CALIBRATION_ROWS ") r";

/* The SHA-256 of a file, as hex; 0 or -1 (reported). */
static int
calibration_sha256(const char *path, char hex[65])
{
	unsigned char	 buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	EVP_MD_CTX	*ctx;
	FILE		*f;
	size_t		 n;
	int		 rc = -1;

	if ((f = fopen(path, "rb")) == NULL) {
		ctl_warnx("calibration add: %s: %s", path, strerror(errno));
		return (-1);
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		if (!EVP_DigestUpdate(ctx, buf, n))
			goto out;
	}
	if (ferror(f)) {
		ctl_warnx("calibration add: %s: %s", path, strerror(errno));
		goto done;
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen))
		goto out;
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * i] = '\0';
	rc = 0;
	goto done;
out:
	ctl_warnx("calibration add: cannot compute SHA-256 of %s", path);
done:
	EVP_MD_CTX_free(ctx);
	fclose(f);
	return (rc);
}

/* Parse "add SENSOR --serial ..."; 0 or CTL_USAGE (reported). */
static int
calibration_parse(int argc, char **argv, struct calibration_args *a)
{
	static const struct option	 longopts[] = {
		{ "serial", required_argument, NULL, 's' },
		{ "certificate", required_argument, NULL, 'c' },
		{ "calibrated-on", required_argument, NULL, 'o' },
		{ "valid-until", required_argument, NULL, 'v' },
		{ "model", required_argument, NULL, 'm' },
		{ "laboratory", required_argument, NULL, 'l' },
		{ "uncertainty", required_argument, NULL, 'u' },
		{ "failed", no_argument, NULL, 'f' },
		{ "document", required_argument, NULL, 'd' },
		{ "by", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 }
	};
	int				 ch;

	memset(a, 0, sizeof *a);
	if (argc < 3 || argv[2][0] == '-') {
		ctl_warnx("calibration add: which sensor (key or id)?");
		return (CTL_USAGE);
	}
	a->sensor = argv[2];
	optind = 0;
	/* Options after the sensor: argv[2] stands as the program name. */
	while ((ch = getopt_long(argc - 2, argv + 2, "+", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			a->serial = optarg;
			break;
		case 'c':
			a->certificate = optarg;
			break;
		case 'o':
			a->calibrated_on = optarg;
			break;
		case 'v':
			a->valid_until = optarg;
			break;
		case 'm':
			a->model = optarg;
			break;
		case 'l':
			a->laboratory = optarg;
			break;
		case 'u':
			a->uncertainty = optarg;
			break;
		case 'f':
			a->failed = 1;
			break;
		case 'd':
			a->document = optarg;
			break;
		case 'b':
			a->by = optarg;
			break;
		default:
			return (CTL_USAGE);
		}
	}
	if (optind != argc - 2) {
		ctl_warnx("calibration add: unexpected argument: %s",
		    argv[optind + 2]);
		return (CTL_USAGE);
	}
	if (a->serial == NULL || a->certificate == NULL ||
	    a->calibrated_on == NULL || a->valid_until == NULL) {
		ctl_warnx("calibration add: --serial, --certificate, "
		    "--calibrated-on and --valid-until are required");
		return (CTL_USAGE);
	}
	return (0);
}

/* Say what the new certificate (res) makes of its probe, and commit. */
static int
calibration_added(struct ctl *ctl, PGresult *res)
{
	const char	*p[1];
	PGresult	*st;

	p[0] = PQgetvalue(res, 0, 1);
	if ((st = ctl_query(ctl, calibration_state_sql, 1, p)) == NULL) {
		PQclear(res);
		return (1);
	}
	printf("calibration %s recorded for sensor %s: %s\n",
	    PQgetvalue(res, 0, 0), PQgetvalue(st, 0, 0), PQgetvalue(st, 0, 1));
	PQclear(st);
	PQclear(res);
	return (ctl_exec(ctl, "commit") == 0 ? 0 : 1);
}

/* vialwatchctl calibration add SENSOR ... --by WHO */
static int
calibration_add(struct ctl *ctl, int argc, char **argv)
{
	struct calibration_args	 a;
	const char		*p[11];
	char			 hex[65], by[24];
	long long		 who;
	PGresult		*res;
	int			 rc;

	if ((rc = calibration_parse(argc, argv, &a)) != 0)
		return (rc);
	if (a.document != NULL && calibration_sha256(a.document, hex) != 0)
		return (1);
	if (ctl_exec(ctl, "begin") != 0 ||
	    (who = ctl_actor(ctl, a.by, NULL)) < 0)
		return (1);
	snprintf(by, sizeof by, "%lld", who);
	p[0] = a.sensor;
	p[1] = a.serial;
	p[2] = a.model != NULL ? a.model : "";
	p[3] = a.certificate;
	p[4] = a.laboratory != NULL ? a.laboratory : "";
	p[5] = a.calibrated_on;
	p[6] = a.valid_until;
	p[7] = a.uncertainty;
	p[8] = a.failed ? "false" : "true";
	p[9] = a.document != NULL ? hex : NULL;
	p[10] = by;
	if ((res = ctl_query(ctl, calibration_add_sql, 11, p)) == NULL)
		return (1);
	if (PQntuples(res) == 0) {
		ctl_warnx("calibration add: no sensor with key or id \"%s\" "
		    "(see \"vialwatchctl sensors\")", a.sensor);
		PQclear(res);
		return (1);
	}
	return (calibration_added(ctl, res));
}

/* vialwatchctl calibration list [--due DAYS] [--json] */
static int
calibration_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "due", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const	 head[] = { "SENSOR", "FRIDGE",
					    "CERTIFICATE", "SERIAL",
					    "CALIBRATED", "VALID_UNTIL",
					    "UNCERTAINTY_C", "STATE" };
	const char			*p[1] = { NULL };
	PGresult			*res;
	int				 ch, json = ctl_json, n;

	optind = 0;
	while ((ch = getopt_long(argc - 1, argv + 1, "+", longopts,
	    NULL)) != -1) {
		if (ch == 'd' && strspn(optarg, "0123456789") ==
		    strlen(optarg) && *optarg != '\0' && strlen(optarg) < 6)
			p[0] = optarg;
		else if (ch == 'j')
			json = 1;
		else {
			if (ch == 'd')
				ctl_warnx("calibration list: --due takes a "
				    "number of days, not \"%s\"", optarg);
			return (CTL_USAGE);
		}
	}
	if (optind != argc - 1)
		return (CTL_USAGE);
	res = ctl_query(ctl, json ? calibration_json_sql :
	    calibration_list_sql, 1, p);
	if (res == NULL)
		return (1);
	if (json)
		printf("%s\n", PQgetvalue(res, 0, 0));
	else if ((n = PQntuples(res)) == 0)
		printf("no probes%s\n", p[0] != NULL ? " due" : "");
	else {
		ctl_table(res, head, 8);
		printf("%d probe%s\n", n, n == 1 ? "" : "s");
	}
	PQclear(res);
	return (0);
}

/* vialwatchctl calibration add|list ... */
int
ctl_calibration(struct ctl *ctl, int argc, char **argv)
{
	int	rc;

	ctl->context = "calibration";
	if (argc > 1 && strcmp(argv[1], "add") == 0)
		rc = calibration_add(ctl, argc, argv);
	else if (argc > 1 && strcmp(argv[1], "list") == 0)
		rc = calibration_list(ctl, argc, argv);
	else {
		ctl_warnx("calibration: expected add or list");
		rc = CTL_USAGE;
	}
	ctl->context = NULL;
	return (rc);
}
