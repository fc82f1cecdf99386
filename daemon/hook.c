/*
 * Hooks: the [hook NAME] programs, one child process per run.
 *
 * A program is started with posix_spawn, never through a shell, in a
 * process group of its own, with default signal dispositions, an empty
 * signal mask and an environment made only of PATH, LANG and the event's
 * top-level members. The event's JSON goes to its standard input through
 * a non-blocking pipe written from the loop, so a big event or a program
 * that does not read it never blocks the daemon. Its standard output and
 * error share a second pipe, read from the loop and logged a line at a
 * time. Every pipe end is close-on-exec and the child closes all its
 * other descriptors, so it inherits nothing of the daemon's.
 *
 * Children are reaped on SIGCHLD, each by its own pid, so that other
 * children of the daemon are left alone. At the timeout the whole process
 * group is killed. A run ends when its program has been reaped and its
 * output read to the end, or HOOK_GRACE_MS after the reap when something
 * it left behind still holds the pipe open; then its callback runs, from
 * the run's own timer.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/queue.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <json-c/json.h>

#include "conf.h"
#include "hook.h"
#include "log.h"
#include "xmalloc.h"

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HOOK_HAVE_CLOSEFROM
#endif

#define HOOK_LINE_MAX		512	/* bytes of a line logged */
#define HOOK_LINES_MAX		100	/* lines logged per run */
#define HOOK_ENV_VALUE_MAX	(32 * 1024)
#define HOOK_GRACE_MS		100	/* output kept open after the reap */
#define HOOK_REAP_RETRY_MS	1000	/* after the kill, should SIGCHLD fail */
#define HOOK_READ_SIZE		4096
#define HOOK_READS_MAX		16	/* reads per callback */

/* The SIGCHLD event of one event base. */
struct hook_base {
	LIST_ENTRY(hook_base)	 entry;
	struct event_base	*base;
	struct event		 ev_sigchld;
};

enum hook_state {
	HOOK_RUNNING,
	HOOK_KILLED,		/* timed out, SIGKILL sent */
	HOOK_REAPED,		/* exited; the output may still be open */
};

/* One run of a program. */
struct hook_proc {
	TAILQ_ENTRY(hook_proc)	 entry;
	char			*name;
	pid_t			 pid;
	enum hook_state		 state;
	int64_t			 timeout_ms;
	char			*error;		/* the reason, set at the reap */
	hook_cb			 cb;
	void			*arg;
	struct event		 ev_timer;	/* timeout, retry, then grace */

	int			 in_fd;		/* -1 once written or closed */
	char			*json;
	size_t			 json_len;
	size_t			 json_off;
	struct event		 ev_in;

	int			 out_fd;	/* -1 at end of file */
	struct event		 ev_out;
	char			 line[HOOK_LINE_MAX + 1];
	size_t			 line_len;
	int			 line_cut;	/* longer than HOOK_LINE_MAX */
	int			 nlines;	/* logged */
	int			 dropped;	/* not logged, over HOOK_LINES_MAX */
};

static LIST_HEAD(, hook_base) hook_bases = LIST_HEAD_INITIALIZER(hook_bases);
static TAILQ_HEAD(, hook_proc) hook_procs =
    TAILQ_HEAD_INITIALIZER(hook_procs);
static int hook_count;

static void	hook_sigchld(evutil_socket_t, short, void *);
static void	hook_timer(evutil_socket_t, short, void *);

/* Add ms to a timer. */
static void
hook_timer_add(struct hook_proc *p, int64_t ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(&p->ev_timer, &tv);
}

/* A duration for a person: "10 s" or "500 ms". */
static char *
hook_duration(int64_t ms)
{
	char	*s;

	if (ms >= 1000 && ms % 1000 == 0)
		xasprintf(&s, "%lld s", (long long)(ms / 1000));
	else
		xasprintf(&s, "%lld ms", (long long)ms);
	return (s);
}

