/* hook.c: [hook NAME] programs, run without a shell. */
#ifndef HOOK_H
#define HOOK_H

struct event_base;
struct hook;

/*
 * The end of one run, from the event loop (never from inside hook_run):
 * error is NULL when the program exited 0, else a one-line reason such as
 * "exit status 3", "killed by signal 9" or "timed out after 10 s".
 */
typedef void	(*hook_cb)(const char *error, void *arg);

/*
 * Run hook h for one event: json is the event, a JSON object, written to
 * the program's standard input; each top-level string, number or boolean
 * of it is also in the environment as VIALWATCH_<KEY> (upper case, other
 * characters than A-Z 0-9 as _), next to PATH=/usr/bin:/bin and LANG=C.UTF-8;
 * a value over 32 KiB is left out of the environment (with a warning).
 * The program gets its own process group, killed (SIGKILL) at h->timeout_ms.
 * Its standard output and error are logged, a line at a time, naming
 * the hook.  0, or -1 with *cause set (to free) if it could not start: json
 * not an object, h->argv[0] missing or not executable, no pipe, no process.
 */
int	hook_run(struct event_base *, const struct hook *, const char *json,
	    hook_cb, void *, char **cause);
/* Programs still running. */
int	hook_running(void);
/*
 * Kill every running program, reap them, no callbacks: for exit, before
 * event_base_free (it also removes the SIGCHLD events hook_run added).
 */
void	hook_kill_all(void);

#endif
