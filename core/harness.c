/* harness.c -- see harness.h. */
#include "core/harness.h"
#include "core/base/fsutil.h"
#include "core/spawn.h"
#include "platform/compat.h"
#include "platform/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_AFTER_MS 5000

struct hwait {
	struct reactor r;
	pid_t pid;
	int done;
	int status;
	int kill_h;
	struct harness_check *res;
};

static void
on_kill(struct reactor *r, int h, int ev, void *arg)
{
	struct hwait *w = arg;

	(void)r; (void)h; (void)ev;
	w->kill_h = -1;
	kill(-w->pid, SIGKILL);
}

/* TERM (and CONT) to the check's group, KILL later. */
static void
end_check(struct hwait *w)
{
	kill(-w->pid, SIGTERM);
	kill(-w->pid, SIGCONT);
	if (w->kill_h < 0)
		w->kill_h = reactor_timer_add(&w->r, KILL_AFTER_MS, on_kill, w);
}

static void
on_exit_cb(struct reactor *r, int h, int status, void *arg)
{
	struct hwait *w = arg;

	(void)h;
	w->done = 1;
	w->status = status;
	/* what the check left in its group goes with it */
	kill(-w->pid, SIGKILL);
	reactor_stop(r);
}

static void
on_sig(struct reactor *r, int h, int sig, void *arg)
{
	struct hwait *w = arg;

	(void)r; (void)h;
	if (w->res->signal == 0)
		w->res->signal = sig;
	end_check(w);
}

static void
on_deadline(struct reactor *r, int h, int ev, void *arg)
{
	struct hwait *w = arg;

	(void)r; (void)h; (void)ev;
	w->res->timed_out = 1;
	end_check(w);
}

int
harness_run(char *const argv[], char *const env[], int timeout_s,
    struct harness_check *res, struct err *e)
{
	static struct hwait w;
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct spawn_opts so;
	sigset_t mask;
	uint64_t t0;
	pid_t pid;

	memset(res, 0, sizeof *res);
	memset(&w, 0, sizeof w);
	w.res = res;
	w.kill_h = -1;
	if (reactor_init(&w.r) < 0)
		return err_sys(e, ERR_IO, "cannot create the event loop");
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (reactor_signal_add(&w.r, sigs[i], on_sig, &w) < 0) {
			reactor_fini(&w.r);
			return err_sys(e, ERR_IO, "cannot watch signals");
		}
	reactor_child_sigmask(&w.r, &mask);
	memset(&so, 0, sizeof so);
	so.argv = argv;
	so.out_fd = 2;          /* stdout carries the harness's one JSON object */
	so.stdin_inherit = 1;
	so.listen_fd = so.notify_fd = -1;
	so.env_add = (const char *const *)env;
	so.sigmask = &mask;
	t0 = reactor_clock_ms();
	if ((pid = spawn_server(&so, e)) < 0) {
		reactor_fini(&w.r);
		return -1;
	}
	w.pid = pid;
	if (reactor_child_add(&w.r, pid, on_exit_cb, &w) < 0) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		reactor_fini(&w.r);
		return err_sys(e, ERR_IO, "cannot watch the check");
	}
	if (timeout_s > 0)
		reactor_timer_add(&w.r, (uint64_t)timeout_s * 1000, on_deadline, &w);
	while (!w.done)
		if (reactor_run_once(&w.r, -1) < 0 && errno != EINTR)
			break;
	res->status = w.status;
	res->duration_ms = (int64_t)(reactor_clock_ms() - t0);
	reactor_fini(&w.r);
	return 0;
}

int
harness_remove_tree(const char *path)
{
	/* a home is a few levels deep (hosts/<machine>/state/...) */
	return fs_remove_tree(AT_FDCWD, path, 16);
}
