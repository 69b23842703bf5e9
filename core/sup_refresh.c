/*
 * sup_refresh.c -- self-refresh (the seed's updater re-exec,
 * seed-contract.md §5.2): a newly installed appd is first run as
 * `appd --version` (its output on a pipe, its exit on the reactor, bounded
 * by VERIFY_MS), then execve'd in place.  execve keeps our pid, so the
 * server stays our child and supervisor.pid stays true; the listener, the
 * output pipe and the control socket are handed over as fds named on the
 * command line; every other fd is CLOEXEC.  The signal mask survives
 * execve, so a signal that arrives meanwhile waits for the new image.
 */
#include "core/sup.h"
#include "core/base/fsutil.h"
#include "platform/compat.h"
#include "platform/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define VERIFY_MS 2000

static int
keep_fd(int fd)
{
	return fd < 0 || fcntl(fd, F_SETFD, 0) == 0 ? 0 : -1;
}

static void
exec_new(struct sup *s)
{
	char fds[64];
	char *argv[] = { (char *)"appd", (char *)"supervise", (char *)"--handover", fds, NULL };
	extern char **environ;

	if (keep_fd(s->lfd) < 0 || keep_fd(s->out_rd) < 0 || keep_fd(s->out_wr) < 0 ||
	    keep_fd(s->ctl.lfd) < 0) {
		sup_log("self-refresh: cannot hand over the fds: %s", strerror(errno));
		goto undo;
	}
	str_fmt(fds, sizeof fds, "%d,%d,%d,%d", s->lfd, s->out_rd, s->out_wr, s->ctl.lfd);
	s->st.checking = 0;
	sup_publish(s);
	sup_log("self-refresh: executing %s in place (pid %ld, server pid %ld)", s->vfy_path,
	    (long)getpid(), (long)s->srv);
	execve(s->vfy_path, argv, environ);
	sup_log("self-refresh: cannot execute %s: %s", s->vfy_path, strerror(errno));
undo:
	if (s->lfd >= 0)
		fd_cloexec(s->lfd);
	fd_cloexec(s->out_rd);
	fd_cloexec(s->out_wr);
	if (s->ctl.lfd >= 0)
		fd_cloexec(s->ctl.lfd);
}

/* The probe is over when its output ended and it was reaped (or the
 * bound passed and the KILLed child was reaped). */
static void
probe_over(struct sup *s)
{
	int ok;

	if (s->vfy_fd >= 0 || s->vfy_pid > 0)
		return;
	sup_cancel(s, &s->vfy_timer_h);
	s->vfy_out[s->vfy_len] = '\0';
	ok = s->vfy_len >= 5 && strncmp(s->vfy_out, "appd ", 5) == 0;
	if (ok && s->state != SRV_STOPPING && s->upd_phase == UPH_NONE)
		exec_new(s);
	else if (!ok)
		sup_log("self-refresh: %s does not run as appd; keeping this one", s->vfy_path);
	upd_flow_next(s);
}

static void
close_pipe(struct sup *s)
{
	sup_cancel(s, &s->vfy_io_h);
	if (s->vfy_fd >= 0)
		close(s->vfy_fd);
	s->vfy_fd = -1;
}

static void
on_read(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	ssize_t n;

	(void)r; (void)h; (void)ev;
	n = read(s->vfy_fd, s->vfy_out + s->vfy_len, sizeof s->vfy_out - 1 - s->vfy_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && (s->vfy_len += (size_t)n) < sizeof s->vfy_out - 1)
		return;
	close_pipe(s);
	probe_over(s);
}

static void
on_exit_(struct reactor *r, int h, int status, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h;
	s->vfy_pid = 0;
	if (status != 0)
		s->vfy_len = 0;          /* a failing binary is not appd */
	probe_over(s);
}

static void
on_timeout(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->vfy_timer_h = -1;
	sup_log("self-refresh: %s --version did not finish within %d ms", s->vfy_path, VERIFY_MS);
	s->vfy_len = 0;
	close_pipe(s);
	if (s->vfy_pid > 0)
		kill(s->vfy_pid, SIGKILL);   /* its exit watch reaps it */
	probe_over(s);
}

void
refresh_start(struct sup *s, const char *path)
{
	sigset_t mask;
	int p[2], h;
	pid_t pid;

	if (s->state == SRV_STOPPING || s->upd_phase != UPH_NONE || s->vfy_pid > 0)
		return;
	if (compat_pipe(p, COMPAT_NONBLOCK) < 0) {
		sup_log("self-refresh: cannot create a pipe: %s", strerror(errno));
		return;
	}
	str_copy(s->vfy_path, sizeof s->vfy_path, path);
	s->vfy_len = 0;
	reactor_child_sigmask(&s->r, &mask);
	pid = fork();
	if (pid == 0) {
		char *const argv[] = { (char *)"appd", (char *)"--version", NULL };
		sigprocmask(SIG_SETMASK, &mask, NULL);
		dup2(p[1], 1);
		execv(path, argv);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		sup_log("self-refresh: cannot fork: %s", strerror(errno));
		close(p[0]);
		return;
	}
	h = reactor_child_add(&s->r, pid, on_exit_, s);
	if (h < 0) {
		/* cannot watch it: do not exec what we could not check */
		kill(pid, SIGKILL);
		close(p[0]);
		sup_log("self-refresh: cannot watch the probe: %s", strerror(errno));
		return;
	}
	s->vfy_pid = pid;
	s->vfy_fd = p[0];
	s->vfy_io_h = reactor_io_add(&s->r, p[0], REACTOR_READ, on_read, s);
	s->vfy_timer_h = reactor_timer_add(&s->r, VERIFY_MS, on_timeout, s);
}

void
refresh_cancel(struct sup *s)
{
	sup_cancel(s, &s->vfy_timer_h);
	close_pipe(s);
	if (s->vfy_pid > 0)
		kill(s->vfy_pid, SIGKILL);   /* reaped by its watch or the SIGCHLD sweep */
	s->vfy_pid = 0;
}

pid_t
refresh_child(const struct sup *s)
{
	return s->vfy_pid;
}

int
refresh_adopt(struct sup *s, const struct sup_opts *o, struct err *e)
{
	struct pid_record rec;
	enum pidfile_state ps;
	struct err e2;

	s->lfd = o->h_lfd;     /* the control socket's is taken by ctl_listen */
	s->out_rd = o->h_out_rd;
	s->out_wr = o->h_out_wr;
	if (s->lfd >= 0)
		fd_cloexec(s->lfd);
	if (fd_cloexec(s->out_rd) < 0 || fd_cloexec(s->out_wr) < 0)
		return err_sys(e, ERR_IO, "handover: bad output pipe fds");
	err_clear(&e2);
	if (status_read(s->h->status, &s->st, &e2) != 0)
		memset(&s->st, 0, sizeof s->st);
	s->st.checking = 0;
	err_clear(&e2);
	if (pidfile_peek(s->h->srv_pid, &ps, &rec, &e2) == 0 && ps == PIDFILE_RUNNING &&
	    pidrec_active(&rec) == 1 && rec.pid != getpid() &&
	    srv_adopt(s, &rec, s->st.ready) == 0)
		return 1;
	return 0;
}
