/*
 * Unit tests for hook.c: real programs, small shell scripts written into
 * a temporary directory, run on a real event loop. The daemon's log
 * (standard error) is captured into a file where a case checks it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf.h"
#include "hook.h"
#include "log.h"
#include "tap.h"

#define TICK_MS		20
#define BIG_JSON	(1024 * 1024)

/* One run's outcome, as its callback saw it. */
struct run {
	int	 calls;
	char	*error;
	int64_t	 started;
	int64_t	 ended;
};

static struct event_base	*base;
static char			 dir[] = "/tmp/test_hook.XXXXXX";
static int			 ticks;
static int			 saved_stderr = -1;

static int64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void
on_done(const char *error, void *arg)
{
	struct run	*r = arg;

	r->calls++;
	r->ended = now_ms();
	free(r->error);
	r->error = error != NULL ? strdup(error) : NULL;
}

/* Keeps the loop waking up, and counts how often it could. */
static void
on_tick(evutil_socket_t fd, short events, void *arg)
{
	ticks++;
}

/* Run the loop until the run has ended or ms have passed. */
static int
wait_run(struct run *r, int ms)
{
	int64_t	deadline = now_ms() + ms;

	while (r->calls == 0 && now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	return (r->calls > 0);
}

/* Run the loop for ms. */
static void
spin(int ms)
{
	int64_t	deadline = now_ms() + ms;

	while (now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
}

/* dir/name, to free. */
static char *
path_of(const char *name)
{
	char	*path;

	if (asprintf(&path, "%s/%s", dir, name) == -1)
		abort();
	return (path);
}

/* Write dir/name as a shell script with mode; its path, to free. */
static char *
script(const char *name, const char *body, mode_t mode)
{
	char	*path = path_of(name);
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL)
		abort();
	fprintf(f, "#!/bin/sh\n%s", body);
	fclose(f);
	chmod(path, mode);
	return (path);
}

/* The whole of dir/name, to free, or NULL. */
static char *
slurp(const char *name, size_t *lenp)
{
	char	*path = path_of(name), *buf = NULL;
	size_t	 len = 0;
	FILE	*f;

	if ((f = fopen(path, "r")) != NULL) {
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		rewind(f);
		buf = malloc(len + 1);
		len = fread(buf, 1, len, f);
		buf[len] = '\0';
		fclose(f);
	}
	free(path);
	if (lenp != NULL)
		*lenp = len;
	return (buf);
}

/* The pid written into dir/name, or -1. */
static pid_t
read_pid(const char *name)
{
	char	*s = slurp(name, NULL);
	pid_t	 pid = -1;

	if (s != NULL)
		pid = atoi(s);
	free(s);
	return (pid > 0 ? pid : -1);
}

/* Is the process gone: no such process, or dead and not yet reaped? */
static int
gone(pid_t pid)
{
	char	 path[64], buf[512], *p;
	FILE	*f;
	size_t	 n;

	if (kill(pid, 0) == -1 && errno == ESRCH)
		return (1);
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (1);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] == '\0')
		return (0);
	return (p[2] == 'Z' || p[2] == 'X');
}

/* Wait up to ms for gone(pid), or another test of pid, to be true. */
static int
wait_for_pid(int (*test)(pid_t), pid_t pid, int ms)
{
	int64_t	deadline = now_ms() + ms;

	while (!test(pid)) {
		if (now_ms() >= deadline)
			return (0);
		usleep(10000);
	}
	return (1);
}

static int
wait_gone(pid_t pid, int ms)
{
	return (wait_for_pid(gone, pid, ms));
}

/* Does text hold this exact line? */
static int
has_line(const char *text, const char *line)
{
	size_t	len = strlen(line);

	while (text != NULL && *text != '\0') {
		if (strncmp(text, line, len) == 0 &&
		    (text[len] == '\n' || text[len] == '\0'))
			return (1);
		if ((text = strchr(text, '\n')) != NULL)
			text++;
	}
	return (0);
}

/* Does text hold a line starting with prefix? */
static int
has_prefix(const char *text, const char *prefix)
{
	size_t	len = strlen(prefix);

	while (text != NULL && *text != '\0') {
		if (strncmp(text, prefix, len) == 0)
			return (1);
		if ((text = strchr(text, '\n')) != NULL)
			text++;
	}
	return (0);
}

