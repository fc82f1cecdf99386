/*
 * vialwatchctl audit: the audit trail in words (who, when, what changed
 * from what to what, why), and "audit verify", which recomputes the hash
 * chain and every seal of the readings (vialwatch.audit_verify()) and
 * names the first row or sensor-day that no longer matches.
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

/* The entries, oldest first, as words; $4 true: as one JSON array. */
static const char audit_sql[] =
    "with e as (select l.*, a.old, a.new"
    " from vialwatch.audit_log l join vialwatch.audit a on a.id = l.id"
    " where ($1::timestamptz is null or l.at >= $1::timestamptz)"
    " and ($2::bigint is null or l.fridge_id = $2::bigint)"
    " and ($3::text is null or l.table_name = $3::text))"
    " select case when $4::boolean then (select coalesce(json_agg(json_build_"
    "object('id', id, 'at', at, 'who', who, 'actor_contact_id',"
    " actor_contact_id, 'actor_role', actor_role, 'actor_os_user',"
    " actor_os_user, 'action', action, 'table', table_name, 'row_id', row_id,"
    " 'fridge_id', fridge_id, 'changes', changes, 'old', old, 'new', new,"
    " 'reason', reason) order by id), '[]')::text from e)"
    " else (select coalesce(string_agg(format('%s  #%s  %s (role %s%s) %s%s',"
    " to_char(at, 'YYYY-MM-DD HH24:MI:SS TZ'), id, who, actor_role,"
    " coalesce(', OS user ' || actor_os_user, ''),"
    " case when table_name = 'reading_seal' then 'sealed the readings of '"
    " || changes else case action when 'insert' then 'added'"
    " when 'update' then 'changed' else 'deleted' end || ' '"
    " || replace(table_name, '_', ' ') || coalesce(' ' || row_id, '')"
    " || coalesce(': ' || changes, '') end, coalesce(E'\\n    why: '"
    " || reason, '')), E'\\n' order by id), '') from e) end";

/* vialwatchctl audit verify [--since DATE] */
static int
audit_verify(struct ctl *ctl, const char *since)
{
	const char	*params[1] = { since };
	PGresult	*res;
	int		 rc = 0;

	res = ctl_query(ctl, "select kind, problem from"
	    " vialwatch.audit_verify($1::date)", 1, params);
	if (res == NULL)
		return (1);
	if (PQntuples(res) > 0) {
		ctl_warnx("audit verify: %s", PQgetvalue(res, 0, 1));
		PQclear(res);
		return (1);
	}
	PQclear(res);
	res = ctl_query(ctl, "select (select count(*) from vialwatch.audit),"
	    " (select count(*) from vialwatch.reading_seal),"
	    " coalesce((select encode(hash, 'hex') from vialwatch.audit_head),"
	    " 'none')", 0, NULL);
	if (res == NULL)
		return (1);
	printf("audit trail verified: %s rows chained, %s seals match the "
	    "readings; head %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
	    PQgetvalue(res, 0, 2));
	PQclear(res);
	return (rc);
}

/* vialwatchctl audit [--since DATE] [--fridge ID] [--table T] [--json] */
static int
audit_list(struct ctl *ctl, const char *const *params)
{
	PGresult	*res;
	const char	*out;

	if (params[1] != NULL && ctl_check_id(params[1]) != 0) {
		ctl_warnx("audit: bad fridge id \"%s\": expected a number",
		    params[1]);
		return (1);
	}
	if ((res = ctl_query(ctl, audit_sql, 4, params)) == NULL)
		return (1);
	out = PQgetvalue(res, 0, 0);
	if (*out == '\0')
		printf("no audit entries\n");
	else
		printf("%s\n", out);
	PQclear(res);
	return (0);
}

int
ctl_audit(struct ctl *ctl, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "fridge", required_argument, NULL, 'f' },
		{ "table", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*params[4] = { NULL, NULL, NULL, "false" };
	int				 ch, verify = 0;

	ctl->context = "audit";
	if (ctl_json)
		params[3] = "true";
	if (argc > 1 && strcmp(argv[1], "verify") == 0) {
		verify = 1;
		argc--;
		argv++;
	}
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (ch == 's')
			params[0] = optarg;
		else if (ch == 'f' && !verify)
			params[1] = optarg;
		else if (ch == 't' && !verify)
			params[2] = optarg;
		else if (ch == 'j' && !verify)
			params[3] = "true";
		else
			return (CTL_USAGE);
	}
	if (optind != argc) {
		ctl_warnx("audit: unexpected argument: %s", argv[optind]);
		return (CTL_USAGE);
	}
	if (verify)
		return (audit_verify(ctl, params[0]));
	return (audit_list(ctl, params));
}
