/*
 * Who is acting: vialwatchctl commands that change the record name a
 * person with --by (a contact's email address or id) and, where the record
 * asks for one, a reason.  Both go into session settings that the audit
 * trail reads, with the operating-system user.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ctl.h"
#include "xmalloc.h"

/* The name of the user running vialwatchctl, or its uid. */
char *
ctl_actor_os_user(void)
{
	struct passwd	*pw;
	char		*s;

	if ((pw = getpwuid(getuid())) != NULL && pw->pw_name != NULL)
		return (xstrdup(pw->pw_name));
	xasprintf(&s, "uid %lu", (unsigned long)getuid());
	return (s);
}

/*
 * Name the person acting for the rest of the session: the contact by (an
 * email address or id), the OS user and reason (may be NULL).  Returns the
 * contact's id (> 0), or -1 after telling the user that nobody is known by
 * that name.
 */
long long
ctl_actor(struct ctl *ctl, const char *by, const char *reason)
{
	const char	*params[3];
	char		*os_user;
	PGresult	*res;
	long long	 id;

	if (by == NULL || strspn(by, " \t") == strlen(by)) {
		ctl_warnx("%s: --by is required: the email address or id of the "
		    "contact acting", ctl->context != NULL ? ctl->context :
		    "vialwatchctl");
		return (-1);
	}
	os_user = ctl_actor_os_user();
	params[0] = by;
	params[1] = os_user;
	params[2] = reason;
	res = ctl_query(ctl, "select vialwatch.actor_set($1, $2, $3)", 3,
	    params);
	free(os_user);
	if (res == NULL)
		return (-1);
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (id);
}

/*
 * Take "--by WHO" and "--reason TEXT" out of argv, keeping the other
 * arguments in order and updating *argc: 0, or CTL_USAGE after saying
 * what is missing.  Unset ones are left NULL.
 */
int
ctl_actor_args(const char *cmd, int *argc, char **argv, const char **by,
    const char **reason)
{
	const char	**to;
	int		  i, n = 0;

	*by = *reason = NULL;
	for (i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--by") == 0)
			to = by;
		else if (strcmp(argv[i], "--reason") == 0)
			to = reason;
		else {
			argv[n++] = argv[i];
			continue;
		}
		if (i + 1 == *argc) {
			ctl_warnx("%s: %s needs a value", cmd, argv[i]);
			return (CTL_USAGE);
		}
		*to = argv[++i];
	}
	*argc = n;
	return (0);
}