/* Send the log to dir/log until capture_end. */
static void
capture_start(void)
{
	char	*path = path_of("log");
	int	 fd;

	fflush(stderr);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		abort();
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	free(path);
}

/* The log since capture_start, to free. */
static char *
capture_end(void)
{
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
	return (slurp("log", NULL));
}

/* Start the command argv for json; hook_run's result. */
static int
start_argv(const char *name, char **argv, int64_t timeout_ms,
    const char *json, struct run *r, char **cause)
{
	struct hook	 h;

	memset(&h, 0, sizeof h);
	h.name = (char *)name;
	h.argv = argv;
	h.timeout_ms = timeout_ms;
	memset(r, 0, sizeof *r);
	r->started = now_ms();
	*cause = NULL;
	return (hook_run(base, &h, json, on_done, r, cause));
}

/* Start program path, with the directory as its argument. */
static int
start(const char *name, const char *path, int64_t timeout_ms,
    const char *json, struct run *r, char **cause)
{
	char	*argv[] = { (char *)path, dir, NULL };

	return (start_argv(name, argv, timeout_ms, json, r, cause));
}

/* Run a program to its end; the callback's error. */
static const char *
run_one(const char *name, const char *body, const char *json,
    struct run *r)
{
	char	*path = script(name, body, 0755), *cause;

	if (start(name, path, 10000, json, r, &cause) == -1) {
		printf("# hook_run: %s\n", cause);
		free(cause);
	} else if (!wait_run(r, 30000))
		printf("# %s: no callback\n", name);
	free(path);
	return (r->error);
}

static void
test_env(void)
{
	const char	*json = "{\"event\":\"excursion.open\","
			    "\"fridge\":\"Fridge 1\",\"temp_c\":9.4,"
			    "\"count\":3,\"acked\":false,"
			    "\"severity-level\":\"high\",\"nested\":{\"a\":1},"
			    "\"list\":[1],\"nothing\":null,\"Temp_C\":\"dup\"}";
	struct run	 r;
	char		*path, *cause, *in, *env, *log;
	int		 rc, running;

	path = script("env", "cat > \"$1/stdin\"\n"
	    "env > \"$1/env\"\n"
	    "echo \"hello from $VIALWATCH_FRIDGE\"\n"
	    "printf 'no newline at the end' >&2\n", 0755);
	capture_start();
	rc = start("env", path, 10000, json, &r, &cause);
	running = hook_running();
	wait_run(&r, 30000);
	log = capture_end();

	is_int(rc, 0, "env: hook_run starts the program");
	is_int(r.calls == 0 ? -1 : running, 1, "env: one program running");
	is_int(r.calls, 1, "env: the callback fires once");
	is_str(r.error, NULL, "env: exit 0 is success");
	is_int(hook_running(), 0, "env: nothing running after the callback");

	in = slurp("stdin", NULL);
	is_str(in, json, "env: stdin holds exactly the JSON");
	env = slurp("env", NULL);
	ok(has_line(env, "VIALWATCH_EVENT=excursion.open"), "env: string");
	ok(has_line(env, "VIALWATCH_FRIDGE=Fridge 1"), "env: string with space");
	ok(has_line(env, "VIALWATCH_TEMP_C=9.4"), "env: number as written");
	ok(has_line(env, "VIALWATCH_COUNT=3"), "env: integer");
	ok(has_line(env, "VIALWATCH_ACKED=false"), "env: boolean");
	ok(has_line(env, "VIALWATCH_SEVERITY_LEVEL=high"),
	    "env: key upper-cased, - as _");
	ok(!has_prefix(env, "VIALWATCH_NESTED=") &&
	    !has_prefix(env, "VIALWATCH_LIST=") &&
	    !has_prefix(env, "VIALWATCH_NOTHING="),
	    "env: objects, arrays and null left out");
	ok(!has_line(env, "VIALWATCH_TEMP_C=dup"),
	    "env: a clashing key does not override the first");
	ok(has_line(env, "PATH=/usr/bin:/bin"), "env: PATH");
	ok(has_line(env, "LANG=C.UTF-8"), "env: LANG");
	ok(!has_prefix(env, "HOME=") && !has_prefix(env, "VW_TEST_SECRET="),
	    "env: nothing of the daemon's environment");

	ok(has_line(log, "info: hook env: hello from Fridge 1"),
	    "log: stdout line logged with the hook name");
	ok(has_line(log, "info: hook env: no newline at the end"),
	    "log: stderr and a last line without newline logged");
	ok(has_prefix(log, "debug: hook env: started") &&
	    strstr(log, "pid") != NULL, "log: start logged with the pid");
	ok(strstr(log, "excursion.open") == NULL, "log: the JSON is not");
	if (!has_line(log, "info: hook env: hello from Fridge 1"))
		printf("# log: %s\n", log);
	free(in);
	free(env);
	free(log);
	free(r.error);
	free(path);
}