/* The SIGCHLD event of a base, set up on first use. */
static int
hook_base_get(struct event_base *base, char **cause)
{
	struct hook_base	*hb;

	LIST_FOREACH(hb, &hook_bases, entry) {
		if (hb->base == base)
			return (0);
	}
	hb = xcalloc(1, sizeof *hb);
	hb->base = base;
	evsignal_assign(&hb->ev_sigchld, base, SIGCHLD, hook_sigchld, NULL);
	if (evsignal_add(&hb->ev_sigchld, NULL) == -1) {
		free(hb);
		*cause = xstrdup("cannot watch SIGCHLD");
		return (-1);
	}
	LIST_INSERT_HEAD(&hook_bases, hb, entry);
	return (0);
}

/* A member's value as the environment has it, or NULL to leave it out. */
static const char *
hook_env_value(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return (json_object_get_string(v));
	case json_type_int:
	case json_type_double:
		return (json_object_to_json_string_ext(v,
		    JSON_C_TO_STRING_PLAIN));
	case json_type_boolean:
		return (json_object_get_boolean(v) ? "true" : "false");
	default:
		return (NULL);
	}
}

/*
 * The environment of a run, NULL-terminated, or NULL with *cause set if
 * json is not a JSON object. Members whose names differ only in the
 * characters replaced by _ give one variable, the first's.
 */
static char **
hook_env(const char *name, const char *json, char **cause)
{
	struct json_object	*obj;
	enum json_tokener_error	 jerr;
	const char		*value;
	char			**env, *s;
	size_t			 n = 0, i, keylen;

	if ((obj = json_tokener_parse_verbose(json, &jerr)) == NULL) {
		xasprintf(cause, "event is not JSON: %s",
		    json_tokener_error_desc(jerr));
		return (NULL);
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		*cause = xstrdup("event is not a JSON object");
		return (NULL);
	}
	env = xreallocarray(NULL, json_object_object_length(obj) + 3,
	    sizeof *env);
	env[n++] = xstrdup("PATH=/usr/bin:/bin");
	env[n++] = xstrdup("LANG=C.UTF-8");
	json_object_object_foreach(obj, key, v) {
		if ((value = hook_env_value(v)) == NULL)
			continue;
		if (strlen(value) > HOOK_ENV_VALUE_MAX) {
			log_warnx("hook %s: \"%s\" is too long for the "
			    "environment, left out", name, key);
			continue;
		}
		xasprintf(&s, "VIALWATCH_%s=%s", key, value);
		keylen = strlen("VIALWATCH_") + strlen(key);
		for (i = strlen("VIALWATCH_"); i < keylen; i++) {
			if (s[i] >= 'a' && s[i] <= 'z')
				s[i] -= 'a' - 'A';
			else if ((s[i] < 'A' || s[i] > 'Z') &&
			    (s[i] < '0' || s[i] > '9'))
				s[i] = '_';
		}
		for (i = 2; i < n; i++) {
			if (strncmp(env[i], s, keylen + 1) == 0)
				break;
		}
		if (i < n)
			free(s);
		else
			env[n++] = s;
	}
	env[n] = NULL;
	json_object_put(obj);
	return (env);
}

static void
hook_env_free(char **env)
{
	size_t	i;

	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/*
 * A close-on-exec pipe whose ends are above standard error, so that the
 * child's dup2 onto 0, 1 and 2 cannot overwrite one with another.
 */
static int
hook_pipe(int fds[2], char **cause)
{
	int	i, fd;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		xasprintf(cause, "pipe: %s", strerror(errno));
		return (-1);
	}
	for (i = 0; i < 2; i++) {
		if (fds[i] > STDERR_FILENO)
			continue;
		if ((fd = fcntl(fds[i], F_DUPFD_CLOEXEC,
		    STDERR_FILENO + 1)) == -1) {
			xasprintf(cause, "fcntl: %s", strerror(errno));
			close(fds[0]);
			close(fds[1]);
			return (-1);
		}
		close(fds[i]);
		fds[i] = fd;
	}
	return (0);
}

