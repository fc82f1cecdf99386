/* vialwatchctl: options, configuration, connection and the small commands. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "conf.h"
#include "ctl.h"
#include "log.h"
#include "xmalloc.h"

/* A command; argmin and argmax count the arguments after its name. */
struct ctl_command {
	const char	*name;
	const char	*args;
	const char	*help;
	int		 argmin;
	int		 argmax;
	int		(*exec)(struct ctl *, int, char **);
};

static int	ctl_sensors(struct ctl *, int, char **);

static const struct ctl_command ctl_commands[] = {
	{ "migrate", "", "create or upgrade the database schema", 0, 0,
	    ctl_migrate },
	{ "status", "[--json]",
	    "fridges, open excursions, outbox, reminders, daemons", 0, 0,
	    ctl_status },
	{ "sensors", "[--json]", "list the sensors, unassigned ones marked",
	    0, 0, ctl_sensors },
	{ "fridges", "[--json]", "list the fridges: limits, sensors, state",
	    0, 0, ctl_fridges },
	{ "fridge", "set ID KEY=VALUE... --by WHO --reason TEXT",
	    "change a fridge's settings (limits, delays, name...)", 2, 32,
	    ctl_fridge },
	{ "assign", "SENSOR FRIDGE|--none --by WHO --reason TEXT",
	    "assign a sensor (key or id) to a fridge (id)", 2, 6, ctl_assign },
	{ "unassign", "SENSOR --by WHO --reason TEXT",
	    "take a sensor off its fridge", 1, 5, ctl_unassign },
	{ "lots", "[--fridge ID] [--json]", "list the lots and their status",
	    0, 16, ctl_lots },
	{ "lots", "release|discard ID --by WHO --note TEXT",
	    "decide on a quarantined lot", 0, 16, ctl_lots },
	{ "excursions", "[--days N] [--json]",
	    "list open excursions and those of the last N (7) days", 0, 2,
	    ctl_excursions },
	{ "ack", "ID --by WHO --note TEXT",
	    "acknowledge an excursion's alarm, with the action taken", 1, 16,
	    ctl_ack },
	{ "excursion", "show ID [--json]",
	    "an excursion's Troubleshooting Record", 2, 64, ctl_excursion },
	{ "excursion", "close-out ID --by WHO --cause TEXT --preventive TEXT "
	    "[--room-c C] [--manufacturer-by NAME --manufacturer-at TIME "
	    "--case TEXT --guidance TEXT] [--lot ID=DISPOSITION[:NOTE]]...",
	    "close out an excursion: its Troubleshooting Record", 2, 64,
	    ctl_excursion },
	{ "check", "FRIDGE --by WHO [--note TEXT]",
	    "record the workday min/max check of a fridge", 1, 6, ctl_check },
	{ "holiday", "add CLINIC DATE [--name TEXT] [--by WHO]",
	    "a day the clinic is closed: no check expected", 2, 7,
	    ctl_holiday },
	{ "holiday", "list CLINIC [--json]", "list a clinic's holidays", 2, 7,
	    ctl_holiday },
	{ "maintenance", "FRIDGE --for D --by WHO --reason TEXT",
	    "hold a fridge's high, low and door alarms for a while", 1, 16,
	    ctl_maintenance },
	{ "maintenance", "end FRIDGE --by WHO",
	    "end a fridge's maintenance window now", 1, 16,
	    ctl_maintenance },
	{ "maintenance", "list [--json]",
	    "list the maintenance windows of the last 30 days", 1, 16,
	    ctl_maintenance },
	{ "import",
	    "patients|treatments|appointments|lots|calibrations FILE.csv",
	    "add or update rows from a clinic's CSV export", 2, 2,
	    ctl_import },
	{ "report", "--fridge ID --month YYYY-MM [-o file]",
	    "a fridge's temperature log for a month, as CSV", 2, 16,
	    ctl_report },
	{ "audit", "[--since DATE] [--fridge ID] [--table T] [--json]",
	    "the audit trail in words: who changed what, when, why", 0, 7,
	    ctl_audit },
	{ "audit", "verify [--since DATE]",
	    "recompute the audit chain and the seals of the readings", 0, 7,
	    ctl_audit },
	{ "calibration", "add SENSOR --serial S --certificate N "
	    "--calibrated-on DATE --valid-until DATE --by WHO",
	    "record a probe's calibration certificate", 1, 32,
	    ctl_calibration },
	{ "calibration", "list [--due DAYS] [--json]",
	    "the probes' certificates; --due: lapsing within DAYS, or wrong",
	    1, 32, ctl_calibration },
	{ "offset", "SENSOR OFFSET_C [--from TIME] --by WHO --reason TEXT",
	    "correct a probe's readings from now on", 1, 16, ctl_offset },
	{ "offset", "list [--json]", "the probes' offsets", 1, 16,
	    ctl_offset },
	{ "partitions", "[--apply] [--json]",
	    "list the reading partitions; --apply: make ahead, drop expired",
	    0, 1, ctl_partitions },
	{ "watchdog", "[--json] [--forget NAME]",
	    "email the admins about silent daemons (for cron or a timer)",
	    0, 3, ctl_watchdog },
};
#define CTL_NCOMMANDS (sizeof ctl_commands / sizeof ctl_commands[0])