/* Process group, signal mask and dispositions, descriptors. */
static void
test_attrs(void)
{
	char		*grep[] = { "/bin/grep", "^SigBlk", "/proc/self/status",
			    NULL };
	struct run	 r;
	sigset_t	 set, old;
	char		*s, *log, *cause;
	pid_t		 pid;
	int		 fd, leak;

	/* Blocked and leaked here; neither may reach the program. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	fd = open("/dev/null", O_RDONLY);
	leak = dup2(fd, 42);
	close(fd);

	/* No shell here: a shell changes its mask while it waits. */
	capture_start();
	start_argv("mask", grep, 5000, "{}", &r, &cause);
	wait_run(&r, 30000);
	log = capture_end();
	is_str(r.error, NULL, "attrs: a program run without a shell");
	ok(has_line(log, "info: hook mask: SigBlk:\t0000000000000000"),
	    "attrs: empty signal mask");
	free(log);
	free(r.error);

	run_one("attrs", "echo $$ > \"$1/pid\"\n"
	    "cut -d' ' -f5 /proc/$$/stat > \"$1/pgid\"\n"
	    "ls /proc/$$/fd > \"$1/fds\"\n"
	    "kill -PIPE $$\n"
	    "exit 0\n", "{}", &r);
	sigprocmask(SIG_SETMASK, &old, NULL);

	is_str(r.error, "killed by signal 13",
	    "attrs: SIGPIPE has its default action");
	pid = read_pid("pid");
	is_int(read_pid("pgid"), pid, "attrs: own process group");
	s = slurp("fds", NULL);
	ok(s != NULL && has_line(s, "0") && has_line(s, "1") &&
	    has_line(s, "2") && !has_line(s, "42"),
	    "attrs: 0, 1, 2 open, the daemon's other descriptors not");
	free(s);
	if (leak != -1)
		close(leak);
	free(r.error);
}

static void
test_exit(void)
{
	struct run	r;

	is_str(run_one("exit3", "exit 3\n", "{}", &r), "exit status 3",
	    "exit 3 gives \"exit status 3\"");
	free(r.error);
	is_str(run_one("term", "kill -TERM $$\nexit 0\n", "{}", &r),
	    "killed by signal 15", "a signal gives \"killed by signal 15\"");
	free(r.error);
}

/* Is every process of process group pgid gone (or dead, not reaped)? */
static int
group_gone(pid_t pgid)
{
	DIR		*d;
	struct dirent	*e;
	char		 path[300], buf[512], *p;
	FILE		*f;
	size_t		 n;
	int		 found = 0;
	long		 g;

	if (kill(-pgid, 0) == -1 && errno == ESRCH)
		return (1);
	if ((d = opendir("/proc")) == NULL)
		return (0);
	while (!found && (e = readdir(d)) != NULL) {
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
		    (f = fopen(path, "r")) == NULL)
			continue;
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* pid (comm) state ppid pgrp */
		if ((p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 2, "%*c %*d %ld", &g) == 1 && g == pgid &&
		    p[2] != 'Z' && p[2] != 'X')
			found = 1;
	}
	closedir(d);
	return (!found);
}

/* The pid of the last "hook NAME: started ..., pid N" line, or -1. */
static pid_t
started_pid(const char *log, const char *name)
{
	char		 prefix[64];
	const char	*line, *p;
	pid_t		 pid = -1;

	snprintf(prefix, sizeof prefix, "debug: hook %s: started ", name);
	for (line = log; line != NULL && *line != '\0'; line =
	    (line = strchr(line, '\n')) != NULL ? line + 1 : NULL) {
		if (strncmp(line, prefix, strlen(prefix)) == 0 &&
		    (p = strstr(line, ", pid ")) != NULL)
			pid = atoi(p + 6);
	}
	return (pid > 0 ? pid : -1);
}