static void
hook_nonblock(int fd)
{
	int	flags;

	if ((flags = fcntl(fd, F_GETFL)) != -1)
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Start the program: in_fd is its stdin, out_fd its stdout and stderr. */
static int
hook_spawn(const struct hook *h, char **env, int in_fd, int out_fd,
    pid_t *pid, char **cause)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 attr;
	sigset_t			 mask, def;
	int				 error;

	if ((error = posix_spawn_file_actions_init(&fa)) != 0)
		goto fail;
	if ((error = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		goto fail;
	}
	error = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
	if (error == 0)
		error = posix_spawn_file_actions_adddup2(&fa, out_fd,
		    STDOUT_FILENO);
	if (error == 0)
		error = posix_spawn_file_actions_adddup2(&fa, out_fd,
		    STDERR_FILENO);
#ifdef HOOK_HAVE_CLOSEFROM
	if (error == 0)
		error = posix_spawn_file_actions_addclosefrom_np(&fa,
		    STDERR_FILENO + 1);
#endif

	sigemptyset(&mask);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGHUP);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGCHLD);
	if (error == 0)
		error = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
		    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (error == 0)
		error = posix_spawnattr_setpgroup(&attr, 0);
	if (error == 0)
		error = posix_spawnattr_setsigmask(&attr, &mask);
	if (error == 0)
		error = posix_spawnattr_setsigdefault(&attr, &def);

	if (error == 0)
		error = posix_spawn(pid, h->argv[0], &fa, &attr, h->argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (error == 0)
		return (0);
fail:
	xasprintf(cause, "%s: %s", h->argv[0], strerror(error));
	return (-1);
}

/* Free a run; its callback is not called. */
static void
hook_proc_free(struct hook_proc *p)
{
	TAILQ_REMOVE(&hook_procs, p, entry);
	hook_count--;
	event_del(&p->ev_timer);
	if (p->in_fd != -1) {
		event_del(&p->ev_in);
		close(p->in_fd);
	}
	if (p->out_fd != -1) {
		event_del(&p->ev_out);
		close(p->out_fd);
	}
	free(p->error);
	free(p->json);
	free(p->name);
	free(p);
}

/* Stop writing the program's standard input. */
static void
hook_close_in(struct hook_proc *p)
{
	if (p->in_fd == -1)
		return;
	event_del(&p->ev_in);
	close(p->in_fd);
	p->in_fd = -1;
	free(p->json);
	p->json = NULL;
}

/* Write what the pipe takes of the JSON. */
static void
hook_write(evutil_socket_t fd, short events, void *arg)
{
	struct hook_proc	*p = arg;
	ssize_t			 n;

	while (p->json_off < p->json_len) {
		n = write(fd, p->json + p->json_off, p->json_len - p->json_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1 && errno == EPIPE) {
			/* Not an error: the program need not read it all. */
			log_debug("hook %s: input not read to the end",
			    p->name);
			break;
		}
		if (n == -1) {
			log_warn("hook %s: write", p->name);
			break;
		}
		p->json_off += n;
	}
	hook_close_in(p);
}

/* Log the line collected, if the run has not logged too many. */
static void
hook_line(struct hook_proc *p)
{
	size_t	i;

	while (p->line_len > 0 && (p->line[p->line_len - 1] == '\r' ||
	    p->line[p->line_len - 1] == ' '))
		p->line_len--;
	if (p->line_len == 0) {
		p->line_cut = 0;
		return;
	}
	p->line[p->line_len] = '\0';
	for (i = 0; i < p->line_len; i++) {
		/* A program's bytes make one log line, printable. */
		if ((unsigned char)p->line[i] < 0x20 && p->line[i] != '\t')
			p->line[i] = '?';
		else if (p->line[i] == 0x7f)
			p->line[i] = '?';
	}
	if (p->nlines < HOOK_LINES_MAX) {
		log_info("hook %s: %s%s", p->name, p->line,
		    p->line_cut ? "..." : "");
		p->nlines++;
	} else
		p->dropped++;
	p->line_len = 0;
	p->line_cut = 0;
}

