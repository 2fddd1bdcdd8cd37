/* Hooks: hooks.on_message runs, for every message the node stored, as its
 * own process with the message in its environment.  The loop never waits
 * for one: posix_spawn returns at once, the exit comes as an ev_child
 * event (the default loop), a timer kills it after hooks.timeout (its
 * whole process group), and at most hooks.max_running run at once; the
 * others wait in a bounded queue, and beyond that are dropped (logged).
 * One node per process: the state is this file's. */
#include "control/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "log.h"
#include "xmalloc.h"

#define MOD "Hooks"
#define QUEUE_MAX 256   /* messages waiting for a free slot */
#define ARGV_MAX 32

extern char **environ;

/* What a hook is told: copies, the event's strings do not outlive it. */
struct job {
	char *from, *to, *type, *text, *msg_id, *identity;
	struct job *next;
};

struct child {
	ev_child exit_w;
	ev_timer timeout_w;
	pid_t pid;
	struct child *next;
};

static struct {
	struct ev_loop *loop;
	struct node *node;
	struct child *running;
	int nrunning;
	struct job *head, *tail;
	int nwaiting;
	struct hooks_stats stats;
} H;

static void job_free(struct job *j)
{
	free(j->from);
	free(j->to);
	free(j->type);
	free(j->text);
	free(j->msg_id);
	free(j->identity);
	free(j);
}

static char *env_var(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = xmalloc(n);

	snprintf(s, n, "%s=%s", name, value);
	return s;
}

static void start_next(void);

static void child_end(struct child *c)
{
	struct child **pp;

	ev_child_stop(H.loop, &c->exit_w);
	ev_timer_stop(H.loop, &c->timeout_w);
	for (pp = &H.running; *pp && *pp != c; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = c->next;
	H.nrunning--;
	free(c);
}

static void on_exit_(struct ev_loop *loop, ev_child *w, int revents)
{
	struct child *c = w->data;
	int st = w->rstatus;

	(void)loop;
	(void)revents;
	H.stats.exited++;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		log_debug(MOD, "hook %ld exited 0", (long)c->pid);
	else if (WIFEXITED(st))
		log_warn(MOD, "hook %ld exited with status %d", (long)c->pid, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		log_warn(MOD, "hook %ld killed by signal %d", (long)c->pid, WTERMSIG(st));
	child_end(c);
	start_next();
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;

	(void)loop;
	(void)revents;
	/* Its group: a script's own children go too.  The exit still comes
	 * through the child watcher. */
	log_warn(MOD, "hook %ld still running after hooks.timeout: killed", (long)c->pid);
	H.stats.killed++;
	if (kill(-c->pid, SIGKILL) != 0)
		kill(c->pid, SIGKILL);
}

/* Spawn the program for j: 0, or -1 (logged). */
static int spawn(const struct config *cfg, const struct job *j)
{
	char line[CFG_STR_MAX], *argv[ARGV_MAX + 1], *save = NULL;
	int argc = 0;

	snprintf(line, sizeof line, "%s", cfg->hooks.on_message);
	for (char *w = strtok_r(line, " \t", &save); w && argc < ARGV_MAX; w = strtok_r(NULL, " \t", &save))
		argv[argc++] = w;
	argv[argc] = NULL;
	if (argc == 0)
		return -1;

	/* The daemon's environment and the message's. */
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	char **envp = xcalloc(nenv + 7, sizeof *envp);
	size_t e = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "CHATP2P_", 8) != 0)
			envp[e++] = environ[i];
	char *own[6] = {
		env_var("CHATP2P_FROM", j->from), env_var("CHATP2P_TO", j->to),
		env_var("CHATP2P_TYPE", j->type), env_var("CHATP2P_TEXT", j->text),
		env_var("CHATP2P_MSG_ID", j->msg_id), env_var("CHATP2P_IDENTITY", j->identity),
	};
	for (int i = 0; i < 6; i++)
		envp[e++] = own[i];

	/* Its own process group (a timeout kills all of it), default signal
	 * dispositions and mask (the daemon ignores SIGPIPE), standard input
	 * from /dev/null, output to the daemon's standard error (the log). */
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGHUP);
	sigaddset(&dflt, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					 POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dflt);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);

	pid_t pid;
	int rc = strchr(argv[0], '/') ? posix_spawn(&pid, argv[0], &fa, &attr, argv, envp)
				       : posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	for (int i = 0; i < 6; i++)
		free(own[i]);
	free(envp);
	if (rc != 0) {
		log_warn(MOD, "cannot run %s: %s", argv[0], strerror(rc));
		return -1;
	}
	struct child *c = xcalloc(1, sizeof *c);
	c->pid = pid;
	ev_child_init(&c->exit_w, on_exit_, pid, 0);
	c->exit_w.data = c;
	ev_child_start(H.loop, &c->exit_w);
	ev_timer_init(&c->timeout_w, on_timeout, cfg->hooks.timeout, 0);
	c->timeout_w.data = c;
	ev_timer_start(H.loop, &c->timeout_w);
	c->next = H.running;
	H.running = c;
	H.nrunning++;
	H.stats.started++;
	log_debug(MOD, "hook %ld started for %s from %s", (long)pid, j->msg_id, j->from);
	return 0;
}