/*
 * The deadlines here are for the state awaited, not speed goals: they
 * only end a wait that would never end, on a machine however loaded.
 */
static void
test_timeout(void)
{
	struct run	 r;
	char		*path, *cause, *log;
	pid_t		 pid, bg;

	/*
	 * Killed at 300 ms, whatever it did by then: the process group the
	 * program had (its pid, from the log) is gone, background child
	 * included; a child it named (renamed into place) is gone too.
	 */
	path = script("slow", "sleep 30 &\n"
	    "echo $! > \"$1/slow.bg.tmp\"\n"
	    "mv \"$1/slow.bg.tmp\" \"$1/slow.bg\"\n"
	    "sleep 30\n", 0755);
	capture_start();
	is_int(start("slow", path, 300, "{}", &r, &cause), 0,
	    "timeout: started");
	ok(wait_run(&r, 30000), "timeout: the callback comes");
	log = capture_end();
	is_str(r.error, "timed out after 300 ms", "timeout: the reason");
	ok(r.ended - r.started >= 250, "timeout: not before the timeout");
	pid = started_pid(log, "slow");
	ok(pid != -1 && wait_for_pid(group_gone, pid, 30000),
	    "timeout: the program and its process group are gone");
	bg = read_pid("slow.bg");
	ok(bg == -1 || wait_gone(bg, 30000),
	    "timeout: the program's background child is gone");
	free(log);
	free(r.error);
	free(path);

	path = script("slow1", "exec sleep 30\n", 0755);
	start("slow1", path, 1000, "{}", &r, &cause);
	wait_run(&r, 30000);
	is_str(r.error, "timed out after 1 s", "timeout: whole seconds");
	free(r.error);
	free(path);
}

/* Output held open by a process the program left behind. */
static void
test_linger(void)
{
	struct run	r;
	pid_t		bg;

	run_one("linger", "sleep 30 &\necho $! > \"$1/linger.bg\"\nexit 0\n",
	    "{}", &r);
	bg = read_pid("linger.bg");
	ok(r.calls == 1 && bg != -1 && !gone(bg),
	    "linger: callback after the exit, the pipe still held");
	is_str(r.error, NULL, "linger: success");
	if (bg != -1)
		kill(bg, SIGKILL);
	free(r.error);
}

static void
test_big(void)
{
	struct run	 r;
	char		*json, *got, *log;
	size_t		 len;
	int		 before;

	json = malloc(BIG_JSON + 64);
	len = snprintf(json, 64, "{\"event\":\"big\",\"pad\":\"");
	memset(json + len, 'a', BIG_JSON);
	strcpy(json + len + BIG_JSON, "\"}");

	before = ticks;
	capture_start();
	run_one("noread", "sleep 1\nexit 0\n", json, &r);
	log = capture_end();
	is_str(r.error, NULL, "big: a program not reading 1 MiB succeeds");
	ok(ticks - before >= 20, "big: the loop kept running (%d ticks)",
	    ticks - before);
	ok(strstr(log, "\"pad\" is too long for the environment") != NULL,
	    "big: a huge member is left out of the environment");
	free(r.error);
	free(log);

	run_one("read", "cat > \"$1/big\"\nexit 0\n", json, &r);
	is_str(r.error, NULL, "big: a program reading 1 MiB succeeds");
	got = slurp("big", &len);
	ok(got != NULL && len == strlen(json) && strcmp(got, json) == 0,
	    "big: it got all of it");
	free(got);
	free(r.error);
	free(json);
}

static void
test_fail(void)
{
	struct run	 r;
	char		*cause, *path;

	is_int(start("nope", "/nonexistent/hook", 1000, "{}", &r, &cause), -1,
	    "fail: a missing program: hook_run returns -1");
	is_str(cause, "/nonexistent/hook: No such file or directory",
	    "fail: ... with the reason");
	free(cause);

	path = script("noexec", "exit 0\n", 0644);
	is_int(start("noexec", path, 1000, "{}", &r, &cause), -1,
	    "fail: a program not executable: -1");
	ok(cause != NULL && strstr(cause, "Permission denied") != NULL,
	    "fail: ... with the reason");
	free(cause);
	chmod(path, 0755);

	is_int(start("array", path, 1000, "[1,2]", &r, &cause), -1,
	    "fail: a JSON array: -1");
	is_str(cause, "event is not a JSON object", "fail: ... with the reason");
	free(cause);
	is_int(start("junk", path, 1000, "{oops", &r, &cause), -1,
	    "fail: not JSON: -1");
	ok(cause != NULL && strncmp(cause, "event is not JSON", 17) == 0,
	    "fail: ... with the reason");
	free(cause);

	spin(100);
	is_int(r.calls, 0, "fail: no callback");
	is_int(hook_running(), 0, "fail: nothing running");
	free(r.error);
	free(path);
}