/* Cut what the program wrote into lines. */
static void
hook_output(struct hook_proc *p, const char *buf, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (buf[i] == '\n')
			hook_line(p);
		else if (p->line_len < HOOK_LINE_MAX)
			p->line[p->line_len++] = buf[i];
		else
			p->line_cut = 1;
	}
}

/*
 * Read the output pipe until it would block (or HOOK_READS_MAX times, to
 * leave the loop to others): 1 at end of file, else 0.
 */
static int
hook_drain(struct hook_proc *p)
{
	char	buf[HOOK_READ_SIZE];
	ssize_t	n;
	int	i;

	for (i = 0; i < HOOK_READS_MAX; i++) {
		n = read(p->out_fd, buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return (0);
		if (n == -1) {
			log_warn("hook %s: read", p->name);
			return (1);
		}
		if (n == 0)
			return (1);
		hook_output(p, buf, n);
	}
	return (0);
}

/* Stop reading the output; the last line may lack its newline. */
static void
hook_close_out(struct hook_proc *p)
{
	if (p->out_fd == -1)
		return;
	event_del(&p->ev_out);
	close(p->out_fd);
	p->out_fd = -1;
	hook_line(p);
	if (p->dropped > 0)
		log_info("hook %s: %d more lines not logged", p->name,
		    p->dropped);
}

/* The end of a run: free it, then tell its owner. */
static void
hook_finish(struct hook_proc *p)
{
	hook_cb	 cb = p->cb;
	void	*arg = p->arg;
	char	*error = p->error;

	hook_close_out(p);
	p->error = NULL;
	hook_proc_free(p);
	cb(error, arg);
	free(error);
}

/* The output is readable; at its end, the run may be over. */
static void
hook_read(evutil_socket_t fd, short events, void *arg)
{
	struct hook_proc	*p = arg;

	if (!hook_drain(p))
		return;
	hook_close_out(p);
	if (p->state == HOOK_REAPED)
		hook_finish(p);
}

/*
 * Has the program exited? Then take its reason and leave the rest of the
 * run to its timer: now if the output is closed, else after a grace.
 */
static void
hook_reap(struct hook_proc *p)
{
	char	*s;
	pid_t	 pid;
	int	 status;

	do
		pid = waitpid(p->pid, &status, WNOHANG);
	while (pid == -1 && errno == EINTR);
	if (pid == 0)
		return;

	if (pid == -1)
		xasprintf(&p->error, "cannot wait: %s", strerror(errno));
	else if (p->state == HOOK_KILLED) {
		s = hook_duration(p->timeout_ms);
		xasprintf(&p->error, "timed out after %s", s);
		free(s);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		xasprintf(&p->error, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		xasprintf(&p->error, "killed by signal %d", WTERMSIG(status));
	log_debug("hook %s: pid %ld ended: %s", p->name, (long)p->pid,
	    p->error != NULL ? p->error : "success");

	p->state = HOOK_REAPED;
	hook_close_in(p);
	event_del(&p->ev_timer);
	if (p->out_fd == -1)
		event_active(&p->ev_timer, EV_TIMEOUT, 0);
	else
		hook_timer_add(p, HOOK_GRACE_MS);
}

/* SIGCHLD: reap any of the runs' programs that have exited. */
static void
hook_sigchld(evutil_socket_t sig, short events, void *arg)
{
	struct hook_proc	*p;

	TAILQ_FOREACH(p, &hook_procs, entry) {
		if (p->state != HOOK_REAPED)
			hook_reap(p);
	}
}

/* The timeout, the retried reap after a kill, or the end of the run. */
static void
hook_timer(evutil_socket_t fd, short events, void *arg)
{
	struct hook_proc	*p = arg;

	switch (p->state) {
	case HOOK_RUNNING:
		log_debug("hook %s: pid %ld timed out, killing it", p->name,
		    (long)p->pid);
		if (kill(-p->pid, SIGKILL) == -1)
			kill(p->pid, SIGKILL);
		p->state = HOOK_KILLED;
		hook_timer_add(p, HOOK_REAP_RETRY_MS);
		break;
	case HOOK_KILLED:
		hook_reap(p);
		if (p->state == HOOK_KILLED)
			hook_timer_add(p, HOOK_REAP_RETRY_MS);
		break;
	case HOOK_REAPED:
		if (p->out_fd != -1)
			hook_drain(p);
		hook_finish(p);
		break;
	}
}

int
hook_run(struct event_base *base, const struct hook *h, const char *json,
    hook_cb cb, void *arg, char **cause)
{
	struct hook_proc	*p;
	char			**env;
	int			 in[2], out[2];
	pid_t			 pid;

	if (h->argv == NULL || h->argv[0] == NULL) {
		*cause = xstrdup("no command");
		return (-1);
	}
	/*
	 * glibc's posix_spawn reports a failed exec, but not everywhere (not
	 * under valgrind, say): look first, so that a missing program is an
	 * error here, not an exit status 127 later.
	 */
	if (access(h->argv[0], X_OK) == -1) {
		xasprintf(cause, "%s: %s", h->argv[0], strerror(errno));
		return (-1);
	}
	if ((env = hook_env(h->name, json, cause)) == NULL)
		return (-1);
	if (hook_base_get(base, cause) == -1 || hook_pipe(in, cause) == -1) {
		hook_env_free(env);
		return (-1);
	}
	if (hook_pipe(out, cause) == -1) {
		close(in[0]);
		close(in[1]);
		hook_env_free(env);
		return (-1);
	}
	if (hook_spawn(h, env, in[0], out[1], &pid, cause) == -1) {
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		hook_env_free(env);
		return (-1);
	}
	hook_env_free(env);
	close(in[0]);
	close(out[1]);
	hook_nonblock(in[1]);
	hook_nonblock(out[0]);

	p = xcalloc(1, sizeof *p);
	p->name = xstrdup(h->name);
	p->pid = pid;
	p->state = HOOK_RUNNING;
	p->timeout_ms = h->timeout_ms;
	p->cb = cb;
	p->arg = arg;
	p->in_fd = in[1];
	p->json_len = strlen(json);
	p->json = xmalloc(p->json_len + 1);
	memcpy(p->json, json, p->json_len + 1);
	p->out_fd = out[0];
	event_assign(&p->ev_timer, base, -1, 0, hook_timer, p);
	event_assign(&p->ev_in, base, p->in_fd, EV_WRITE | EV_PERSIST,
	    hook_write, p);
	event_assign(&p->ev_out, base, p->out_fd, EV_READ | EV_PERSIST,
	    hook_read, p);
	event_add(&p->ev_in, NULL);
	event_add(&p->ev_out, NULL);
	if (p->timeout_ms > 0)
		hook_timer_add(p, p->timeout_ms);
	TAILQ_INSERT_TAIL(&hook_procs, p, entry);
	hook_count++;

	log_debug("hook %s: started %s, pid %ld", h->name, h->argv[0],
	    (long)pid);
	return (0);
}

int
hook_running(void)
{
	return (hook_count);
}

void
hook_kill_all(void)
{
	struct hook_proc	*p;
	struct hook_base	*hb;

	while ((p = TAILQ_FIRST(&hook_procs)) != NULL) {
		if (p->state != HOOK_REAPED) {
			log_debug("hook %s: killing pid %ld", p->name,
			    (long)p->pid);
			if (kill(-p->pid, SIGKILL) == -1)
				kill(p->pid, SIGKILL);
			while (waitpid(p->pid, NULL, 0) == -1 && errno == EINTR)
				;
		}
		hook_proc_free(p);
	}
	while ((hb = LIST_FIRST(&hook_bases)) != NULL) {
		LIST_REMOVE(hb, entry);
		event_del(&hb->ev_sigchld);
		free(hb);
	}
}
