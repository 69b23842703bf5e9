/* childrun.c -- see childrun.h. */
#include "core/childrun.h"
#include "platform/compat.h"
#include "platform/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void
reap_noop(struct reactor *r, int h, int events, void *arg)
{
	(void)r; (void)h; (void)events; (void)arg;
}

/* A child that is not reaped yet: KILL it and leave the reaping to a
 * watch that does nothing, so `c` can be reused at once. */
static void
abandon(struct childrun *c)
{
	if (c->pid <= 0)
		return;
	kill(c->pid, SIGKILL);
	job_unwatch(&c->job, &c->exit_h);
	if (reactor_child_add(c->job.r, c->pid, reap_noop, NULL) < 0) {
		/* no slot left: reap here; SIGKILL makes this short */
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	c->pid = 0;
}

static void
finish(struct childrun *c)
{
	abandon(c);
	if (job_end(&c->job))
		c->done(c, c->arg);
}

static void
on_pipe(struct reactor *r, int h, int events, void *arg)
{
	struct childrun *c = arg;
	unsigned char junk[256];

	(void)r; (void)h; (void)events;
	for (;;) {
		int full = c->len >= c->cap;
		ssize_t n = read(c->fd, full ? junk : c->buf + c->len, full ? sizeof junk :
		    c->cap - c->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;                  /* EOF, or an error: the same */
		if (full)
			c->truncated = 1;
		else
			c->len += (size_t)n;
	}
	job_unwatch(&c->job, &c->io_h);
	job_close(&c->job, &c->fd);
	c->eof = 1;
	if (c->exited)
		finish(c);
}

static void
on_exit_(struct reactor *r, int h, int status, void *arg)
{
	struct childrun *c = arg;

	(void)r; (void)h;
	c->exit_h = -1;         /* one-shot: already removed */
	c->exited = 1;
	c->status = status;
	c->pid = 0;
	if (c->eof)
		finish(c);
}

static void
on_timeout(struct reactor *r, int h, int events, void *arg)
{
	struct childrun *c = arg;

	(void)r; (void)h; (void)events;
	c->timer_h = -1;
	c->timed_out = 1;
	finish(c);
}

static int
start_fail(struct childrun *c, struct err *e, int en, const char *what)
{
	abandon(c);
	job_release(&c->job);
	errno = en;
	return err_sys(e, ERR_SPAWN, "cannot run the helper: %s", what);
}

int
childrun_start(struct childrun *c, struct reactor *r, childrun_body *body, void *ctx,
    void *buf, size_t cap, uint64_t timeout_ms, childrun_done_cb *done, void *arg,
    struct err *e)
{
	int *const watches[] = { &c->io_h, &c->exit_h, &c->timer_h }, *const fds[] = { &c->fd };
	sigset_t mask;
	int p[2], en;

	if (c->job.active) {
		errno = EBUSY;
		return err_set(e, ERR_OTHER, "a helper is already running");
	}
	job_begin(&c->job, r, watches, 3, fds, 1);
	c->exited = c->status = c->timed_out = c->truncated = c->eof = 0;
	c->len = 0;
	c->buf = buf;
	c->cap = cap;
	c->pid = 0;
	c->done = done;
	c->arg = arg;
	if (compat_pipe(p, 0) < 0)
		return start_fail(c, e, errno, "pipe");
	c->fd = p[0];
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0 ||
	    (c->io_h = reactor_io_add(r, c->fd, REACTOR_READ, on_pipe, c)) < 0 ||
	    (c->timer_h = reactor_timer_add(r, timeout_ms, on_timeout, c)) < 0) {
		en = errno;
		close(p[1]);
		return start_fail(c, e, en, "cannot watch it");
	}
	reactor_child_sigmask(r, &mask);
	c->pid = fork();
	if (c->pid == 0) {
		sigprocmask(SIG_SETMASK, &mask, NULL);
		close(p[0]);
		body(ctx, p[1]);
		_exit(127);
	}
	en = errno;
	close(p[1]);
	if (c->pid < 0) {
		c->pid = 0;
		return start_fail(c, e, en, "fork");
	}
	if ((c->exit_h = reactor_child_add(r, c->pid, on_exit_, c)) < 0)
		return start_fail(c, e, errno, "cannot watch it");
	job_started(&c->job);
	return 0;
}

void
childrun_cancel(struct childrun *c)
{
	if (!c->job.active)
		return;
	abandon(c);
	job_release(&c->job);
}

int
childrun_running(const struct childrun *c)
{
	return c->job.active;
}

pid_t
childrun_pid(const struct childrun *c)
{
	return c->pid;
}

void
childrun_exec(void *argv, int out_fd)
{
	char *const *av = argv;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0 || dup2(null, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(null, 2) < 0)
		_exit(127);
	execv(av[0], av);
	_exit(127);
}

struct sync_wait {
	struct reactor r;
	int done;
};

static void
sync_done(struct childrun *c, void *arg)
{
	struct sync_wait *w = arg;

	(void)c;
	w->done = 1;
	reactor_stop(&w->r);
}

int
childrun_sync(struct childrun *c, childrun_body *body, void *ctx, void *buf, size_t cap,
    uint64_t timeout_ms, struct err *e)
{
	static struct sync_wait w;

	memset(&w, 0, sizeof w);
	if (reactor_init(&w.r) < 0)
		return err_sys(e, ERR_IO, "cannot create the event loop");
	if (childrun_start(c, &w.r, body, ctx, buf, cap, timeout_ms, sync_done, &w, e) < 0) {
		reactor_fini(&w.r);
		return -1;
	}
	while (!w.done)
		if (reactor_run_once(&w.r, -1) < 0 && errno != EINTR)
			break;
	if (!w.done)
		childrun_cancel(c);
	/* a child KILLed at the deadline is reaped before the loop goes */
	while (reactor_run_once(&w.r, 0) > 0)
		;
	reactor_fini(&w.r);
	return 0;
}