/*
 * Parse "ID --by WHO --note TEXT" of command cmd about a what (lot,
 * excursion); 0, -1 (reported) or CTL_USAGE.
 */
int
ctl_parse_decision(const char *cmd, const char *what, int argc,
    char **argv, const char **by, const char **note)
{
	static const struct option	 longopts[] = {
		{ "by", required_argument, NULL, 'b' },
		{ "note", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	int				 ch;

	*by = *note = NULL;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+b:n:", longopts, NULL)) != -1) {
		if (ch == 'b')
			*by = optarg;
		else if (ch == 'n')
			*note = optarg;
		else
			return (CTL_USAGE);
	}
	if (optind != argc) {
		ctl_warnx("%s: unexpected argument: %s", cmd, argv[optind]);
		return (CTL_USAGE);
	}
	if (*by == NULL || *note == NULL ||
	    strspn(*by, " \t") == strlen(*by) ||
	    strspn(*note, " \t") == strlen(*note)) {
		ctl_warnx("%s: --by WHO and --note TEXT are required: who "
		    "decided (a contact's email or id), and why", cmd);
		return (CTL_USAGE);
	}
	if (ctl_check_id(argv[0]) != 0) {
		ctl_warnx("%s: bad %s id \"%s\": expected a number", cmd,
		    what, argv[0]);
		return (-1);
	}
	return (0);
}

/* If s is a positive decimal number that fits a bigint, 0; else -1. */
int
ctl_check_id(const char *s)
{
	size_t	len = strspn(s, "0123456789");

	if (len == 0 || s[len] != '\0' || len > 19 || strspn(s, "0") == len)
		return (-1);
	if (len == 19 && strcmp(s, "9223372036854775807") > 0)
		return (-1);
	return (0);
}

/* Print a message for the user, prefixed with the program name. */
void
ctl_warnx(const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fputs("vialwatchctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Length of s without its trailing newlines and blanks. */
static int
ctl_trimlen(const char *s)
{
	size_t	len = strlen(s);

	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return ((int)len);
}

/* Print "  label: text", indenting the text's further lines. */
static void
ctl_pg_error_field(const char *label, const char *text)
{
	int	len = ctl_trimlen(text), i;

	fprintf(stderr, "  %s: ", label);
	for (i = 0; i < len; i++) {
		fputc(text[i], stderr);
		if (text[i] == '\n')
			fputs("    ", stderr);
	}
	fputc('\n', stderr);
}

/*
 * Print a failed result (or the connection's error when res is NULL):
 * "vialwatchctl: [where: ][line N: ]message" then detail, hint and context.
 */
void
ctl_pg_error(struct ctl *ctl, const PGresult *res, const char *where,
    int line)
{
	static const struct {
		int		 field;
		const char	*label;
	} extra[] = {
		{ PG_DIAG_MESSAGE_DETAIL, "detail" },
		{ PG_DIAG_MESSAGE_HINT, "hint" },
		{ PG_DIAG_CONTEXT, "context" },
	};
	const char	*msg = NULL, *s;
	size_t		 i;

	if (res != NULL && (msg = PQresultErrorField(res,
	    PG_DIAG_MESSAGE_PRIMARY)) == NULL)
		msg = PQresultErrorMessage(res);
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(ctl->conn);
	if (*msg == '\0')
		msg = "unknown error";

	fflush(stdout);
	fputs("vialwatchctl: ", stderr);
	if (where != NULL)
		fprintf(stderr, "%s: ", where);
	if (line > 0)
		fprintf(stderr, "line %d: ", line);
	fprintf(stderr, "%.*s\n", ctl_trimlen(msg), msg);
	for (i = 0; res != NULL && i < sizeof extra / sizeof extra[0]; i++) {
		if ((s = PQresultErrorField(res, extra[i].field)) != NULL)
			ctl_pg_error_field(extra[i].label, s);
	}
}

/* Show server warnings as our own lines, with the current context. */
static void
ctl_notice(void *arg, const PGresult *res)
{
	struct ctl	*ctl = arg;
	const char	*severity, *msg;
	char		 lower[32];
	size_t		 i;

	severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (severity == NULL)
		severity = "notice";
	for (i = 0; severity[i] != '\0' && i < sizeof lower - 1; i++)
		lower[i] = tolower((unsigned char)severity[i]);
	lower[i] = '\0';
	if ((msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) == NULL)
		msg = PQresultErrorMessage(res);

	fflush(stdout);
	fputs("vialwatchctl: ", stderr);
	if (ctl->context != NULL)
		fprintf(stderr, "%s: ", ctl->context);
	fprintf(stderr, "%s: %.*s\n", lower, ctl_trimlen(msg), msg);
}

/*
 * Every change made from here names the OS user in the audit trail.  No
 * JIT: over many reading partitions the planner's estimates would have
 * a query that runs in milliseconds compiled for a second first.
 */
static int
ctl_os_user(struct ctl *ctl)
{
	const char	*params[1];
	char		*user = ctl_actor_os_user();
	PGresult	*res;

	params[0] = user;
	res = ctl_query(ctl, "select set_config('vialwatch.actor_os_user', $1,"
	    " false), set_config('jit', 'off', false)", 1, params);
	free(user);
	if (res == NULL)
		return (-1);
	PQclear(res);
	return (0);
}

/* Connect with the configured conninfo; 0 or -1 (reported). */
static int
ctl_connect(struct ctl *ctl)
{
	const char *const	 keys[] = { "fallback_application_name",
				     "dbname", "client_encoding", NULL };
	const char		*values[] = { "vialwatchctl",
				     ctl->conf->db_conninfo, "UTF8", NULL };
	const char		*msg;

	/* dbname is expanded as a conninfo string or URI. */
	ctl->conn = PQconnectdbParams(keys, values, 1);
	if (ctl->conn == NULL) {
		ctl_warnx("cannot connect to the database: out of memory");
		return (-1);
	}
	if (PQstatus(ctl->conn) != CONNECTION_OK) {
		msg = PQerrorMessage(ctl->conn);
		ctl_warnx("cannot connect to the database: %.*s",
		    ctl_trimlen(msg), msg);
		return (-1);
	}
	PQsetNoticeReceiver(ctl->conn, ctl_notice, ctl);
	return (ctl_os_user(ctl));
}

/* Run a query with text parameters; the result, or NULL (reported). */
PGresult *
ctl_query(struct ctl *ctl, const char *sql, int nparams,
    const char *const *params)
{
	PGresult	*res;

	res = PQexecParams(ctl->conn, sql, nparams, NULL, params, NULL, NULL,
	    0);
	if (res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
	    PQresultStatus(res) == PGRES_COMMAND_OK))
		return (res);
	ctl_pg_error(ctl, res, ctl->context, 0);
	PQclear(res);
	return (NULL);
}

/* Run a statement without parameters or rows; 0 or -1 (reported). */
int
ctl_exec(struct ctl *ctl, const char *sql)
{
	PGresult	*res;

	if ((res = ctl_query(ctl, sql, 0, NULL)) == NULL)
		return (-1);
	PQclear(res);
	return (0);
}

/* vialwatchctl sensors: every sensor, with its fridge or "(unassigned)". */
static int
ctl_sensors(struct ctl *ctl, int argc, char **argv)
{
	static const char *const	 head[] = { "ID", "KEY", "SOURCE",
					    "FRIDGE", "LAST SEEN" };
	PGresult			*res;
	int				 n, unassigned = 0, i;

	res = ctl_query(ctl, "select s.id, s.key, coalesce(s.source, '-'), "
	    "coalesce(c.name || ' / ' || f.name, '(unassigned)'), "
	    "to_char(s.last_seen, 'YYYY-MM-DD HH24:MI:SSOF') || "
	    "case when s.offline_since is not null then ' (offline)' "
	    "else '' end, s.fridge_id is null "
	    "from vialwatch.sensor s "
	    "left join vialwatch.fridge f on f.id = s.fridge_id "
	    "left join vialwatch.clinic c on c.id = f.clinic_id "
	    "order by s.fridge_id is not null, s.key", 0, NULL);
	if (res == NULL)
		return (1);
	if ((n = ctl_list(res, head, 5, "no sensors")) > 0) {
		for (i = 0; i < n; i++)
			unassigned += strcmp(PQgetvalue(res, i, 5), "t") == 0;
		printf("%d sensor%s, %d unassigned\n", n, n == 1 ? "" : "s",
		    unassigned);
	}
	PQclear(res);
	return (0);
}

/* Print how to call us: in full for --help, else the first lines. */
static void
ctl_usage(FILE *f)
{
	size_t	i;

	fprintf(f, "usage: vialwatchctl [-hV] [-c file] [-s sqldir] command "
	    "[args]\n"
	    "       vialwatchctl command --help\n");
	if (f != stdout) {
		fprintf(f, "vialwatchctl --help lists the commands\n");
		return;
	}
	fprintf(f, "options:\n"
	    "  -c, --config FILE    configuration (default %s)\n"
	    "  -s, --sql-dir DIR    migrations (default %s)\n"
	    "  -h, --help           this text\n"
	    "  -V, --version        the version\n"
	    "commands:\n", SYSCONFDIR "/vialwatch/vialwatch.conf", SQLDIR);
	for (i = 0; i < CTL_NCOMMANDS; i++) {
		fprintf(f, "  %s %s\n        %s\n", ctl_commands[i].name,
		    ctl_commands[i].args, ctl_commands[i].help);
	}
}

/* Print the usage of one command: each of its entries in the table. */
static void
ctl_command_usage(FILE *f, const char *name)
{
	size_t	i;

	for (i = 0; i < CTL_NCOMMANDS; i++) {
		if (strcmp(ctl_commands[i].name, name) != 0)
			continue;
		fprintf(f, "usage: vialwatchctl %s%s%s\n  %s\n", name,
		    *ctl_commands[i].args != '\0' ? " " : "",
		    ctl_commands[i].args, ctl_commands[i].help);
	}
}

/* True when an entry of the command names --json in its arguments. */
static int
ctl_command_json(const char *name)
{
	size_t	i;

	for (i = 0; i < CTL_NCOMMANDS; i++) {
		if (strcmp(ctl_commands[i].name, name) == 0 &&
		    strstr(ctl_commands[i].args, "--json") != NULL)
			return (1);
	}
	return (0);
}

/* The command called name, or NULL. */
static const struct ctl_command *
ctl_find_command(const char *name)
{
	size_t	i;

	for (i = 0; i < CTL_NCOMMANDS; i++) {
		if (strcmp(ctl_commands[i].name, name) == 0)
			return (&ctl_commands[i]);
	}
	return (NULL);
}

/*
 * The options every command has, taken out of its arguments (before a
 * "--"): --help (-h) prints its usage, --json sets ctl_json where the
 * table offers it. 1 for help, 0, or CTL_USAGE.
 */
static int
ctl_common_options(int *argc, char **argv)
{
	int	i, j, rest = 0;

	for (i = j = 1; i < *argc; i++) {
		if (!rest && strcmp(argv[i], "--") == 0)
			rest = 1;
		else if (!rest && (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0))
			return (1);
		else if (!rest && strcmp(argv[i], "--json") == 0) {
			if (!ctl_command_json(argv[0])) {
				ctl_warnx("%s: no --json: it lists nothing",
				    argv[0]);
				return (CTL_USAGE);
			}
			ctl_json = 1;
			continue;
		}
		argv[j++] = argv[i];
	}
	*argc = j;
	argv[j] = NULL;
	return (0);
}

/* Load the configuration and connect; 0 or -1 (reported). */
static int
ctl_open(struct ctl *ctl)
{
	char	*cause = NULL;

	conf_no_templates = 1;	/* a broken template must not stop ack */
	if ((ctl->conf = conf_load(ctl->conf_path, &cause)) == NULL) {
		ctl_warnx("%s", cause != NULL ? cause : ctl->conf_path);
		free(cause);
		return (-1);
	}
	return (ctl_connect(ctl));
}

/* The SQL directory: -s, else $VIALWATCH_SQLDIR, else the installed one. */
static const char *
ctl_sql_dir(const char *option)
{
	const char	*s;

	if ((s = option) == NULL)
		s = getenv("VIALWATCH_SQLDIR");
	return (s != NULL && *s != '\0' ? s : SQLDIR);
}

/* Run the command named by argv[0]; the exit status. */
static int
ctl_run(struct ctl *ctl, int argc, char **argv)
{
	const struct ctl_command	*cmd;
	int				 rc;

	if (argc < 1) {
		ctl_usage(stderr);
		return (CTL_EXIT_USAGE);
	}
	if ((cmd = ctl_find_command(argv[0])) == NULL) {
		ctl_warnx("unknown command: %s", argv[0]);
		ctl_usage(stderr);
		return (CTL_EXIT_USAGE);
	}
	if ((rc = ctl_common_options(&argc, argv)) != 0) {
		ctl_command_usage(rc == 1 ? stdout : stderr, cmd->name);
		return (rc == 1 ? 0 : CTL_EXIT_USAGE);
	}
	if (argc - 1 < cmd->argmin || argc - 1 > cmd->argmax) {
		ctl_warnx("%s: wrong number of arguments", cmd->name);
		ctl_command_usage(stderr, cmd->name);
		return (CTL_EXIT_USAGE);
	}
	if (ctl_open(ctl) != 0)
		return (1);
	if ((rc = cmd->exec(ctl, argc, argv)) == CTL_USAGE) {
		ctl_command_usage(stderr, cmd->name);
		rc = CTL_EXIT_USAGE;
	}
	return (rc < 0 ? 1 : rc);
}

int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "sql-dir", required_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct ctl			 ctl;
	const char			*sql_dir = NULL;
	int				 ch, rc;

	log_init("vialwatchctl", LOG_LEVEL_WARNING);
	memset(&ctl, 0, sizeof ctl);
	ctl.conf_path = SYSCONFDIR "/vialwatch/vialwatch.conf";
	while ((ch = getopt_long(argc, argv, "+c:hs:V", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl.conf_path = optarg;
			break;
		case 'h':
			ctl_usage(stdout);
			return (0);
		case 's':
			sql_dir = optarg;
			break;
		case 'V':
			printf("vialwatchctl %s\n", PACKAGE_VERSION);
			return (0);
		default:
			ctl_usage(stderr);
			return (CTL_EXIT_USAGE);
		}
	}
	ctl.sql_dir = ctl_sql_dir(sql_dir);

	rc = ctl_run(&ctl, argc - optind, argv + optind);
	PQfinish(ctl.conn);
	if (ctl.conf != NULL)
		conf_free(ctl.conf);
	return (rc);
}