/* Start waiting jobs while there is room. */
static void start_next(void)
{
	while (H.head && H.node) {
		const struct config *cfg = node_config(H.node);
		if (H.nrunning >= cfg->hooks.max_running || cfg->hooks.on_message[0] == '\0')
			break;
		struct job *j = H.head;
		H.head = j->next;
		if (H.head == NULL)
			H.tail = NULL;
		H.nwaiting--;
		spawn(cfg, j);
		job_free(j);
	}
}

void hooks_on_event(struct node *n, const struct node_event *ev)
{
	const struct config *cfg = node_config(n);

	if ((ev->type != EV_MESSAGE && ev->type != EV_PUB) || ev->inbox_id <= 0 ||
	    cfg->hooks.on_message[0] == '\0')
		return;
	H.node = n;
	H.loop = node_loop(n);
	if (H.nwaiting >= QUEUE_MAX) {
		H.stats.dropped++;
		log_warn(MOD, "%d hooks waiting: not run for %s", H.nwaiting,
			 ev->msg_id ? ev->msg_id : "?");
		return;
	}
	struct job *j = xcalloc(1, sizeof *j);
	j->from = xstrdup(ev->peer_id ? ev->peer_id : "");
	j->to = xstrdup(ev->type == EV_MESSAGE ? (ev->to ? ev->to : node_id(n)) : (ev->to ? ev->to : "*"));
	j->type = xstrdup(ev->type == EV_MESSAGE ? "message" : "pub");
	j->text = xstrdup(ev->text ? ev->text : "");
	j->msg_id = xstrdup(ev->msg_id ? ev->msg_id : "");
	j->identity = xstrdup(node_id(n));
	if (H.tail)
		H.tail->next = j;
	else
		H.head = j;
	H.tail = j;
	H.nwaiting++;
	start_next();
}

void hooks_stop(void)
{
	while (H.running) {
		kill(-H.running->pid, SIGTERM);
		child_end(H.running);
	}
	while (H.head) {
		struct job *j = H.head;
		H.head = j->next;
		job_free(j);
	}
	H.tail = NULL;
	H.nwaiting = 0;
	H.node = NULL;
}

struct hooks_stats hooks_stats(void)
{
	struct hooks_stats s = H.stats;

	s.running = (unsigned long)H.nrunning;
	s.waiting = (unsigned long)H.nwaiting;
	return s;
}

void hooks_subscriber(void *ctx, const struct node_event *ev)
{
	hooks_on_event(ctx, ev);
}