static void
test_lines(void)
{
	struct run	 r;
	char		*log, want[600];

	capture_start();
	run_one("chatty", "printf '%0600d\\n' 0\n"
	    "i=1\n"
	    "while [ $i -le 150 ]; do echo \"line $i\"; i=$((i + 1)); done\n",
	    "{}", &r);
	log = capture_end();
	is_str(r.error, NULL, "lines: success");
	snprintf(want, sizeof want, "info: hook chatty: %0512d...", 0);
	ok(has_line(log, want), "lines: a long line is cut at 512 bytes");
	ok(has_line(log, "info: hook chatty: line 99"), "lines: 100 logged");
	ok(!has_line(log, "info: hook chatty: line 100"),
	    "lines: not more");
	ok(has_line(log, "info: hook chatty: 51 more lines not logged"),
	    "lines: the rest counted");
	free(log);
	free(r.error);
}

/* Several at once, each its own end. */
static void
test_many(void)
{
	static const char	*bodies[] = { "exit 0\n", "sleep 0.2\nexit 1\n",
				    "exit 2\n" };
	static const char	*want[] = { NULL, "exit status 1",
				    "exit status 2" };
	struct run		 r[3];
	char			*path[3], name[16], *cause;
	int			 i;
	int64_t			 deadline = now_ms() + 30000;

	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "many%d", i);
		path[i] = script(name, bodies[i], 0755);
		start(name, path[i], 30000, "{}", &r[i], &cause);
	}
	is_int(hook_running(), 3, "many: three running");
	while ((r[0].calls == 0 || r[1].calls == 0 || r[2].calls == 0) &&
	    now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	for (i = 0; i < 3; i++) {
		is_int(r[i].calls, 1, "many: %d ended once", i);
		is_str(r[i].error, want[i], "many: %d its own reason", i);
		free(r[i].error);
		free(path[i]);
	}
}

static void
test_kill_all(void)
{
	struct run	 r;
	char		*path, *cause;
	pid_t		 pid = -1;
	int64_t		 deadline = now_ms() + 30000;

	path = script("stuck", "echo $$ > \"$1/stuck.pid\"\nexec sleep 30\n",
	    0755);
	start("stuck", path, 10000, "{}", &r, &cause);
	while ((pid = read_pid("stuck.pid")) == -1 && now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	is_int(hook_running(), 1, "kill_all: one running");
	hook_kill_all();
	is_int(hook_running(), 0, "kill_all: none after");
	ok(pid != -1 && kill(pid, 0) == -1 && errno == ESRCH,
	    "kill_all: the program is killed and reaped");
	spin(200);
	is_int(r.calls, 0, "kill_all: no callback");
	free(path);
}

static void
cleanup(void)
{
	struct dirent	*de;
	DIR		*d;
	char		*path;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		path = path_of(de->d_name);
		unlink(path);
		free(path);
	}
	closedir(d);
	rmdir(dir);
}

int
main(void)
{
	struct event	*tick;
	struct timeval	 tv = { 0, TICK_MS * 1000 };

	/* As the daemon does. */
	signal(SIGPIPE, SIG_IGN);
	setenv("HOME", "/root", 1);
	setenv("VW_TEST_SECRET", "hunter2", 1);
	unsetenv("JOURNAL_STREAM");
	log_init("test_hook", LOG_LEVEL_DEBUG);

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	base = event_base_new();
	tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	event_add(tick, &tv);

	test_env();
	test_attrs();
	test_exit();
	test_timeout();
	test_linger();
	test_big();
	test_fail();
	test_lines();
	test_many();
	test_kill_all();

	event_free(tick);
	event_base_free(base);
	cleanup();
	return (done_testing());
}
